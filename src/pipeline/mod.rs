//! The whole job: a [`Pipeline`] segments a Dutch document, translates its segments in batches,
//! puts the English back into the document's layout and summarises it.
//!
//! Every document takes one path, [`Pipeline::translate_document`] (or [`Pipeline::run`] for an
//! article in memory, which keeps every record in an [`Output`]): its text arrives as blocks (one
//! for an article, many for a large file: [`crate::stream`]), and for each block:
//!
//! 1. **Segment.** [`Segmenter`] cuts the text into headlines, list items, metadata and
//!    sentences (or lines, or paragraphs). Segments longer than [`Pipeline::max_segment_tokens`]
//!    model tokens are cut at clause boundaries ([`Document::split_long`] with the model's own
//!    tokenizer as the measure), so nothing is ever truncated. Numbering, spans and paragraphs
//!    continue across blocks.
//! 2. **Translate.** Each translatable segment's [`flatten`]ed text goes to the [`Translator`]
//!    (length-sorted, token-budgeted batches; results in input order).
//! 3. **Write.** The block's records go to a [`StreamWriter`], which puts the translations back
//!    into the document's layout (paragraphs, headline and list lines, metadata) in the chosen
//!    format.
//!
//! At the end the translated sentences (headlines left out, pieces of a cut sentence joined again,
//! the leading ones within [`SummaryLimits`]) go to the [`Summarizer`]; an extractive summary is
//! mapped back to the Dutch sentences for a bilingual summary.
//!
//! The model is loaded once, when the pipeline is built; a `Pipeline` is `Send + Sync`, so one
//! instance can serve many threads.

mod blocks;
mod progress;
mod summary;

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::{DType, Device};

mod markup;
pub use markup::MarkupOutput;
pub use progress::{DocumentPosition, DocumentProgress};
pub use summary::{SummaryLimits, DEFAULT_SUMMARY_BYTES, DEFAULT_SUMMARY_SENTENCES};

use crate::config::{EarlyStopping, GenerationConfig};
use crate::error::{Error, Result};
use crate::input::DecodeStats;
use crate::model::Quantization;
use crate::output::StreamWriter;
use crate::record::{
    assemble, ModelDescription, Output, OutputSummary, SentenceOutput, Timings, FORMAT_VERSION,
};
use crate::segment::{flatten, Document, Language, SegmentMode, Segmenter};
use crate::source::{Catalogue, DownloadProgress, HubSettings, ModelSpec, Resolver};
use crate::stream::{BlockSource, DocumentInput, TextBlock};
use crate::summarize::{ExtractiveOptions, ExtractiveSummarizer, Summarizer};
use crate::translate::{BatchOptions, Guards, LoadOptions, SegmentTranslator, Translator};

/// Default for [`PipelineBuilder::max_segment_tokens`]: a little under the 512 positions of the
/// opus-mt models, so a piece never reaches the limit even after punctuation normalisation.
pub const DEFAULT_MAX_SEGMENT_TOKENS: usize = 400;

/// Which summariser a pipeline uses.
#[derive(Clone)]
pub enum SummarizerChoice {
    /// The [`ExtractiveSummarizer`] with these options (the default, with default options).
    Extractive(ExtractiveOptions),
    /// No summary: [`Output::summary`] is `None`.
    Disabled,
    /// Any summariser, such as an abstractive model.
    Custom(Arc<dyn Summarizer>),
}

impl Default for SummarizerChoice {
    fn default() -> Self {
        SummarizerChoice::Extractive(ExtractiveOptions::default())
    }
}

impl fmt::Debug for SummarizerChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SummarizerChoice::Extractive(o) => f.debug_tuple("Extractive").field(o).finish(),
            SummarizerChoice::Disabled => f.write_str("Disabled"),
            SummarizerChoice::Custom(s) => f.debug_tuple("Custom").field(&s.name()).finish(),
        }
    }
}

/// Changes to the model's generation defaults; `None` keeps the model's value.
///
/// The one declaration of these options: the command line's generation flags (`--num-beams`,
/// ...: it derives [`clap::Args`]), the native HTTP API's `options` object and a catalogue
/// manifest's `[generation]` table (it derives [`serde::Deserialize`], unknown fields refused)
/// are this type.
///
/// Setting `max_length` without `max_new_tokens` also clears a `max_new_tokens` the model's
/// defaults may have (otherwise it would take precedence and the override would do nothing);
/// `min_length` and `min_new_tokens` work the same way.
#[derive(Debug, Clone, Default, PartialEq, clap::Args, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[command(next_help_heading = "Generation")]
pub struct GenerationOverrides {
    /// Beam width (1: greedy search). Default: the model's (opus-mt: 6 or 4).
    #[arg(long, value_name = "N")]
    pub num_beams: Option<usize>,
    /// Maximum decoder length, start token included. Default: the model's.
    #[arg(long, value_name = "N")]
    pub max_length: Option<usize>,
    /// Maximum number of generated tokens (takes precedence over max_length). Default: the
    /// model's.
    #[arg(long, value_name = "N")]
    pub max_new_tokens: Option<usize>,
    /// Minimum decoder length, start token included. Default: the model's.
    #[arg(long, value_name = "N")]
    pub min_length: Option<usize>,
    /// Minimum number of generated tokens (takes precedence over min_length). Default: the
    /// model's.
    #[arg(long, value_name = "N")]
    pub min_new_tokens: Option<usize>,
    /// Length penalty exponent of beam scores. Default: the model's.
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub length_penalty: Option<f32>,
    /// Never repeat an n-gram of this size (0: off). Default: the model's.
    #[arg(long, value_name = "N")]
    pub no_repeat_ngram_size: Option<usize>,
    /// Penalty for tokens already generated (1: off). Default: the model's.
    #[arg(long, value_name = "X")]
    pub repetition_penalty: Option<f32>,
    /// When beam search stops: `false` (the best running beam cannot beat the finished ones),
    /// `true` (as soon as num_beams are finished) or `never`. Default: the model's.
    #[arg(long, value_name = "WHEN")]
    pub early_stopping: Option<EarlyStopping>,
}

impl GenerationOverrides {
    /// Sets [`GenerationOverrides::num_beams`].
    #[must_use]
    pub fn with_num_beams(mut self, n: usize) -> Self {
        self.num_beams = Some(n);
        self
    }

    /// Sets [`GenerationOverrides::max_length`].
    #[must_use]
    pub fn with_max_length(mut self, n: usize) -> Self {
        self.max_length = Some(n);
        self
    }

    /// Sets [`GenerationOverrides::max_new_tokens`].
    #[must_use]
    pub fn with_max_new_tokens(mut self, n: usize) -> Self {
        self.max_new_tokens = Some(n);
        self
    }

    /// Sets [`GenerationOverrides::min_length`].
    #[must_use]
    pub fn with_min_length(mut self, n: usize) -> Self {
        self.min_length = Some(n);
        self
    }

    /// Sets [`GenerationOverrides::min_new_tokens`].
    #[must_use]
    pub fn with_min_new_tokens(mut self, n: usize) -> Self {
        self.min_new_tokens = Some(n);
        self
    }

    /// Sets [`GenerationOverrides::early_stopping`].
    #[must_use]
    pub fn with_early_stopping(mut self, e: EarlyStopping) -> Self {
        self.early_stopping = Some(e);
        self
    }

    /// Sets [`GenerationOverrides::length_penalty`].
    #[must_use]
    pub fn with_length_penalty(mut self, x: f32) -> Self {
        self.length_penalty = Some(x);
        self
    }

    /// Sets [`GenerationOverrides::no_repeat_ngram_size`].
    #[must_use]
    pub fn with_no_repeat_ngram_size(mut self, n: usize) -> Self {
        self.no_repeat_ngram_size = Some(n);
        self
    }

    /// Sets [`GenerationOverrides::repetition_penalty`].
    #[must_use]
    pub fn with_repetition_penalty(mut self, x: f32) -> Self {
        self.repetition_penalty = Some(x);
        self
    }

    /// `base` with these overrides applied.
    pub fn apply(&self, mut base: GenerationConfig) -> GenerationConfig {
        if let Some(n) = self.num_beams {
            base.num_beams = n;
        }
        match (self.max_length, self.max_new_tokens) {
            (_, Some(n)) => base.max_new_tokens = Some(n),
            (Some(n), None) => {
                base.max_length = Some(n);
                base.max_new_tokens = None;
            }
            (None, None) => {}
        }
        if let (Some(n), Some(_)) = (self.max_length, self.max_new_tokens) {
            base.max_length = Some(n);
        }
        match (self.min_length, self.min_new_tokens) {
            (_, Some(n)) => base.min_new_tokens = Some(n),
            (Some(n), None) => {
                base.min_length = n;
                base.min_new_tokens = None;
            }
            (None, None) => {}
        }
        if let (Some(n), Some(_)) = (self.min_length, self.min_new_tokens) {
            base.min_length = n;
        }
        if let Some(x) = self.length_penalty {
            base.length_penalty = x;
        }
        if let Some(n) = self.no_repeat_ngram_size {
            base.no_repeat_ngram_size = n;
        }
        if let Some(x) = self.repetition_penalty {
            base.repetition_penalty = x;
        }
        if let Some(e) = self.early_stopping {
            base.early_stopping = e;
        }
        base
    }
}

/// Where the model comes from.
enum ModelSource {
    Spec(ModelSpec),
    Owned(Box<Translator>),
    Shared(Arc<Translator>),
}

/// Builds a [`Pipeline`]; every setting has a default, so `Pipeline::builder().build()` loads
/// the default model (`opus-mt-nl-en`) with the default options.
#[must_use = "a builder does nothing until `build` is called"]
pub struct PipelineBuilder {
    model: ModelSource,
    resolver: Option<Resolver>,
    offline: Option<bool>,
    load: LoadOptions,
    batching: Option<BatchOptions>,
    generation: Option<GenerationConfig>,
    overrides: GenerationOverrides,
    segmenter: Segmenter,
    summarizer: SummarizerChoice,
    max_segment_tokens: Option<usize>,
    guards: Option<Guards>,
    summary_limits: SummaryLimits,
    source_language: Option<Language>,
    target_language: Option<String>,
    target_hint: Option<String>,
}

/// The translator with the source language asked for (a model that reads several), and the
/// target language asked for (`chosen`), or for a model that writes several languages and has
/// none yet, the `hint`.
fn choose_languages(
    translator: Translator,
    source: Option<&Language>,
    chosen: &Option<String>,
    hint: &Option<String>,
) -> Result<Translator> {
    let translator = match source {
        Some(language) => translator.with_source_language(language.code())?,
        None => translator,
    };
    match (chosen, hint) {
        (Some(code), _) => translator.with_target_language(code),
        (None, Some(code))
            if translator.target_token().is_none()
                && !translator.tokenizer().supported_language_codes().is_empty() =>
        {
            translator.with_target_language(code)
        }
        _ => Ok(translator),
    }
}

impl Default for PipelineBuilder {
    fn default() -> Self {
        PipelineBuilder {
            model: ModelSource::Spec(ModelSpec::default()),
            resolver: None,
            offline: None,
            load: LoadOptions::default(),
            batching: None,
            generation: None,
            overrides: GenerationOverrides::default(),
            segmenter: Segmenter::default(),
            summarizer: SummarizerChoice::default(),
            max_segment_tokens: None,
            guards: None,
            summary_limits: SummaryLimits::default(),
            source_language: None,
            target_language: None,
            target_hint: None,
        }
    }
}

impl fmt::Debug for PipelineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let model = match &self.model {
            ModelSource::Spec(spec) => spec.to_string(),
            ModelSource::Owned(t) => t.dir().display().to_string(),
            ModelSource::Shared(t) => t.dir().display().to_string(),
        };
        f.debug_struct("PipelineBuilder")
            .field("model", &model)
            .field("offline", &self.offline)
            .field("load", &self.load)
            .field("batching", &self.batching)
            .field("overrides", &self.overrides)
            .field("segmenter", &self.segmenter)
            .field("summarizer", &self.summarizer)
            .field("max_segment_tokens", &self.max_segment_tokens)
            .finish_non_exhaustive()
    }
}

impl PipelineBuilder {
    /// The model to load: a catalogue name, a Hub repository or a directory (see
    /// [`ModelSpec::parse`]). Default: [`ModelSpec::default`] (`opus-mt-nl-en`).
    pub fn model(mut self, spec: ModelSpec) -> Self {
        self.model = ModelSource::Spec(spec);
        self
    }

    /// Loads the model from a local directory in the Hugging Face layout (no network).
    pub fn model_dir(self, dir: impl Into<PathBuf>) -> Self {
        self.model(ModelSpec::Dir(dir.into()))
    }

    /// Uses an already loaded translator instead of loading one. An owned [`Translator`] gets the
    /// [`PipelineBuilder::batching`] options; a shared one (`Arc<Translator>`) keeps its own.
    pub fn translator(mut self, translator: impl Into<Arc<Translator>>) -> Self {
        let shared: Arc<Translator> = translator.into();
        self.model = match Arc::try_unwrap(shared) {
            Ok(owned) => ModelSource::Owned(Box::new(owned)),
            Err(shared) => ModelSource::Shared(shared),
        };
        self
    }

    /// The resolver that finds model files. Default: [`Resolver::from_env`] (the `HF_*`
    /// variables and the user's catalogue); for a directory, the built-in catalogue.
    pub fn resolver(mut self, resolver: Resolver) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Forbids downloads (use only the cache or a directory). Default: the resolver's setting
    /// (`HF_HUB_OFFLINE`).
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = Some(offline);
        self
    }

    /// Device and dtype for loading. Default: [`LoadOptions::default`] (CPU, f32).
    pub fn load_options(mut self, load: LoadOptions) -> Self {
        self.load = load;
        self
    }

    /// The device to run on. Default: CPU.
    pub fn device(mut self, device: Device) -> Self {
        self.load.device = device;
        self
    }

    /// The weight and activation dtype. Default: f32.
    pub fn dtype(mut self, dtype: DType) -> Self {
        self.load.dtype = dtype;
        self
    }

    /// How sentences are batched. Default: [`BatchOptions::default`] (32 sentences, 4096 padded
    /// tokens). Refused by [`PipelineBuilder::build`] for a shared translator, whose batching is
    /// fixed.
    pub fn batching(mut self, batching: BatchOptions) -> Self {
        self.batching = Some(batching);
        self
    }

    /// Replaces the model's generation defaults entirely. Default: the model's own
    /// (`generation_config.json`). [`PipelineBuilder::overrides`] still apply on top.
    pub fn generation(mut self, generation: GenerationConfig) -> Self {
        self.generation = Some(generation);
        self
    }

    /// Changes individual generation settings. Default: none.
    pub fn overrides(mut self, overrides: GenerationOverrides) -> Self {
        self.overrides = overrides;
        self
    }

    /// The language of the input (the segmenter's rules), instead of the model's source
    /// language ([`crate::source::ModelFiles::source_language`]).
    pub fn source_language(mut self, language: Language) -> Self {
        self.source_language = Some(language);
        self
    }

    /// The language to translate into (see [`Translator::with_target_language`]): needed for
    /// a model that writes several languages; for one that writes one, checked against it.
    pub fn target_language(mut self, code: impl Into<String>) -> Self {
        self.target_language = Some(code.into());
        self
    }

    /// The language to translate into when the model writes several and
    /// [`PipelineBuilder::target_language`] chose none (`tolk serve` gives each model's
    /// `--pair` target so); ignored for a model of one target language.
    pub fn target_language_hint(mut self, code: impl Into<String>) -> Self {
        self.target_hint = Some(code.into());
        self
    }

    /// The segmenter, with all its options. Default: [`Segmenter::default`]. Its
    /// [`Segmenter::language`], when `None`, becomes the model's source language
    /// ([`crate::source::ModelFiles::source_language`]; Dutch when unknown).
    pub fn segmenter(mut self, segmenter: Segmenter) -> Self {
        self.segmenter = segmenter;
        self
    }

    /// Uses [`segmenter_for`] this mode (replacing any [`PipelineBuilder::segmenter`]):
    /// [`SegmentMode::Lines`] also turns metadata detection and the character limit off, so that
    /// every non-empty line is translated as written, as one unit (only a line over the token
    /// limit is cut). Default: [`SegmentMode::Sentences`].
    pub fn segment_mode(mut self, mode: SegmentMode) -> Self {
        self.segmenter = segmenter_for(mode);
        self
    }

    /// Guards against runaway output (see [`Guards`]). Default: on, except with
    /// [`SegmentMode::Lines`], where every line is translated exactly as transformers would
    /// (the interface for checking parity). Refused for a shared translator, which keeps its own.
    pub fn guards(mut self, guards: Guards) -> Self {
        self.guards = Some(guards);
        self
    }

    /// Quantises the weights at load time (`--quantize int8`). Default: none.
    pub fn quantize(mut self, quantize: Option<Quantization>) -> Self {
        self.load.quantize = quantize;
        self
    }

    /// The summariser. Default: extractive with default options.
    pub fn summarizer(mut self, summarizer: SummarizerChoice) -> Self {
        self.summarizer = summarizer;
        self
    }

    /// Segments with more model tokens than this (`</s>` included) are cut at clause
    /// boundaries before translation. Default: [`DEFAULT_MAX_SEGMENT_TOKENS`] (400), or the
    /// model's source positions if fewer; more than the model's positions is refused.
    pub fn max_segment_tokens(mut self, tokens: usize) -> Self {
        self.max_segment_tokens = Some(tokens);
        self
    }

    /// How much of a document the summariser reads. Default: [`SummaryLimits::default`] (the
    /// first 2000 sentences, at most 2 MiB of text).
    pub fn summary_limits(mut self, limits: SummaryLimits) -> Self {
        self.summary_limits = limits;
        self
    }

    /// Loads the model (downloading it if needed and allowed) and checks every option.
    pub fn build(self) -> Result<Pipeline> {
        self.build_with_progress(&mut ())
    }

    /// Like [`PipelineBuilder::build`], reporting downloads to `progress`.
    pub fn build_with_progress(self, progress: &mut dyn DownloadProgress) -> Result<Pipeline> {
        let started = Instant::now();
        let lines = self.segmenter.mode == SegmentMode::Lines;
        let explicit_guards = self.guards.is_some();
        let guards = self.guards.unwrap_or_else(|| {
            if lines {
                Guards::default()
            } else {
                Guards::on()
            }
        });
        let translator: Arc<Translator> = match self.model {
            ModelSource::Spec(spec) => {
                let resolver = match (self.resolver, &spec) {
                    (Some(r), _) => r,
                    (None, ModelSpec::Dir(_)) => {
                        Resolver::new(HubSettings::from_env(), Catalogue::builtin()?)
                    }
                    (None, _) => Resolver::from_env()?,
                };
                let resolver = match self.offline {
                    Some(offline) => resolver.with_offline(offline),
                    None => resolver,
                };
                let files = resolver.resolve(&spec, progress)?;
                let mut translator = Translator::from_files(files, &self.load)?.with_guards(guards);
                if let Some(b) = self.batching {
                    translator = translator.with_batching(b);
                }
                translator = choose_languages(
                    translator,
                    self.source_language.as_ref(),
                    &self.target_language,
                    &self.target_hint,
                )?;
                Arc::new(translator)
            }
            ModelSource::Owned(translator) => {
                let mut translator = translator.with_guards(guards);
                if let Some(b) = self.batching {
                    translator = translator.with_batching(b);
                }
                translator = choose_languages(
                    translator,
                    self.source_language.as_ref(),
                    &self.target_language,
                    &self.target_hint,
                )?;
                Arc::new(translator)
            }
            ModelSource::Shared(translator) => {
                if explicit_guards {
                    return Err(Error::option(
                        "guards",
                        "a shared translator keeps its own guards; set them with Translator::with_guards before sharing",
                    ));
                }
                if self.batching.is_some() {
                    return Err(Error::option(
                        "batching",
                        "a shared translator keeps its own batching; set it with Translator::with_batching before sharing",
                    ));
                }
                if self.target_language.is_some() {
                    return Err(Error::option(
                        "target_lang",
                        "a shared translator keeps its own target language; set it with Translator::with_target_language before sharing",
                    ));
                }
                translator
            }
        };
        let load_time = started.elapsed();

        let model = translator.model();
        let generation = self.overrides.apply(
            self.generation
                .unwrap_or_else(|| translator.generation().clone()),
        );
        generation.validate(
            model.config().decoder_vocab_size,
            model.max_target_positions(),
        )?;
        let positions = model.max_source_positions();
        let max_segment_tokens = match self.max_segment_tokens {
            None => DEFAULT_MAX_SEGMENT_TOKENS.min(positions),
            Some(0) => return Err(Error::option("max_segment_tokens", "must be at least 1")),
            Some(n) if n > positions => {
                return Err(Error::option(
                    "max_segment_tokens",
                    format!("{n} is more than the model's {positions} source positions"),
                ))
            }
            Some(n) => n,
        };
        let summarizer: Option<Arc<dyn Summarizer>> = match self.summarizer {
            SummarizerChoice::Extractive(options) => {
                Some(Arc::new(ExtractiveSummarizer::new(options)?))
            }
            SummarizerChoice::Disabled => None,
            SummarizerChoice::Custom(s) => Some(s),
        };
        let description = ModelDescription::from_files(translator.files());
        // Segment by the rules of the model's source language unless the caller chose one.
        let mut segmenter = self.segmenter;
        if let Some(language) = self.source_language {
            segmenter.language = Some(language);
        }
        if segmenter.language.is_none() {
            let source = translator.files().source_language.as_deref();
            segmenter.language = source.and_then(|code| Language::new(code).ok());
        }
        Ok(Pipeline {
            translator,
            segmenter,
            summarizer,
            generation,
            max_segment_tokens,
            model: description,
            load_time,
            summary_limits: self.summary_limits,
        })
    }
}

/// The segmenter the pipeline uses for a mode: the defaults, except that
/// [`SegmentMode::Lines`] translates every non-empty line as written, as one unit (no metadata
/// fields, no character limit; only the token limit can cut a line).
pub fn segmenter_for(mode: SegmentMode) -> Segmenter {
    let segmenter = Segmenter::new().with_mode(mode);
    if mode == SegmentMode::Lines {
        segmenter.with_metadata(false).with_max_chars(0)
    } else {
        segmenter
    }
}

/// A loaded model with its segmenter, summariser and settings: `run` turns a Dutch article into
/// an [`Output`].
///
/// Build it with [`Pipeline::builder`]. It is `Send + Sync`: share one (in an `Arc` or by
/// reference in scoped threads) instead of loading the model again.
pub struct Pipeline {
    translator: Arc<Translator>,
    segmenter: Segmenter,
    summarizer: Option<Arc<dyn Summarizer>>,
    generation: GenerationConfig,
    max_segment_tokens: usize,
    model: ModelDescription,
    load_time: Duration,
    summary_limits: SummaryLimits,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("model", &self.model)
            .field("segmenter", &self.segmenter)
            .field("summarizer", &self.summarizer.as_ref().map(|s| s.name()))
            .field("generation", &self.generation)
            .field("max_segment_tokens", &self.max_segment_tokens)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A builder with every option at its default.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// A pipeline with default options on the model in `dir` (no network).
    pub fn from_dir(dir: impl Into<PathBuf>) -> Result<Pipeline> {
        Pipeline::builder().model_dir(dir).build()
    }

    /// The translator (shareable: [`Pipeline::shared_translator`]).
    pub fn translator(&self) -> &Translator {
        &self.translator
    }

    /// The translator, for use elsewhere without loading it again.
    pub fn shared_translator(&self) -> Arc<Translator> {
        Arc::clone(&self.translator)
    }

    /// The segmenter.
    pub fn segmenter(&self) -> &Segmenter {
        &self.segmenter
    }

    /// The summariser, if summaries are on.
    pub fn summarizer(&self) -> Option<&dyn Summarizer> {
        self.summarizer.as_deref()
    }

    /// The generation settings in use (the model's defaults with the overrides).
    pub fn generation(&self) -> &GenerationConfig {
        &self.generation
    }

    /// Segments with more tokens than this are cut before translation.
    pub fn max_segment_tokens(&self) -> usize {
        self.max_segment_tokens
    }

    /// The model and where it came from.
    pub fn model(&self) -> &ModelDescription {
        &self.model
    }

    /// How long loading the model took when the pipeline was built.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// Stage 1 alone: the segments that [`Pipeline::run`] translates, already cut to the token
    /// limit.
    pub fn segment(&self, text: &str) -> Document {
        self.segment_with(&self.segmenter, text)
    }

    fn segment_with(&self, segmenter: &Segmenter, text: &str) -> Document {
        let mut doc = segmenter.segment(text);
        let tokenizer = self.translator.tokenizer();
        // An encoding error counts as short: the translator reports it with its context.
        doc.split_long(self.max_segment_tokens, |s| {
            tokenizer.encode(&flatten(s)).map_or(0, |ids| ids.len())
        });
        doc
    }

    /// Translates and summarises one article held in memory: [`Pipeline::translate_document`]
    /// on the text as one block, with every segment record kept.
    ///
    /// Empty or white-space-only text gives an empty [`Output`] without running the model.
    /// Errors come from the model (tensor failures) or from a custom summariser; no text is
    /// refused.
    pub fn run(&self, text: &str) -> Result<Output> {
        let mut sentences = Vec::new();
        let mut input = DocumentInput::from_text(text, "<text>");
        let report = self.run_blocks(&mut input, |_, block| {
            sentences.extend(block);
            Ok(())
        })?;
        Ok(Output {
            format_version: FORMAT_VERSION,
            source: text.to_string(),
            translation: assemble(&sentences),
            summary: report.summary,
            sentences,
            model: self.model.clone(),
            timings: report.timings,
        })
    }

    /// Translates a document and writes it: every block as soon as it is translated, the summary
    /// and the parts that follow it at the end (see [`StreamWriter`]). The one path of every
    /// document, whether it is read whole or in blocks.
    pub fn translate_document<W: Write>(
        &self,
        input: &mut dyn BlockSource,
        writer: &mut StreamWriter<W>,
    ) -> Result<DocumentReport> {
        self.translate_document_with(&self.document_run(), input, writer)
    }

    /// [`Pipeline::translate_document`] run as `run` says (another translator, other generation
    /// settings, no summary).
    pub fn translate_document_with<W: Write>(
        &self,
        run: &DocumentRun<'_>,
        input: &mut dyn BlockSource,
        writer: &mut StreamWriter<W>,
    ) -> Result<DocumentReport> {
        self.translate_document_with_progress(run, input, writer, &mut ())
    }

    /// [`Pipeline::translate_document_with`], reporting to `progress` after every batch of
    /// sentences and every block (before the block is written).
    pub fn translate_document_with_progress<W: Write>(
        &self,
        run: &DocumentRun<'_>,
        input: &mut dyn BlockSource,
        writer: &mut StreamWriter<W>,
        progress: &mut dyn DocumentProgress,
    ) -> Result<DocumentReport> {
        let report = self.run_blocks_with_progress(run, input, progress, |block, sentences| {
            writer.block(&block.text, &sentences)
        })?;
        writer.finish(report.summary.as_ref(), &self.model, &report.timings)?;
        Ok(report)
    }

    /// How [`Pipeline::translate_document`] runs a document: with the pipeline's translator, its
    /// generation settings and its summariser.
    pub fn document_run(&self) -> DocumentRun<'_> {
        DocumentRun {
            translator: &*self.translator,
            generation: &self.generation,
            summary: true,
        }
    }

    /// Translates a document block by block, calling `on_block` with each block and its segment
    /// records (translated, numbered and placed in the whole document) as soon as they are done,
    /// and summarises it at the end from its leading sentences ([`SummaryLimits`]).
    pub fn run_blocks(
        &self,
        input: &mut dyn BlockSource,
        on_block: impl FnMut(&TextBlock, Vec<SentenceOutput>) -> Result<()>,
    ) -> Result<DocumentReport> {
        self.run_blocks_with(&self.document_run(), input, on_block)
    }

    /// [`Pipeline::run_blocks`] run as `run` says.
    pub fn run_blocks_with(
        &self,
        run: &DocumentRun<'_>,
        input: &mut dyn BlockSource,
        on_block: impl FnMut(&TextBlock, Vec<SentenceOutput>) -> Result<()>,
    ) -> Result<DocumentReport> {
        self.run_blocks_with_progress(run, input, &mut (), on_block)
    }

    /// [`Pipeline::run_blocks_with`], reporting to `progress` after every batch of sentences and
    /// every block (before `on_block` has the block).
    pub fn run_blocks_with_progress(
        &self,
        run: &DocumentRun<'_>,
        input: &mut dyn BlockSource,
        progress: &mut dyn DocumentProgress,
        mut on_block: impl FnMut(&TextBlock, Vec<SentenceOutput>) -> Result<()>,
    ) -> Result<DocumentReport> {
        let started = Instant::now();
        let mut tracker =
            progress::Tracker::new(progress, input.decode_stats().map(|s| s.text_bytes));
        let mut report = DocumentReport {
            decode: None,
            blocks: 0,
            segments: 0,
            sentences: 0,
            source_tokens: 0,
            target_tokens: 0,
            summary: None,
            timings: Timings {
                load: self.load_time,
                ..Timings::default()
            },
        };
        let mut cursor = blocks::BlockCursor::default();
        let mut summary_input = self
            .summarizer
            .as_ref()
            .filter(|_| run.summary)
            .map(|_| summary::SummaryInput::limited(self.summary_limits));
        while let Some(block) = input.next_block()? {
            let (offset, len) = (block.offset, block.text.len());
            let done = self.run_block(
                &block.text,
                block.offset,
                block.mid_sentence,
                &mut cursor,
                run,
                &mut |batch| tracker.batch(offset, len, batch),
            )?;
            report.timings.segment += done.segment;
            report.timings.translate += done.translate;
            report.blocks += 1;
            report.segments += done.sentences.len();
            for s in &done.sentences {
                if s.translation.is_some() {
                    report.sentences += 1;
                }
                report.source_tokens += s.source_tokens;
                report.target_tokens += s.target_tokens;
                if let Some(summary) = summary_input.as_mut() {
                    summary.push(s);
                }
            }
            tracing::debug!(
                segments = done.sentences.len(),
                "block {} ({} bytes at {}) in {:.2} s",
                report.blocks,
                block.text.len(),
                block.offset,
                (done.segment + done.translate).as_secs_f64()
            );
            // Reported before the block is written, so that a progress bar can be cleared first.
            tracker.block(offset + len, report.sentences, report.source_tokens);
            on_block(&block, done.sentences)?;
        }
        let t = Instant::now();
        report.summary = match (self.summarizer.as_deref(), summary_input) {
            (Some(summarizer), Some(input)) => Some(input.summarise(summarizer)?),
            _ => None,
        };
        report.timings.summarize = t.elapsed();
        report.timings.total = started.elapsed();
        report.decode = input.decode_stats();
        tracing::info!(
            blocks = report.blocks,
            segments = report.segments,
            source_tokens = report.source_tokens,
            target_tokens = report.target_tokens,
            "translated {} sentences in {:.2} s ({:.1} sentences/s)",
            report.sentences,
            report.timings.total.as_secs_f64(),
            report.sentences as f64 / report.timings.total.as_secs_f64().max(1e-6)
        );
        Ok(report)
    }
}

/// How one document is run: through which translator (the pipeline's own, or a scheduler that
/// batches the segments of many documents together, as the server does), with which generation
/// settings, with or without the summary. [`Pipeline::document_run`] gives the pipeline's own.
#[derive(Clone, Copy)]
pub struct DocumentRun<'a> {
    /// Translates each document's segments.
    pub translator: &'a dyn SegmentTranslator,
    /// The generation settings.
    pub generation: &'a GenerationConfig,
    /// Whether the pipeline's summariser (if it has one) summarises the document.
    pub summary: bool,
}

impl fmt::Debug for DocumentRun<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DocumentRun")
            .field("generation", self.generation)
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

/// What [`Pipeline::translate_document`] and [`Pipeline::run_blocks`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentReport {
    /// What decoding did (encoding, replacements, line endings, control characters, bytes).
    pub decode: Option<DecodeStats>,
    /// Blocks translated (1 for a document read whole).
    pub blocks: usize,
    /// Segments, metadata included.
    pub segments: usize,
    /// Segments translated.
    pub sentences: usize,
    /// Source tokens fed to the model.
    pub source_tokens: usize,
    /// Tokens generated.
    pub target_tokens: usize,
    /// The summary, if summaries are on.
    pub summary: Option<OutputSummary>,
    /// Time per stage (summed over blocks).
    pub timings: Timings,
}

impl DocumentReport {
    /// Whether there was nothing to translate.
    pub fn is_empty(&self) -> bool {
        self.sentences == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_only_what_they_set() {
        let base = GenerationConfig {
            num_beams: 6,
            max_length: Some(512),
            max_new_tokens: Some(100),
            min_new_tokens: Some(2),
            ..GenerationConfig::default()
        };
        assert_eq!(GenerationOverrides::default().apply(base.clone()), base);
        let g = GenerationOverrides::default()
            .with_num_beams(1)
            .with_max_length(40)
            .with_min_length(3)
            .apply(base.clone());
        assert_eq!(g.num_beams, 1);
        assert_eq!((g.max_length, g.max_new_tokens), (Some(40), None));
        assert_eq!((g.min_length, g.min_new_tokens), (3, None));
        let g = GenerationOverrides::default()
            .with_max_new_tokens(7)
            .with_length_penalty(0.5)
            .with_no_repeat_ngram_size(3)
            .with_repetition_penalty(1.2)
            .with_min_new_tokens(1)
            .apply(base);
        assert_eq!((g.max_length, g.max_new_tokens), (Some(512), Some(7)));
        assert_eq!(g.min_new_tokens, Some(1));
        assert_eq!(
            (
                g.length_penalty,
                g.no_repeat_ngram_size,
                g.repetition_penalty
            ),
            (0.5, 3, 1.2)
        );
    }
}
