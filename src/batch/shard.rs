//! `--shard K/N`: a stable, disjoint slice of a corpus chosen by a hash of each file's relative
//! path, so that N machines share a corpus without talking to each other.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::path_key;
use crate::error::{Error, Result};
use crate::fsutil::fnv1a;

/// One slice of a corpus: the files whose relative-path hash is `index` modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which slice, from 0 to `count - 1`.
    pub index: usize,
    /// How many slices.
    pub count: usize,
}

impl Shard {
    /// Slice `index` of `count` (`index` counts from 0).
    pub fn new(index: usize, count: usize) -> Result<Shard> {
        if count == 0 || index >= count {
            return Err(Error::option(
                "shard",
                format!(
                    "{index}/{count}: K/N needs N >= 1 and 0 <= K < N (K counts from 0, as JOB_COMPLETION_INDEX and SLURM_ARRAY_TASK_ID with --array=0-(N-1) do)"
                ),
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether the file at `relative` (a path relative to the input directory) is in this
    /// slice. Depends only on the path's components, joined with `/`.
    pub fn contains(&self, relative: &Path) -> bool {
        let key = path_key(relative);
        // FNV's low bits are weak for similar names; a final mix spreads them.
        let mut h = fnv1a(key.as_bytes());
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        (h % self.count as u64) as usize == self.index
    }
}

impl FromStr for Shard {
    type Err = Error;

    /// Parses `K/N`.
    fn from_str(s: &str) -> Result<Shard> {
        let bad = || {
            Error::option(
                "shard",
                format!("`{s}` is not K/N (for example 0/4: the first of four slices)"),
            )
        };
        let (k, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let k = k.trim().parse().map_err(|_| bad())?;
        let n = n.trim().parse().map_err(|_| bad())?;
        Shard::new(k, n)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Serialize for Shard {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn shards_parse_and_partition() {
        assert_eq!(
            "1/4".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 4 }
        );
        assert!("4/4".parse::<Shard>().is_err());
        assert!("0/0".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
        let shards: Vec<Shard> = (0..3).map(|k| Shard::new(k, 3).unwrap()).collect();
        let mut sizes = [0; 3];
        for i in 0..300 {
            let p = PathBuf::from(format!("dir{}/article-{i}.txt", i % 7));
            let owners: Vec<usize> = shards
                .iter()
                .filter(|s| s.contains(&p))
                .map(|s| s.index)
                .collect();
            assert_eq!(owners.len(), 1, "{p:?}");
            sizes[owners[0]] += 1;
        }
        assert!(sizes.iter().all(|&n| n > 70), "{sizes:?}");
        // Stable: a fixed answer for a fixed path, whatever the machine.
        let fixed: Vec<bool> = (0..4)
            .map(|k| Shard::new(k, 4).unwrap().contains(Path::new("a/b.txt")))
            .collect();
        assert_eq!(fixed.iter().filter(|&&x| x).count(), 1);
    }
}
