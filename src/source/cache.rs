//! The Hugging Face cache layout, read and written without the network:
//! `<cache>/models--Org--name/{blobs/<etag>, snapshots/<commit>/<file>, refs/<revision>}`.
//!
//! The Python library and hf-hub write the same layout, so a cache filled by either (or copied
//! from another machine) is used as is.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One repository's folder in the cache.
#[derive(Debug, Clone)]
pub(crate) struct RepoCache {
    root: PathBuf,
}

impl RepoCache {
    pub(crate) fn new(cache_dir: &Path, repo: &str) -> Self {
        RepoCache {
            root: cache_dir.join(folder_name(repo)),
        }
    }

    /// `<cache>/models--Org--name`.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn snapshot_dir(&self, commit: &str) -> PathBuf {
        self.root.join("snapshots").join(commit)
    }

    pub(crate) fn ref_path(&self, revision: &str) -> PathBuf {
        // Revisions such as `refs/pr/1` become nested folders, as in huggingface_hub.
        self.root.join("refs").join(revision)
    }

    /// The commit a revision points to in the cache, if the cache knows it: a full commit hash
    /// names its snapshot directly (the Python library writes no ref for it), anything else is
    /// looked up in `refs/`.
    pub(crate) fn commit_for(&self, revision: &str) -> Result<Option<String>> {
        if is_commit_hash(revision) {
            return Ok(self
                .snapshot_dir(revision)
                .is_dir()
                .then(|| revision.to_string()));
        }
        let path = self.ref_path(revision);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let commit = text.trim();
                if is_commit_hash(commit) {
                    Ok(Some(commit.to_string()))
                } else {
                    Err(
                        Error::model_file(&path, "this cache ref does not hold a commit hash")
                            .with_hint(format!(
                                "delete {} and fetch the model again",
                                path.display()
                            )),
                    )
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    #[cfg_attr(not(feature = "hub"), allow(dead_code))]
    /// Records that `revision` points to `commit` (skipped for a commit hash naming itself).
    pub(crate) fn write_ref(&self, revision: &str, commit: &str) -> Result<()> {
        if revision == commit {
            return Ok(());
        }
        let path = self.ref_path(revision);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::write(&path, commit).map_err(|e| Error::io(&path, e))
    }

    #[cfg_attr(not(feature = "hub"), allow(dead_code))]
    /// Removes a file from a snapshot (and, with `with_blob`, the blob it links to), so that
    /// the next fetch downloads it again. Missing pieces are fine.
    pub(crate) fn forget(&self, commit: &str, file: &str, with_blob: bool) -> Result<()> {
        let entry = self.snapshot_dir(commit).join(file);
        if with_blob {
            if let Ok(target) = std::fs::read_link(&entry) {
                let blob = entry.parent().map(|p| p.join(&target)).unwrap_or(target);
                remove_if_present(&blob)?;
            }
        }
        remove_if_present(&entry)
    }
}

#[cfg_attr(not(feature = "hub"), allow(dead_code))]
fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// `models--Org--name`, the folder name huggingface_hub gives a model repository.
pub(crate) fn folder_name(repo: &str) -> String {
    format!("models--{}", repo.replace('/', "--"))
}

/// A full, lowercase, 40-digit git commit hash.
pub fn is_commit_hash(text: &str) -> bool {
    text.len() == 40
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn layout_matches_huggingface_hub() {
        let cache = RepoCache::new(Path::new("/c"), "Helsinki-NLP/opus-mt-nl-en");
        assert_eq!(
            cache.root(),
            Path::new("/c/models--Helsinki-NLP--opus-mt-nl-en")
        );
        assert_eq!(
            cache.ref_path("refs/pr/1"),
            Path::new("/c/models--Helsinki-NLP--opus-mt-nl-en/refs/refs/pr/1")
        );
    }

    #[test]
    fn refs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let cache = RepoCache::new(dir.path(), "a/b");
        assert_eq!(cache.commit_for("main").unwrap(), None);
        cache.write_ref("refs/pr/1", C).unwrap();
        assert_eq!(cache.commit_for("refs/pr/1").unwrap().as_deref(), Some(C));
        // A commit hash needs its snapshot, not a ref.
        assert_eq!(cache.commit_for(C).unwrap(), None);
        std::fs::create_dir_all(cache.snapshot_dir(C)).unwrap();
        assert_eq!(cache.commit_for(C).unwrap().as_deref(), Some(C));
    }

    #[test]
    fn bad_ref_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = RepoCache::new(dir.path(), "a/b");
        std::fs::create_dir_all(cache.root().join("refs")).unwrap();
        std::fs::write(cache.ref_path("main"), "garbage").unwrap();
        let err = cache.commit_for("main").unwrap_err().to_string();
        assert!(err.contains("refs/main") && err.contains("delete"), "{err}");
    }

    #[test]
    fn commit_hash_shape() {
        assert!(is_commit_hash(C));
        assert!(!is_commit_hash("main"));
        assert!(!is_commit_hash(&C.to_uppercase()));
        assert!(!is_commit_hash(&C[..39]));
    }
}
