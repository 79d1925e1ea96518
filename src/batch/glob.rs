//! `--glob` patterns, read by `globset` as shells and ripgrep read them: `*` (any characters but
//! `/`), `?`, `**` (any number of directories, as a whole path component: `a/**/b`, `**/x`),
//! `[abc]`, `[a-z]`, `[!a]`, `{txt,md}` (alternatives) and `\*` (a literal `*`). A pattern
//! without `/` is matched against the file name, one with `/` against the path relative to the
//! input directory.

use std::path::Path;

use super::path_key;
use crate::error::{Error, Result};

/// One `--glob` pattern.
#[derive(Debug, Clone)]
pub struct Glob {
    text: String,
    matcher: globset::GlobMatcher,
    whole_path: bool,
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Glob {
    /// Parses a pattern.
    pub fn new(pattern: &str) -> Result<Glob> {
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .empty_alternates(true)
            .build()
            .map_err(|e| Error::option("glob", format!("`{pattern}`: {}", e.kind())))?;
        Ok(Glob {
            text: pattern.to_string(),
            matcher: glob.compile_matcher(),
            whole_path: pattern.contains('/'),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the file at `relative` (relative to the input directory) matches.
    pub fn matches(&self, relative: &Path) -> bool {
        let key = path_key(relative);
        let subject = if self.whole_path {
            key.as_str()
        } else {
            key.rsplit('/').next().unwrap_or_default()
        };
        self.matcher.is_match(subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        Glob::new(pattern).unwrap().matches(Path::new(path))
    }

    #[test]
    fn globs() {
        assert!(m("*.txt", "a.txt"));
        assert!(m("*.txt", "deep/dir/a.txt"), "no slash: the file name");
        assert!(!m("*.txt", "a.txt.bak"));
        assert!(m("*.t?t", "a.tzt"));
        assert!(m("[ab]*.txt", "b1.txt"));
        assert!(!m("[!ab]*.txt", "b1.txt"));
        assert!(m("[a-c].txt", "b.txt"));
        assert!(m("2024/*.txt", "2024/x.txt"));
        assert!(!m("2024/*.txt", "2024/jan/x.txt"));
        assert!(m("2024/**/*.txt", "2024/x.txt"));
        assert!(m("2024/**/*.txt", "2024/jan/x.txt"));
        assert!(m("**.txt", "a/b/c.txt"));
        assert!(m("*", "anything"));
        assert!(m(r"\*.txt", "*.txt"));
        assert!(!m(r"\*.txt", "a.txt"));
        assert!(Glob::new("[abc").is_err());
        // Alternatives, as shells expand them.
        assert!(m("*.{txt,md,html}", "a/b.md"));
        assert!(m("*.{txt,md,html}", "b.html"));
        assert!(!m("*.{txt,md}", "b.htm"));
        assert!(m("{2023,2024}/**/*.txt", "2024/jan/a.txt"));
        assert!(!m("{2023,2024}/**/*.txt", "2022/a.txt"));
        assert!(Glob::new("*.{txt").is_err());
    }
}
