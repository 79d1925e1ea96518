//! The library's one error type: every failure names what went wrong, which file or input it came
//! from, and, where there is one, what the user can do about it.

use std::path::{Path, PathBuf};

/// Everything that can go wrong inside tolk.
///
/// Variants carry the path of the file involved wherever there is one, and keep their underlying
/// cause reachable through [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A JSON or TOML file could not be parsed.
    #[error("{}: not valid {format}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// `JSON`, `TOML`, `protobuf`, ...
        format: &'static str,
        /// What the parser said.
        message: String,
    },

    /// A configuration value is missing, has the wrong type, or is out of range.
    #[error("{}: field `{field}`: {message}", path.display())]
    Config {
        /// The configuration file (or `<options>` for values set in code).
        path: PathBuf,
        /// The field that is wrong.
        field: String,
        /// Why it is wrong.
        message: String,
    },

    /// A model file exists but its content is unusable (truncated, corrupt, wrong shapes, an
    /// unsupported format). `hint` says how to fix it.
    #[error("{}: {message}{}", path.display(), hint_suffix(hint))]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
        /// What to do about it (may be empty).
        hint: String,
    },

    /// A file that the model needs is not there.
    #[error("{} has no {file}{}", dir.display(), hint_suffix(hint))]
    MissingFile {
        /// The model directory.
        dir: PathBuf,
        /// The file name (or names, `a or b`).
        file: String,
        /// What to do about it (may be empty).
        hint: String,
    },

    /// Downloading from the Hugging Face Hub failed.
    #[error(
        "cannot fetch {file} of model {repo} (revision {revision}): {message}{}",
        hint_suffix(hint)
    )]
    Hub {
        /// Hub repository id.
        repo: String,
        /// Git revision.
        revision: String,
        /// The file that was being fetched (or `repository information`).
        file: String,
        /// What went wrong.
        message: String,
        /// What the user can do.
        hint: String,
    },

    /// A model name is not in the catalogue, not a directory and not a Hub repository id.
    #[error("unknown model `{name}`: {message}")]
    UnknownModel {
        /// What the user asked for.
        name: String,
        /// Which forms are accepted, and what is known.
        message: String,
    },

    /// The input text cannot be used (not text, not UTF-8, ...).
    #[error("{}: {message}", source_name)]
    Input {
        /// A file path or `<stdin>`/`<text>`.
        source_name: String,
        /// What is wrong, with a byte offset where there is one.
        message: String,
        /// The option that would get past it, if one would.
        remedy: Option<Remedy>,
    },

    /// An option has a value that cannot work (e.g. `num_beams = 0`).
    #[error("invalid option `{name}`: {message}")]
    Option {
        /// The option.
        name: String,
        /// Why the value is refused.
        message: String,
    },

    /// The tensor library failed. Shape errors here mean a model file does not match its config;
    /// the loaders check shapes first so that users see [`Error::ModelFile`] instead.
    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),

    /// The scheduler that batches documents together refused or lost a request.
    #[error(transparent)]
    Scheduler(#[from] crate::scheduler::SchedulerError),

    /// A broken internal invariant: a bug in tolk, not a problem with the input, the options or
    /// the model files. Please report it with the message.
    #[error("internal error (a bug in tolk, please report it): {0}")]
    Internal(String),

    /// Anything that went wrong in the tokenizer library (BPE models read from `tokenizer.json`).
    #[error("{}: tokenizer: {message}", path.display())]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What the tokenizer library said.
        message: String,
    },
}

/// An option that gets past an error. The library's messages say what to do in its own terms
/// ([`crate::input::DecodeOptions::lossy`]); a front end names its own switch for it (the
/// command line: `--lossy`, `--encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Remedy {
    /// Lossy decoding: invalid byte sequences become U+FFFD.
    Lossy,
    /// The input's encoding, named or detected ([`crate::input::DecodeOptions::encoding`]), for
    /// text in another encoding than the one it was read in (Windows-1252 read as UTF-8); lossy
    /// decoding gets past it too.
    Encoding,
    /// A model from a local directory instead of the Hub.
    LocalModel,
}

fn hint_suffix(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!(" ({hint})")
    }
}

/// Shorthand for results with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error at `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A corrupt or unusable model file.
    pub fn model_file(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::ModelFile {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
            hint: String::new(),
        }
    }

    /// A configuration field with a bad value.
    pub fn config(
        path: impl AsRef<Path>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Config {
            path: path.as_ref().to_path_buf(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// An option with a value that cannot work.
    pub fn option(name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Option {
            name: name.into(),
            message: message.into(),
        }
    }

    /// The option that would get past this error, if one would.
    pub fn remedy(&self) -> Option<Remedy> {
        match self {
            Error::Input { remedy, .. } => *remedy,
            Error::Hub { .. } => Some(Remedy::LocalModel),
            _ => None,
        }
    }

    /// Adds (or replaces) the "how to fix it" hint of a model-file or hub error.
    #[must_use]
    pub fn with_hint(mut self, new_hint: impl Into<String>) -> Self {
        match &mut self {
            Error::ModelFile { hint, .. }
            | Error::MissingFile { hint, .. }
            | Error::Hub { hint, .. } => *hint = new_hint.into(),
            _ => {}
        }
        self
    }
}
