//! One run per output directory (or per shard of it): a lock file held with the operating
//! system's file lock (`flock` on Unix, `LockFileEx` on Windows).
//!
//! The kernel releases the lock when the holder ends, however it ends (Ctrl-C, `kill -9`, a
//! crash), so there is no staleness to judge: a lock file whose process is gone is simply
//! unlocked, and the next run takes it. The file's JSON body (process id, host) only serves the
//! message that names the holder. The holder removes the file when it is done, while it still
//! holds the lock; a run that opened the old file just before takes the lock on a file that no
//! longer has that name, sees that, and tries again on the new one, so two runs can never both
//! hold the lock of one directory.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::{host_name, host_tag};

/// What a lock file holds: who holds it, for the message a second run shows.
#[derive(Debug, Serialize, Deserialize)]
struct LockInfo {
    pid: u32,
    host: String,
    host_name: String,
    started_unix: u64,
}

/// A held lock; dropping it removes the file and releases the lock.
#[derive(Debug)]
pub(crate) struct Lock {
    path: PathBuf,
    /// Holds the lock while it is open.
    _file: File,
}

impl Lock {
    /// Takes the lock at `path`, or says who holds it.
    pub(crate) fn acquire(path: &Path) -> Result<Lock> {
        for _ in 0..8 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Err(held(path)),
                Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
                    // A file system without locks (some network file systems): nothing can be
                    // enforced; run, as the only run would.
                }
                Err(TryLockError::Error(e)) => return Err(Error::io(path, e)),
            }
            if !still_named(&file, path) {
                // The holder before us removed it after we opened it: try the new file.
                continue;
            }
            let info = LockInfo {
                pid: std::process::id(),
                host: host_tag(),
                host_name: host_name(),
                started_unix: SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            };
            let body = serde_json::to_vec(&info).unwrap_or_default();
            file.set_len(0)
                .and_then(|()| file.write_all(&body))
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io(path, e))?;
            return Ok(Lock {
                path: path.to_path_buf(),
                _file: file,
            });
        }
        Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "other runs keep taking and releasing this lock; try again",
            ),
        ))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Removed while still locked (the file closes after this), see the module documentation.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether `path` still names the file `file` has open.
#[cfg(unix)]
fn still_named(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether `path` still names the file `file` has open (elsewhere an open file cannot be
/// removed, so it always does).
#[cfg(not(unix))]
fn still_named(_file: &File, _path: &Path) -> bool {
    true
}

/// The error for a lock held by another run, naming it from the file's body.
fn held(path: &Path) -> Error {
    let holder = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<LockInfo>(&b).ok())
        .map_or_else(
            || "a run that is starting".to_string(),
            |info| format!("process {} on {}", info.pid, info.host_name),
        );
    Error::io(
        path,
        std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!(
                "another tolk batch run ({holder}) is writing to this output directory; wait for it to finish"
            ),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_a_released_lock_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let lock = Lock::acquire(&path).unwrap();
        let e = Lock::acquire(&path).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "another tolk batch run (process {} on {})",
                std::process::id(),
                host_name()
            )),
            "{e}"
        );
        drop(lock);
        assert!(!path.exists(), "removed by its holder");
        // A lock file left behind by a run that is gone is not locked: taken over.
        std::fs::write(
            &path,
            br#"{"pid":1,"host":"x","host_name":"elsewhere","started_unix":0}"#,
        )
        .unwrap();
        let lock = Lock::acquire(&path).unwrap();
        let info: LockInfo = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(info.pid, std::process::id());
        drop(lock);
    }

    #[test]
    fn a_run_that_opened_a_removed_lock_file_does_not_hold_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let first = Lock::acquire(&path).unwrap();
        // A second run opened the file while the first held it...
        let stale = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        // ... the first ends (removing and unlocking it), a third run takes the new file...
        drop(first);
        let third = Lock::acquire(&path).unwrap();
        // ... and the second's lock on the old file is worthless: `acquire` sees that.
        stale.try_lock().unwrap();
        assert!(!still_named(&stale, &path));
        assert!(Lock::acquire(&path).is_err(), "the third run holds it");
        drop(third);
    }
}
