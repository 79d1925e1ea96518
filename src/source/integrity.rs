//! Content hashes of cached files. The Hugging Face cache names every blob by the hash the Hub
//! gave for it: the SHA-256 of the content for LFS files (the weights), git's blob SHA-1
//! (`sha1("blob <len>\0" + content)`) for the others. So a blob can be checked against its own
//! name, without the network, and a download against what the Hub announced.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// How a blob is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    /// SHA-256 of the content (Git LFS files; 64 hex digits).
    Sha256,
    /// git's blob hash, SHA-1 of `blob <len>\0` and the content (other files; 40 hex digits).
    GitSha1,
}

impl HashKind {
    /// `sha256` or `git-sha1`.
    pub fn as_str(self) -> &'static str {
        match self {
            HashKind::Sha256 => "sha256",
            HashKind::GitSha1 => "git-sha1",
        }
    }

    /// How it is written in messages.
    pub(crate) fn label(self) -> &'static str {
        match self {
            HashKind::Sha256 => "SHA-256",
            HashKind::GitSha1 => "git blob SHA-1",
        }
    }
}

/// A hash a file should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expected {
    pub kind: HashKind,
    /// Lowercase hex.
    pub hex: String,
}

impl Expected {
    /// From a hash as text: 64 hex digits are a SHA-256, 40 a git blob SHA-1; anything else is
    /// no hash we can check.
    pub(crate) fn parse(text: &str) -> Option<Expected> {
        let hex = text.trim().to_ascii_lowercase();
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let kind = match hex.len() {
            64 => HashKind::Sha256,
            40 => HashKind::GitSha1,
            _ => return None,
        };
        Some(Expected { kind, hex })
    }

    /// The hash a cache entry's blob is named by: `path` (a snapshot entry, usually a link) must
    /// resolve to a file in a `blobs` folder. `None` for anything else (a plain copy, a local
    /// directory).
    pub(crate) fn of_blob(path: &Path) -> Option<Expected> {
        let blob: PathBuf = std::fs::canonicalize(path).ok()?;
        let folder = blob.parent()?.file_name()?;
        if folder != "blobs" {
            return None;
        }
        Expected::parse(blob.file_name()?.to_str()?)
    }

    /// Hashes `path`; `Ok(None)` when it matches, `Ok(Some(actual))` when it does not.
    pub(crate) fn mismatch(&self, path: &Path) -> Result<Option<String>> {
        let actual = hash_file(path, self.kind).map_err(|e| Error::io(path, e))?;
        Ok((actual != self.hex).then_some(actual))
    }
}

/// The hash of a file's content, as lowercase hex. Reads in 1 MiB pieces: a 300 MB model
/// takes about a second.
pub(crate) fn hash_file(path: &Path, kind: HashKind) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut buf = vec![0u8; 1 << 20];
    match kind {
        HashKind::Sha256 => {
            let mut h = Sha256::new();
            feed(&mut file, &mut buf, |b| h.update(b))?;
            Ok(hex(&h.finalize()))
        }
        HashKind::GitSha1 => {
            let mut h = Sha1::new();
            h.update(format!("blob {len}\0").as_bytes());
            let mut read = 0u64;
            feed(&mut file, &mut buf, |b| {
                read += b.len() as u64;
                h.update(b)
            })?;
            if read != len {
                // The header promised another length: the file changed while being read.
                return Err(std::io::Error::other(
                    "the file changed while it was hashed",
                ));
            }
            Ok(hex(&h.finalize()))
        }
    }
}

fn feed(file: &mut File, buf: &mut [u8], mut sink: impl FnMut(&[u8])) -> std::io::Result<()> {
    loop {
        match file.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => sink(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "hello\n").unwrap();
        // `printf 'hello\n' | sha256sum` and `printf 'hello\n' | git hash-object --stdin`.
        assert_eq!(
            hash_file(&path, HashKind::Sha256).unwrap(),
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        assert_eq!(
            hash_file(&path, HashKind::GitSha1).unwrap(),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        std::fs::write(&path, "").unwrap();
        assert_eq!(
            hash_file(&path, HashKind::GitSha1).unwrap(),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
    }

    #[test]
    fn blob_names_and_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs");
        std::fs::create_dir(&blobs).unwrap();
        let name = "ce013625030ba8dba906f756967f9e9ca394464a";
        std::fs::write(blobs.join(name), "hello\n").unwrap();
        let expected = Expected::of_blob(&blobs.join(name)).unwrap();
        assert_eq!(expected.kind, HashKind::GitSha1);
        assert_eq!(expected.mismatch(&blobs.join(name)).unwrap(), None);
        std::fs::write(blobs.join(name), "hellO\n").unwrap();
        let actual = expected.mismatch(&blobs.join(name)).unwrap().unwrap();
        assert_eq!(actual.len(), 40);
        assert_ne!(actual, name);
        // Not in a blobs folder, or not named by a hash: nothing to check against.
        std::fs::write(dir.path().join(name), "x").unwrap();
        assert_eq!(Expected::of_blob(&dir.path().join(name)), None);
        std::fs::write(blobs.join("config.json"), "x").unwrap();
        assert_eq!(Expected::of_blob(&blobs.join("config.json")), None);
        assert_eq!(Expected::parse("W/\"abc\""), None);
        assert_eq!(
            Expected::parse(&"AB".repeat(32)).map(|e| (e.kind, e.hex)),
            Some((HashKind::Sha256, "ab".repeat(32)))
        );
    }
}
