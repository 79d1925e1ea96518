//! The tokenizer of NLLB-200 models from their `tokenizer.json`, exact to the id against
//! transformers' `NllbTokenizer` (which in transformers 5 is the same `tokenizers` file run by the
//! same library).
//!
//! Encoding: the text's tokens as `tokenizer.json`'s normaliser, pre-tokeniser and model give
//! them (without its post-processor, which bakes in one source language), then `</s>`; the
//! translator puts the source-language token (`nld_Latn`) first, as `NllbTokenizer` does with
//! `legacy_behaviour` off. Decoding drops special tokens (`</s>`, language codes, ...) and joins
//! the rest with the file's decoder, as `decode(ids, skip_special_tokens=True)`. (transformers 5
//! applies no `clean_up_tokenization_spaces` to a `tokenizers` BPE model's text, whatever
//! `tokenizer_config.json` says, and neither does tolk.)

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenizers::Tokenizer;

use crate::error::{Error, Result};

/// The tokenizer of an NLLB model. Immutable, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct NllbTokenizer {
    inner: Tokenizer,
    path: PathBuf,
    /// Language tokens (`nld_Latn`) with their ids, sorted by token.
    languages: Vec<(String, u32)>,
    eos_id: u32,
    /// Highest id + 1, added tokens included.
    size: usize,
    /// `src_lang` of `tokenizer_config.json`.
    source_lang: Option<String>,
}

/// Whether `token` is an NLLB language code: three lower-case letters, `_`, a script
/// (`nld_Latn`, `zho_Hans`).
fn is_language_code(token: &str) -> bool {
    let b = token.as_bytes();
    b.len() == 8
        && b[..3].iter().all(u8::is_ascii_lowercase)
        && b[3] == b'_'
        && b[4].is_ascii_uppercase()
        && b[5..].iter().all(u8::is_ascii_lowercase)
}

impl NllbTokenizer {
    /// Loads `tokenizer.json`, and `tokenizer_config.json` when given. Refuses a file without
    /// `</s>` or without language codes, and one that asks for the legacy layout (language
    /// code after `</s>`).
    pub fn from_files(
        tokenizer_json: impl AsRef<Path>,
        tokenizer_config: Option<&Path>,
    ) -> Result<Self> {
        let path = tokenizer_json.as_ref();
        let inner = Tokenizer::from_file(path).map_err(|e| Error::Tokenizer {
            path: path.to_path_buf(),
            message: format!("cannot read it: {e}"),
        })?;
        let mut source_lang = None;
        if let Some(cfg_path) = tokenizer_config {
            let cfg = crate::config::read_json(cfg_path)?;
            if cfg.get("legacy_behaviour").and_then(Value::as_bool) == Some(true) {
                return Err(Error::config(
                    cfg_path,
                    "legacy_behaviour",
                    "the legacy NLLB layout (language code after </s>) is not supported",
                ));
            }
            source_lang = cfg
                .get("src_lang")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        let eos_id = inner.token_to_id("</s>").ok_or_else(|| {
            Error::model_file(path, "has no `</s>` token")
                .with_hint("an NLLB tokenizer.json ends every source with </s>")
        })?;
        let mut languages: Vec<(String, u32)> = inner
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special && is_language_code(&t.content))
            .map(|(&id, t)| (t.content.clone(), id))
            .collect();
        if languages.is_empty() {
            return Err(Error::model_file(
                path,
                "has no language codes (`nld_Latn`, `eng_Latn`, ...)",
            )
            .with_hint("an NLLB model's tokenizer.json lists its languages as special tokens"));
        }
        languages.sort();
        let size = inner.get_vocab_size(true);
        Ok(NllbTokenizer {
            inner,
            path: path.to_path_buf(),
            languages,
            eos_id,
            size,
            source_lang,
        })
    }

    /// `tokenizer.json`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The language tokens, sorted (`afr_Latn`, ...).
    pub fn supported_language_codes(&self) -> Vec<&str> {
        self.languages.iter().map(|(t, _)| t.as_str()).collect()
    }

    /// `src_lang` of `tokenizer_config.json`.
    pub fn source_lang(&self) -> Option<&str> {
        self.source_lang.as_deref()
    }

    /// The id of a token.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The number of ids (highest id + 1, added tokens included).
    pub fn vocab_size(&self) -> usize {
        self.size
    }

    /// `</s>`'s id.
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    fn error(&self, e: tokenizers::Error) -> Error {
        Error::Tokenizer {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// The text's ids and `</s>` (the source-language token is the caller's to put first).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .source_pieces(text)?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// [`NllbTokenizer::encode`]'s ids with their tokens (`▁` for a space), `</s>` last.
    pub fn source_pieces(&self, text: &str) -> Result<Vec<(u32, String)>> {
        let enc = self.inner.encode(text, false).map_err(|e| self.error(e))?;
        let mut out: Vec<(u32, String)> = enc
            .get_ids()
            .iter()
            .copied()
            .zip(enc.get_tokens().iter().cloned())
            .collect();
        out.push((self.eos_id, "</s>".to_string()));
        Ok(out)
    }

    /// For every generated id, its token (`▁` for a space); `None` for a special token, which
    /// decoding leaves out.
    pub fn target_pieces(&self, ids: &[u32]) -> Vec<Option<String>> {
        let added = self.inner.get_added_tokens_decoder();
        ids.iter()
            .map(|id| match added.get(id) {
                Some(t) if t.special => None,
                _ => self.inner.id_to_token(*id),
            })
            .collect()
    }

    /// `decode(ids, skip_special_tokens=True)`.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_codes_are_three_letters_and_a_script() {
        for good in ["nld_Latn", "eng_Latn", "zho_Hant", "arb_Arab"] {
            assert!(is_language_code(good), "{good}");
        }
        for bad in [
            "<mask>",
            "nl_Latn",
            "nld_latn",
            "NLD_Latn",
            "nld-Latn",
            "nld_Latn_",
        ] {
            assert!(!is_language_code(bad), "{bad}");
        }
    }
}
