//! The translator: the Marian tokenizer over the seq2seq runtime ([`crate::runtime`]: the model,
//! length-sorted, token-budgeted batches, greedy or beam search), with guards against runaway
//! output and long texts split to fit the model; results come back in input order.

use std::path::Path;

use crate::align::Alignment;
use crate::config::{Architecture, GenerationConfig, ModelConfig};
use crate::error::{Error, Result};
use crate::generate::Hypothesis;
use crate::model::Seq2SeqModel;
use crate::runtime::Seq2Seq;
pub use crate::runtime::{BatchOptions, LoadOptions};
use crate::source::ModelFiles;
use crate::tokenizer::MarianTokenizer;

/// One hypothesis, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct TranslationHypothesis {
    /// Decoded text (`decode(ids, skip_special_tokens=True)`).
    pub text: String,
    /// Generated ids (no decoder start token; ends with `</s>` when the model ended it).
    pub ids: Vec<u32>,
    /// See [`Hypothesis::score`].
    pub score: f32,
}

/// The translation of one input text.
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    /// The best translation.
    pub text: String,
    /// Its generated ids.
    pub ids: Vec<u32>,
    /// Its score (beam: transformers' sequence score; greedy: mean token log-probability).
    pub score: f32,
    /// Number of source tokens fed to the encoder (`</s>` included); 0 when nothing was translated.
    pub source_tokens: usize,
    /// All `num_return_sequences` hypotheses, best first (the first is the one above); empty
    /// when the text was translated in several pieces.
    pub hypotheses: Vec<TranslationHypothesis>,
    /// Pieces the text was split into because it was longer than the model can take (1 normally).
    pub pieces: usize,
    /// Set when a guard intervened (see [`Guards`]).
    pub flag: Option<Flag>,
    /// With [`GenerationConfig::output_alignments`]: how `text` lines up with the input text,
    /// unit by unit (words, or pieces in scripts written without spaces: see [`crate::align`]),
    /// from the decoder's cross-attention. Absent when the input's pieces could not be found
    /// in it, or the text was cut in pieces.
    pub alignment: Option<Alignment>,
}

/// How far a [`SegmentTranslator::translate_segments_with_progress`] call is, after one of its
/// batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TranslateProgress {
    /// Texts whose every piece is translated (those with nothing to translate included).
    pub texts_done: usize,
    /// Source tokens translated.
    pub tokens_done: usize,
    /// Source tokens to translate (0 when unknown).
    pub tokens: usize,
}

impl TranslateProgress {
    /// `texts_done` texts translated, `tokens_done` of `tokens` source tokens.
    pub fn new(texts_done: usize, tokens_done: usize, tokens: usize) -> Self {
        TranslateProgress {
            texts_done,
            tokens_done,
            tokens,
        }
    }
}

/// Why the output of a sentence is not the model's plain output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// Nothing to translate (no letters): the text was copied unchanged.
    Passthrough,
    /// The first output repeated itself; it was decoded again with repeated n-grams banned.
    Repetition,
    /// The first output reached the length cap; it was decoded again with repeated n-grams banned.
    Length,
}

impl Flag {
    /// A short name (`passthrough`, `repetition`, `length`).
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::Passthrough => "passthrough",
            Flag::Repetition => "repetition",
            Flag::Length => "length",
        }
    }
}

/// Protection against the failure modes of translation models on odd input: endless loops
/// ("No, no, no, ...") and hallucinated text far longer than the source.
///
/// Off by default in [`Translator`] (whose outputs then equal transformers' exactly); the article
/// pipeline turns them on.
#[derive(Debug, Clone, PartialEq)]
pub struct Guards {
    /// Whether the guards run. Default false.
    pub enabled: bool,
    /// Output cap: `ratio x source tokens + offset` tokens. Default 2.0.
    pub max_length_ratio: f32,
    /// See `max_length_ratio`. Default 20.
    pub max_length_offset: usize,
    /// An n-gram (n <= 4) repeated this many times in a row is a loop. Default 4.
    pub min_repeats: usize,
    /// `no_repeat_ngram_size` of the second decoding of a flagged sentence. Default 3.
    pub fallback_no_repeat_ngram: usize,
    /// Copy text without any letter (numbers, symbols, emoji) instead of translating it. Default
    /// true.
    pub passthrough: bool,
}

impl Default for Guards {
    fn default() -> Self {
        Guards {
            enabled: false,
            max_length_ratio: 2.0,
            max_length_offset: 20,
            min_repeats: 4,
            fallback_no_repeat_ngram: 3,
            passthrough: true,
        }
    }
}

impl Guards {
    /// The default guards, switched on.
    pub fn on() -> Self {
        Guards {
            enabled: true,
            ..Guards::default()
        }
    }
}

/// Whether `ids` contains an n-gram (n <= 4, not counting `eos`) repeated `min_repeats` times in a
/// row.
pub fn has_loop(ids: &[u32], min_repeats: usize, eos: u32) -> bool {
    let ids: Vec<u32> = ids.iter().copied().filter(|&t| t != eos).collect();
    let reps = min_repeats.max(2);
    for n in 1..=4 {
        if ids.len() < n * reps {
            continue;
        }
        for start in 0..=ids.len() - n * reps {
            let gram = &ids[start..start + n];
            if (1..reps).all(|r| &ids[start + r * n..start + (r + 1) * n] == gram) {
                return true;
            }
        }
    }
    false
}

impl Translation {
    fn empty() -> Self {
        Translation {
            text: String::new(),
            ids: Vec::new(),
            score: 0.0,
            source_tokens: 0,
            hypotheses: Vec::new(),
            pieces: 1,
            flag: None,
            alignment: None,
        }
    }
}

/// Translates the segments of documents: the [`Translator`] itself, or something that batches the
/// segments of many documents before they reach one (the server's scheduler).
pub trait SegmentTranslator: Send + Sync {
    /// One translation per text, in order, with `generation` (as
    /// [`Translator::translate_with`]).
    fn translate_segments(
        &self,
        texts: &[&str],
        generation: &GenerationConfig,
    ) -> Result<Vec<Translation>>;

    /// [`SegmentTranslator::translate_segments`], calling `progress` as batches finish. By
    /// default once, when all are done; the [`Translator`] reports every batch.
    fn translate_segments_with_progress(
        &self,
        texts: &[&str],
        generation: &GenerationConfig,
        progress: &mut dyn FnMut(&TranslateProgress),
    ) -> Result<Vec<Translation>> {
        let out = self.translate_segments(texts, generation)?;
        progress(&TranslateProgress::new(texts.len(), 0, 0));
        Ok(out)
    }
}

impl SegmentTranslator for Translator {
    fn translate_segments(
        &self,
        texts: &[&str],
        generation: &GenerationConfig,
    ) -> Result<Vec<Translation>> {
        self.translate_with(texts, generation)
    }

    fn translate_segments_with_progress(
        &self,
        texts: &[&str],
        generation: &GenerationConfig,
        progress: &mut dyn FnMut(&TranslateProgress),
    ) -> Result<Vec<Translation>> {
        self.translate_with_progress(texts, generation, progress)
    }
}

/// A loaded translation model: tokenizer, weights, generation defaults and batching.
///
/// `Translator` is `Send + Sync`: load it once and share it (e.g. in an `Arc`) between threads.
#[derive(Debug)]
pub struct Translator {
    runtime: Seq2Seq,
    tokenizer: MarianTokenizer,
    generation: GenerationConfig,
    batching: BatchOptions,
    guards: Guards,
    files: ModelFiles,
}

impl Translator {
    /// Loads a Marian model from a directory in the Hugging Face layout (config.json, source.spm,
    /// target.spm, vocab.json, weights, optional generation_config.json and tokenizer_config.json).
    pub fn from_dir(dir: impl AsRef<Path>, options: &LoadOptions) -> Result<Self> {
        let files = ModelFiles::from_dir(dir)?;
        Self::from_files(files, options)
    }

    /// Loads a model from resolved files (see [`crate::source::Resolver`]); errors about a file
    /// say how to repair it (re-fetch from the cache, or replace it in a directory).
    pub fn from_files(files: ModelFiles, options: &LoadOptions) -> Result<Self> {
        Self::load(&files, options)
            .map_err(|e| files.explain(e))
            .map(|(runtime, tokenizer)| Translator {
                generation: runtime.generation.clone(),
                runtime,
                tokenizer,
                batching: BatchOptions::default(),
                guards: Guards::default(),
                files,
            })
    }

    fn load(files: &ModelFiles, options: &LoadOptions) -> Result<(Seq2Seq, MarianTokenizer)> {
        if files.architecture != Architecture::Marian {
            return Err(Error::config(
                &files.config,
                "model_type",
                "this is not a translation (Marian) model; use it as a summariser",
            ));
        }
        // The tokenizer (a few tenths of a second: SentencePiece models and vocab.json) is read
        // on its own thread while the weights load. Errors come in the order they did when the
        // two were read one after the other: the tokenizer's, config.json's, a vocabulary that
        // does not fit the model, then the weights'.
        let (tokenizer, runtime) = std::thread::scope(|scope| {
            let tokenizer = scope.spawn(|| MarianTokenizer::from_dir(&files.dir));
            let runtime = Seq2Seq::load(files, options, |config| {
                GenerationConfig::for_model(config, files.generation_config.as_deref())
            });
            let tokenizer = tokenizer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (tokenizer, runtime)
        });
        let tokenizer = tokenizer?;
        match runtime {
            Ok(runtime) => {
                check_vocab(runtime.model.config(), &tokenizer, &files.dir)?;
                Ok((runtime, tokenizer))
            }
            Err(e) => {
                // config.json's own errors and a vocabulary that does not fit it come first.
                check_vocab(
                    &ModelConfig::from_file(&files.config)?,
                    &tokenizer,
                    &files.dir,
                )?;
                Err(e)
            }
        }
    }

    /// Sets the batching options.
    #[must_use]
    pub fn with_batching(mut self, batching: BatchOptions) -> Self {
        self.batching = batching;
        self
    }

    /// Sets the guards against runaway output (off by default).
    #[must_use]
    pub fn with_guards(mut self, guards: Guards) -> Self {
        self.guards = guards;
        self
    }

    /// The guards.
    pub fn guards(&self) -> &Guards {
        &self.guards
    }

    /// Replaces the default generation settings (initially the model's own).
    #[must_use]
    pub fn with_generation(mut self, generation: GenerationConfig) -> Self {
        self.generation = generation;
        self
    }

    /// The default generation settings.
    pub fn generation(&self) -> &GenerationConfig {
        &self.generation
    }

    /// The batching options.
    pub fn batching(&self) -> &BatchOptions {
        &self.batching
    }

    /// The model.
    pub fn model(&self) -> &Seq2SeqModel {
        &self.runtime.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &MarianTokenizer {
        &self.tokenizer
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.files.dir
    }

    /// The model's files and where they came from (repository, revision, commit).
    pub fn files(&self) -> &ModelFiles {
        &self.files
    }

    /// Translates each text with the default settings; results are in input order.
    pub fn translate(&self, texts: &[&str]) -> Result<Vec<Translation>> {
        self.translate_with(texts, &self.generation)
    }

    /// Translates each text with `generation`; results are in input order. Texts with nothing to
    /// translate (empty or whitespace only) give an empty translation without running the model.
    pub fn translate_with(
        &self,
        texts: &[&str],
        generation: &GenerationConfig,
    ) -> Result<Vec<Translation>> {
        self.translate_with_progress(texts, generation, &mut |_| {})
    }

    /// [`Translator::translate_with`], calling `progress` after every batch of the first
    /// decoding (the guards' second decoding of flagged texts is not reported).
    pub(crate) fn translate_with_progress(
        &self,
        texts: &[&str],
        generation: &GenerationConfig,
        progress: &mut dyn FnMut(&TranslateProgress),
    ) -> Result<Vec<Translation>> {
        generation.validate(
            self.runtime.model.config().decoder_vocab_size,
            self.runtime.model.max_target_positions(),
        )?;
        let guards = &self.guards;
        let mut out: Vec<Translation> = (0..texts.len()).map(|_| Translation::empty()).collect();
        // Units to translate: whole texts, or pieces of texts too long for the model.
        let mut units: Vec<(usize, String)> = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            if text.trim().is_empty() {
                continue;
            }
            if guards.enabled && guards.passthrough && !text.chars().any(char::is_alphabetic) {
                out[i] = Translation {
                    text: text.trim().to_string(),
                    flag: Some(Flag::Passthrough),
                    ..Translation::empty()
                };
                continue;
            }
            for piece in self.fit(text)? {
                units.push((i, piece));
            }
        }
        let unit_texts: Vec<&str> = units.iter().map(|(_, t)| t.as_str()).collect();
        let ids = self.tokenizer.encode_batch(&unit_texts)?;
        let lengths: Vec<usize> = ids.iter().map(Vec::len).collect();
        let max_len = generation.max_decoder_length(self.runtime.model.max_target_positions());
        let limits: Vec<usize> = lengths
            .iter()
            .map(|&n| {
                if guards.enabled {
                    let cap = (guards.max_length_ratio * n as f32).ceil() as usize
                        + guards.max_length_offset;
                    max_len.min(cap + 1)
                } else {
                    max_len
                }
            })
            .collect();
        let mut results: Vec<Option<Translation>> = vec![None; units.len()];
        // A text is done when all its units are; texts without any (empty, copied) count at once.
        let mut pending = vec![0usize; texts.len()];
        for (i, _) in &units {
            pending[*i] += 1;
        }
        let mut done = TranslateProgress {
            texts_done: pending.iter().filter(|&&n| n == 0).count(),
            tokens_done: 0,
            tokens: lengths.iter().sum(),
        };
        self.run_batches(
            &ids,
            &unit_texts,
            &limits,
            generation,
            &mut results,
            &mut |batch| {
                for &u in batch {
                    let i = units[u].0;
                    pending[i] -= 1;
                    if pending[i] == 0 {
                        done.texts_done += 1;
                    }
                    done.tokens_done += lengths[u];
                }
                progress(&done);
            },
        )?;
        if guards.enabled {
            // Runaway output: a loop, or stopped by the length cap. Decode again with repeated
            // n-grams banned, and say so.
            let mut again = Vec::new();
            for (u, r) in results.iter_mut().enumerate() {
                if let Some(t) = r {
                    let looped = has_loop(&t.ids, guards.min_repeats, self.generation.eos_token_id);
                    let capped = limits[u] < max_len && t.ids.len() + 1 >= limits[u];
                    if looped || capped {
                        t.flag = Some(if looped {
                            Flag::Repetition
                        } else {
                            Flag::Length
                        });
                        again.push(u);
                    }
                }
            }
            if !again.is_empty() && guards.fallback_no_repeat_ngram > 0 {
                let cfg = generation
                    .clone()
                    .with_no_repeat_ngram_size(guards.fallback_no_repeat_ngram);
                let sub_ids: Vec<Vec<u32>> = again.iter().map(|&u| ids[u].clone()).collect();
                let sub_limits: Vec<usize> = again.iter().map(|&u| limits[u]).collect();
                let mut sub: Vec<Option<Translation>> = vec![None; again.len()];
                let sub_texts: Vec<&str> = again.iter().map(|&u| unit_texts[u]).collect();
                self.run_batches(
                    &sub_ids,
                    &sub_texts,
                    &sub_limits,
                    &cfg,
                    &mut sub,
                    &mut |_| {},
                )?;
                for (&u, r) in again.iter().zip(sub) {
                    if let (Some(mut t), Some(old)) = (r, results[u].as_ref()) {
                        t.flag = old.flag;
                        results[u] = Some(t);
                    }
                }
            }
        }
        // Reassemble pieces of split texts.
        let mut seen = vec![false; texts.len()];
        for ((i, _), r) in units.iter().zip(results) {
            let Some(r) = r else { continue };
            let o = &mut out[*i];
            if !seen[*i] {
                seen[*i] = true;
                *o = r;
            } else {
                o.text = format!("{} {}", o.text, r.text);
                o.ids.extend(r.ids);
                o.score = (o.score + r.score) / 2.0;
                o.source_tokens += r.source_tokens;
                o.pieces += 1;
                o.flag = o.flag.or(r.flag);
                o.hypotheses.clear();
                o.alignment = None;
            }
        }
        Ok(out)
    }

    /// Splits `text` into pieces the model can take (at clause boundaries, by token count), or
    /// returns it whole.
    fn fit(&self, text: &str) -> Result<Vec<String>> {
        let max = self.runtime.model.max_source_positions();
        let n = self.tokenizer.encode(text)?.len();
        if n <= max {
            return Ok(vec![text.to_string()]);
        }
        let limit = max.saturating_sub(2).max(1);
        let measure = |s: &str| {
            self.tokenizer
                .encode(s)
                .map(|v| v.len())
                .unwrap_or(usize::MAX)
        };
        Ok(crate::segment::split_long(text, limit, measure)
            .into_iter()
            .map(|r| text[r].trim().to_string())
            .filter(|p| !p.is_empty())
            .collect())
    }

    fn run_batches(
        &self,
        ids: &[Vec<u32>],
        texts: &[&str],
        limits: &[usize],
        generation: &GenerationConfig,
        results: &mut [Option<Translation>],
        batch_done: &mut dyn FnMut(&[usize]),
    ) -> Result<()> {
        let hyps = self.runtime.generate_with_progress(
            ids,
            Some(limits),
            generation,
            &self.batching,
            batch_done,
        )?;
        for (((k, hyps), source), text) in hyps.into_iter().enumerate().zip(ids).zip(texts) {
            results[k] = Some(self.finish(hyps, text, source.len())?);
        }
        Ok(())
    }

    /// The alignment of a hypothesis of `text` (see [`Translation::alignment`]).
    fn alignment(&self, text: &str, translation: &str, h: &Hypothesis) -> Option<Alignment> {
        let attention = h.alignment.as_ref()?;
        let mut source = self.tokenizer.source_pieces(text);
        source.pop(); // </s>
        let source: Vec<&str> = source.iter().map(|(_, p)| p.as_str()).collect();
        let target = self.tokenizer.target_pieces(&h.ids);
        Alignment::from_attention(text, &source, translation, &target, attention)
    }

    fn finish(
        &self,
        hyps: Vec<Hypothesis>,
        text: &str,
        source_tokens: usize,
    ) -> Result<Translation> {
        let texts = hyps
            .iter()
            .map(|h| self.tokenizer.decode(&h.ids))
            .collect::<Result<Vec<_>>>()?;
        let alignment = hyps
            .first()
            .zip(texts.first())
            .and_then(|(h, translation)| self.alignment(text, translation, h));
        let hypotheses: Vec<TranslationHypothesis> = hyps
            .into_iter()
            .zip(texts)
            .map(|(h, text)| TranslationHypothesis {
                text,
                ids: h.ids,
                score: h.score,
            })
            .collect();
        let best = hypotheses
            .first()
            .cloned()
            .unwrap_or(TranslationHypothesis {
                text: String::new(),
                ids: Vec::new(),
                score: 0.0,
            });
        Ok(Translation {
            text: best.text,
            ids: best.ids,
            score: best.score,
            source_tokens,
            hypotheses,
            pieces: 1,
            flag: None,
            alignment,
        })
    }
}

/// The tokenizer's ids must fit the model's embeddings, or the model would read out of bounds.
fn check_vocab(config: &ModelConfig, tok: &MarianTokenizer, dir: &Path) -> Result<()> {
    if tok.vocab_size() > config.vocab_size {
        return Err(Error::ModelFile {
            path: dir.join("vocab.json"),
            message: format!(
                "has {} entries but config.json's vocab_size is {}",
                tok.vocab_size(),
                config.vocab_size
            ),
            hint: "vocab.json and config.json come from different models".into(),
        });
    }
    if tok.target_vocab_size() > config.decoder_vocab_size {
        let file = if tok.separate_vocabs() {
            "target_vocab.json"
        } else {
            "vocab.json"
        };
        return Err(Error::ModelFile {
            path: dir.join(file),
            message: format!(
                "has {} entries but config.json's decoder vocabulary has {}",
                tok.target_vocab_size(),
                config.decoder_vocab_size
            ),
            hint: "the vocabulary and config.json come from different models".into(),
        });
    }
    Ok(())
}
