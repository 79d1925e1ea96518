//! The language of the text being segmented, and which rule set it selects.
//!
//! Dutch text gets the Dutch rules (abbreviations, titles and initials, numbers, Dutch words
//! that cannot end a line); English text gets English abbreviations and sentence openers; any
//! other language gets the language-independent rules alone: Unicode sentence terminals
//! (full-width `。！？` need no space after them), closing quotes and brackets after them,
//! ellipses, single-letter initials, and the line structure (headlines, lists, paragraphs),
//! which every rule set shares.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A language as a lowercase ISO 639 code with any subtags (`nl`, `zh`, `zh-hant`, `pt-br`).
/// Three-letter and English names of the languages the rules know are mapped to their
/// two-letter codes (`nld`, `dut` and `dutch` are `nl`; `zho`, `cmn` are `zh`).
///
/// ```
/// use tolk::segment::Language;
///
/// assert!("nl-BE".parse::<Language>()?.is_dutch());
/// assert_eq!("ZHO".parse::<Language>()?.code(), "zh");
/// assert_eq!(Language::from_model_name("Helsinki-NLP/opus-mt-ja-en").unwrap().code(), "ja");
/// # Ok::<(), tolk::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Language(String);

/// The rule set a language selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rules {
    /// Dutch abbreviations, titles, initials, numbers and open line endings.
    Dutch,
    /// English abbreviations and sentence openers on top of the language-independent rules.
    English,
    /// The language-independent rules only.
    Generic,
}

/// Names and ISO 639-2/3 codes of languages, mapped to their two-letter codes (a short list:
/// the languages whose codes come up in model names and tokenizer files).
const ALIASES: &[(&str, &str)] = &[
    ("nld", "nl"),
    ("dut", "nl"),
    ("dutch", "nl"),
    ("nederlands", "nl"),
    ("flemish", "nl"),
    ("vlaams", "nl"),
    ("eng", "en"),
    ("english", "en"),
    ("zho", "zh"),
    ("chi", "zh"),
    ("cmn", "zh"),
    ("chinese", "zh"),
    ("jpn", "ja"),
    ("japanese", "ja"),
    ("kor", "ko"),
    ("deu", "de"),
    ("ger", "de"),
    ("german", "de"),
    ("fra", "fr"),
    ("fre", "fr"),
    ("french", "fr"),
    ("spa", "es"),
    ("spanish", "es"),
    ("ita", "it"),
    ("por", "pt"),
    ("rus", "ru"),
    ("ara", "ar"),
    ("hin", "hi"),
    ("afr", "af"),
    ("fry", "fy"),
    ("ltz", "lb"),
    ("yid", "yi"),
    ("swe", "sv"),
    ("dan", "da"),
    ("nor", "no"),
    ("nob", "nb"),
    ("nno", "nn"),
    ("isl", "is"),
    ("fin", "fi"),
    ("pol", "pl"),
    ("ces", "cs"),
    ("slk", "sk"),
    ("slv", "sl"),
    ("ukr", "uk"),
    ("bul", "bg"),
    ("hrv", "hr"),
    ("srp", "sr"),
    ("ron", "ro"),
    ("hun", "hu"),
    ("est", "et"),
    ("lav", "lv"),
    ("lit", "lt"),
    ("ell", "el"),
    ("tur", "tr"),
    ("heb", "he"),
    ("vie", "vi"),
    ("tha", "th"),
    ("ind", "id"),
    ("cat", "ca"),
    ("glg", "gl"),
    ("eus", "eu"),
    ("gle", "ga"),
    ("cym", "cy"),
];

impl Language {
    /// Dutch (`nl`), the default.
    pub fn dutch() -> Self {
        Language("nl".to_string())
    }

    /// English (`en`).
    pub fn english() -> Self {
        Language("en".to_string())
    }

    /// Reads a language code (see the type's documentation). Fails with [`Error::Option`] for
    /// something that is not one: the first part must be two or three letters, or a name in the
    /// short list of known ones.
    pub fn new(code: &str) -> Result<Self> {
        Self::parse(code).ok_or_else(|| {
            Error::option(
                "language",
                format!("`{code}` is not a language code (such as nl, en, zh or ja)"),
            )
        })
    }

    fn parse(code: &str) -> Option<Self> {
        let code = code.trim().to_lowercase().replace('_', "-");
        let (primary, rest) = match code.split_once('-') {
            Some((primary, rest)) => (primary, Some(rest)),
            None => (code.as_str(), None),
        };
        let primary = ALIASES
            .iter()
            .find(|(alias, _)| *alias == primary)
            .map_or(primary, |&(_, two)| two);
        let letters = primary.chars().all(|c| c.is_ascii_lowercase());
        if !letters || !(2..=3).contains(&primary.len()) {
            return None;
        }
        let subtags_ok = rest.is_none_or(|r| {
            r.split('-').all(|t| {
                !t.is_empty() && t.len() <= 8 && t.chars().all(|c| c.is_ascii_alphanumeric())
            })
        });
        if !subtags_ok {
            return None;
        }
        Some(Language(match rest {
            Some(rest) => format!("{primary}-{rest}"),
            None => primary.to_string(),
        }))
    }

    /// The source language of an OPUS-MT style model name, `opus-mt-SRC-TGT` (also
    /// `ORG/opus-mt-tc-big-SRC-TGT` and a directory path ending in such a name): `SRC` when it
    /// is a language code. `None` for names of another shape and for language groups
    /// (`opus-mt-ROMANCE-en`, `opus-mt-mul-en`).
    pub fn from_model_name(name: &str) -> Option<Self> {
        Self::of_model_name(name, 2)
    }

    /// The target language of an OPUS-MT style model name (`opus-mt-zh-en`: English), as
    /// [`Language::from_model_name`] reads the source.
    pub fn target_from_model_name(name: &str) -> Option<Self> {
        Self::of_model_name(name, 1)
    }

    /// The code `from_end` places from the end of the pair in an OPUS-MT style name.
    fn of_model_name(name: &str, from_end: usize) -> Option<Self> {
        let base = name
            .trim_end_matches(['/', '\\'])
            .rsplit(['/', '\\'])
            .next()?;
        let lower = base.to_lowercase();
        let (_, pair) = lower.split_once("opus-mt-")?;
        let parts: Vec<&str> = pair.split('-').collect();
        if parts.len() < 2 {
            return None;
        }
        let code = parts.get(parts.len() - from_end)?;
        // Group codes (`mul`, `gem`, `roa`, `romance`) are no single language.
        if code.len() > 3 || *code == "mul" {
            return None;
        }
        Self::parse(code)
    }

    /// The code, as normalised (`nl`, `zh-hant`).
    pub fn code(&self) -> &str {
        &self.0
    }

    /// The primary language subtag (`zh` of `zh-hant`).
    pub fn primary(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }

    /// Whether this is Dutch (`nl`, any region), whose own rules the segmenter has.
    pub fn is_dutch(&self) -> bool {
        self.primary() == "nl"
    }

    /// The rule set for this language.
    pub(crate) fn rules(&self) -> Rules {
        match self.primary() {
            "nl" => Rules::Dutch,
            "en" => Rules::English,
            _ => Rules::Generic,
        }
    }
}

impl Default for Language {
    fn default() -> Self {
        Language::dutch()
    }
}

impl FromStr for Language {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Language::new(s)
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_normalised() {
        for (input, code) in [
            ("nl", "nl"),
            (" NL ", "nl"),
            ("nl_BE", "nl-be"),
            ("nld", "nl"),
            ("Dutch", "nl"),
            ("zh-Hant", "zh-hant"),
            ("cmn", "zh"),
            ("jpn", "ja"),
            ("fi", "fi"),
        ] {
            assert_eq!(Language::new(input).unwrap().code(), code, "{input}");
        }
        for bad in ["", "x", "abcd", "n1", "nl--be", "zh-", "中文"] {
            assert!(Language::new(bad).is_err(), "{bad}");
        }
        assert!(Language::new("nl-be").unwrap().is_dutch());
        assert_eq!(Language::new("en-gb").unwrap().rules(), Rules::English);
        assert_eq!(Language::new("zh").unwrap().rules(), Rules::Generic);
        assert_eq!(Language::default(), Language::dutch());
    }

    #[test]
    fn model_names() {
        for (name, code) in [
            ("Helsinki-NLP/opus-mt-zh-en", Some("zh")),
            ("Helsinki-NLP/opus-mt-nl-en", Some("nl")),
            ("Helsinki-NLP/opus-mt-tc-big-fi-en", Some("fi")),
            ("/models/opus-mt-ja-en/", Some("ja")),
            ("opus-mt-en-ROMANCE", Some("en")),
            ("Helsinki-NLP/opus-mt-ROMANCE-en", None),
            ("Helsinki-NLP/opus-mt-mul-en", None),
            ("sshleifer/distilbart-cnn-12-6", None),
            ("marian-tiny", None),
        ] {
            assert_eq!(
                Language::from_model_name(name).as_ref().map(Language::code),
                code,
                "{name}"
            );
        }
    }
}
