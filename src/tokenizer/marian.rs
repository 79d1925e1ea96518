//! `MarianTokenizer`: the tokenizer of Marian (OPUS-MT) models, matching transformers 5.24's
//! slow `MarianTokenizer` id for id; and, built by [`MarianTokenizer::from_m2m100`], of M2M100
//! models, whose slow `M2M100Tokenizer` is the same design (one SentencePiece model whose pieces
//! get their ids from `vocab.json`, `</s>` appended) with language tokens `__xx__` after the
//! vocabulary and no `>>xx<<` codes in the text. (The source-language token that
//! `M2M100Tokenizer` puts first is the translator's to add, as it knows the language.)
//!
//! Encoding (`tokenizer(text)["input_ids"]`):
//! 1. optionally, Moses punctuation normalisation (off by default, as in transformers);
//! 2. the text is split around added/special tokens (`</s>`, `<unk>`, `<pad>`, extra special
//!    tokens) that occur in it literally; those become their ids;
//! 3. each remaining chunk loses a leading `>>xx<<` language code, which becomes a token of its
//!    own;
//! 4. the rest is segmented by the *source* SentencePiece model, and each piece is looked up in
//!    `vocab.json` (added tokens first; a piece that is missing becomes `<unk>`);
//! 5. `</s>` is appended.
//!
//! Decoding (`decode(ids, skip_special_tokens=True)`): special ids are dropped, the others become
//! pieces through the inverse vocabulary (`target_vocab.json` with `separate_vocabs`; ids missing
//! there fall back to the SentencePiece model's own pieces), runs of pieces are joined by the
//! SentencePiece model's `decode_pieces` (the source model unless `separate_vocabs`, exactly as
//! transformers does), `▁` becomes a space, and the result is stripped; with
//! `clean_up_tokenization_spaces` set in `tokenizer_config.json`, transformers' clean-up follows.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::moses::{py_isspace, py_strip, MosesPunctNormalizer};
use super::sentencepiece::SentencePieceModel;
use crate::error::{Error, Result};

/// An added token (`AddedToken` of transformers): a string that is never split.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AddedToken {
    content: String,
    id: u32,
    /// Strip whitespace on the left of the token.
    lstrip: bool,
    /// Strip whitespace on the right of the token.
    rstrip: bool,
}

/// The tokenizer of a Marian model directory. Immutable, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct MarianTokenizer {
    dir: PathBuf,
    source: SentencePieceModel,
    target: SentencePieceModel,
    /// `vocab.json`: piece → id.
    encoder: HashMap<String, u32>,
    /// The inverse of `vocab.json`, or of `target_vocab.json` with separate vocabularies.
    decoder: HashMap<u32, String>,
    target_vocab_size: usize,
    separate_vocabs: bool,
    /// Source SentencePiece id → model id, for pieces that are vocabulary entries.
    source_ids: Vec<u32>,
    added: Vec<AddedToken>,
    added_by_content: HashMap<String, u32>,
    added_by_id: HashMap<u32, String>,
    /// First bytes of the added tokens, to skip quickly over text that cannot start one.
    added_first_bytes: [bool; 256],
    /// `all_special_tokens` (strings) and their ids.
    special_tokens: HashSet<String>,
    special_ids: HashSet<u32>,
    eos_id: u32,
    unk_id: u32,
    pad_id: u32,
    unk_token: String,
    split_special_tokens: bool,
    clean_up_tokenization_spaces: bool,
    source_lang: Option<String>,
    target_lang: Option<String>,
    model_max_length: Option<u64>,
    punct: Option<MosesPunctNormalizer>,
    /// M2M100's language tokens (`__nl__`), in the order of their ids; empty for Marian.
    languages: Vec<String>,
    /// Marian: a `>>xx<<` at the start of a text chunk is a token of its own.
    leading_codes: bool,
}

/// M2M100's languages (transformers' `FAIRSEQ_LANGUAGE_CODES`): their tokens `__xx__` follow
/// the vocabulary in this order.
const M2M100_LANGUAGES: [&str; 100] = [
    "af", "am", "ar", "ast", "az", "ba", "be", "bg", "bn", "br", "bs", "ca", "ceb", "cs", "cy",
    "da", "de", "el", "en", "es", "et", "fa", "ff", "fi", "fr", "fy", "ga", "gd", "gl", "gu", "ha",
    "he", "hi", "hr", "ht", "hu", "hy", "id", "ig", "ilo", "is", "it", "ja", "jv", "ka", "kk",
    "km", "kn", "ko", "lb", "lg", "ln", "lo", "lt", "lv", "mg", "mk", "ml", "mn", "mr", "ms", "my",
    "ne", "nl", "no", "ns", "oc", "or", "pa", "pl", "ps", "pt", "ro", "ru", "sd", "si", "sk", "sl",
    "so", "sq", "sr", "ss", "su", "sv", "sw", "ta", "th", "tl", "tn", "tr", "uk", "ur", "uz", "vi",
    "wo", "xh", "yi", "yo", "zh", "zu",
];

/// The languages of M2M100's `wmt21` checkpoints.
const WMT21_LANGUAGES: [&str; 8] = ["en", "ha", "is", "ja", "cs", "ru", "zh", "de"];

/// Which transformers tokenizer a [`MarianTokenizer`] reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Marian,
    M2m100,
}

/// `vocab.json` read in file order (ids are checked, keys kept as written).
struct OrderedVocab(Vec<(String, u32)>);

impl<'de> Deserialize<'de> for OrderedVocab {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedVocab;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object mapping pieces to non-negative integer ids")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<OrderedVocab, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((k, v)) = map.next_entry::<String, u32>()? {
                    out.push((k, v));
                }
                Ok(OrderedVocab(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        format: "JSON",
        message: format!("not UTF-8: {e}"),
    })
}

fn parse_json_err(path: &Path, e: impl fmt::Display) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        format: "JSON",
        message: e.to_string(),
    }
}

fn load_vocab(path: &Path) -> Result<Vec<(String, u32)>> {
    let text = read_text(path)?;
    if text.trim().is_empty() {
        return Err(parse_json_err(path, "the file is empty"));
    }
    let v: OrderedVocab = serde_json::from_str(&text).map_err(|e| parse_json_err(path, e))?;
    Ok(v.0)
}

/// A special-token value of `tokenizer_config.json`: a string or an `AddedToken` object.
fn token_content(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

fn bool_field(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Named special tokens in transformers' `SPECIAL_TOKENS_ATTRIBUTES` order.
const SPECIAL_ATTRIBUTES: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

/// What `tokenizer_config.json` (and the legacy `special_tokens_map.json` and
/// `added_tokens.json`) say about the tokenizer.
struct TokenizerConfig {
    path: PathBuf,
    separate_vocabs: bool,
    clean_up_tokenization_spaces: bool,
    split_special_tokens: bool,
    source_lang: Option<String>,
    target_lang: Option<String>,
    /// M2M100's `language_codes` (`m2m100` or `wmt21`).
    language_codes: Option<String>,
    model_max_length: Option<u64>,
    /// Named special tokens (`eos_token`, ...): attribute and content.
    named: Vec<(String, String)>,
    /// `extra_special_tokens` / `additional_special_tokens`.
    extras: Vec<String>,
    /// Added tokens saved with the tokenizer (`added_tokens_decoder` or `added_tokens.json`).
    saved_added: Vec<AddedToken>,
}

fn read_json_object(path: &Path) -> Result<serde_json::Map<String, Value>> {
    let text = read_text(path)?;
    if text.trim().is_empty() {
        return Err(parse_json_err(path, "the file is empty"));
    }
    match serde_json::from_str(&text).map_err(|e| parse_json_err(path, e))? {
        Value::Object(map) => Ok(map),
        _ => Err(parse_json_err(path, "expected a JSON object")),
    }
}

impl TokenizerConfig {
    fn load(dir: &Path, layout: Layout) -> Result<Self> {
        let path = dir.join("tokenizer_config.json");
        let obj = if path.is_file() {
            read_json_object(&path)?
        } else {
            serde_json::Map::new()
        };
        let err = |field: &str, msg: &str| Error::config(&path, field, msg);
        let flag = |key: &str| -> Result<bool> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(err(key, "expected true or false")),
            }
        };
        let string = |key: &str| -> Result<Option<String>> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(err(key, "expected a string")),
            }
        };
        let model_max_length = match obj.get("model_max_length") {
            None | Some(Value::Null) => Some(512),
            Some(v) => match (v.as_u64(), v.as_f64()) {
                (Some(n), _) => Some(n),
                // transformers writes a huge number (1e30) for "no limit".
                (None, Some(f)) if f >= 1e18 => None,
                (None, Some(f)) if f > 0.0 && f.fract() == 0.0 => Some(f as u64),
                _ => return Err(err("model_max_length", "expected a positive integer")),
            },
        };
        let mut config = TokenizerConfig {
            separate_vocabs: flag("separate_vocabs")?,
            clean_up_tokenization_spaces: flag("clean_up_tokenization_spaces")?,
            split_special_tokens: flag("split_special_tokens")?,
            // M2M100Tokenizer calls them `src_lang` and `tgt_lang`.
            source_lang: string("source_lang")?.or(string("src_lang")?),
            target_lang: string("target_lang")?.or(string("tgt_lang")?),
            language_codes: string("language_codes")?,
            model_max_length,
            // MarianTokenizer's and M2M100Tokenizer's defaults.
            named: match layout {
                Layout::Marian => vec![
                    ("eos_token".into(), "</s>".into()),
                    ("unk_token".into(), "<unk>".into()),
                    ("pad_token".into(), "<pad>".into()),
                ],
                Layout::M2m100 => vec![
                    ("bos_token".into(), "<s>".into()),
                    ("eos_token".into(), "</s>".into()),
                    ("unk_token".into(), "<unk>".into()),
                    ("sep_token".into(), "</s>".into()),
                    ("pad_token".into(), "<pad>".into()),
                ],
            },
            extras: Vec::new(),
            saved_added: Vec::new(),
            path: path.clone(),
        };
        config.read_specials(&obj, &path)?;

        if let Some(dec) = obj.get("added_tokens_decoder").filter(|v| !v.is_null()) {
            config.read_added_tokens_decoder(dec)?;
        } else {
            // Legacy files, read by transformers only without `added_tokens_decoder`.
            let map_path = dir.join("special_tokens_map.json");
            if map_path.is_file() {
                let map = read_json_object(&map_path)?;
                config.read_specials(&map, &map_path)?;
            }
            let added_path = dir.join("added_tokens.json");
            if added_path.is_file() {
                for (content, id) in load_vocab(&added_path)? {
                    config.saved_added.retain(|t| t.id != id);
                    config.saved_added.push(AddedToken {
                        content,
                        id,
                        lstrip: false,
                        rstrip: false,
                    });
                }
            }
        }
        Ok(config)
    }

    fn set_named(&mut self, key: &str, value: String) {
        match self.named.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.named.push((key.to_string(), value)),
        }
    }

    /// Reads `*_token` keys and the list (or dict) of extra special tokens.
    fn read_specials(&mut self, obj: &serde_json::Map<String, Value>, file: &Path) -> Result<()> {
        let bad_token =
            |key: &str| Error::config(file, key, "expected a string or an AddedToken object");
        for (key, value) in obj {
            if !key.ends_with("_token") || value.is_null() {
                continue;
            }
            match token_content(value) {
                Some(content) => self.set_named(key, content),
                None if SPECIAL_ATTRIBUTES.contains(&key.as_str()) => return Err(bad_token(key)),
                None => {}
            }
        }
        let list = obj
            .get("extra_special_tokens")
            .filter(|v| !v.is_null())
            .or_else(|| obj.get("additional_special_tokens"));
        match list {
            None | Some(Value::Null) => {}
            // A dict of extra tokens makes them named ("model-specific") special tokens.
            Some(Value::Object(map)) => {
                for (key, value) in map {
                    let content = token_content(value).ok_or_else(|| bad_token(key))?;
                    self.set_named(key, content);
                }
            }
            Some(Value::Array(items)) => {
                for item in items {
                    let content = token_content(item)
                        .ok_or_else(|| bad_token("additional_special_tokens"))?;
                    if !self.extras.contains(&content) {
                        self.extras.push(content);
                    }
                }
            }
            Some(_) => {
                return Err(Error::config(
                    file,
                    "additional_special_tokens",
                    "expected a list of tokens",
                ))
            }
        }
        Ok(())
    }

    fn read_added_tokens_decoder(&mut self, dec: &Value) -> Result<()> {
        let err = |msg: String| Error::config(&self.path, "added_tokens_decoder", msg);
        let Some(obj) = dec.as_object() else {
            return Err(err("expected an object".into()));
        };
        let mut saved = Vec::new();
        for (id, tok) in obj {
            let id: u32 = id
                .parse()
                .map_err(|_| err(format!("{id:?} is not a token id")))?;
            let content =
                token_content(tok).ok_or_else(|| err(format!("token {id} has no content")))?;
            if bool_field(tok, "single_word") {
                return Err(err(format!(
                    "token {content:?}: single_word tokens are not supported"
                )));
            }
            saved.retain(|t: &AddedToken| t.id != id);
            saved.push(AddedToken {
                content,
                id,
                lstrip: bool_field(tok, "lstrip"),
                rstrip: bool_field(tok, "rstrip"),
            });
        }
        self.saved_added = saved;
        Ok(())
    }

    fn named(&self, key: &str) -> &str {
        self.named
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    /// transformers' `all_special_tokens`: named tokens in attribute order, then model-specific
    /// ones, then the extras, each once.
    fn all_special_tokens(&self) -> Vec<String> {
        let standard = SPECIAL_ATTRIBUTES
            .iter()
            .flat_map(|attr| self.named.iter().filter(move |(k, _)| k == attr));
        let specific = self
            .named
            .iter()
            .filter(|(k, _)| !SPECIAL_ATTRIBUTES.contains(&k.as_str()));
        let mut out: Vec<String> = Vec::new();
        for token in standard
            .chain(specific)
            .map(|(_, v)| v)
            .chain(self.extras.iter())
        {
            if !out.contains(token) {
                out.push(token.clone());
            }
        }
        out
    }
}

/// The added tokens: the saved ones, then every special token not among them, with its
/// `vocab.json` id or, if it has none, a new id after the vocabulary (`_add_tokens`).
fn build_added_tokens(
    saved: Vec<AddedToken>,
    all_special: &[String],
    encoder: &HashMap<String, u32>,
) -> Vec<AddedToken> {
    let mut added = saved;
    let mut known: HashSet<&str> = encoder.keys().map(String::as_str).collect();
    known.extend(added.iter().map(|t| t.content.as_str()));
    let mut next = known.len() as u32;
    let mut new_tokens = Vec::new();
    for token in all_special {
        if token.is_empty() || added.iter().any(|t| &t.content == token) {
            continue;
        }
        let id = encoder.get(token.as_str()).copied().unwrap_or_else(|| {
            next += 1;
            next - 1
        });
        new_tokens.push(AddedToken {
            content: token.clone(),
            id,
            lstrip: false,
            rstrip: false,
        });
    }
    added.extend(new_tokens);
    added.retain(|t| !t.content.is_empty());
    added
}

fn vocab_map(pairs: &[(String, u32)]) -> HashMap<String, u32> {
    pairs.iter().map(|(k, v)| (k.clone(), *v)).collect()
}

impl MarianTokenizer {
    /// Loads `source.spm`, `target.spm`, `vocab.json` and, when present, `target_vocab.json`,
    /// `tokenizer_config.json`, `special_tokens_map.json` and `added_tokens.json` from `dir`.
    ///
    /// Beyond what transformers checks, it refuses a `vocab.json` without the `</s>`, `<unk>`
    /// and `<pad>` tokens, and a vocabulary that has fewer than half of its SentencePiece
    /// model's pieces (it belongs to another model).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Self::load(dir.as_ref(), Layout::Marian)
    }

    /// Loads the tokenizer of an M2M100 model from `dir`: `sentencepiece.bpe.model`,
    /// `vocab.json` and, when present, `tokenizer_config.json` (`language_codes`, special
    /// tokens), as transformers' `M2M100Tokenizer`. Its language tokens (`__nl__`, ...) get the
    /// ids after the vocabulary; [`MarianTokenizer::encode`] gives the text's ids and `</s>`,
    /// without the source-language token `M2M100Tokenizer` puts first.
    pub fn from_m2m100(dir: impl AsRef<Path>) -> Result<Self> {
        Self::load(dir.as_ref(), Layout::M2m100)
    }

    fn load(dir: &Path, layout: Layout) -> Result<Self> {
        let need = |name: &str| -> Result<PathBuf> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(Error::MissingFile {
                    dir: dir.to_path_buf(),
                    file: name.to_string(),
                    hint: match layout {
                        Layout::Marian => {
                            "a Marian model directory has source.spm, target.spm and vocab.json"
                        }
                        Layout::M2m100 => {
                            "an M2M100 model directory has sentencepiece.bpe.model and vocab.json"
                        }
                    }
                    .to_string(),
                })
            }
        };
        let (source_path, target_path) = match layout {
            Layout::Marian => (need("source.spm")?, need("target.spm")?),
            Layout::M2m100 => (need("sentencepiece.bpe.model")?, PathBuf::new()),
        };
        let vocab_path = need("vocab.json")?;
        let mut config = TokenizerConfig::load(dir, layout)?;
        let source = SentencePieceModel::from_file(&source_path)?;
        let target = match layout {
            Layout::Marian => SentencePieceModel::from_file(&target_path)?,
            Layout::M2m100 => source.clone(),
        };
        let vocab = load_vocab(&vocab_path)?;
        let encoder = vocab_map(&vocab);
        // M2M100: `__xx__` for each language, with the ids after the vocabulary, special.
        let languages: Vec<String> = match layout {
            Layout::Marian => Vec::new(),
            Layout::M2m100 => {
                let codes: &[&str] = match config.language_codes.as_deref() {
                    None | Some("m2m100") => &M2M100_LANGUAGES,
                    Some("wmt21") => &WMT21_LANGUAGES,
                    Some(other) => {
                        return Err(Error::config(
                            &config.path,
                            "language_codes",
                            format!("`{other}` is not one of M2M100's sets (m2m100, wmt21)"),
                        ))
                    }
                };
                codes.iter().map(|c| format!("__{c}__")).collect()
            }
        };
        for (i, token) in languages.iter().enumerate() {
            let id = (encoder.len() + i) as u32;
            if !config.saved_added.iter().any(|t| &t.content == token) {
                config.saved_added.push(AddedToken {
                    content: token.clone(),
                    id,
                    lstrip: false,
                    rstrip: false,
                });
            }
            if !config.extras.contains(token) {
                config.extras.push(token.clone());
            }
        }

        let eos_token = config.named("eos_token").to_string();
        let unk_token = config.named("unk_token").to_string();
        let pad_token = config.named("pad_token").to_string();
        for (what, token) in [
            ("unk", &unk_token),
            ("eos", &eos_token),
            ("pad", &pad_token),
        ] {
            if !encoder.contains_key(token.as_str()) {
                return Err(Error::model_file(
                    &vocab_path,
                    format!("the {what} token {token:?} is not in the vocabulary"),
                )
                .with_hint("vocab.json of a Marian model maps </s>, <unk> and <pad> to ids"));
            }
        }
        check_vocab_covers(&source, &encoder, &vocab_path)?;

        let all_special = config.all_special_tokens();
        let added = build_added_tokens(config.saved_added.clone(), &all_special, &encoder);
        let mut added_by_content = HashMap::new();
        let mut added_by_id = HashMap::new();
        let mut added_first_bytes = [false; 256];
        for t in &added {
            added_by_content.insert(t.content.clone(), t.id);
            added_by_id.insert(t.id, t.content.clone());
            if let Some(&b) = t.content.as_bytes().first() {
                added_first_bytes[usize::from(b)] = true;
            }
        }

        // convert_tokens_to_ids: added tokens, then vocab.json, then vocab.json's <unk>.
        let unk_fallback = encoder.get(unk_token.as_str()).copied().unwrap_or(0);
        let to_id = |token: &str| -> u32 {
            added_by_content
                .get(token)
                .or_else(|| encoder.get(token))
                .copied()
                .unwrap_or(unk_fallback)
        };
        let eos_id = to_id(&eos_token);
        let unk_id = to_id(&unk_token);
        let pad_id = to_id(&pad_token);
        let special_ids: HashSet<u32> = all_special.iter().map(|t| to_id(t)).collect();
        let source_ids: Vec<u32> = (0..source.len() as u32)
            .map(|i| to_id(source.id_to_piece(i).unwrap_or_default()))
            .collect();

        let (decoder, target_vocab_size) = if config.separate_vocabs {
            let path = need("target_vocab.json").map_err(|e| {
                e.with_hint(
                    "tokenizer_config.json sets separate_vocabs, which needs target_vocab.json",
                )
            })?;
            let target_vocab = load_vocab(&path)?;
            let map = vocab_map(&target_vocab);
            check_vocab_covers(&target, &map, &path)?;
            (invert(&target_vocab, &map), map.len())
        } else {
            (invert(&vocab, &encoder), encoder.len())
        };

        Ok(MarianTokenizer {
            dir: dir.to_path_buf(),
            source,
            target,
            encoder,
            decoder,
            target_vocab_size,
            separate_vocabs: config.separate_vocabs,
            source_ids,
            added,
            added_by_content,
            added_by_id,
            added_first_bytes,
            special_tokens: all_special.into_iter().collect(),
            special_ids,
            eos_id,
            unk_id,
            pad_id,
            unk_token,
            split_special_tokens: config.split_special_tokens,
            clean_up_tokenization_spaces: config.clean_up_tokenization_spaces,
            source_lang: config.source_lang,
            target_lang: config.target_lang,
            model_max_length: config.model_max_length,
            punct: None,
            languages,
            leading_codes: layout == Layout::Marian,
        })
    }

    /// Turns Moses punctuation normalisation (for the source language of the config) on or off
    /// before encoding. Default: off, as in transformers; OPUS-MT's training data went through it.
    #[must_use]
    pub fn with_punct_normalization(mut self, on: bool) -> Self {
        self.punct = on.then(|| MosesPunctNormalizer::new(self.source_lang.as_deref()));
        self
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The source-side SentencePiece model (`source.spm`).
    pub fn source_model(&self) -> &SentencePieceModel {
        &self.source
    }

    /// The target-side SentencePiece model (`target.spm`).
    pub fn target_model(&self) -> &SentencePieceModel {
        &self.target
    }

    /// Id of `</s>`.
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Id of `<unk>`.
    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }

    /// Id of `<pad>` (also Marian's decoder start token).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Entries in `vocab.json` (transformers' `vocab_size`).
    pub fn vocab_size(&self) -> usize {
        self.encoder.len()
    }

    /// Entries of the vocabulary that decoding reads: `target_vocab.json` with separate
    /// vocabularies, else `vocab.json`.
    pub fn target_vocab_size(&self) -> usize {
        self.target_vocab_size
    }

    /// Size of the vocabulary including added tokens (transformers' `len(tokenizer)`).
    pub fn len_with_added_tokens(&self) -> usize {
        let extra = self
            .added
            .iter()
            .filter(|t| !self.encoder.contains_key(&t.content))
            .map(|t| t.content.as_str())
            .collect::<HashSet<_>>()
            .len();
        self.encoder.len() + extra
    }

    /// The ids after the vocabulary that name languages (M2M100's `__xx__`; 0 for Marian, whose
    /// `>>xx<<` are vocabulary entries).
    pub fn language_ids(&self) -> usize {
        self.languages.len()
    }

    /// Whether the model has separate source and target vocabularies.
    pub fn separate_vocabs(&self) -> bool {
        self.separate_vocabs
    }

    /// `source_lang` of `tokenizer_config.json`.
    pub fn source_lang(&self) -> Option<&str> {
        self.source_lang.as_deref()
    }

    /// `target_lang` of `tokenizer_config.json`.
    pub fn target_lang(&self) -> Option<&str> {
        self.target_lang.as_deref()
    }

    /// `model_max_length` (512 unless the config says otherwise; `None` for "no limit").
    /// Like transformers, encoding does not truncate to it.
    pub fn model_max_length(&self) -> Option<u64> {
        self.model_max_length
    }

    /// Language tokens `>>xx<<` of a multilingual model's vocabulary, sorted (M2M100: its
    /// `__xx__` tokens).
    pub fn supported_language_codes(&self) -> Vec<&str> {
        if !self.languages.is_empty() {
            let mut codes: Vec<&str> = self.languages.iter().map(String::as_str).collect();
            codes.sort_unstable();
            return codes;
        }
        if self.separate_vocabs {
            return Vec::new();
        }
        let mut codes: Vec<&str> = self
            .encoder
            .keys()
            .map(String::as_str)
            .filter(|k| k.starts_with(">>") && k.ends_with("<<"))
            .collect();
        codes.sort_unstable();
        codes
    }

    /// The id of a token (added tokens first, then `vocab.json`).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.added_by_content
            .get(token)
            .or_else(|| self.encoder.get(token))
            .copied()
    }

    fn token_id_or_unk(&self, token: &str) -> u32 {
        self.token_to_id(token).unwrap_or(self.unk_id)
    }

    /// Encodes one text into model input ids, ending with `</s>`, exactly as
    /// `MarianTokenizer(text)["input_ids"]` (no truncation, whatever the length).
    ///
    /// It does not fail on any text today; the `Result` leaves room for limits.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        self.encode_pieces(text, |id, _| ids.push(id));
        Ok(ids)
    }

    /// Every token of `encode(text)` with its piece as SentencePiece writes it (`▁` for a
    /// space; a language code or an added token as written; `</s>` last): what alignments
    /// match against `text`.
    pub fn source_pieces(&self, text: &str) -> Vec<(u32, String)> {
        let mut out = Vec::new();
        self.encode_pieces(text, |id, piece| out.push((id, piece.to_string())));
        out
    }

    /// The one encoder: emits every id of `encode(text)` with its piece.
    fn encode_pieces(&self, text: &str, mut emit: impl FnMut(u32, &str)) {
        let normalized;
        let text = match &self.punct {
            Some(p) if !text.is_empty() => {
                normalized = p.normalize(text);
                normalized.as_str()
            }
            _ => text,
        };
        if self.split_special_tokens {
            self.encode_chunk(text, &mut emit);
        } else {
            for seg in self.split_on_added(text) {
                match seg {
                    Segment::Added(id) => {
                        let content = self.added_by_id.get(&id).map_or("", String::as_str);
                        emit(id, content)
                    }
                    Segment::Text(t) => self.encode_chunk(t, &mut emit),
                }
            }
        }
        emit(self.eos_id, "</s>");
    }

    /// For every generated id, its piece as [`MarianTokenizer::decode`] reads it (`▁` for a
    /// space); `None` for a special token, which decoding leaves out.
    pub fn target_pieces(&self, ids: &[u32]) -> Vec<Option<&str>> {
        let spm = if self.separate_vocabs {
            &self.target
        } else {
            &self.source
        };
        ids.iter()
            .map(|id| {
                if self.special_ids.contains(id) {
                    return None;
                }
                self.added_by_id
                    .get(id)
                    .or_else(|| self.decoder.get(id))
                    .map(String::as_str)
                    .or_else(|| spm.id_to_piece(*id))
            })
            .collect()
    }

    /// Encodes several texts (in parallel); results are in input order.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        texts.par_iter().map(|t| self.encode(t)).collect()
    }

    /// `_tokenize` + `convert_tokens_to_ids` for a chunk without added tokens.
    fn encode_chunk(&self, text: &str, emit: &mut impl FnMut(u32, &str)) {
        let mut text = text;
        if self.leading_codes && text.starts_with(">>") {
            if let Some(end) = text.find("<<") {
                let (code, rest) = text.split_at(end + 2);
                emit(self.token_id_or_unk(code), code);
                text = rest;
            }
        }
        self.source.encode_with(text, |piece| {
            let id = if piece.is_unknown() {
                self.token_id_or_unk(&piece.text)
            } else {
                self.source_ids
                    .get(piece.id as usize)
                    .copied()
                    .unwrap_or(self.unk_id)
            };
            emit(id, &piece.text);
        });
    }

    /// Splits around added tokens (leftmost match, longest token at that place, which is what
    /// transformers' trie does), then applies the tokens' `lstrip`/`rstrip`.
    fn split_on_added<'t>(&self, text: &'t str) -> Vec<Segment<'t>> {
        let mut segs: Vec<Seg<'t, '_>> = Vec::new();
        let bytes = text.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            if !self.added_first_bytes[usize::from(bytes[i])] {
                i += 1;
                continue;
            }
            let best = self
                .added
                .iter()
                .filter(|t| bytes[i..].starts_with(t.content.as_bytes()))
                .max_by_key(|t| t.content.len());
            match best {
                Some(tok) => {
                    if start < i {
                        segs.push(Seg::text(&text[start..i]));
                    }
                    let end = i + tok.content.len();
                    segs.push(Seg {
                        text: &text[i..end],
                        added: Some(tok),
                    });
                    start = end;
                    i = end;
                }
                None => i += 1,
            }
        }
        if start < bytes.len() {
            segs.push(Seg::text(&text[start..]));
        }
        for k in 0..segs.len() {
            let Some(tok) = segs[k].added else { continue };
            if tok.rstrip && k + 1 < segs.len() && !segs[k + 1].text.is_empty() {
                segs[k + 1].text = segs[k + 1].text.trim_start_matches(py_isspace);
            }
            if tok.lstrip && k > 0 && !segs[k - 1].text.is_empty() {
                segs[k - 1].text = segs[k - 1].text.trim_end_matches(py_isspace);
            }
        }
        segs.into_iter()
            .filter(|s| !s.text.is_empty())
            .map(|s| match s.added {
                Some(t) => Segment::Added(t.id),
                None => match self.added_by_content.get(s.text) {
                    Some(&id) => Segment::Added(id),
                    None => Segment::Text(s.text),
                },
            })
            .collect()
    }

    /// Decodes model output ids into text, dropping special tokens
    /// (`decode(ids, skip_special_tokens=True)`).
    ///
    /// An id that is neither in the vocabulary nor a SentencePiece piece is an error, as in
    /// transformers.
    ///
    /// Round trip: `decode(encode(x))` gives back `x` after SentencePiece's normalisation (NFKC
    /// and control-character removal with `nmt_nfkc` models), with runs of spaces reduced to one
    /// and surrounding whitespace removed; text that encodes to `<unk>` (characters the model
    /// does not know, or pieces missing from `vocab.json`), special-token strings and a leading
    /// `>>xx<<` code that is not in the vocabulary disappear.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let spm = if self.separate_vocabs {
            &self.target
        } else {
            &self.source
        };
        let mut tokens: Vec<&str> = Vec::with_capacity(ids.len());
        for &id in ids {
            if self.special_ids.contains(&id) {
                continue;
            }
            let token = if let Some(t) = self.added_by_id.get(&id) {
                t.as_str()
            } else if let Some(t) = self.decoder.get(&id) {
                t.as_str()
            } else {
                match spm.id_to_piece(id) {
                    Some(p) if !p.is_empty() => p,
                    Some(_) => self.unk_token.as_str(),
                    None => {
                        return Err(Error::Input {
                            source_name: "<token ids>".to_string(),
                            message: format!(
                                "token id {id} is outside the vocabulary ({} entries in {})",
                                self.target_vocab_size.max(spm.len()),
                                spm.path().display()
                            ),
                            remedy: None,
                        })
                    }
                }
            };
            tokens.push(token);
        }
        let mut out = String::new();
        let mut run: Vec<&str> = Vec::new();
        for token in tokens {
            if self.special_tokens.contains(token) {
                out.push_str(&spm.decode_pieces(&run));
                out.push_str(token);
                out.push(' ');
                run.clear();
            } else {
                run.push(token);
            }
        }
        out.push_str(&spm.decode_pieces(&run));
        let out = out.replace('\u{2581}', " ");
        let out = py_strip(&out);
        Ok(if self.clean_up_tokenization_spaces {
            clean_up_tokenization(out)
        } else {
            out.to_string()
        })
    }
}

/// A piece of text between added tokens, or an added token.
#[derive(Debug, Clone, Copy)]
enum Segment<'t> {
    Text(&'t str),
    Added(u32),
}

#[derive(Debug, Clone, Copy)]
struct Seg<'t, 'a> {
    text: &'t str,
    added: Option<&'a AddedToken>,
}

impl<'t> Seg<'t, '_> {
    fn text(text: &'t str) -> Self {
        Seg { text, added: None }
    }
}

/// `{v: k for k, v in vocab.items()}`: for an id given to several pieces, the last one wins.
fn invert(pairs: &[(String, u32)], map: &HashMap<String, u32>) -> HashMap<u32, String> {
    let mut out = HashMap::with_capacity(map.len());
    for (k, _) in pairs {
        if let Some(&v) = map.get(k) {
            out.insert(v, k.clone());
        }
    }
    out
}

/// Refuses a vocabulary that cannot belong to the SentencePiece model: with fewer than half of
/// the model's normal pieces, most text would encode to `<unk>`.
fn check_vocab_covers(
    spm: &SentencePieceModel,
    vocab: &HashMap<String, u32>,
    vocab_path: &Path,
) -> Result<()> {
    use crate::proto::PieceType;
    let mut normal = 0usize;
    let mut found = 0usize;
    for id in 0..spm.len() as u32 {
        if spm.piece_type(id) == Some(PieceType::Normal) {
            normal += 1;
            if spm.id_to_piece(id).is_some_and(|p| vocab.contains_key(p)) {
                found += 1;
            }
        }
    }
    if found * 2 < normal {
        return Err(Error::model_file(
            vocab_path,
            format!(
                "only {found} of the {normal} pieces of {} are in this vocabulary",
                spm.path().display()
            ),
        )
        .with_hint("the vocabulary and the SentencePiece model come from different models"));
    }
    Ok(())
}

/// transformers' `clean_up_tokenization`: removes spaces before punctuation and contractions.
pub(crate) fn clean_up_tokenization(text: &str) -> String {
    text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}
