//! File-system helpers shared by every writer: all-or-nothing files ([`AtomicFile`],
//! [`write_atomic`]: a hidden temporary file next to the target, flushed to disk, then renamed),
//! the names of those temporary files ([`TempFile`]) so that a later run can recognise and remove
//! the ones a killed run left, the host and process identities they carry, and the one stable
//! hash (FNV-1a) used for names that must not change between machines or Rust versions.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Suffix of the temporary files [`write_atomic`] creates (`.NAME.tolk-tmp-HOST-PID-N`).
pub const TEMP_MARKER: &str = ".tolk-tmp-";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `contents` to `path` atomically: into a hidden temporary file in the same directory
/// (`.NAME.tolk-tmp-HOST-PID-N`, flushed to disk), then renamed over `path`. A reader sees the
/// old file or the new one, never a partial one; if the process dies first, only the temporary
/// file remains (see [`TempFile`] for recognising and removing it).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(contents).map_err(|e| Error::io(path, e))?;
    file.commit()
}

/// Like [`write_atomic`], for writers that take a path (such as the safetensors serialiser):
/// `write` fills the temporary file at the path it is given, which is then flushed to disk and
/// renamed over `path`. If `write` fails, the temporary file is removed and `path` is untouched.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let file = AtomicFile::create(path)?;
    write(&file.tmp)?;
    file.commit()
}

/// A file written all or nothing, like [`write_atomic`] but in pieces: the bytes go to a hidden
/// temporary file next to `path`, which [`AtomicFile::commit`] flushes to disk and renames over
/// `path`. Dropped without a commit (an error on the way), the temporary file is removed and
/// `path` is untouched.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    dir: PathBuf,
    file: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Creates the temporary file for `path` (whose directory must exist); errors name `path`.
    pub fn create(path: &Path) -> Result<AtomicFile> {
        let name = path.file_name().ok_or_else(|| {
            Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
            )
        })?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = dir.join(format!(
            ".{}{TEMP_MARKER}{}-{}-{}",
            name.to_string_lossy(),
            host_tag(),
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io(path, e))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            dir,
            file: Some(BufWriter::with_capacity(1 << 16, file)),
        })
    }

    /// The file this will become.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes the bytes to disk and renames the temporary file over the target.
    pub fn commit(mut self) -> Result<()> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let done = (|| -> std::io::Result<()> {
            let file = file.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&self.tmp, &self.path)
        })();
        if let Err(e) = done {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(Error::io(&self.path, e));
        }
        // Make the rename itself durable; not all systems can sync a directory, so failures here
        // are not errors.
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Err(std::io::Error::other("the file is already committed")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A temporary file left by [`write_atomic`], recognised by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempFile {
    /// The host tag of the writer ([`host_tag`]).
    pub host: String,
    /// The writer's process id.
    pub pid: u32,
}

impl TempFile {
    /// Parses a file name; `None` if it is not one of tolk's temporary files.
    pub fn parse(file_name: &str) -> Option<TempFile> {
        if !file_name.starts_with('.') {
            return None;
        }
        let (_, tail) = file_name.rsplit_once(TEMP_MARKER)?;
        let mut parts = tail.split('-');
        let host = parts.next()?.to_string();
        let pid = parts.next()?.parse().ok()?;
        parts.next()?.parse::<u64>().ok()?;
        parts.next().is_none().then_some(TempFile { host, pid })
    }

    /// Whether this temporary file certainly belongs to no running writer: one written on this
    /// host by a process that no longer runs. (Writers on other hosts are judged by age, see
    /// [`crate::batch`].)
    pub fn is_orphan_here(&self) -> bool {
        self.host == host_tag() && process_alive(self.pid) == Some(false)
    }
}

/// A short tag for this machine (8 hex digits of a hash of its host name), so that files from
/// machines sharing a directory can be told apart.
pub fn host_tag() -> String {
    format!("{:08x}", fnv1a(host_name().as_bytes()) as u32)
}

/// This machine's host name, or `localhost` when it cannot be found.
pub fn host_name() -> String {
    let from_file = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    from_file
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("COMPUTERNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_string())
}

/// Whether process `pid` runs on this machine: `Some(true)` or `Some(false)` when that can be
/// told (Linux: `/proc`, where a zombie counts as dead; other Unix systems: `kill -0`), `None`
/// otherwise.
pub fn process_alive(pid: u32) -> Option<bool> {
    if pid == std::process::id() {
        return Some(true);
    }
    if Path::new("/proc/self").exists() {
        return Some(match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the command name in parentheses, which may itself hold spaces.
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_none_or(|state| state != "Z" && state != "X"),
            Err(_) => false,
        });
    }
    if cfg!(unix) {
        return std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()
            .map(|s| s.success());
    }
    None
}

/// 64-bit FNV-1a: a hash that is the same on every machine and every Rust version.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_leave_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["out.json"]);
        // A directory that does not exist: an error naming the file, nothing left behind.
        let missing = dir.path().join("no/such/out.json");
        let e = write_atomic(&missing, b"x").unwrap_err().to_string();
        assert!(e.contains("no/such/out.json"), "{e}");
    }

    #[test]
    fn temp_names_round_trip() {
        let name = format!(
            ".a.b.json{TEMP_MARKER}{}-{}-7",
            host_tag(),
            std::process::id()
        );
        let t = TempFile::parse(&name).unwrap();
        assert_eq!(t.pid, std::process::id());
        assert!(!t.is_orphan_here(), "this process is alive");
        assert!(TempFile::parse("a.json").is_none());
        assert!(TempFile::parse(".a.json.tolk-tmp-x-y-z").is_none());
        assert!(TempFile::parse(&format!("visible{TEMP_MARKER}00000000-1-2")).is_none());
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn atomic_files_are_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        std::fs::write(&path, b"old").unwrap();
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"new, ").unwrap();
        f.write_all(b"in pieces").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"new").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
