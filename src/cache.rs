//! tolk's own cache (`$TOLK_CACHE_DIR`, else `$XDG_CACHE_HOME/tolk`, else `~/.cache/tolk`): derived
//! files that make loading fast, such as int8-quantised models. Nothing here is precious: any
//! file can be deleted and is rebuilt on the next load.

use std::path::{Path, PathBuf};

/// The cache directory, if one can be named (no home directory and no variable: none).
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TOLK_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("tolk"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|h| PathBuf::from(h).join(".cache").join("tolk"))
}

/// A stable name for a file derived from `source` by `kind` (e.g. `int8-v1`): it changes when the
/// source file's path, size or modification time changes, so a replaced model is never confused
/// with its old derivative.
pub fn derived_name(source: &Path, kind: &str) -> String {
    let canonical = source
        .canonicalize()
        .unwrap_or_else(|_| source.to_path_buf());
    let meta = std::fs::metadata(source).ok();
    let size = meta.as_ref().map(|m| m.len()).unwrap_or(0);
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let key = format!("{}\0{size}\0{mtime}\0{kind}", canonical.display());
    // FNV-1a: stable across Rust versions, unlike std's hasher.
    let h = crate::fsutil::fnv1a(key.as_bytes());
    format!("{kind}-{h:016x}.safetensors")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_change_with_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("model.safetensors");
        std::fs::write(&f, b"one").unwrap();
        let a = derived_name(&f, "int8-v1");
        assert_eq!(a, derived_name(&f, "int8-v1"));
        assert_ne!(a, derived_name(&f, "int8-v2"));
        std::fs::write(&f, b"three").unwrap();
        assert_ne!(a, derived_name(&f, "int8-v1"));
    }
}
