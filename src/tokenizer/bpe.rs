//! `BpeTokenizer`: the byte-level BPE tokenizer of BART-family models (GPT-2's vocabulary), built
//! on the `tokenizers` crate and matching transformers 5.24's `BartTokenizer` id for id.
//!
//! transformers 5.24 has one BART tokenizer (`BartTokenizer` and `BartTokenizerFast` are both
//! aliases of `RobertaTokenizer`, a `tokenizers` backend), and it builds the pipeline itself rather
//! than trusting `tokenizer.json` whole: it takes the vocabulary, the merges and the
//! post-processor from `tokenizer.json` (or the vocabulary and merges from `vocab.json` +
//! `merges.txt`) and assembles
//!
//! 1. special tokens `<s>` `<pad>` `</s>` `<unk>` `<mask>` as added tokens, so that they are
//!    matched literally in the text before anything else happens;
//! 2. the ByteLevel pre-tokenizer (GPT-2's split regex, bytes mapped to printable characters;
//!    `add_prefix_space` from `tokenizer_config.json`, false by default);
//! 3. a BPE model without unknown token, dropout or subword affixes;
//! 4. the RobertaProcessing post-processor: `<s>` pieces `</s>`;
//! 5. for decoding, the ByteLevel decoder (bytes back to UTF-8, invalid sequences replaced by
//!    U+FFFD, as Python's `errors="replace"`).
//!
//! This module assembles the same pipeline from the same files. Decoding is
//! `decode(ids, skip_special_tokens=True)`: for BPE tokenizers transformers 5.24 ignores
//! `clean_up_tokenization_spaces` (the clean-up would corrupt byte-level text), so no clean-up
//! step follows, and a leading space (BART's first generated piece usually starts with `Ġ`) stays.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{Error, Result};
use crate::source::TokenizerFiles;

const TOKENIZER_JSON: &str = "tokenizer.json";
const VOCAB_JSON: &str = "vocab.json";
const MERGES_TXT: &str = "merges.txt";
const TOKENIZER_CONFIG: &str = "tokenizer_config.json";

/// The special tokens of a BART tokenizer, as `tokenizer_config.json` names them.
#[derive(Debug, Clone)]
struct SpecialTokens {
    bos: AddedToken,
    eos: AddedToken,
    unk: AddedToken,
    pad: AddedToken,
    mask: AddedToken,
    cls: String,
    sep: String,
}

/// What `tokenizer_config.json` contributes: the ByteLevel flags and the special tokens.
#[derive(Debug, Clone)]
struct Settings {
    add_prefix_space: bool,
    trim_offsets: bool,
    special: SpecialTokens,
}

impl Default for Settings {
    fn default() -> Self {
        let special = |s: &str| AddedToken::from(s, true);
        Settings {
            add_prefix_space: false,
            trim_offsets: true,
            special: SpecialTokens {
                bos: special("<s>"),
                eos: special("</s>"),
                unk: special("<unk>"),
                pad: special("<pad>"),
                mask: special("<mask>"),
                cls: "<s>".into(),
                sep: "</s>".into(),
            },
        }
    }
}

impl Settings {
    /// Reads `tokenizer_config.json` (absent: transformers' defaults).
    fn read(path: Option<&Path>) -> Result<Self> {
        let mut s = Settings::default();
        let Some(path) = path else { return Ok(s) };
        let value = crate::config::read_json(path)?;
        let Some(obj) = value.as_object() else {
            return Err(Error::model_file(path, "expected a JSON object"));
        };
        let flag = |name: &str, default: bool| -> Result<bool> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Bool(b)) => Ok(*b),
                Some(v) => Err(Error::config(
                    path,
                    name,
                    format!("expected true or false, found {v}"),
                )),
            }
        };
        s.add_prefix_space = flag("add_prefix_space", false)?;
        s.trim_offsets = flag("trim_offsets", true)?;
        let token = |name: &str, default: &AddedToken| -> Result<AddedToken> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(default.clone()),
                Some(v) => added_token(v).ok_or_else(|| {
                    Error::config(
                        path,
                        name,
                        format!("expected a token string or an AddedToken object, found {v}"),
                    )
                }),
            }
        };
        let d = s.special.clone();
        s.special = SpecialTokens {
            bos: token("bos_token", &d.bos)?,
            eos: token("eos_token", &d.eos)?,
            unk: token("unk_token", &d.unk)?,
            pad: token("pad_token", &d.pad)?,
            mask: token("mask_token", &d.mask)?,
            cls: token("cls_token", &AddedToken::from(d.cls.as_str(), true))?.content,
            sep: token("sep_token", &AddedToken::from(d.sep.as_str(), true))?.content,
        };
        Ok(s)
    }
}

/// A special token given as a string or as a serialised `AddedToken` (`{"content": ..,
/// "lstrip": .., ...}`, older tokenizer configs).
fn added_token(v: &Value) -> Option<AddedToken> {
    match v {
        Value::String(s) => Some(AddedToken::from(s.as_str(), true)),
        Value::Object(o) => {
            let content = o.get("content")?.as_str()?;
            let flag = |k: &str, d: bool| o.get(k).and_then(Value::as_bool).unwrap_or(d);
            Some(
                AddedToken::from(content, true)
                    .lstrip(flag("lstrip", false))
                    .rstrip(flag("rstrip", false))
                    .single_word(flag("single_word", false))
                    .normalized(flag("normalized", false)),
            )
        }
        _ => None,
    }
}

/// The byte-level BPE tokenizer of a BART-family model. Immutable, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct BpeTokenizer {
    inner: Tokenizer,
    /// The file the vocabulary came from (`tokenizer.json` or `vocab.json`), named in errors.
    path: PathBuf,
    bos_id: u32,
    eos_id: u32,
    pad_id: u32,
    /// Largest id of a vocabulary entry that is not a special token.
    max_regular_id: Option<u32>,
}

impl BpeTokenizer {
    /// Loads the tokenizer of a model directory: `tokenizer.json` when there is one, else
    /// `vocab.json` + `merges.txt` (the order [`crate::source::ModelFiles`] uses), with
    /// `tokenizer_config.json` when present.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let config = dir.join(TOKENIZER_CONFIG);
        let config = config.is_file().then_some(config);
        let json = dir.join(TOKENIZER_JSON);
        if json.is_file() {
            return Self::from_tokenizer_json(json, config.as_deref());
        }
        let (vocab, merges) = (dir.join(VOCAB_JSON), dir.join(MERGES_TXT));
        if vocab.is_file() && merges.is_file() {
            return Self::from_vocab_merges(vocab, merges, config.as_deref());
        }
        Err(Error::MissingFile {
            dir: dir.to_path_buf(),
            file: format!("{TOKENIZER_JSON} or {VOCAB_JSON} and {MERGES_TXT}"),
            hint: "a BART model needs its byte-level BPE vocabulary".into(),
        })
    }

    /// Loads the tokenizer from resolved model files (`tokenizer_config` is
    /// [`crate::source::ModelFiles::tokenizer_config`]). SentencePiece files are refused: they
    /// belong to Marian models.
    pub fn from_files(files: &TokenizerFiles, tokenizer_config: Option<&Path>) -> Result<Self> {
        match files {
            TokenizerFiles::TokenizerJson { tokenizer_json } => {
                Self::from_tokenizer_json(tokenizer_json, tokenizer_config)
            }
            TokenizerFiles::VocabMerges { vocab, merges } => {
                Self::from_vocab_merges(vocab, merges, tokenizer_config)
            }
            TokenizerFiles::SentencePiece {
                source_spm: spm, ..
            }
            | TokenizerFiles::SentencePieceVocab { spm, .. } => Err(Error::model_file(
                spm,
                "a SentencePiece tokenizer cannot serve a BART model",
            )),
        }
    }

    /// Builds the tokenizer from `tokenizer.json`: its BPE vocabulary and merges (either merge
    /// format) and its post-processor, as transformers 5.24 does.
    pub fn from_tokenizer_json(
        path: impl AsRef<Path>,
        tokenizer_config: Option<&Path>,
    ) -> Result<Self> {
        let path = path.as_ref();
        let settings = Settings::read(tokenizer_config)?;
        let value = crate::config::read_json(path)?;
        let bad = |msg: String| Error::model_file(path, msg);
        let model = value
            .get("model")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("has no `model` object".into()))?;
        match model.get("type").and_then(Value::as_str) {
            Some("BPE") | None => {}
            Some(other) => {
                return Err(bad(format!(
                    "holds a `{other}` model; BART needs a byte-level BPE model"
                )))
            }
        }
        let vocab = model
            .get("vocab")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("has no BPE vocabulary (`model.vocab`)".into()))?;
        let merges = model
            .get("merges")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("has no BPE merges (`model.merges`)".into()))?;
        let bpe = build_bpe(vocab.clone(), Value::Array(merges.clone())).map_err(|e| {
            Error::Tokenizer {
                path: path.to_path_buf(),
                message: e,
            }
        })?;
        let post = match value.get("post_processor") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                serde_json::from_value::<PostProcessorWrapper>(v.clone()).map_err(|e| {
                    Error::Tokenizer {
                        path: path.to_path_buf(),
                        message: format!("post_processor: {e}"),
                    }
                })?,
            ),
        };
        Self::assemble(bpe, vocab, post, &settings, path)
    }

    /// Builds the tokenizer from the GPT-2 pair `vocab.json` (token → id) and `merges.txt` (one
    /// merge per line, ranked by line; `#version` lines are skipped).
    pub fn from_vocab_merges(
        vocab: impl AsRef<Path>,
        merges: impl AsRef<Path>,
        tokenizer_config: Option<&Path>,
    ) -> Result<Self> {
        let (vocab_path, merges_path) = (vocab.as_ref(), merges.as_ref());
        let settings = Settings::read(tokenizer_config)?;
        let value = crate::config::read_json(vocab_path)?;
        let Value::Object(vocab) = value else {
            return Err(Error::model_file(
                vocab_path,
                "expected a JSON object mapping tokens to ids",
            ));
        };
        let bytes = std::fs::read(merges_path).map_err(|e| Error::io(merges_path, e))?;
        let text = String::from_utf8(bytes)
            .map_err(|e| Error::model_file(merges_path, format!("not UTF-8 text: {e}")))?;
        // The `tokenizers` reader's rule: every line except `#version` ones is `left right`.
        let mut lines = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.starts_with("#version") {
                continue;
            }
            if line.split(' ').count() != 2 {
                return Err(Error::model_file(
                    merges_path,
                    format!(
                        "line {}: expected two tokens separated by one space, found {line:?}",
                        n + 1
                    ),
                ));
            }
            lines.push(Value::String(line.to_string()));
        }
        let bpe = build_bpe(vocab.clone(), Value::Array(lines)).map_err(|e| Error::Tokenizer {
            path: merges_path.to_path_buf(),
            message: e,
        })?;
        Self::assemble(bpe, &vocab, None, &settings, vocab_path)
    }

    fn assemble(
        bpe: BPE,
        vocab: &Map<String, Value>,
        post: Option<PostProcessorWrapper>,
        settings: &Settings,
        path: &Path,
    ) -> Result<Self> {
        let sp = &settings.special;
        let id_of = |token: &str| vocab.get(token).and_then(Value::as_u64).map(|n| n as u32);
        let required = |token: &AddedToken, role: &str| {
            id_of(&token.content).ok_or_else(|| {
                Error::model_file(
                    path,
                    format!(
                        "the {role} token `{}` is not in the vocabulary",
                        token.content
                    ),
                )
            })
        };
        let bos_id = required(&sp.bos, "start (bos)")?;
        let eos_id = required(&sp.eos, "end (eos)")?;
        let pad_id = required(&sp.pad, "padding")?;
        let cls_id = id_of(&sp.cls).ok_or_else(|| {
            Error::model_file(
                path,
                format!("cls token `{}` is not in the vocabulary", sp.cls),
            )
        })?;
        let sep_id = id_of(&sp.sep).ok_or_else(|| {
            Error::model_file(
                path,
                format!("sep token `{}` is not in the vocabulary", sp.sep),
            )
        })?;
        let specials: Vec<AddedToken> = [&sp.bos, &sp.pad, &sp.eos, &sp.unk, &sp.mask]
            .into_iter()
            .filter(|t| id_of(&t.content).is_some())
            .cloned()
            .collect();
        let max_regular_id = vocab
            .iter()
            .filter(|(k, _)| !specials.iter().any(|s| &s.content == *k))
            .filter_map(|(_, v)| v.as_u64())
            .max()
            .map(|n| n as u32);
        let post = post.unwrap_or_else(|| {
            PostProcessorWrapper::Roberta(
                RobertaProcessing::new((sp.sep.clone(), sep_id), (sp.cls.clone(), cls_id))
                    .trim_offsets(settings.trim_offsets)
                    .add_prefix_space(settings.add_prefix_space),
            )
        });
        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(ByteLevel::new(
            settings.add_prefix_space,
            settings.trim_offsets,
            true,
        )));
        inner.with_decoder(Some(ByteLevel::default()));
        inner.with_post_processor(Some(post));
        inner
            .add_special_tokens(specials)
            .map_err(|e| Error::Tokenizer {
                path: path.to_path_buf(),
                message: format!("special tokens: {e}"),
            })?;
        Ok(BpeTokenizer {
            inner,
            path: path.to_path_buf(),
            bos_id,
            eos_id,
            pad_id,
            max_regular_id,
        })
    }

    /// `tokenizer(text)["input_ids"]`: `<s>`, the BPE pieces, `</s>`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_impl(text, true)
    }

    /// The BPE pieces of `text` without `<s>` and `</s>` (`add_special_tokens=False`).
    pub fn encode_pieces(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_impl(text, false)
    }

    fn encode_impl(&self, text: &str, special: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, special)
            .map_err(|e| self.error(e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// [`encode`](Self::encode) for each text.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        texts.iter().map(|t| self.encode(t)).collect()
    }

    /// `decode(ids, skip_special_tokens=True)`.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| self.error(e))
    }

    /// `decode(ids, skip_special_tokens=False)`: special tokens stay in the text.
    pub fn decode_with_special_tokens(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(|e| self.error(e))
    }

    fn error(&self, e: tokenizers::Error) -> Error {
        Error::Tokenizer {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// The id of `<s>`.
    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }

    /// The id of `</s>`.
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// The id of `<pad>`.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Number of ids, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The largest id of an ordinary (non-special) vocabulary entry: every id that text without
    /// special-token strings can produce is at most this.
    pub fn max_regular_id(&self) -> Option<u32> {
        self.max_regular_id
    }

    /// The id of a token (`Ġthe`, `<s>`, ...).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The token of an id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The file the vocabulary was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A BPE model with the options transformers 5.24 gives BART's: no unknown token, no dropout,
/// empty subword affixes, no fused unknowns.
fn build_bpe(vocab: Map<String, Value>, merges: Value) -> std::result::Result<BPE, String> {
    let mut model = Map::new();
    model.insert("dropout".into(), Value::Null);
    model.insert("unk_token".into(), Value::Null);
    model.insert(
        "continuing_subword_prefix".into(),
        Value::String(String::new()),
    );
    model.insert("end_of_word_suffix".into(), Value::String(String::new()));
    model.insert("fuse_unk".into(), Value::Bool(false));
    model.insert("byte_fallback".into(), Value::Bool(false));
    model.insert("ignore_merges".into(), Value::Bool(false));
    model.insert("vocab".into(), Value::Object(vocab));
    model.insert("merges".into(), merges);
    serde_json::from_value::<BPE>(Value::Object(model)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A five-character byte-level vocabulary with two merges: "ab" and "Ġab".
    fn write_pair(dir: &Path) {
        let vocab =
            r#"{"<s>":0,"<pad>":1,"</s>":2,"<unk>":3,"a":4,"b":5,"Ġ":6,"ab":7,"Ġab":8,"<mask>":9}"#;
        std::fs::write(dir.join(VOCAB_JSON), vocab).unwrap();
        std::fs::write(dir.join(MERGES_TXT), "#version: 0.2\na b\nĠ ab\n").unwrap();
    }

    #[test]
    fn vocab_merges_encode_and_decode() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path());
        let t = BpeTokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(t.encode("ab ab").unwrap(), vec![0, 7, 8, 2]);
        assert_eq!(t.encode_pieces("ab ab").unwrap(), vec![7, 8]);
        assert_eq!(t.encode("").unwrap(), vec![0, 2]);
        // Special tokens in the text are matched literally.
        assert_eq!(t.encode("ab<mask>").unwrap(), vec![0, 7, 9, 2]);
        assert_eq!(t.decode(&[0, 7, 8, 9, 2]).unwrap(), "ab ab");
        assert_eq!(
            t.decode_with_special_tokens(&[0, 7, 8, 2]).unwrap(),
            "<s>ab ab</s>"
        );
        assert_eq!((t.bos_id(), t.pad_id(), t.eos_id()), (0, 1, 2));
        assert_eq!(t.max_regular_id(), Some(8));
    }

    #[test]
    fn tokenizer_json_with_legacy_string_merges() {
        let dir = tempfile::tempdir().unwrap();
        let json = r#"{"version":"1.0","added_tokens":[],"normalizer":null,
            "pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},
            "post_processor":{"type":"RobertaProcessing","sep":["</s>",2],"cls":["<s>",0],"trim_offsets":true,"add_prefix_space":false},
            "decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},
            "model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":"","end_of_word_suffix":"",
              "fuse_unk":false,"vocab":{"<s>":0,"<pad>":1,"</s>":2,"<unk>":3,"a":4,"b":5,"Ġ":6,"ab":7,"Ġab":8},
              "merges":["a b","Ġ ab"]}}"#;
        std::fs::write(dir.path().join(TOKENIZER_JSON), json).unwrap();
        let t = BpeTokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(t.encode("ab ab").unwrap(), vec![0, 7, 8, 2]);
    }

    #[test]
    fn add_prefix_space_from_tokenizer_config() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path());
        std::fs::write(
            dir.path().join(TOKENIZER_CONFIG),
            r#"{"add_prefix_space": true, "mask_token": {"__type": "AddedToken",
                "content": "<mask>", "lstrip": true, "normalized": true, "rstrip": false,
                "single_word": false}}"#,
        )
        .unwrap();
        // Expected ids from transformers 5.24 on the same files.
        let t = BpeTokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(t.encode("ab").unwrap(), vec![0, 8, 2]);
        // lstrip: the space before <mask> belongs to the token.
        assert_eq!(t.encode("ab <mask>").unwrap(), vec![0, 8, 9, 2]);
        assert_eq!(t.encode("ab  <mask>  ab").unwrap(), vec![0, 8, 9, 6, 8, 2]);
        std::fs::remove_file(dir.path().join(TOKENIZER_CONFIG)).unwrap();
        let t = BpeTokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(t.encode("ab <mask>").unwrap(), vec![0, 7, 6, 9, 2]);
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = BpeTokenizer::from_dir(dir.path()).unwrap_err();
        assert!(matches!(e, Error::MissingFile { .. }), "{e}");
        assert!(e.to_string().contains("merges.txt"), "{e}");

        write_pair(dir.path());
        std::fs::write(dir.path().join(MERGES_TXT), "#version: 0.2\na b c\n").unwrap();
        let e = BpeTokenizer::from_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("merges.txt") && e.contains("line 2"), "{e}");

        std::fs::write(dir.path().join(MERGES_TXT), "a x\n").unwrap();
        let e = BpeTokenizer::from_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("merges.txt"), "{e}");

        write_pair(dir.path());
        std::fs::write(dir.path().join(VOCAB_JSON), "[1, 2]").unwrap();
        let e = BpeTokenizer::from_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("vocab.json") && e.contains("object"), "{e}");
        std::fs::write(dir.path().join(VOCAB_JSON), "{\"a\": 1").unwrap();
        let e = BpeTokenizer::from_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("vocab.json") && e.contains("JSON"), "{e}");
        std::fs::write(
            dir.path().join(VOCAB_JSON),
            r#"{"a":4,"b":5,"ab":7,"Ġ":6,"Ġab":8}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join(MERGES_TXT), "a b\nĠ ab\n").unwrap();
        let e = BpeTokenizer::from_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("vocab.json") && e.contains("<s>"), "{e}");

        std::fs::write(
            dir.path().join(TOKENIZER_JSON),
            r#"{"model":{"type":"Unigram","vocab":[]}}"#,
        )
        .unwrap();
        let e = BpeTokenizer::from_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("tokenizer.json") && e.contains("Unigram"), "{e}");
        std::fs::write(dir.path().join(TOKENIZER_JSON), "{\"model\": ").unwrap();
        let e = BpeTokenizer::from_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("tokenizer.json"), "{e}");
    }
}
