//! The tokenizer of a translation model, whichever family it is: one type for the translator.

use std::path::Path;

use super::marian::MarianTokenizer;
use super::nllb::NllbTokenizer;
use crate::config::Architecture;
use crate::error::{Error, Result};
use crate::source::{ModelFiles, TokenizerFiles};

/// A translation model's tokenizer: Marian's (OPUS-MT), M2M100's (the same design, see
/// [`MarianTokenizer::from_m2m100`]) or NLLB's ([`NllbTokenizer`]). Encoding gives the text's
/// ids and `</s>`; language tokens are the translator's to add.
#[derive(Debug, Clone)]
pub enum TranslationTokenizer {
    /// Marian and M2M100: SentencePiece over `vocab.json`.
    Marian(Box<MarianTokenizer>),
    /// NLLB: `tokenizer.json`.
    Nllb(Box<NllbTokenizer>),
}

impl TranslationTokenizer {
    /// The tokenizer of a translation model's files.
    pub fn from_files(files: &ModelFiles) -> Result<Self> {
        match (&files.architecture, &files.tokenizer) {
            (Architecture::Marian, _) => Ok(Self::Marian(Box::new(MarianTokenizer::from_dir(
                &files.dir,
            )?))),
            (Architecture::M2m100, TokenizerFiles::SentencePieceVocab { .. }) => Ok(Self::Marian(
                Box::new(MarianTokenizer::from_m2m100(&files.dir)?),
            )),
            (Architecture::M2m100, TokenizerFiles::TokenizerJson { tokenizer_json }) => {
                Ok(Self::Nllb(Box::new(NllbTokenizer::from_files(
                    tokenizer_json,
                    files.tokenizer_config.as_deref(),
                )?)))
            }
            (architecture, _) => Err(Error::config(
                &files.config,
                "model_type",
                format!("a {architecture:?} model has no translation tokenizer"),
            )),
        }
    }

    /// The Marian (or M2M100) tokenizer, if it is one.
    pub fn as_marian(&self) -> Option<&MarianTokenizer> {
        match self {
            Self::Marian(t) => Some(t),
            Self::Nllb(_) => None,
        }
    }

    /// The text's ids, `</s>` last.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            Self::Marian(t) => t.encode(text),
            Self::Nllb(t) => t.encode(text),
        }
    }

    /// [`TranslationTokenizer::encode`] of several texts, in order.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        match self {
            Self::Marian(t) => t.encode_batch(texts),
            Self::Nllb(t) => texts.iter().map(|s| t.encode(s)).collect(),
        }
    }

    /// `decode(ids, skip_special_tokens=True)`.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match self {
            Self::Marian(t) => t.decode(ids),
            Self::Nllb(t) => t.decode(ids),
        }
    }

    /// Every token of [`TranslationTokenizer::encode`] with its piece (`▁` for a space).
    pub fn source_pieces(&self, text: &str) -> Vec<(u32, String)> {
        match self {
            Self::Marian(t) => t.source_pieces(text),
            Self::Nllb(t) => t.source_pieces(text).unwrap_or_default(),
        }
    }

    /// Each generated id's piece; `None` for a special token.
    pub fn target_pieces(&self, ids: &[u32]) -> Vec<Option<String>> {
        match self {
            Self::Marian(t) => t
                .target_pieces(ids)
                .into_iter()
                .map(|p| p.map(str::to_string))
                .collect(),
            Self::Nllb(t) => t.target_pieces(ids),
        }
    }

    /// The model's language tokens, sorted (`>>eng<<`, `__en__`, `eng_Latn`); empty for a
    /// model of one language pair.
    pub fn supported_language_codes(&self) -> Vec<&str> {
        match self {
            Self::Marian(t) => t.supported_language_codes(),
            Self::Nllb(t) => t.supported_language_codes(),
        }
    }

    /// The id of a token.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        match self {
            Self::Marian(t) => t.token_to_id(token),
            Self::Nllb(t) => t.token_to_id(token),
        }
    }

    /// The source language `tokenizer_config.json` names (`source_lang`, `src_lang`).
    pub fn source_lang(&self) -> Option<&str> {
        match self {
            Self::Marian(t) => t.source_lang(),
            Self::Nllb(t) => t.source_lang(),
        }
    }

    /// The ids the encoder can be given, and the files that say so, for the check against
    /// `config.json`: (source ids, target ids, file of the target vocabulary).
    pub(crate) fn sizes(&self, dir: &Path) -> (usize, usize, std::path::PathBuf) {
        match self {
            Self::Marian(t) => {
                let file = if t.separate_vocabs() {
                    "target_vocab.json"
                } else {
                    "vocab.json"
                };
                let source = t.vocab_size() + t.language_ids();
                let target = if t.separate_vocabs() {
                    t.target_vocab_size()
                } else {
                    source
                };
                (source, target, dir.join(file))
            }
            Self::Nllb(t) => (t.vocab_size(), t.vocab_size(), t.path().to_path_buf()),
        }
    }
}
