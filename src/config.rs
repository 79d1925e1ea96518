//! Model and generation configuration, read from a model's `config.json` and
//! `generation_config.json` (the Hugging Face layout), validated with errors that name the field.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// The feed-forward activation of a transformer layer (`activation_function` in `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `swish` / `silu`: x * sigmoid(x) (Marian's default).
    Swish,
    /// `relu`.
    Relu,
    /// `gelu`: the exact, erf-based GELU (BART).
    Gelu,
    /// `gelu_new` / `gelu_pytorch_tanh` / `gelu_fast`: the tanh approximation.
    GeluTanh,
}

impl Activation {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "swish" | "silu" => Activation::Swish,
            "relu" => Activation::Relu,
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            _ => return None,
        })
    }
}

/// The encoder-decoder families tolk runs on one implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// MarianMT: sinusoidal positions, scaled embeddings, post-norm layers.
    Marian,
    /// BART / DistilBART: learned positions (offset 2), layer norm on embeddings, post-norm layers.
    Bart,
    /// M2M100 and NLLB-200 (`m2m_100`): pre-norm layers with a final layer norm after each
    /// stack, scaled embeddings, sinusoidal positions that start after the padding id (fairseq's
    /// table), the target language forced as the first generated token.
    M2m100,
}

/// The shape and special tokens of a sequence-to-sequence model.
///
/// Built from `config.json` with [`ModelConfig::from_file`]; every field is checked, and an error
/// names the file and the field that is wrong.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Which family of model this is (`model_type`).
    pub architecture: Architecture,
    /// Source (encoder) vocabulary size.
    pub vocab_size: usize,
    /// Target (decoder) vocabulary size; equals `vocab_size` when embeddings are shared.
    pub decoder_vocab_size: usize,
    /// Hidden size.
    pub d_model: usize,
    /// Number of encoder layers.
    pub encoder_layers: usize,
    /// Number of decoder layers.
    pub decoder_layers: usize,
    /// Attention heads in the encoder.
    pub encoder_attention_heads: usize,
    /// Attention heads in the decoder.
    pub decoder_attention_heads: usize,
    /// Inner size of the encoder feed-forward blocks.
    pub encoder_ffn_dim: usize,
    /// Inner size of the decoder feed-forward blocks.
    pub decoder_ffn_dim: usize,
    /// Feed-forward activation.
    pub activation: Activation,
    /// Number of positions the model can take (source and target each).
    pub max_position_embeddings: usize,
    /// Multiply token embeddings by sqrt(d_model).
    pub scale_embedding: bool,
    /// Padding id (Marian: also the decoder start token).
    pub pad_token_id: u32,
    /// End-of-sequence id.
    pub eos_token_id: u32,
    /// First token fed to the decoder.
    pub decoder_start_token_id: u32,
    /// Token forced as the last one when generation reaches its maximum length.
    pub forced_eos_token_id: Option<u32>,
    /// Token forced as the first generated one (BART: `<s>`).
    pub forced_bos_token_id: Option<u32>,
    /// Encoder and decoder share one embedding matrix.
    pub share_encoder_decoder_embeddings: bool,
    /// The output projection is the (decoder) embedding matrix.
    pub tie_word_embeddings: bool,
    /// Layer norm before each sub-layer instead of after, and one after each stack (M2M100,
    /// NLLB); Marian and BART are post-norm.
    pub normalize_before: bool,
    /// Generation settings stored in `config.json` (older checkpoints keep them there).
    pub legacy_generation: GenerationConfig,
    /// `task_specific_params.summarization` of BART-family configs, already merged into a
    /// generation configuration.
    pub summarization: Option<GenerationConfig>,
}

fn field<'a>(obj: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

struct Reader<'a> {
    path: &'a Path,
    obj: &'a serde_json::Map<String, Value>,
}

impl Reader<'_> {
    fn err(&self, name: &str, message: impl Into<String>) -> Error {
        Error::config(self.path, name, message)
    }

    fn usize_opt(&self, name: &str) -> Result<Option<usize>> {
        match field(self.obj, name) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    self.err(name, format!("expected a non-negative integer, found {v}"))
                }),
        }
    }

    fn usize_req(&self, name: &str) -> Result<usize> {
        self.usize_opt(name)?
            .ok_or_else(|| self.err(name, "missing (required for this model)"))
    }

    fn positive(&self, name: &str, default: Option<usize>) -> Result<usize> {
        let v = match default {
            Some(d) => self.usize_opt(name)?.unwrap_or(d),
            None => self.usize_req(name)?,
        };
        if v == 0 {
            return Err(self.err(name, "must be at least 1"));
        }
        Ok(v)
    }

    fn token_opt(&self, name: &str) -> Result<Option<u32>> {
        match field(self.obj, name) {
            None => Ok(None),
            // Some configs give a list of ids (several end tokens); tolk uses the first.
            Some(Value::Array(items)) => match items.first() {
                None => Ok(None),
                Some(first) => first
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .map(Some)
                    .ok_or_else(|| self.err(name, format!("expected a token id, found {first}"))),
            },
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| self.err(name, format!("expected a token id, found {v}"))),
        }
    }

    fn bool_opt(&self, name: &str) -> Result<Option<bool>> {
        match field(self.obj, name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.err(name, format!("expected true or false, found {v}"))),
        }
    }

    fn f32_opt(&self, name: &str) -> Result<Option<f32>> {
        match field(self.obj, name) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(|x| Some(x as f32))
                .ok_or_else(|| self.err(name, format!("expected a number, found {v}"))),
        }
    }

    fn str_opt(&self, name: &str) -> Result<Option<&str>> {
        match field(self.obj, name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(v) => Err(self.err(name, format!("expected a string, found {v}"))),
        }
    }
}

pub(crate) fn read_json(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        format: "JSON",
        message: e.to_string(),
    })
}

fn as_object<'a>(path: &Path, value: &'a Value) -> Result<&'a serde_json::Map<String, Value>> {
    value.as_object().ok_or_else(|| Error::Parse {
        path: path.to_path_buf(),
        format: "JSON",
        message: "expected an object at the top level".into(),
    })
}

impl ModelConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let value = read_json(path)?;
        Self::from_value(path, &value)
    }

    /// Validates an already parsed `config.json`; `path` is only used in error messages.
    pub fn from_value(path: &Path, value: &Value) -> Result<Self> {
        let obj = as_object(path, value)?;
        let r = Reader { path, obj };
        let model_type = r.str_opt("model_type")?.unwrap_or("");
        let architecture = match model_type {
            "marian" => Architecture::Marian,
            "bart" => Architecture::Bart,
            "m2m_100" => Architecture::M2m100,
            "" => return Err(r.err("model_type", "missing: cannot tell which architecture this is")),
            other => {
                return Err(r.err(
                    "model_type",
                    format!(
                        "`{other}` is not supported; tolk runs `marian` (opus-mt), `m2m_100` (M2M100, NLLB-200) and `bart` (BART, DistilBART) models"
                    ),
                ))
            }
        };
        let is_bart = architecture == Architecture::Bart;
        let is_m2m = architecture == Architecture::M2m100;
        let vocab_size = r.positive("vocab_size", None)?;
        let d_model = r.positive("d_model", None)?;
        let share = r
            .bool_opt("share_encoder_decoder_embeddings")?
            .unwrap_or(true);
        let decoder_vocab_size = match r.usize_opt("decoder_vocab_size")? {
            Some(0) | None => vocab_size,
            Some(n) => n,
        };
        if share && decoder_vocab_size != vocab_size {
            return Err(r.err(
                "decoder_vocab_size",
                format!("{decoder_vocab_size} differs from vocab_size {vocab_size}, but the embeddings are shared"),
            ));
        }
        let activation_name = r.str_opt("activation_function")?.unwrap_or("gelu");
        let activation = Activation::parse(activation_name).ok_or_else(|| {
            r.err(
                "activation_function",
                format!("`{activation_name}` is not supported (swish, silu, relu, gelu, gelu_new)"),
            )
        })?;
        let pad = r
            .token_opt("pad_token_id")?
            .ok_or_else(|| r.err("pad_token_id", "missing"))?;
        let eos = r
            .token_opt("eos_token_id")?
            .ok_or_else(|| r.err("eos_token_id", "missing"))?;
        let start = r.token_opt("decoder_start_token_id")?.unwrap_or(pad);
        let cfg = ModelConfig {
            architecture,
            vocab_size,
            decoder_vocab_size,
            d_model,
            encoder_layers: r.positive("encoder_layers", None)?,
            decoder_layers: r.positive("decoder_layers", None)?,
            encoder_attention_heads: r.positive("encoder_attention_heads", None)?,
            decoder_attention_heads: r.positive("decoder_attention_heads", None)?,
            encoder_ffn_dim: r.positive("encoder_ffn_dim", None)?,
            decoder_ffn_dim: r.positive("decoder_ffn_dim", None)?,
            activation,
            max_position_embeddings: r.positive("max_position_embeddings", Some(1024))?,
            // M2M100Config's default is true, the others' false.
            scale_embedding: r.bool_opt("scale_embedding")?.unwrap_or(is_m2m),
            pad_token_id: pad,
            eos_token_id: eos,
            decoder_start_token_id: start,
            forced_eos_token_id: r.token_opt("forced_eos_token_id")?,
            // Older BART checkpoints (distilbart-cnn, the first bart-large-cnn) have
            // `force_bos_token_to_be_generated: true` instead of `forced_bos_token_id`; transformers
            // then forces `bos_token_id` (GenerationConfig, `_from_model_config`), overriding it.
            forced_bos_token_id: if r
                .bool_opt("force_bos_token_to_be_generated")?
                .unwrap_or(false)
            {
                r.token_opt("bos_token_id")?
            } else {
                r.token_opt("forced_bos_token_id")?
            },
            share_encoder_decoder_embeddings: share,
            tie_word_embeddings: r.bool_opt("tie_word_embeddings")?.unwrap_or(true),
            // M2M100 layers are pre-norm by definition (its config has no such field).
            normalize_before: is_m2m || r.bool_opt("normalize_before")?.unwrap_or(false),
            legacy_generation: GenerationConfig::default(),
            summarization: None,
        };
        for (name, heads) in [
            ("encoder_attention_heads", cfg.encoder_attention_heads),
            ("decoder_attention_heads", cfg.decoder_attention_heads),
        ] {
            if d_model % heads != 0 {
                return Err(r.err(
                    name,
                    format!("{heads} heads do not divide d_model {d_model}"),
                ));
            }
        }
        for (name, id, limit) in [
            ("pad_token_id", pad, vocab_size.max(decoder_vocab_size)),
            ("eos_token_id", eos, decoder_vocab_size),
            ("decoder_start_token_id", start, decoder_vocab_size),
        ] {
            if id as usize >= limit {
                return Err(r.err(
                    name,
                    format!("id {id} is outside the vocabulary (size {limit})"),
                ));
            }
        }
        if cfg.normalize_before && !is_m2m {
            return Err(r.err(
                "normalize_before",
                "pre-norm models (mBART, Pegasus) are not supported yet",
            ));
        }
        if is_bart && r.bool_opt("add_final_layer_norm")?.unwrap_or(false) {
            return Err(r.err(
                "add_final_layer_norm",
                "BART variants with a final layer norm (mBART) are not supported yet",
            ));
        }
        let mut cfg = cfg;
        cfg.legacy_generation = GenerationConfig::from_model_config(&cfg).merge_json(path, obj)?;
        if let Some(Value::Object(tsp)) = field(obj, "task_specific_params") {
            if let Some(Value::Object(summ)) = tsp.get("summarization") {
                cfg.summarization = Some(cfg.legacy_generation.clone().merge_json(path, summ)?);
            }
        }
        Ok(cfg)
    }

    /// Head dimension of the encoder attention.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.encoder_attention_heads
    }
}

/// How beam search decides that it is done (`early_stopping` in transformers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EarlyStopping {
    /// `false` (default): stop when the best running beam, scored at the current length, cannot
    /// beat the worst finished one.
    #[default]
    Heuristic,
    /// `true`: stop as soon as `num_beams` hypotheses are finished.
    Eager,
    /// `"never"`: canonical beam search; with a positive length penalty the best running beam is
    /// scored at the maximum length.
    Never,
}

impl std::str::FromStr for EarlyStopping {
    type Err = String;

    /// transformers' values as written on a command line: `false`, `true`, `never`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "false" => Ok(EarlyStopping::Heuristic),
            "true" => Ok(EarlyStopping::Eager),
            "never" => Ok(EarlyStopping::Never),
            _ => Err(format!("`{s}` is not true, false or never")),
        }
    }
}

impl<'de> serde::Deserialize<'de> for EarlyStopping {
    /// transformers' values: `true`, `false` or `"never"`.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Word(String),
        }
        match Raw::deserialize(d)? {
            Raw::Flag(true) => Ok(EarlyStopping::Eager),
            Raw::Flag(false) => Ok(EarlyStopping::Heuristic),
            Raw::Word(w) => w.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Everything that controls decoding: the merge of the model's defaults
/// (`generation_config.json`, else `config.json`) with the caller's overrides.
///
/// Field semantics follow Hugging Face transformers' `GenerationConfig` so that the same settings
/// give the same tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Beam width; 1 means greedy search. Default 1 (opus-mt models set 4 or 6).
    pub num_beams: usize,
    /// Maximum length of the decoder sequence, counting the decoder start token. Default: none set
    /// (then 20 new tokens, capped by the model's positions).
    pub max_length: Option<usize>,
    /// Maximum number of generated tokens; takes precedence over `max_length`. Default none.
    pub max_new_tokens: Option<usize>,
    /// End-of-sequence is banned while the decoder sequence (with its start token) is shorter than
    /// this. Default 0.
    pub min_length: usize,
    /// End-of-sequence is banned before this many tokens were generated; takes precedence over
    /// `min_length`. Default none.
    pub min_new_tokens: Option<usize>,
    /// Exponent of the length normalisation of beam scores (score / length^penalty). Default 1.0.
    pub length_penalty: f32,
    /// Beam search stopping rule. Default [`EarlyStopping::Heuristic`].
    pub early_stopping: EarlyStopping,
    /// Ban any n-gram of this size from occurring twice; 0 disables. Default 0.
    pub no_repeat_ngram_size: usize,
    /// Divide positive (multiply negative) scores of already generated tokens by this. Default 1.0.
    pub repetition_penalty: f32,
    /// Token sequences that must never be produced (opus-mt: `[[pad]]`). Default empty.
    pub bad_words_ids: Vec<Vec<u32>>,
    /// Log-softmax the scores after all processors. Default false (opus-mt: true).
    pub renormalize_logits: bool,
    /// Hypotheses returned per input (at most `num_beams`). Default 1.
    pub num_return_sequences: usize,
    /// End-of-sequence id.
    pub eos_token_id: u32,
    /// Padding id.
    pub pad_token_id: u32,
    /// First decoder token.
    pub decoder_start_token_id: u32,
    /// Forced last token at the maximum length. Default from the model config.
    pub forced_eos_token_id: Option<u32>,
    /// Forced first generated token. Default from the model config.
    pub forced_bos_token_id: Option<u32>,
    /// Also return each hypothesis's alignment: for every generated token, the cross-attention
    /// of the next-to-last decoder layer (averaged over its heads) over the source tokens, as
    /// transformers' `output_attentions` would give it. Default false (it costs a little time).
    pub output_alignments: bool,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            num_beams: 1,
            max_length: None,
            max_new_tokens: None,
            min_length: 0,
            min_new_tokens: None,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::Heuristic,
            no_repeat_ngram_size: 0,
            repetition_penalty: 1.0,
            bad_words_ids: Vec::new(),
            renormalize_logits: false,
            num_return_sequences: 1,
            eos_token_id: 0,
            pad_token_id: 0,
            decoder_start_token_id: 0,
            forced_eos_token_id: None,
            forced_bos_token_id: None,
            output_alignments: false,
        }
    }
}

impl GenerationConfig {
    /// The special tokens of a model, with every other setting at its default.
    pub fn from_model_config(model: &ModelConfig) -> Self {
        GenerationConfig {
            eos_token_id: model.eos_token_id,
            pad_token_id: model.pad_token_id,
            decoder_start_token_id: model.decoder_start_token_id,
            forced_eos_token_id: model.forced_eos_token_id,
            forced_bos_token_id: model.forced_bos_token_id,
            ..GenerationConfig::default()
        }
    }

    /// The model's generation defaults: `generation_config.json` when `path` exists, else the
    /// generation fields of `config.json` (as transformers does for older checkpoints).
    pub fn for_model(model: &ModelConfig, generation_config_json: Option<&Path>) -> Result<Self> {
        match generation_config_json {
            Some(path) if path.exists() => {
                let value = read_json(path)?;
                let obj = as_object(path, &value)?;
                GenerationConfig::from_model_config(model).merge_json(path, obj)
            }
            _ => Ok(model.legacy_generation.clone()),
        }
    }

    /// Overrides fields with those present in a JSON object (a generation config or a task's
    /// parameters); fields that are absent keep their value.
    pub fn merge_json(mut self, path: &Path, obj: &serde_json::Map<String, Value>) -> Result<Self> {
        let r = Reader { path, obj };
        if let Some(n) = r.usize_opt("num_beams")? {
            self.num_beams = n;
        }
        if let Some(n) = r.usize_opt("max_length")? {
            self.max_length = Some(n);
        }
        if let Some(n) = r.usize_opt("max_new_tokens")? {
            self.max_new_tokens = Some(n);
        }
        if let Some(n) = r.usize_opt("min_length")? {
            self.min_length = n;
        }
        if let Some(n) = r.usize_opt("min_new_tokens")? {
            self.min_new_tokens = Some(n);
        }
        if let Some(x) = r.f32_opt("length_penalty")? {
            self.length_penalty = x;
        }
        match field(obj, "early_stopping") {
            None => {}
            Some(Value::Bool(true)) => self.early_stopping = EarlyStopping::Eager,
            Some(Value::Bool(false)) => self.early_stopping = EarlyStopping::Heuristic,
            Some(Value::String(s)) if s == "never" => self.early_stopping = EarlyStopping::Never,
            Some(v) => {
                return Err(r.err(
                    "early_stopping",
                    format!("expected true, false or \"never\", found {v}"),
                ))
            }
        }
        if let Some(n) = r.usize_opt("no_repeat_ngram_size")? {
            self.no_repeat_ngram_size = n;
        }
        if let Some(x) = r.f32_opt("repetition_penalty")? {
            self.repetition_penalty = x;
        }
        if let Some(v) = field(obj, "bad_words_ids") {
            self.bad_words_ids = parse_bad_words(v).ok_or_else(|| {
                r.err(
                    "bad_words_ids",
                    format!("expected a list of lists of token ids, found {v}"),
                )
            })?;
        }
        if let Some(b) = r.bool_opt("renormalize_logits")? {
            self.renormalize_logits = b;
        }
        if let Some(n) = r.usize_opt("num_return_sequences")? {
            self.num_return_sequences = n;
        }
        if let Some(t) = r.token_opt("eos_token_id")? {
            self.eos_token_id = t;
        }
        if let Some(t) = r.token_opt("pad_token_id")? {
            self.pad_token_id = t;
        }
        if let Some(t) = r.token_opt("decoder_start_token_id")? {
            self.decoder_start_token_id = t;
        }
        if field(obj, "forced_eos_token_id").is_some() {
            self.forced_eos_token_id = r.token_opt("forced_eos_token_id")?;
        }
        if field(obj, "forced_bos_token_id").is_some() {
            self.forced_bos_token_id = r.token_opt("forced_bos_token_id")?;
        }
        Ok(self)
    }

    /// Checks that the settings can work with a model of `vocab_size` target tokens and
    /// `max_positions` positions.
    pub fn validate(&self, vocab_size: usize, max_positions: usize) -> Result<()> {
        let opt = |name: &str, msg: String| Err(Error::option(name, msg));
        if self.num_beams == 0 {
            return opt("num_beams", "must be at least 1".into());
        }
        if self.num_return_sequences == 0 || self.num_return_sequences > self.num_beams {
            return opt(
                "num_return_sequences",
                format!(
                    "{} must be between 1 and num_beams ({})",
                    self.num_return_sequences, self.num_beams
                ),
            );
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return opt(
                "repetition_penalty",
                format!("{} must be a positive number", self.repetition_penalty),
            );
        }
        if !self.length_penalty.is_finite() {
            return opt("length_penalty", "must be a finite number".into());
        }
        let max = self.max_decoder_length(max_positions);
        if max < 2 {
            return opt(
                "max_length",
                format!(
                    "{max} leaves no room for a generated token (count includes the start token)"
                ),
            );
        }
        for (name, id) in [
            ("eos_token_id", Some(self.eos_token_id)),
            ("pad_token_id", Some(self.pad_token_id)),
            ("decoder_start_token_id", Some(self.decoder_start_token_id)),
            ("forced_eos_token_id", self.forced_eos_token_id),
            ("forced_bos_token_id", self.forced_bos_token_id),
        ] {
            if let Some(id) = id {
                if id as usize >= vocab_size {
                    return opt(
                        name,
                        format!("id {id} is outside the vocabulary (size {vocab_size})"),
                    );
                }
            }
        }
        for seq in &self.bad_words_ids {
            if seq.is_empty() || seq.iter().any(|&t| t as usize >= vocab_size) {
                return opt(
                    "bad_words_ids",
                    format!("{seq:?} must be a non-empty list of ids below {vocab_size}"),
                );
            }
        }
        Ok(())
    }

    /// The decoder sequence length (start token included) at which generation stops, as
    /// transformers resolves it: `max_new_tokens` + 1, else `max_length`, else 20 new tokens capped
    /// by the model's positions.
    pub fn max_decoder_length(&self, max_positions: usize) -> usize {
        match (self.max_new_tokens, self.max_length) {
            (Some(n), _) => n.saturating_add(1),
            (None, Some(n)) => n,
            (None, None) => 21.min(max_positions),
        }
    }

    /// The decoder sequence length (start token included) below which end-of-sequence is banned.
    pub fn min_decoder_length(&self) -> usize {
        match self.min_new_tokens {
            Some(n) => n.saturating_add(1),
            None => self.min_length,
        }
    }

    /// Sets the beam width (1 = greedy).
    #[must_use]
    pub fn with_num_beams(mut self, n: usize) -> Self {
        self.num_beams = n;
        self
    }

    /// Sets the maximum decoder length (start token included).
    #[must_use]
    pub fn with_max_length(mut self, n: usize) -> Self {
        self.max_length = Some(n);
        self
    }

    /// Sets the maximum number of generated tokens.
    #[must_use]
    pub fn with_max_new_tokens(mut self, n: usize) -> Self {
        self.max_new_tokens = Some(n);
        self
    }

    /// Sets the minimum decoder length (start token included).
    #[must_use]
    pub fn with_min_length(mut self, n: usize) -> Self {
        self.min_length = n;
        self
    }

    /// Sets the minimum number of generated tokens.
    #[must_use]
    pub fn with_min_new_tokens(mut self, n: usize) -> Self {
        self.min_new_tokens = Some(n);
        self
    }

    /// Sets the length penalty exponent.
    #[must_use]
    pub fn with_length_penalty(mut self, x: f32) -> Self {
        self.length_penalty = x;
        self
    }

    /// Sets the beam stopping rule.
    #[must_use]
    pub fn with_early_stopping(mut self, e: EarlyStopping) -> Self {
        self.early_stopping = e;
        self
    }

    /// Sets the banned repeated n-gram size (0 disables).
    #[must_use]
    pub fn with_no_repeat_ngram_size(mut self, n: usize) -> Self {
        self.no_repeat_ngram_size = n;
        self
    }

    /// Sets the repetition penalty (1.0 disables).
    #[must_use]
    pub fn with_repetition_penalty(mut self, x: f32) -> Self {
        self.repetition_penalty = x;
        self
    }

    /// Sets how many hypotheses to return per input.
    #[must_use]
    pub fn with_num_return_sequences(mut self, n: usize) -> Self {
        self.num_return_sequences = n;
        self
    }
}

fn parse_bad_words(v: &Value) -> Option<Vec<Vec<u32>>> {
    v.as_array()?
        .iter()
        .map(|seq| {
            seq.as_array()?
                .iter()
                .map(|t| t.as_u64().and_then(|n| u32::try_from(n).ok()))
                .collect::<Option<Vec<u32>>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> Result<ModelConfig> {
        ModelConfig::from_value(
            Path::new("config.json"),
            &serde_json::from_str(json).unwrap(),
        )
    }

    const MARIAN: &str = r#"{"model_type":"marian","vocab_size":100,"d_model":16,"encoder_layers":2,
        "decoder_layers":2,"encoder_attention_heads":4,"decoder_attention_heads":4,"encoder_ffn_dim":32,
        "decoder_ffn_dim":32,"activation_function":"swish","max_position_embeddings":64,
        "scale_embedding":true,"pad_token_id":99,"eos_token_id":0,"decoder_start_token_id":99,
        "num_beams":4,"bad_words_ids":[[99]],"max_length":64}"#;

    #[test]
    fn reads_marian_config_and_legacy_generation_fields() {
        let c = cfg(MARIAN).unwrap();
        assert_eq!(c.architecture, Architecture::Marian);
        assert_eq!(c.decoder_vocab_size, 100);
        assert_eq!(c.activation, Activation::Swish);
        assert_eq!(c.legacy_generation.num_beams, 4);
        assert_eq!(c.legacy_generation.bad_words_ids, vec![vec![99]]);
        assert_eq!(c.legacy_generation.max_length, Some(64));
        assert_eq!(c.legacy_generation.decoder_start_token_id, 99);
    }

    #[test]
    fn errors_name_the_field() {
        let bad = MARIAN.replace("\"d_model\":16", "\"d_model\":15");
        let e = cfg(&bad).unwrap_err().to_string();
        assert!(
            e.contains("encoder_attention_heads") && e.contains("d_model 15"),
            "{e}"
        );
        let bad = MARIAN.replace("\"marian\"", "\"t5\"");
        let e = cfg(&bad).unwrap_err().to_string();
        assert!(e.contains("model_type") && e.contains("t5"), "{e}");
        let bad = MARIAN.replace("\"vocab_size\":100,", "");
        let e = cfg(&bad).unwrap_err().to_string();
        assert!(e.contains("vocab_size") && e.contains("missing"), "{e}");
        let bad = MARIAN.replace("\"pad_token_id\":99", "\"pad_token_id\":100");
        let e = cfg(&bad).unwrap_err().to_string();
        assert!(e.contains("pad_token_id") && e.contains("outside"), "{e}");
        let bad = MARIAN.replace("\"swish\"", "\"mish\"");
        let e = cfg(&bad).unwrap_err().to_string();
        assert!(
            e.contains("activation_function") && e.contains("mish"),
            "{e}"
        );
        let bad = MARIAN.replace("\"scale_embedding\":true", "\"scale_embedding\":\"yes\"");
        let e = cfg(&bad).unwrap_err().to_string();
        assert!(e.contains("scale_embedding"), "{e}");
    }

    #[test]
    fn old_bart_configs_force_bos_and_carry_summarization_settings() {
        // The shape of distilbart-cnn-12-6's config.json: no forced_bos/forced_eos ids, the old
        // flag instead, generation settings at the top level and for the summarization task.
        const BART: &str = r#"{"model_type":"bart","vocab_size":50,"d_model":16,"encoder_layers":1,
            "decoder_layers":1,"encoder_attention_heads":4,"decoder_attention_heads":4,
            "encoder_ffn_dim":32,"decoder_ffn_dim":32,"bos_token_id":0,"pad_token_id":1,
            "eos_token_id":2,"decoder_start_token_id":2,"force_bos_token_to_be_generated":true,
            "num_beams":4,"max_length":142,"task_specific_params":{"summarization":
            {"num_beams":4,"max_length":142,"min_length":56,"length_penalty":2.0,
            "no_repeat_ngram_size":3,"early_stopping":true}}}"#;
        let c = cfg(BART).unwrap();
        assert_eq!(c.architecture, Architecture::Bart);
        assert_eq!(c.activation, Activation::Gelu);
        assert_eq!(c.forced_bos_token_id, Some(0));
        assert_eq!(c.forced_eos_token_id, None);
        assert_eq!(c.legacy_generation.forced_bos_token_id, Some(0));
        let s = c.summarization.unwrap();
        assert_eq!(
            (s.num_beams, s.max_length, s.min_length),
            (4, Some(142), 56)
        );
        assert_eq!(s.early_stopping, EarlyStopping::Eager);
        assert_eq!(s.no_repeat_ngram_size, 3);
        assert_eq!(s.forced_bos_token_id, Some(0));
        let off = BART.replace(
            "\"force_bos_token_to_be_generated\":true",
            "\"forced_bos_token_id\":3",
        );
        assert_eq!(cfg(&off).unwrap().forced_bos_token_id, Some(3));
    }

    #[test]
    fn length_resolution_follows_transformers() {
        let g = GenerationConfig::default();
        assert_eq!(g.max_decoder_length(512), 21);
        assert_eq!(g.clone().with_max_length(64).max_decoder_length(512), 64);
        assert_eq!(
            g.clone()
                .with_max_length(64)
                .with_max_new_tokens(10)
                .max_decoder_length(512),
            11
        );
        assert_eq!(g.clone().with_min_length(5).min_decoder_length(), 5);
        assert_eq!(
            g.with_min_length(5)
                .with_min_new_tokens(5)
                .min_decoder_length(),
            6
        );
    }

    #[test]
    fn validation_rejects_impossible_settings() {
        let g = GenerationConfig::default();
        assert!(g.validate(10, 512).is_ok());
        assert!(g.clone().with_num_beams(0).validate(10, 512).is_err());
        assert!(g
            .clone()
            .with_num_beams(2)
            .with_num_return_sequences(3)
            .validate(10, 512)
            .is_err());
        assert!(g.clone().with_max_new_tokens(0).validate(10, 512).is_err());
        assert!(g
            .clone()
            .with_repetition_penalty(0.0)
            .validate(10, 512)
            .is_err());
        let mut bad = g;
        bad.bad_words_ids = vec![vec![10]];
        assert!(bad.validate(10, 512).is_err());
    }
}
