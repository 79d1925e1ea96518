//! The catalogue of known models: one small TOML manifest per model, the built-in ones compiled
//! into the binary (`models/*.toml`) and the user's own read from a directory, overriding
//! built-ins of the same name.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::spec::{check_repo_id, check_revision};
use crate::config::Architecture;
use crate::error::{Error, Result};
use crate::pipeline::GenerationOverrides;

/// The manifests shipped with tolk, compiled in so the binary works from any directory.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "models/opus-mt-nl-en.toml",
        include_str!("../../models/opus-mt-nl-en.toml"),
    ),
    (
        "models/distilbart-cnn-12-6.toml",
        include_str!("../../models/distilbart-cnn-12-6.toml"),
    ),
    (
        "models/nllb-200-distilled-600M.toml",
        include_str!("../../models/nllb-200-distilled-600M.toml"),
    ),
    (
        "models/m2m100_418M.toml",
        include_str!("../../models/m2m100_418M.toml"),
    ),
];

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Translates from `source_language` into `target_language`.
    Translation,
    /// Condenses text in `source_language`.
    Summarization,
}

impl Task {
    /// The manifest spelling (`translation`, `summarization`).
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Translation => "translation",
            Task::Summarization => "summarization",
        }
    }
}

/// Where a manifest came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestOrigin {
    /// Shipped with tolk.
    BuiltIn,
    /// A user manifest file.
    File(PathBuf),
}

/// One catalogue entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Short name used with `--model` (e.g. `opus-mt-nl-en`).
    pub name: String,
    /// One line for `tolk models list`.
    pub description: Option<String>,
    /// Hugging Face Hub repository id.
    pub repo: String,
    /// Pinned revision: a commit hash, or a branch where no commit could be pinned.
    pub revision: String,
    /// What the model does.
    pub task: Task,
    /// Input language (ISO 639-1).
    pub source_language: String,
    /// Output language (ISO 639-1).
    pub target_language: String,
    /// Licence of the weights (SPDX id).
    pub license: String,
    /// Model family, as `config.json` will say.
    pub architecture: Architecture,
    /// The files tolk fetches at the pinned revision (informational).
    pub files: Vec<String>,
    /// Recommended decoding settings.
    pub generation: GenerationOverrides,
    /// Built in or from a user file.
    pub origin: ManifestOrigin,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    description: Option<String>,
    repo: String,
    revision: String,
    task: Task,
    source_language: String,
    target_language: String,
    license: String,
    architecture: String,
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    generation: GenerationOverrides,
}

impl Manifest {
    /// Parses and checks a manifest; `path` names it in errors (syntax errors carry the line).
    pub fn parse(text: &str, path: &Path, origin: ManifestOrigin) -> Result<Manifest> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            format: "TOML",
            message: located(text, e.span(), e.message()),
        })?;
        let field = |name: &str, message: String| Error::config(path, name, message);
        if raw.name.is_empty()
            || !raw
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            || raw.name.starts_with('.')
        {
            return Err(field(
                "name",
                format!(
                    "`{}` is not a model name (letters, digits, `-`, `_`, `.`)",
                    raw.name
                ),
            ));
        }
        check_repo_id(&raw.repo).map_err(|e| field("repo", e.to_string()))?;
        check_revision(&raw.revision).map_err(|e| field("revision", e.to_string()))?;
        let architecture = match raw.architecture.as_str() {
            "marian" => Architecture::Marian,
            "bart" => Architecture::Bart,
            "m2m_100" => Architecture::M2m100,
            other => {
                return Err(field(
                    "architecture",
                    format!("`{other}` is not supported (marian, m2m_100, bart)"),
                ))
            }
        };
        Ok(Manifest {
            name: raw.name,
            description: raw.description,
            repo: raw.repo,
            revision: raw.revision,
            task: raw.task,
            source_language: raw.source_language,
            target_language: raw.target_language,
            license: raw.license,
            architecture,
            files: raw.files,
            generation: raw.generation,
            origin,
        })
    }
}

impl Manifest {
    /// Whether the licence forbids commercial use (a Creative Commons `-nc` licence such as
    /// NLLB-200's `cc-by-nc-4.0`).
    pub fn non_commercial(&self) -> bool {
        let l = self.license.to_ascii_lowercase();
        l.starts_with("cc-") && l.split('-').any(|part| part == "nc")
    }
}

/// `line L, column C: message` for a byte span of `text`.
fn located(text: &str, span: Option<std::ops::Range<usize>>, message: &str) -> String {
    let Some(span) = span else {
        return message.trim().to_string();
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}: {}", message.trim())
}

/// The known models, sorted by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalogue {
    entries: Vec<Manifest>,
}

impl Catalogue {
    /// The manifests shipped with tolk.
    pub fn builtin() -> Result<Catalogue> {
        let mut catalogue = Catalogue::default();
        for (path, text) in BUILT_IN {
            catalogue.insert(Manifest::parse(
                text,
                Path::new(path),
                ManifestOrigin::BuiltIn,
            )?);
        }
        Ok(catalogue)
    }

    /// The built-in manifests plus every `*.toml` in `user_dir` (a missing directory is fine).
    /// A user manifest replaces a built-in one of the same name; two user manifests with one
    /// name are an error, as is any manifest that does not parse.
    pub fn load(user_dir: Option<&Path>) -> Result<Catalogue> {
        let mut catalogue = Catalogue::builtin()?;
        let Some(dir) = user_dir else {
            return Ok(catalogue);
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(catalogue),
            Err(e) => return Err(Error::io(dir, e)),
        };
        let mut paths = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| Error::io(dir, e))?.path();
            if path.extension().is_some_and(|x| x == "toml") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        let mut seen: Vec<(String, PathBuf)> = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            let manifest = Manifest::parse(&text, &path, ManifestOrigin::File(path.clone()))?;
            if let Some((_, other)) = seen.iter().find(|(n, _)| *n == manifest.name) {
                return Err(Error::config(
                    &path,
                    "name",
                    format!(
                        "`{}` is already defined by {}",
                        manifest.name,
                        other.display()
                    ),
                ));
            }
            seen.push((manifest.name.clone(), path));
            catalogue.insert(manifest);
        }
        Ok(catalogue)
    }

    /// [`Catalogue::load`] with the user directory from the environment
    /// (see [`Catalogue::user_dir_from_vars`]).
    pub fn from_env() -> Result<Catalogue> {
        Catalogue::load(Catalogue::user_dir_from_vars(|k| std::env::var(k).ok()).as_deref())
    }

    /// Where user manifests live: `TOLK_MODELS_DIR`, else `$XDG_CONFIG_HOME/tolk/models`, else
    /// `~/.config/tolk/models`. `None` when no home directory is known.
    pub fn user_dir_from_vars(var: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
        let get = |k: &str| var(k).filter(|v| !v.is_empty());
        let home = get("HOME")
            .or_else(|| get("USERPROFILE"))
            .map(PathBuf::from);
        if let Some(dir) = get("TOLK_MODELS_DIR") {
            return Some(super::settings::expand_tilde(&dir, home.as_deref()));
        }
        let config = get("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| home.map(|h| h.join(".config")))?;
        Some(config.join("tolk").join("models"))
    }

    /// Adds a manifest, replacing any entry of the same name.
    pub fn insert(&mut self, manifest: Manifest) {
        match self
            .entries
            .binary_search_by(|m| m.name.as_str().cmp(&manifest.name))
        {
            Ok(i) => self.entries[i] = manifest,
            Err(i) => self.entries.insert(i, manifest),
        }
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&Manifest> {
        self.entries.iter().find(|m| m.name == name)
    }

    /// All entries, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Manifest> {
        self.entries.iter()
    }

    /// Entry names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|m| m.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse() {
        let c = Catalogue::builtin().unwrap();
        assert_eq!(
            c.names(),
            vec![
                "distilbart-cnn-12-6",
                "m2m100_418M",
                "nllb-200-distilled-600M",
                "opus-mt-nl-en"
            ]
        );
        let opus = c.get("opus-mt-nl-en").unwrap();
        assert_eq!(opus.repo, "Helsinki-NLP/opus-mt-nl-en");
        assert_eq!(opus.task, Task::Translation);
        assert_eq!(opus.architecture, Architecture::Marian);
        assert_eq!(opus.license, "apache-2.0");
        let bart = c.get("distilbart-cnn-12-6").unwrap();
        assert_eq!(bart.revision, "a4f8f3ea906ed274767e9906dbaede7531d660ff");
        assert_eq!(bart.task, Task::Summarization);
        assert_eq!(bart.generation.num_beams, Some(4));
        assert_eq!(bart.license, "apache-2.0");
        assert!(!opus.non_commercial() && !bart.non_commercial());
        let nllb = c.get("nllb-200-distilled-600M").unwrap();
        assert_eq!(nllb.architecture, Architecture::M2m100);
        assert_eq!(nllb.license, "cc-by-nc-4.0");
        assert!(nllb.non_commercial());
        let m2m = c.get("m2m100_418M").unwrap();
        assert_eq!(
            (m2m.repo.as_str(), m2m.license.as_str()),
            ("facebook/m2m100_418M", "mit")
        );
        assert!(!m2m.non_commercial());
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let text = "name = \"x\"\nrepo = \"a/b\"\nrevision = main\n";
        let err = Manifest::parse(text, Path::new("/m/x.toml"), ManifestOrigin::BuiltIn)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/m/x.toml") && err.contains("line 3"), "{err}");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        let base = |extra: &str| {
            format!(
                "name = \"x\"\nrepo = \"a/b\"\nrevision = \"main\"\ntask = \"translation\"\n\
                 source_language = \"nl\"\ntarget_language = \"en\"\nlicense = \"MIT\"\n\
                 architecture = \"marian\"\n{extra}"
            )
        };
        let p = Path::new("u.toml");
        Manifest::parse(&base(""), p, ManifestOrigin::BuiltIn).unwrap();
        let err =
            Manifest::parse(&base("num_beams = 3\n"), p, ManifestOrigin::BuiltIn).unwrap_err();
        assert!(err.to_string().contains("line 9"), "{err}");
        let err = Manifest::parse(
            &base("").replace("marian", "gpt"),
            p,
            ManifestOrigin::BuiltIn,
        )
        .unwrap_err();
        assert!(err.to_string().contains("architecture"), "{err}");
        let err = Manifest::parse(
            &base("").replace("a/b", "a/../b"),
            p,
            ManifestOrigin::BuiltIn,
        )
        .unwrap_err();
        assert!(err.to_string().contains("repo"), "{err}");
    }

    #[test]
    fn user_dir_from_vars() {
        let dir = |pairs: &[(&str, &str)]| {
            Catalogue::user_dir_from_vars(|k| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
        };
        assert_eq!(
            dir(&[("HOME", "/h")]),
            Some(PathBuf::from("/h/.config/tolk/models"))
        );
        assert_eq!(
            dir(&[("HOME", "/h"), ("TOLK_MODELS_DIR", "~/m")]),
            Some(PathBuf::from("/h/m"))
        );
        assert_eq!(
            dir(&[("HOME", "/h"), ("XDG_CONFIG_HOME", "/x")]),
            Some(PathBuf::from("/x/tolk/models"))
        );
        assert_eq!(dir(&[]), None);
    }
}
