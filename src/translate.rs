//! The translator: the Marian tokenizer over the seq2seq runtime ([`crate::runtime`]: the model,
//! length-sorted, token-budgeted batches, greedy or beam search), with guards against runaway
//! output and long texts split to fit the model; results come back in input order.

use std::path::Path;

use crate::align::Alignment;
use crate::config::{Architecture, GenerationConfig, ModelConfig};
use crate::error::{Error, Result};
use crate::generate::Hypothesis;
use crate::model::Seq2SeqModel;
pub use crate::runtime::{BatchOptions, LoadOptions};
use crate::runtime::{Batcher, Seq2Seq};
use crate::segment::Language;
use crate::source::ModelFiles;
use crate::tokenizer::TranslationTokenizer;
use std::collections::HashMap;

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

    /// Segments translated continuously with `generation` (see [`SegmentStream`]), as the
    /// server's scheduler feeds them. By default in rounds: the segments added before a step
    /// are translated together by one [`SegmentTranslator::translate_segments`] call; the
    /// [`Translator`] gives a [`TranslationStream`], where segments join at the next decoding
    /// step.
    fn stream<'a>(&'a self, generation: &GenerationConfig) -> Result<Box<dyn SegmentStream + 'a>> {
        Ok(Box::new(Rounds {
            translator: self,
            generation: generation.clone(),
            texts: Vec::new(),
        }))
    }
}

/// Segments translated continuously: added under keys, returned by later steps as they finish.
pub trait SegmentStream {
    /// Adds a segment; a later [`SegmentStream::step`] returns its translation under `key`
    /// (keys in flight differ). `urgent`: it should start at the next step even when the batch
    /// is full (a request that has nothing in it yet). An error concerns this segment only.
    fn add(&mut self, key: u64, text: &str, urgent: bool) -> Result<()>;
    /// Segments that would start at the next step if added now.
    fn room(&self) -> usize;
    /// Segments added and not yet returned.
    fn in_flight(&self) -> usize;
    /// Advances by one step; returns the segments finished. An error concerns every segment
    /// in flight: they are lost.
    fn step(&mut self) -> Result<Vec<(u64, Translation)>>;
}

/// [`SegmentTranslator::stream`]'s default: rounds of `translate_segments`.
struct Rounds<'a, T: ?Sized> {
    translator: &'a T,
    generation: GenerationConfig,
    texts: Vec<(u64, String)>,
}

impl<T: SegmentTranslator + ?Sized> SegmentStream for Rounds<'_, T> {
    fn add(&mut self, key: u64, text: &str, _urgent: bool) -> Result<()> {
        self.texts.push((key, text.to_string()));
        Ok(())
    }

    fn room(&self) -> usize {
        usize::MAX
    }

    fn in_flight(&self) -> usize {
        self.texts.len()
    }

    fn step(&mut self) -> Result<Vec<(u64, Translation)>> {
        let texts = std::mem::take(&mut self.texts);
        let refs: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
        let out = self
            .translator
            .translate_segments(&refs, &self.generation)?;
        if out.len() != texts.len() {
            return Err(Error::Internal(format!(
                "the translator gave {} translations for {} segments",
                out.len(),
                texts.len()
            )));
        }
        Ok(texts.into_iter().map(|(k, _)| k).zip(out).collect())
    }
}

impl SegmentStream for TranslationStream<'_> {
    fn add(&mut self, key: u64, text: &str, urgent: bool) -> Result<()> {
        self.add_with(key, text, urgent)
    }

    fn room(&self) -> usize {
        TranslationStream::room(self)
    }

    fn in_flight(&self) -> usize {
        TranslationStream::in_flight(self)
    }

    fn step(&mut self) -> Result<Vec<(u64, Translation)>> {
        TranslationStream::step(self)
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

    fn stream<'a>(&'a self, generation: &GenerationConfig) -> Result<Box<dyn SegmentStream + 'a>> {
        Ok(Box::new(self.stream_with(generation)?))
    }
}

/// A loaded translation model: tokenizer, weights, generation defaults and batching.
///
/// `Translator` is `Send + Sync`: load it once and share it (e.g. in an `Arc`) between threads.
#[derive(Debug)]
pub struct Translator {
    runtime: Seq2Seq,
    tokenizer: TranslationTokenizer,
    generation: GenerationConfig,
    batching: BatchOptions,
    guards: Guards,
    files: ModelFiles,
    /// The target-language token of a model that writes several languages, and its id: put
    /// before every source (Marian, `>>eng<<`), or forced as the first generated token
    /// (M2M100/NLLB, `__en__`, `eng_Latn`).
    target_token: Option<(String, u32)>,
    /// The source-language token put before every source (M2M100/NLLB: `__nl__`, `nld_Latn`).
    source_token: Option<(String, u32)>,
    /// The target language is forced as the first generated token (M2M100/NLLB), not typed
    /// before the source (Marian).
    forced_target: bool,
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
            .map(|(runtime, tokenizer)| {
                // A model that writes several languages writes the one its files name, if they
                // name one of its languages (a catalogue manifest's `target_language`).
                let target_token = files
                    .target_language
                    .as_deref()
                    .and_then(|code| language_token(&tokenizer, code).ok().flatten());
                let forced_target = files.architecture == Architecture::M2m100;
                // M2M100/NLLB read the source language from a token: the language the files
                // name (a catalogue manifest's `source_language`), else the tokenizer's
                // `src_lang` (transformers' default).
                let source_token = if forced_target {
                    files
                        .source_language
                        .as_deref()
                        .into_iter()
                        .chain(tokenizer.source_lang())
                        .find_map(|code| language_token(&tokenizer, code).ok().flatten())
                } else {
                    None
                };
                Translator {
                    generation: runtime.generation.clone(),
                    runtime,
                    tokenizer,
                    batching: BatchOptions::default(),
                    guards: Guards::default(),
                    files,
                    target_token,
                    source_token,
                    forced_target,
                }
            })
    }

    /// Sets the language to translate into: an ISO 639-1 or 639-3 code or the model's own code
    /// (`en`, `eng`, `>>eng<<`, `eng_Latn`, `__en__`). A model that writes several languages
    /// (target-language tokens `>>xxx<<` in its vocabulary, as OPUS-MT's multi-target and
    /// tc-big models have) then gets that token before every source, as transformers'
    /// `MarianTokenizer` reads one typed at the start of the text. For a model that writes one
    /// language, the code must be that language (when its files name it).
    ///
    /// Fails with [`Error::Option`] (`target_lang`) naming the languages the model has.
    pub fn with_target_language(mut self, code: &str) -> Result<Self> {
        match language_token(&self.tokenizer, code)? {
            Some(token) => self.target_token = Some(token),
            None => {
                let wanted = Language::new(code.trim_matches(['>', '<', '_']))?;
                if let Some(known) = self.files.target_language.as_deref() {
                    let known = Language::new(known)?;
                    if known.primary() != wanted.primary() {
                        return Err(Error::option(
                            "target_lang",
                            format!(
                                "this model translates into {} only, not {code}",
                                known.code()
                            ),
                        ));
                    }
                }
            }
        }
        Ok(self)
    }

    /// The target-language token of a model that writes several languages: put before every
    /// source (`>>eng<<`), or forced as the first generated token (M2M100/NLLB).
    pub fn target_token(&self) -> Option<&str> {
        self.target_token.as_ref().map(|(t, _)| t.as_str())
    }

    /// Sets the language of the text, for a model that reads several (M2M100, NLLB: the
    /// source-language token before every source): an ISO 639-1 or 639-3 code or the model's
    /// own (`nl`, `nld`, `nld_Latn`, `__nl__`). Models of one source language take any code
    /// (their input language is fixed; the segmenter uses the code).
    ///
    /// Fails with [`Error::Option`] (`source_lang`) naming the languages the model has.
    pub fn with_source_language(mut self, code: &str) -> Result<Self> {
        if self.forced_target {
            self.source_token = language_token(&self.tokenizer, code).map_err(|e| match e {
                Error::Option { message, .. } => Error::option("source_lang", message),
                other => other,
            })?;
        }
        Ok(self)
    }

    /// The source-language token put before every source (M2M100/NLLB).
    pub fn source_token(&self) -> Option<&str> {
        self.source_token.as_ref().map(|(t, _)| t.as_str())
    }

    /// The token put before every source: the target language's (Marian) or the source
    /// language's (M2M100/NLLB).
    fn prefix(&self) -> Option<u32> {
        if self.forced_target {
            self.source_token.as_ref().map(|(_, id)| *id)
        } else {
            self.target_token.as_ref().map(|(_, id)| *id)
        }
    }

    fn load(files: &ModelFiles, options: &LoadOptions) -> Result<(Seq2Seq, TranslationTokenizer)> {
        if !matches!(
            files.architecture,
            Architecture::Marian | Architecture::M2m100
        ) {
            return Err(Error::config(
                &files.config,
                "model_type",
                "this is not a translation (Marian, M2M100, NLLB) model; use it as a summariser",
            ));
        }
        // The tokenizer (a few tenths of a second: SentencePiece models and vocab.json) is read
        // on its own thread while the weights load. Errors come in the order they did when the
        // two were read one after the other: the tokenizer's, config.json's, a vocabulary that
        // does not fit the model, then the weights'.
        let (tokenizer, runtime) = std::thread::scope(|scope| {
            let tokenizer = scope.spawn(|| TranslationTokenizer::from_files(files));
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
    pub fn tokenizer(&self) -> &TranslationTokenizer {
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

    /// [`Translator::translate_with`], calling `progress` as texts finish.
    pub(crate) fn translate_with_progress(
        &self,
        texts: &[&str],
        generation: &GenerationConfig,
        progress: &mut dyn FnMut(&TranslateProgress),
    ) -> Result<Vec<Translation>> {
        let mut stream = self.stream_with(generation)?;
        for (i, text) in texts.iter().enumerate() {
            stream.add(i as u64, text)?;
        }
        let mut out: Vec<Option<Translation>> = vec![None; texts.len()];
        // Reported when it changes (not before the first step: nothing is done then).
        let mut reported = stream.progress();
        loop {
            for (key, t) in stream.step()? {
                out[key as usize] = Some(t);
            }
            let now = stream.progress();
            if reported != now {
                reported = now;
                progress(&now);
            }
            if stream.in_flight() == 0 {
                break;
            }
        }
        Ok(out
            .into_iter()
            .map(|t| t.unwrap_or_else(Translation::empty))
            .collect())
    }

    /// A [`TranslationStream`] with `generation`: texts added to it are translated together
    /// with those already in it, each starting at the next decoding step. Fails for a model
    /// that writes several languages when none was chosen
    /// ([`Translator::with_target_language`]).
    pub fn stream_with(&self, generation: &GenerationConfig) -> Result<TranslationStream<'_>> {
        let codes = self.tokenizer.supported_language_codes();
        if self.target_token.is_none() && !codes.is_empty() {
            return Err(Error::option(
                "target_lang",
                format!(
                    "this model translates into {} languages: choose one with --target-lang \
                     (the library: Translator::with_target_language): {}",
                    codes.len(),
                    language_list(&codes)
                ),
            ));
        }
        if self.forced_target && self.source_token.is_none() {
            return Err(Error::option(
                "source_lang",
                format!(
                    "this model reads {} languages and its files name none: choose the text's \
                     with --source-lang (the library: Translator::with_source_language): {}",
                    codes.len(),
                    language_list(&codes)
                ),
            ));
        }
        // M2M100/NLLB: the target language is the first token generated.
        let forced;
        let generation = match &self.target_token {
            Some((_, id)) if self.forced_target => {
                let mut g = generation.clone();
                g.forced_bos_token_id = Some(*id);
                forced = g;
                &forced
            }
            _ => generation,
        };
        let mut batcher = Batcher::new(&self.runtime, generation, self.batching)?;
        let guards = &self.guards;
        let fallback = (guards.enabled && guards.fallback_no_repeat_ngram > 0).then(|| {
            batcher.add_processor(
                &generation
                    .clone()
                    .with_no_repeat_ngram_size(guards.fallback_no_repeat_ngram),
            )
        });
        Ok(TranslationStream {
            translator: self,
            max_length: batcher.max_length(),
            batcher,
            fallback,
            units: HashMap::new(),
            next_unit: 0,
            texts: HashMap::new(),
            ready: Vec::new(),
            progress: TranslateProgress::default(),
            failed: false,
        })
    }

    /// Splits `text` into pieces the model can take (at clause boundaries, by token count), or
    /// returns it whole.
    fn fit(&self, text: &str) -> Result<Vec<String>> {
        let prefix = usize::from(self.prefix().is_some());
        let max = self.runtime.model.max_source_positions() - prefix;
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

    /// The alignment of a hypothesis of `text` (see [`Translation::alignment`]).
    fn alignment(&self, text: &str, translation: &str, h: &Hypothesis) -> Option<Alignment> {
        let mut attention = h.alignment.clone()?;
        if self.prefix().is_some() {
            // The language token is no word of the text.
            for row in &mut attention {
                if !row.is_empty() {
                    row.remove(0);
                }
            }
        }
        let mut source = self.tokenizer.source_pieces(text);
        source.pop(); // </s>
        let source: Vec<&str> = source.iter().map(|(_, p)| p.as_str()).collect();
        let target = self.tokenizer.target_pieces(&h.ids);
        let target: Vec<Option<&str>> = target.iter().map(Option::as_deref).collect();
        Alignment::from_attention(text, &source, translation, &target, &attention)
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

/// The model's target-language token for `code` (see [`Translator::with_target_language`]):
/// `None` when the model has no such tokens; an error naming its languages when none or several
/// of them fit.
fn language_token(tok: &TranslationTokenizer, code: &str) -> Result<Option<(String, u32)>> {
    let codes = tok.supported_language_codes();
    if codes.is_empty() {
        return Ok(None);
    }
    let bare = bare_code(code.trim());
    let found = |token: &str| {
        tok.token_to_id(token)
            .map(|id| Some((token.to_string(), id)))
    };
    // The model's own code, with or without its marks (`>>eng<<`, `eng`; `__en__`, `en`).
    if let Some(exact) = codes.iter().find(|c| bare_code(c) == bare) {
        if let Some(t) = found(exact) {
            return Ok(t);
        }
    }
    let wanted = Language::new(bare)?;
    let script = |l: &Language| l.code().split('-').nth(1).map(str::to_string);
    // The model's tokens of the same language; with a script asked for (`zh-Hant`,
    // `eng_Latn`), those of that script, else those without one.
    let same: Vec<(&str, Option<String>)> = codes
        .iter()
        .filter_map(|c| {
            let l = Language::new(bare_code(c)).ok()?;
            (l.primary() == wanted.primary()).then(|| (*c, script(&l)))
        })
        .collect();
    let fitting: Vec<&str> = match script(&wanted) {
        Some(sc) if same.iter().any(|(_, s)| s.as_ref() == Some(&sc)) => same
            .iter()
            .filter(|(_, s)| s.as_ref() == Some(&sc))
            .map(|(c, _)| *c)
            .collect(),
        Some(_) => same
            .iter()
            .filter(|(_, s)| s.is_none())
            .map(|(c, _)| *c)
            .collect(),
        None => same.iter().map(|(c, _)| *c).collect(),
    };
    match fitting.as_slice() {
        [one] => Ok(found(one).flatten()),
        [] => Err(Error::option(
            "target_lang",
            format!(
                "`{code}` is not one of this model's {} target languages: {}",
                codes.len(),
                language_list(&codes)
            ),
        )),
        several => Err(Error::option(
            "target_lang",
            format!(
                "`{code}` could be any of {}: name one of them",
                several.join(", ")
            ),
        )),
    }
}

/// A language token without its marks: `>>eng<<` and `__en__` are `eng` and `en`.
fn bare_code(token: &str) -> &str {
    token
        .trim_start_matches(">>")
        .trim_end_matches("<<")
        .trim_start_matches("__")
        .trim_end_matches("__")
}

/// A model's language tokens for a message: `eng, deu, nld` (the first 40, then how many more).
fn language_list(codes: &[&str]) -> String {
    let mut list = codes
        .iter()
        .take(40)
        .map(|c| bare_code(c))
        .collect::<Vec<_>>()
        .join(", ");
    if codes.len() > 40 {
        list.push_str(&format!(" and {} more", codes.len() - 40));
    }
    list
}

/// A piece of work in a [`TranslationStream`]: a text, or a piece of a text too long for the
/// model, and the decoding it is in.
#[derive(Debug)]
struct Unit {
    text: u64,
    piece: usize,
    source: String,
    ids: Vec<u32>,
    limit: usize,
    /// Set when the guards sent it to its second decoding.
    flag: Option<Flag>,
    urgent: bool,
}

/// A text of a [`TranslationStream`] whose pieces are being translated.
#[derive(Debug)]
struct Pending {
    pieces: Vec<Option<Translation>>,
    left: usize,
}

/// Texts translated continuously ("step-level batching"): a text [`added`](TranslationStream::add)
/// joins the texts being decoded at the next [`step`](TranslationStream::step) (its encoder pass
/// done then, its rows added to the decoder's), and leaves as soon as it is finished, with the
/// guards' second decoding where they ask for one. Each text gets exactly what
/// [`Translator::translate_with`] gives it alone on the host backend; on candle, texts added
/// while others run wait for them (see [`crate::runtime`]'s batches).
///
/// [`Translator::translate_with`] is a stream given every text at once. The server's scheduler
/// keeps one running and feeds it the segments of all requests.
#[derive(Debug)]
pub struct TranslationStream<'t> {
    translator: &'t Translator,
    batcher: Batcher<'t>,
    max_length: usize,
    /// The logits processors of the guards' second decoding.
    fallback: Option<usize>,
    units: HashMap<usize, Unit>,
    next_unit: usize,
    texts: HashMap<u64, Pending>,
    /// Texts finished and not yet returned.
    ready: Vec<(u64, Translation)>,
    progress: TranslateProgress,
    /// A step failed: what was in flight is lost, and nothing more is taken.
    failed: bool,
}

impl TranslationStream<'_> {
    /// Adds `text`, whose translation a later [`TranslationStream::step`] returns under `key`
    /// (keys of texts in flight must differ). It starts when the batch has room, longest texts
    /// first. An error (a text the tokenizer refuses) concerns this text only: nothing of it
    /// was added.
    pub fn add(&mut self, key: u64, text: &str) -> Result<()> {
        self.add_with(key, text, false)
    }

    /// [`TranslationStream::add`] for a text that should start at the next step even when the
    /// batch is full, and come back soon: it joins an urgent lane, a second batch of at most a
    /// quarter of [`BatchOptions::max_batch_size`] that steps first while it has texts (until it
    /// has decoded as many rows as the main batch holds; then the main batch steps once). The
    /// server's scheduler adds the segments of small requests so when the main batch is busy.
    pub fn add_urgent(&mut self, key: u64, text: &str) -> Result<()> {
        self.add_with(key, text, true)
    }

    fn add_with(&mut self, key: u64, text: &str, urgent: bool) -> Result<()> {
        if self.failed {
            return Err(Error::Internal(
                "a step of this translation stream failed; start a new stream".into(),
            ));
        }
        if self.texts.contains_key(&key) || self.ready.iter().any(|(k, _)| *k == key) {
            return Err(Error::option(
                "key",
                format!("a text with key {key} is already in flight"),
            ));
        }
        let tr = self.translator;
        let guards = &tr.guards;
        if text.trim().is_empty() {
            self.done_at_once(key, Translation::empty());
            return Ok(());
        }
        if guards.enabled && guards.passthrough && !text.chars().any(char::is_alphabetic) {
            let t = Translation {
                text: text.trim().to_string(),
                flag: Some(Flag::Passthrough),
                ..Translation::empty()
            };
            self.done_at_once(key, t);
            return Ok(());
        }
        let pieces = tr.fit(text)?;
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let mut ids = tr.tokenizer.encode_batch(&refs)?;
        if let Some(token) = tr.prefix() {
            for source in &mut ids {
                source.insert(0, token);
            }
        }
        if ids.is_empty() {
            self.done_at_once(key, Translation::empty());
            return Ok(());
        }
        self.texts.insert(
            key,
            Pending {
                pieces: vec![None; ids.len()],
                left: ids.len(),
            },
        );
        for (piece, (source, ids)) in pieces.into_iter().zip(ids).enumerate() {
            let n = ids.len();
            let limit = if guards.enabled {
                let cap =
                    (guards.max_length_ratio * n as f32).ceil() as usize + guards.max_length_offset;
                self.max_length.min(cap + 1)
            } else {
                self.max_length
            };
            self.progress.tokens += n;
            let unit = self.next_unit;
            self.next_unit += 1;
            self.batcher.push(unit, ids.clone(), limit, 0, urgent);
            self.units.insert(
                unit,
                Unit {
                    text: key,
                    piece,
                    source,
                    ids,
                    limit,
                    flag: None,
                    urgent,
                },
            );
        }
        Ok(())
    }

    fn done_at_once(&mut self, key: u64, t: Translation) {
        self.progress.texts_done += 1;
        self.ready.push((key, t));
    }

    /// Texts that would start at the next step if added now (0 while the batch is full, or on
    /// a backend where texts join only an empty batch).
    pub fn room(&self) -> usize {
        self.batcher.room()
    }

    /// Texts added and not yet returned.
    pub fn in_flight(&self) -> usize {
        self.texts.len() + self.ready.len()
    }

    /// Texts done and source tokens translated so far (by first decodings), of those added.
    pub fn progress(&self) -> TranslateProgress {
        self.progress
    }

    /// Starts the texts that fit, runs one decoding step, and returns the texts finished (with
    /// their keys). An error is the model's: every text in flight is then lost.
    pub fn step(&mut self) -> Result<Vec<(u64, Translation)>> {
        if !self.batcher.is_idle() {
            let done = self.batcher.step().and_then(|finished| {
                for (unit, hyps) in finished {
                    if let Some(u) = self.units.remove(&unit) {
                        self.finished(unit, u, hyps)?;
                    }
                }
                Ok(())
            });
            if let Err(e) = done {
                // The decoder's state is lost with everything in flight: nothing is left to
                // step, and nothing more is taken.
                self.failed = true;
                self.texts.clear();
                self.units.clear();
                self.ready.clear();
                return Err(e);
            }
        }
        Ok(std::mem::take(&mut self.ready))
    }

    fn finished(&mut self, key: usize, unit: Unit, hyps: Vec<Hypothesis>) -> Result<()> {
        let tr = self.translator;
        let guards = &tr.guards;
        let mut t = tr.finish(hyps, &unit.source, unit.ids.len())?;
        if unit.flag.is_none() {
            self.progress.tokens_done += unit.ids.len();
            if guards.enabled {
                // Runaway output: a loop, or stopped by the length cap. Decode again with
                // repeated n-grams banned, and say so.
                let looped = has_loop(&t.ids, guards.min_repeats, tr.generation.eos_token_id);
                let capped = unit.limit < self.max_length && t.ids.len() + 1 >= unit.limit;
                let flag = if looped {
                    Some(Flag::Repetition)
                } else if capped {
                    Some(Flag::Length)
                } else {
                    None
                };
                if let (Some(flag), Some(fallback)) = (flag, self.fallback) {
                    self.batcher
                        .push(key, unit.ids.clone(), unit.limit, fallback, unit.urgent);
                    self.units.insert(
                        key,
                        Unit {
                            flag: Some(flag),
                            ..unit
                        },
                    );
                    return Ok(());
                }
                t.flag = flag;
            }
        } else {
            t.flag = unit.flag;
        }
        let Some(pending) = self.texts.get_mut(&unit.text) else {
            return Ok(());
        };
        if let Some(slot) = pending.pieces.get_mut(unit.piece) {
            if slot.replace(t).is_none() {
                pending.left -= 1;
            }
        }
        if pending.left == 0 {
            if let Some(p) = self.texts.remove(&unit.text) {
                self.progress.texts_done += 1;
                self.ready.push((unit.text, assemble(p.pieces)));
            }
        }
        Ok(())
    }
}

/// One translation of a text's pieces, in order.
fn assemble(pieces: Vec<Option<Translation>>) -> Translation {
    let mut out: Option<Translation> = None;
    for r in pieces.into_iter().flatten() {
        match &mut out {
            None => out = Some(r),
            Some(o) => {
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
    }
    out.unwrap_or_else(Translation::empty)
}

/// The tokenizer's ids must fit the model's embeddings, or the model would read out of bounds.
fn check_vocab(config: &ModelConfig, tok: &TranslationTokenizer, dir: &Path) -> Result<()> {
    let (source, target, target_file) = tok.sizes(dir);
    if source > config.vocab_size {
        return Err(Error::ModelFile {
            path: match tok {
                TranslationTokenizer::Marian(_) => dir.join("vocab.json"),
                TranslationTokenizer::Nllb(t) => t.path().to_path_buf(),
            },
            message: format!(
                "has {source} entries but config.json's vocab_size is {}",
                config.vocab_size
            ),
            hint: "the tokenizer and config.json come from different models".into(),
        });
    }
    if target > config.decoder_vocab_size {
        return Err(Error::ModelFile {
            path: target_file,
            message: format!(
                "has {target} entries but config.json's decoder vocabulary has {}",
                config.decoder_vocab_size
            ),
            hint: "the vocabulary and config.json come from different models".into(),
        });
    }
    Ok(())
}
