//! Input formats: what a document's bytes are besides text. Plain text goes straight to the
//! pipeline; a JSON-lines corpus is one document per record ([`crate::corpus`]).

use std::path::Path;
use std::str::FromStr;

use serde::Serialize;

use crate::error::{Error, Result};

/// What an input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// Plain text (an article: headline, paragraphs, lists, metadata lines).
    Text,
    /// JSON lines: one record per line with an id and a text ([`crate::corpus`]).
    Jsonl,
}

impl InputFormat {
    /// The format of a file, by its extension: `.jsonl` and `.ndjson` are JSON lines, anything
    /// else is text.
    pub fn of_path(path: &Path) -> InputFormat {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("jsonl" | "ndjson") => InputFormat::Jsonl,
            _ => InputFormat::Text,
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            InputFormat::Text => "text",
            InputFormat::Jsonl => "jsonl",
        }
    }
}

impl FromStr for InputFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" | "txt" => Ok(InputFormat::Text),
            "jsonl" | "ndjson" => Ok(InputFormat::Jsonl),
            _ => Err(Error::option(
                "input format",
                format!("unknown input format `{s}`: expected text or jsonl"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_extension() {
        assert_eq!(
            InputFormat::of_path(Path::new("a/b.JSONL")),
            InputFormat::Jsonl
        );
        assert_eq!(
            InputFormat::of_path(Path::new("b.ndjson")),
            InputFormat::Jsonl
        );
        assert_eq!(InputFormat::of_path(Path::new("b.txt")), InputFormat::Text);
        assert_eq!(InputFormat::of_path(Path::new("b")), InputFormat::Text);
        assert_eq!("JSONL".parse::<InputFormat>().unwrap(), InputFormat::Jsonl);
        assert!("xml".parse::<InputFormat>().is_err());
    }
}
