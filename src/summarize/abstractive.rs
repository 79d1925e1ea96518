//! The abstractive summariser: a BART / DistilBART model (by default
//! `sshleifer/distilbart-cnn-12-6`) that writes a summary of its own, run on tolk's shared
//! encoder-decoder ([`Seq2SeqModel`]), search ([`crate::generate`]), loader and batch runner
//! (the seq2seq runtime of [`crate::runtime`], with its `.bin` conversion cache and `--quantize
//! int8`).
//!
//! One model input holds at most the model's positions (1024 tokens for BART, `<s>` and `</s>`
//! included), and nothing is ever truncated, so a long article is summarised hierarchically:
//!
//! 1. **Units.** The input sentences, trimmed, empty ones left out. A sentence too long for one
//!    input on its own is split at whitespace (and a word too long on its own between
//!    characters) into pieces that fit.
//! 2. **Chunks.** Consecutive units, joined by single spaces and preceded by the model's
//!    `prefix` (`config.json`; `" "` for distilbart-cnn, as its training data and transformers'
//!    old summarisation pipeline had it), form one model input. Units are never split across
//!    chunks; the planner takes the fewest chunks that fit and, among those, evens out their
//!    sizes (so that no chunk is a short leftover), then checks each chunk's real token count.
//! 3. **One level.** Every chunk is summarised (in padded, length-sorted batches) with the
//!    generation settings, by default the model's `task_specific_params.summarization`.
//! 4. **Up the hierarchy.** With a single chunk its summary is the result. With several, the chunk
//!    summaries, in order, become the units of the next level, which chunks and summarises them
//!    again — one more pass when they fit into one input, more when they do not. If a level's
//!    summaries together are not shorter (in tokens) than what that level read, condensing
//!    cannot converge; the result is then the concatenation of that level's summaries (longer
//!    than wanted, but nothing is dropped).
//! 5. The final text is split into sentences with [`split_english`]; they are
//!    [`SummarySentence`]s with `index: None` and score 1.
//!
//! [`AbstractiveSummarizer::summarize_report`] returns every level and chunk, for inspection.

mod chunk;

use std::ops::Range;
use std::path::Path;

use serde_json::Value;

use super::{split_english, Document, Summarizer, Summary, SummarySentence};
use crate::config::{Architecture, GenerationConfig, ModelConfig};
use crate::error::{Error, Result};
use crate::model::Seq2SeqModel;
use crate::runtime::{BatchOptions, LoadOptions, Seq2Seq};
use crate::source::ModelFiles;
use crate::tokenizer::BpeTokenizer;

/// How the abstractive summariser cuts and batches its inputs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AbstractiveOptions {
    /// Most tokens in one model input, `<s>` and `</s>` included; capped by the model's
    /// positions. Default `None`: the model's positions (1024 for BART).
    pub max_input_tokens: Option<usize>,
    /// Text put before every model input. Default `None`: the model's `prefix` from
    /// `config.json` (`" "` for distilbart-cnn), or nothing.
    pub prefix: Option<String>,
    /// How chunks are grouped into padded batches. Default [`BatchOptions::default`] (32
    /// inputs, 4096 padded tokens).
    pub batching: BatchOptions,
}

impl AbstractiveOptions {
    /// Sets the most tokens per model input (at least 3: `<s>`, one piece, `</s>`).
    #[must_use]
    pub fn with_max_input_tokens(mut self, n: usize) -> Self {
        self.max_input_tokens = Some(n.max(3));
        self
    }

    /// Sets the text put before every model input.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Sets the batching.
    #[must_use]
    pub fn with_batching(mut self, batching: BatchOptions) -> Self {
        self.batching = batching;
        self
    }
}

/// What the model generated for one input.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedText {
    /// `decode(ids, skip_special_tokens=True)`, untrimmed (BART's text usually starts with a
    /// space).
    pub text: String,
    /// Generated ids, without the decoder start token (so starting with the forced `<s>`).
    pub ids: Vec<u32>,
    /// Beam search: transformers' sequence score; greedy: mean token log-probability.
    pub score: f32,
    /// Tokens of the model input (`<s>` and `</s>` included); 0 when nothing was generated.
    pub input_tokens: usize,
}

impl GeneratedText {
    fn empty() -> Self {
        GeneratedText {
            text: String::new(),
            ids: Vec::new(),
            score: 0.0,
            input_tokens: 0,
        }
    }
}

/// A piece of text one level of the hierarchy reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryUnit {
    /// The text, trimmed.
    pub text: String,
    /// Where it comes from: the input sentence (level 0) or the chunk of the level below.
    pub source: usize,
    /// Its BPE pieces when it follows another unit (after a space).
    pub tokens: usize,
}

/// One model input of a level and its summary.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryChunk {
    /// The units of the level that form this chunk.
    pub units: Range<usize>,
    /// The summary of the chunk (its `input_tokens` is the chunk's length).
    pub summary: GeneratedText,
}

/// One level of the hierarchy.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryLevel {
    /// The units this level read, in order.
    pub units: Vec<SummaryUnit>,
    /// The chunks, in order; together they cover every unit once.
    pub chunks: Vec<SummaryChunk>,
}

/// A summary with the way it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct AbstractiveReport {
    /// The summary.
    pub summary: Summary,
    /// The levels, bottom (the input) first; empty when the input had no text.
    pub levels: Vec<SummaryLevel>,
    /// False when a level's summaries were not shorter than its input and the summary is their
    /// concatenation.
    pub converged: bool,
}

/// A BART-family summariser.
///
/// `AbstractiveSummarizer` is `Send + Sync`: load it once and share it between threads.
#[derive(Debug)]
pub struct AbstractiveSummarizer {
    runtime: Seq2Seq,
    tokenizer: BpeTokenizer,
    generation: GenerationConfig,
    options: AbstractiveOptions,
    model_prefix: String,
    name: String,
    files: ModelFiles,
}

impl AbstractiveSummarizer {
    /// Loads a BART model from a directory in the Hugging Face layout (config.json,
    /// tokenizer.json or vocab.json + merges.txt, weights, optional tokenizer_config.json and
    /// generation_config.json).
    pub fn from_dir(dir: impl AsRef<Path>, options: &LoadOptions) -> Result<Self> {
        let files = ModelFiles::from_dir(dir)?;
        Self::from_files(files, options)
    }

    /// Loads a model from resolved files (see [`crate::source::Resolver`]); errors about a file
    /// say how to repair it.
    pub fn from_files(files: ModelFiles, options: &LoadOptions) -> Result<Self> {
        let loaded = load(&files, options).map_err(|e| files.explain(e))?;
        let name = files
            .provenance
            .repo
            .as_deref()
            .and_then(|r| r.rsplit('/').next())
            .map(str::to_string)
            .or_else(|| {
                files
                    .dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "abstractive".into());
        Ok(AbstractiveSummarizer {
            generation: loaded.runtime.generation.clone(),
            runtime: loaded.runtime,
            tokenizer: loaded.tokenizer,
            options: AbstractiveOptions::default(),
            model_prefix: loaded.prefix,
            name,
            files,
        })
    }

    /// Replaces the generation settings (initially the model's summarisation settings).
    #[must_use]
    pub fn with_generation(mut self, generation: GenerationConfig) -> Self {
        self.generation = generation;
        self
    }

    /// Replaces the chunking and batching options.
    #[must_use]
    pub fn with_options(mut self, options: AbstractiveOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets the name reported by [`Summarizer::name`] (initially the model's repository name).
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The generation settings: `task_specific_params.summarization` over the model's defaults
    /// (`generation_config.json`, else `config.json`), unless replaced.
    pub fn generation(&self) -> &GenerationConfig {
        &self.generation
    }

    /// The chunking and batching options.
    pub fn options(&self) -> &AbstractiveOptions {
        &self.options
    }

    /// The model.
    pub fn model(&self) -> &Seq2SeqModel {
        &self.runtime.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &BpeTokenizer {
        &self.tokenizer
    }

    /// The model's files and where they came from.
    pub fn files(&self) -> &ModelFiles {
        &self.files
    }

    /// The text put before every model input.
    pub fn prefix(&self) -> &str {
        self.options.prefix.as_deref().unwrap_or(&self.model_prefix)
    }

    /// Most tokens of one model input (`<s>` and `</s>` included).
    pub fn max_input_tokens(&self) -> usize {
        let positions = self.runtime.model.max_source_positions();
        self.options
            .max_input_tokens
            .map_or(positions, |n| n.min(positions))
    }

    /// Generates once for each text (the prefix is put before it), in length-sorted batches;
    /// results are in input order. Texts with nothing in them (empty or whitespace only) give
    /// an empty result without running the model. A text longer than one model input is an
    /// error: [`Summarizer::summarize`] cuts long inputs into chunks.
    pub fn generate(
        &self,
        texts: &[&str],
        generation: &GenerationConfig,
    ) -> Result<Vec<GeneratedText>> {
        let prefix = self.prefix();
        let todo: Vec<usize> = (0..texts.len())
            .filter(|&i| !texts[i].trim().is_empty())
            .collect();
        let mut inputs = Vec::with_capacity(todo.len());
        for &i in &todo {
            let ids = self.encode_input(&format!("{prefix}{}", texts[i]))?;
            if ids.len() > self.max_input_tokens() {
                return Err(Error::Input {
                    source_name: "<text>".into(),
                    message: format!(
                        "text {} has {} tokens, more than the {} of one model input; summarize() splits long inputs",
                        i + 1,
                        ids.len(),
                        self.max_input_tokens()
                    ),
                    remedy: None,
                });
            }
            inputs.push(ids);
        }
        let generated = self.run(&inputs, generation)?;
        let mut out: Vec<GeneratedText> =
            (0..texts.len()).map(|_| GeneratedText::empty()).collect();
        for (i, g) in todo.into_iter().zip(generated) {
            out[i] = g;
        }
        Ok(out)
    }

    /// Summarises a document and reports how: every level of the hierarchy and its chunks.
    pub fn summarize_report(&self, document: &Document<'_>) -> Result<AbstractiveReport> {
        self.summarize_report_with(document, &self.generation)
    }

    /// [`summarize_report`](Self::summarize_report) with other generation settings.
    pub fn summarize_report_with(
        &self,
        document: &Document<'_>,
        generation: &GenerationConfig,
    ) -> Result<AbstractiveReport> {
        document.validate()?;
        generation.validate(
            self.runtime.model.config().decoder_vocab_size,
            self.runtime.model.max_target_positions(),
        )?;
        let sentences: Vec<(usize, &str)> = document
            .sentences()
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.trim()))
            .filter(|(_, s)| !s.is_empty())
            .collect();
        let mut units = self.units(&sentences)?;
        let mut levels = Vec::new();
        let mut converged = true;
        let text = loop {
            if units.is_empty() {
                break String::new();
            }
            let read: usize = units.iter().map(|u| u.tokens).sum();
            let chunks = self.plan(&units)?;
            let inputs: Vec<Vec<u32>> = chunks.iter().map(|(_, ids)| ids.clone()).collect();
            let summaries = self.run(&inputs, generation)?;
            let level = SummaryLevel {
                units,
                chunks: chunks
                    .into_iter()
                    .zip(summaries)
                    .map(|((units, _), summary)| SummaryChunk { units, summary })
                    .collect(),
            };
            let single = level.chunks.len() == 1;
            let texts: Vec<(usize, &str)> = level
                .chunks
                .iter()
                .enumerate()
                .map(|(i, c)| (i, c.summary.text.trim()))
                .filter(|(_, t)| !t.is_empty())
                .collect();
            let joined = texts.iter().map(|(_, t)| *t).collect::<Vec<_>>().join(" ");
            let next = if single {
                Vec::new()
            } else {
                self.units(&texts)?
            };
            levels.push(level);
            if single {
                break joined;
            }
            if next.iter().map(|u| u.tokens).sum::<usize>() >= read {
                converged = false;
                break joined;
            }
            units = next;
        };
        let sentences = split_english(&text)
            .into_iter()
            .map(|s| SummarySentence {
                index: None,
                text: s.text.to_string(),
                score: 1.0,
            })
            .collect();
        Ok(AbstractiveReport {
            summary: Summary {
                sentences,
                input_sentences: document.sentences().len(),
            },
            levels,
            converged,
        })
    }

    /// `<s>` pieces `</s>` for one model input; ids the model has no embedding for (`<mask>` in
    /// distilbart-cnn) are refused.
    fn encode_input(&self, text: &str) -> Result<Vec<u32>> {
        let ids = self.tokenizer.encode(text)?;
        let vocab = self.runtime.model.config().vocab_size;
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            let token = self.tokenizer.id_to_token(bad).unwrap_or_default();
            return Err(Error::Input {
                source_name: "<text>".into(),
                message: format!(
                    "the text contains `{token}` (id {bad}), which this model has no embedding for"
                ),
                remedy: None,
            });
        }
        Ok(ids)
    }

    /// The units of one level from `(source, text)` pairs (texts trimmed and non-empty): each
    /// with its token count, split where one alone does not fit a model input.
    fn units(&self, texts: &[(usize, &str)]) -> Result<Vec<SummaryUnit>> {
        let limit = self.max_input_tokens();
        let prefix = self.prefix();
        let mut out = Vec::with_capacity(texts.len());
        for &(source, text) in texts {
            let fits = |t: &str| -> Result<bool> {
                Ok(self.tokenizer.encode(&format!("{prefix}{t}"))?.len() <= limit)
            };
            let pieces = if fits(text)? {
                vec![text.to_string()]
            } else {
                chunk::split_to_fit(text, fits)?
            };
            for text in pieces {
                let tokens = self.tokenizer.encode_pieces(&format!(" {text}"))?.len();
                out.push(SummaryUnit {
                    text,
                    source,
                    tokens,
                });
            }
        }
        Ok(out)
    }

    /// Cuts `units` into chunks and returns each chunk's unit range and model input ids.
    ///
    /// The plan counts each unit as its pieces after a space, which is exact when the prefix is
    /// a single space (the byte-level pre-tokenizer never joins across the space between two
    /// trimmed texts); every chunk is then encoded for real, and one that is longer than an input
    /// after all (another prefix) hands its last units on to the next chunk.
    fn plan(&self, units: &[SummaryUnit]) -> Result<Vec<(Range<usize>, Vec<u32>)>> {
        let limit = self.max_input_tokens();
        let prefix = self.prefix();
        let overhead = 2 + if prefix.trim().is_empty() {
            0
        } else {
            self.tokenizer.encode_pieces(prefix.trim_end())?.len()
        };
        let costs: Vec<usize> = units.iter().map(|u| u.tokens).collect();
        let mut ranges = chunk::balanced(&costs, limit.saturating_sub(overhead).max(1));
        let mut out = Vec::with_capacity(ranges.len());
        let mut i = 0;
        while i < ranges.len() {
            let range = ranges[i].clone();
            let text: Vec<&str> = units[range.clone()]
                .iter()
                .map(|u| u.text.as_str())
                .collect();
            let ids = self.encode_input(&format!("{prefix}{}", text.join(" ")))?;
            if ids.len() <= limit || range.len() == 1 {
                // A single unit always fits: `units` checked it alone.
                out.push((range, ids));
                i += 1;
                continue;
            }
            ranges[i] = range.start..range.end - 1;
            match ranges.get_mut(i + 1) {
                Some(next) => next.start -= 1,
                None => ranges.push(range.end - 1..range.end),
            }
        }
        Ok(out)
    }

    /// Encoded inputs through the model, in length-sorted batches; results in input order.
    fn run(
        &self,
        inputs: &[Vec<u32>],
        generation: &GenerationConfig,
    ) -> Result<Vec<GeneratedText>> {
        let hyps = self
            .runtime
            .generate(inputs, None, generation, &self.options.batching)?;
        hyps.into_iter()
            .zip(inputs)
            .map(|(hyps, input)| match hyps.into_iter().next() {
                Some(best) => Ok(GeneratedText {
                    text: self.tokenizer.decode(&best.ids)?,
                    ids: best.ids,
                    score: best.score,
                    input_tokens: input.len(),
                }),
                None => Ok(GeneratedText::empty()),
            })
            .collect()
    }
}

impl Summarizer for AbstractiveSummarizer {
    fn name(&self) -> &str {
        &self.name
    }

    fn summarize_document(&self, document: &Document<'_>) -> Result<Summary> {
        Ok(self.summarize_report(document)?.summary)
    }
}

struct Loaded {
    runtime: Seq2Seq,
    tokenizer: BpeTokenizer,
    prefix: String,
}

fn load(files: &ModelFiles, options: &LoadOptions) -> Result<Loaded> {
    if files.architecture != Architecture::Bart {
        return Err(Error::config(
            &files.config,
            "model_type",
            "this is a translation (Marian) model; the abstractive summariser runs BART models",
        ));
    }
    let raw = crate::config::read_json(&files.config)?;
    let prefix = match raw.get("prefix") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            return Err(Error::config(
                &files.config,
                "prefix",
                format!("expected a string, found {v}"),
            ))
        }
    };
    let tokenizer = BpeTokenizer::from_files(&files.tokenizer, files.tokenizer_config.as_deref())?;
    let runtime = Seq2Seq::load(files, options, |config| {
        check_tokenizer(config, &tokenizer)?;
        let base = GenerationConfig::for_model(config, files.generation_config.as_deref())?;
        // transformers 5.x no longer applies task parameters by itself; a summariser applies
        // `task_specific_params.summarization` over the defaults, as its pipeline did in 4.x.
        match raw
            .get("task_specific_params")
            .and_then(|t| t.get("summarization"))
        {
            Some(Value::Object(summ)) => base.merge_json(&files.config, summ),
            _ => Ok(base),
        }
    })?;
    Ok(Loaded {
        runtime,
        tokenizer,
        prefix,
    })
}

/// The tokenizer must belong to the model: the same end and padding ids, and every ordinary
/// token inside the embeddings (BART's `<mask>` may lie outside: distilbart-cnn has none).
fn check_tokenizer(config: &ModelConfig, tok: &BpeTokenizer) -> Result<()> {
    let hint = "the tokenizer files and config.json come from different models";
    for (what, tok_id, cfg_name, cfg_id) in [
        ("</s>", tok.eos_id(), "eos_token_id", config.eos_token_id),
        ("<pad>", tok.pad_id(), "pad_token_id", config.pad_token_id),
    ] {
        if tok_id != cfg_id {
            return Err(Error::model_file(
                tok.path(),
                format!("{what} has id {tok_id}, but config.json's {cfg_name} is {cfg_id}"),
            )
            .with_hint(hint));
        }
    }
    if let Some(max) = tok.max_regular_id() {
        if max as usize >= config.vocab_size {
            return Err(Error::model_file(
                tok.path(),
                format!(
                    "has token id {max}, but config.json's vocab_size is {}",
                    config.vocab_size
                ),
            )
            .with_hint(hint));
        }
    }
    Ok(())
}
