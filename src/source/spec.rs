//! What the user names with `--model`: a catalogue entry, a Hub repository or a local directory.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};

/// The catalogue entry used when the user names no model.
pub const DEFAULT_MODEL: &str = "opus-mt-nl-en";

/// A model as the user named it, before anything is looked up.
///
/// Parsed by [`ModelSpec::parse`]:
/// - a path (anything starting with `.`, `/`, `~`, or naming an existing file or directory) is
///   a local directory;
/// - `ORG/NAME` is a Hugging Face Hub repository;
/// - a bare name is a catalogue entry (see [`crate::source::Catalogue`]).
///
/// Hub and catalogue forms take an optional revision after `@` (`ORG/NAME@refs/pr/1`); a
/// revision passed separately with [`ModelSpec::with_revision`] replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelSpec {
    /// A catalogue entry; `revision` overrides the entry's pinned revision.
    Catalogue {
        /// The entry's name.
        name: String,
        /// A revision to use instead of the pinned one.
        revision: Option<String>,
    },
    /// A Hub repository; the revision defaults to `main`.
    Hub {
        /// `Org/name`.
        repo: String,
        /// Branch, tag, `refs/pr/N` or commit hash.
        revision: Option<String>,
    },
    /// A local directory in the Hugging Face layout.
    Dir(PathBuf),
}

impl Default for ModelSpec {
    /// The [`DEFAULT_MODEL`] catalogue entry.
    fn default() -> Self {
        ModelSpec::Catalogue {
            name: DEFAULT_MODEL.to_string(),
            revision: None,
        }
    }
}

impl ModelSpec {
    /// Parses what the user typed (see the type's documentation for the forms).
    pub fn parse(text: &str) -> Result<ModelSpec> {
        let text = text.trim();
        if text.is_empty() {
            return Err(unknown(text, "the model name is empty"));
        }
        if text.starts_with(['.', '/', '~', '\\']) || Path::new(text).exists() {
            let home = std::env::var_os("HOME")
                .or_else(|| std::env::var_os("USERPROFILE"))
                .map(PathBuf::from);
            return Ok(ModelSpec::Dir(super::settings::expand_tilde(
                text,
                home.as_deref(),
            )));
        }
        let (name, revision) = match text.split_once('@') {
            Some((name, rev)) => (name, Some(rev)),
            None => (text, None),
        };
        if let Some(rev) = revision {
            check_revision(rev)?;
        }
        let revision = revision.map(str::to_string);
        if name.contains('/') {
            check_repo_id(name)?;
            Ok(ModelSpec::Hub {
                repo: name.to_string(),
                revision,
            })
        } else {
            check_name(name)?;
            Ok(ModelSpec::Catalogue {
                name: name.to_string(),
                revision,
            })
        }
    }

    /// Replaces the revision (`None` keeps the current one). A directory has no revisions, so
    /// giving one for it is an error.
    pub fn with_revision(self, revision: Option<&str>) -> Result<ModelSpec> {
        let Some(rev) = revision else {
            return Ok(self);
        };
        check_revision(rev)?;
        let rev = Some(rev.to_string());
        match self {
            ModelSpec::Catalogue { name, .. } => Ok(ModelSpec::Catalogue {
                name,
                revision: rev,
            }),
            ModelSpec::Hub { repo, .. } => Ok(ModelSpec::Hub {
                repo,
                revision: rev,
            }),
            ModelSpec::Dir(dir) => Err(Error::option(
                "revision",
                format!(
                    "{} is a local directory, which has no revisions",
                    dir.display()
                ),
            )),
        }
    }

    /// The revision asked for explicitly, if any.
    pub fn revision(&self) -> Option<&str> {
        match self {
            ModelSpec::Catalogue { revision, .. } | ModelSpec::Hub { revision, .. } => {
                revision.as_deref()
            }
            ModelSpec::Dir(_) => None,
        }
    }
}

impl FromStr for ModelSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ModelSpec::parse(s)
    }
}

impl fmt::Display for ModelSpec {
    /// The form [`ModelSpec::parse`] reads back (`name`, `Org/name@rev`, the path).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSpec::Catalogue { name: id, revision } | ModelSpec::Hub { repo: id, revision } => {
                f.write_str(id)?;
                if let Some(rev) = revision {
                    write!(f, "@{rev}")?;
                }
                Ok(())
            }
            ModelSpec::Dir(dir) => write!(f, "{}", dir.display()),
        }
    }
}

fn unknown(name: &str, message: impl Into<String>) -> Error {
    Error::UnknownModel {
        name: name.to_string(),
        message: message.into(),
    }
}

const FORMS: &str =
    "use a catalogue name (`tolk models list`), a Hub id ORG/NAME, or a directory path (./dir)";

/// Hub repository ids: `org/name` with letters, digits, `-`, `_`, `.`; no `--` or `..`, which
/// would break the cache folder naming and could escape it.
pub(crate) fn check_repo_id(repo: &str) -> Result<()> {
    let parts: Vec<&str> = repo.split('/').collect();
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 96
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && !p.starts_with(['-', '.'])
            && !p.ends_with(['-', '.'])
            && !p.contains("--")
            && !p.contains("..")
    };
    if parts.len() == 2 && parts.iter().all(|p| part_ok(p)) {
        Ok(())
    } else {
        Err(unknown(
            repo,
            format!("not a valid Hub repository id; {FORMS}"),
        ))
    }
}

fn check_name(name: &str) -> Result<()> {
    if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        Ok(())
    } else {
        Err(unknown(name, format!("not a valid model name; {FORMS}")))
    }
}

/// Revisions become cache paths (`refs/<revision>`) and URL segments: allow what git ref names
/// and commit hashes use, and refuse anything that could climb out of the cache folder.
pub(crate) fn check_revision(rev: &str) -> Result<()> {
    let ok = !rev.is_empty()
        && rev.len() <= 255
        && rev
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b'+'))
        && !rev.starts_with('/')
        && !rev.ends_with('/')
        && rev
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    if ok {
        Ok(())
    } else {
        Err(Error::option(
            "revision",
            format!("`{rev}` is not a branch, tag, refs/pr/N or commit hash"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            ModelSpec::parse("opus-mt-nl-en").unwrap(),
            ModelSpec::default()
        );
        assert_eq!(
            ModelSpec::parse("Helsinki-NLP/opus-mt-de-en@refs/pr/1").unwrap(),
            ModelSpec::Hub {
                repo: "Helsinki-NLP/opus-mt-de-en".into(),
                revision: Some("refs/pr/1".into())
            }
        );
        assert_eq!(
            ModelSpec::parse("./models/x").unwrap(),
            ModelSpec::Dir("./models/x".into())
        );
        assert_eq!(
            ModelSpec::parse("/abs/dir").unwrap(),
            ModelSpec::Dir("/abs/dir".into())
        );
        assert!(matches!(
            ModelSpec::parse("~/m").unwrap(),
            ModelSpec::Dir(_)
        ));
        // An existing relative path wins over the other readings (tests run in the package root).
        assert!(matches!(
            ModelSpec::parse("tests/fixtures").unwrap(),
            ModelSpec::Dir(_)
        ));
    }

    #[test]
    fn display_round_trips() {
        for text in ["opus-mt-nl-en", "a/b@refs/pr/1", "x@0123abc"] {
            assert_eq!(ModelSpec::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn revision_override() {
        let spec = ModelSpec::parse("a/b@v1")
            .unwrap()
            .with_revision(Some("refs/pr/2"))
            .unwrap();
        assert_eq!(spec.revision(), Some("refs/pr/2"));
        assert_eq!(
            ModelSpec::parse("a/b")
                .unwrap()
                .with_revision(None)
                .unwrap()
                .revision(),
            None
        );
        let err = ModelSpec::Dir("/m".into())
            .with_revision(Some("main"))
            .unwrap_err();
        assert!(err.to_string().contains("local directory"), "{err}");
    }

    #[test]
    fn refuses_bad_ids_and_revisions() {
        for bad in [
            "a/b/c",
            "a//b",
            "a/-b",
            "a/b--c",
            "a/..",
            "a b/c",
            "a/b@../../etc",
            "a/b@",
            "x@refs//pr",
        ] {
            assert!(ModelSpec::parse(bad).is_err(), "{bad}");
        }
        assert!(ModelSpec::parse("name with space").is_err());
    }
}
