//! The whole job in one call: a [`Pipeline`] segments a Dutch article, translates its segments
//! in batches, reassembles the English article and summarises it, returning an [`Output`] with
//! every intermediate result, the model's provenance and the time each stage took.
//!
//! The stages, in [`Pipeline::run`]:
//!
//! 1. **Segment.** [`Segmenter`] cuts the article into headlines, list items, metadata and
//!    sentences (or lines, or paragraphs). Segments longer than [`Pipeline::max_segment_tokens`]
//!    model tokens are cut at clause boundaries ([`Document::split_long`] with the model's own
//!    tokenizer as the measure), so nothing is ever truncated.
//! 2. **Translate.** Each translatable segment's [`Segment::flat_text`] goes to the
//!    [`Translator`] (length-sorted, token-budgeted batches; results in input order).
//! 3. **Reassemble.** [`Document::reassemble`] puts the translations back into the article's
//!    layout: paragraphs, headline and list lines, metadata.
//! 4. **Summarise.** The translated sentences (headlines left out, pieces of a cut sentence joined
//!    again) go to the [`Summarizer`]; an extractive summary is mapped back to the Dutch sentences
//!    for a bilingual summary.
//!
//! The model is loaded once, when the pipeline is built; a `Pipeline` is `Send + Sync`, so one
//! instance can serve many threads.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::{DType, Device};
use serde::{Serialize, Serializer};

use crate::config::GenerationConfig;
use crate::error::{Error, Result};
use crate::model::Quantization;
use crate::segment::{Document, Segment, SegmentKind, SegmentMode, Segmenter};
use crate::source::{Catalogue, DownloadProgress, HubSettings, ModelFiles, ModelSpec, Resolver};
use crate::summarize::{self, ExtractiveOptions, ExtractiveSummarizer, Summarizer};
use crate::translate::{BatchOptions, Guards, LoadOptions, Translator};

/// Default for [`PipelineBuilder::max_segment_tokens`]: a little under the 512 positions of the
/// opus-mt models, so a piece never reaches the limit even after punctuation normalisation.
pub const DEFAULT_MAX_SEGMENT_TOKENS: usize = 400;

/// Version of the JSON produced from [`Output`] (the `format_version` field); raised when a
/// field changes meaning or disappears, not when one is added.
pub const FORMAT_VERSION: u32 = 1;

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
/// Setting `max_length` without `max_new_tokens` also clears a `max_new_tokens` the model's
/// defaults may have (otherwise it would take precedence and the override would do nothing);
/// `min_length` and `min_new_tokens` work the same way.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationOverrides {
    /// Beam width (1: greedy). Default: the model's (`generation_config.json`).
    pub num_beams: Option<usize>,
    /// Maximum decoder length, start token included. Default: the model's.
    pub max_length: Option<usize>,
    /// Maximum number of generated tokens. Default: the model's.
    pub max_new_tokens: Option<usize>,
    /// Minimum decoder length, start token included. Default: the model's.
    pub min_length: Option<usize>,
    /// Minimum number of generated tokens. Default: the model's.
    pub min_new_tokens: Option<usize>,
    /// Length penalty exponent of beam scores. Default: the model's.
    pub length_penalty: Option<f32>,
    /// Size of n-grams that may not repeat (0: off). Default: the model's.
    pub no_repeat_ngram_size: Option<usize>,
    /// Repetition penalty (1: off). Default: the model's.
    pub repetition_penalty: Option<f32>,
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

    /// The segmenter, with all its options. Default: [`Segmenter::default`].
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
                Arc::new(translator)
            }
            ModelSource::Owned(translator) => {
                let mut translator = translator.with_guards(guards);
                if let Some(b) = self.batching {
                    translator = translator.with_batching(b);
                }
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
        Ok(Pipeline {
            translator,
            segmenter: self.segmenter,
            summarizer,
            generation,
            max_segment_tokens,
            model: description,
            load_time,
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

/// Which model produced an output, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelDescription {
    /// What was asked for: a catalogue name, `ORG/NAME[@REV]` or a directory.
    pub name: String,
    /// Hub repository id (none for a local directory).
    pub repo: Option<String>,
    /// Revision asked for (a catalogue entry's pinned one unless overridden).
    pub revision: Option<String>,
    /// Commit the revision resolved to.
    pub commit: Option<String>,
    /// The directory the files were loaded from.
    pub dir: PathBuf,
}

impl ModelDescription {
    /// The description of a resolved model.
    pub fn from_files(files: &ModelFiles) -> Self {
        let p = &files.provenance;
        ModelDescription {
            name: p.spec.to_string(),
            repo: p.repo.clone(),
            revision: p.revision.clone(),
            commit: p.commit.clone(),
            dir: files.dir.clone(),
        }
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

    /// Translates and summarises one article.
    ///
    /// Empty or white-space-only text gives an empty [`Output`] without running the model.
    /// Errors come from the model (tensor failures) or from a custom summariser; no text is
    /// refused.
    pub fn run(&self, text: &str) -> Result<Output> {
        let started = Instant::now();
        let mut timings = Timings {
            load: self.load_time,
            ..Timings::default()
        };
        let doc = if text.trim().is_empty() {
            Document::default()
        } else {
            let t = Instant::now();
            let doc = self.segment(text);
            timings.segment = t.elapsed();
            doc
        };

        let flat: Vec<Cow<'_, str>> = doc.translatable().map(Segment::flat_text).collect();
        let inputs: Vec<&str> = flat.iter().map(|s| s.as_ref()).collect();
        let t = Instant::now();
        let translations = if inputs.is_empty() {
            Vec::new()
        } else {
            self.translator.translate_with(&inputs, &self.generation)?
        };
        timings.translate = t.elapsed();
        let texts: Vec<&str> = translations.iter().map(|t| t.text.as_str()).collect();
        let translation = doc.reassemble(&texts)?;

        let mut translated = translations.into_iter();
        let sentences: Vec<SentenceOutput> = doc
            .segments
            .iter()
            .enumerate()
            .map(|(index, segment)| {
                let t = if segment.kind.is_translatable() {
                    translated.next()
                } else {
                    None
                };
                sentence_output(index, segment.clone(), t)
            })
            .collect();

        let t = Instant::now();
        let summary = match &self.summarizer {
            Some(s) => Some(summarise(s.as_ref(), &sentences)?),
            None => None,
        };
        timings.summarize = t.elapsed();
        timings.total = started.elapsed();
        Ok(Output {
            format_version: FORMAT_VERSION,
            source: text.to_string(),
            translation,
            summary,
            sentences,
            model: self.model.clone(),
            timings,
        })
    }
}

impl Pipeline {
    /// Segments and translates one block of a long document that is read block by block
    /// ([`crate::stream`]): `text` starts at byte `offset` of the document, and `cursor` carries
    /// what the blocks before it left (segment numbering, paragraph, line breaks since the last
    /// segment). Indices, spans and paragraph numbers come out as if the whole document had
    /// been segmented at once, which they are when blocks are cut after a blank line: the
    /// segmenter's decisions never look across one. `mid_sentence` says the block was cut from
    /// the previous one inside a line, between two words of one sentence: its first segment
    /// then continues the previous one (`continues`), like the pieces of an over-long sentence.
    pub(crate) fn run_block(
        &self,
        text: &str,
        offset: usize,
        mid_sentence: bool,
        cursor: &mut BlockCursor,
    ) -> Result<BlockRun> {
        let t = Instant::now();
        let mut doc = if text.trim().is_empty() {
            Document::default()
        } else if cursor.blocks == 0 {
            self.segment(text)
        } else {
            // Metadata fields only open a document.
            self.segment_with(&self.segmenter.clone().with_metadata(false), text)
        };
        cursor.blocks += 1;
        let base = match (cursor.last_paragraph, doc.segments.first_mut()) {
            (Some(last), Some(first)) => {
                let breaks = cursor.breaks + line_breaks(text.get(..first.span.start));
                first.starts_line = breaks > 0;
                if mid_sentence && breaks == 0 {
                    first.continues = true;
                }
                // Two line breaks between segments enclose a blank line: a new paragraph.
                last + usize::from(breaks >= 2)
            }
            _ => 0,
        };
        let segment = t.elapsed();

        let t = Instant::now();
        let translations = {
            let flat: Vec<Cow<'_, str>> = doc.translatable().map(Segment::flat_text).collect();
            let inputs: Vec<&str> = flat.iter().map(|s| s.as_ref()).collect();
            if inputs.is_empty() {
                Vec::new()
            } else {
                self.translator.translate_with(&inputs, &self.generation)?
            }
        };
        let translate = t.elapsed();

        match doc.segments.last() {
            Some(last) => {
                cursor.breaks = line_breaks(text.get(last.span.end..));
                cursor.last_paragraph = Some(last.paragraph + base);
            }
            None => cursor.breaks += line_breaks(Some(text)),
        }
        let first_index = cursor.next_index;
        cursor.next_index += doc.segments.len();
        let mut translated = translations.into_iter();
        let sentences = doc
            .segments
            .into_iter()
            .enumerate()
            .map(|(n, mut segment)| {
                let t = if segment.kind.is_translatable() {
                    translated.next()
                } else {
                    None
                };
                segment.span = segment.span.start + offset..segment.span.end + offset;
                segment.paragraph += base;
                sentence_output(first_index + n, segment, t)
            })
            .collect();
        Ok(BlockRun {
            sentences,
            segment,
            translate,
        })
    }
}

/// Line breaks (as the segmenter counts them) in `text`.
fn line_breaks(text: Option<&str>) -> usize {
    text.unwrap_or_default()
        .chars()
        .filter(|&c| crate::segment::chars::is_line_break(c))
        .count()
}

/// Where a document read block by block stands between two blocks.
#[derive(Debug, Clone, Default)]
pub(crate) struct BlockCursor {
    /// The index of the next segment.
    next_index: usize,
    /// The paragraph of the last segment so far; `None` before the first.
    last_paragraph: Option<usize>,
    /// Line breaks after the last segment so far.
    breaks: usize,
    /// Blocks run so far.
    blocks: usize,
}

/// What [`Pipeline::run_block`] gives for one block.
#[derive(Debug)]
pub(crate) struct BlockRun {
    /// The block's segments with their translations, numbered and placed in the document.
    pub(crate) sentences: Vec<SentenceOutput>,
    /// Time spent segmenting.
    pub(crate) segment: Duration,
    /// Time spent translating.
    pub(crate) translate: Duration,
}

/// The output record of one segment and its translation (`None` for metadata).
fn sentence_output(
    index: usize,
    segment: Segment,
    t: Option<crate::translate::Translation>,
) -> SentenceOutput {
    SentenceOutput {
        index,
        source: segment.text,
        span: segment.span,
        paragraph: segment.paragraph,
        kind: segment.kind,
        continues: segment.continues,
        starts_line: segment.starts_line,
        source_tokens: t.as_ref().map_or(0, |t| t.source_tokens),
        target_tokens: t.as_ref().map_or(0, |t| t.ids.len()),
        flag: t.as_ref().and_then(|t| t.flag.map(|f| f.as_str())),
        score: t.as_ref().map(|t| t.score),
        translation: t.map(|t| t.text),
    }
}

/// White space runs to one space: the text the translator sees for a segment.
fn flatten(text: &str) -> Cow<'_, str> {
    if text
        .split(' ')
        .all(|w| !w.is_empty() && !w.contains(char::is_whitespace))
    {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// One summarisable unit: a sentence (or list item), with the pieces of a cut sentence joined.
#[derive(Debug)]
struct Unit {
    members: Vec<usize>,
    english: String,
    dutch: String,
    paragraph: usize,
    headline: bool,
}

/// What the summariser reads, collected sentence by sentence: the units (sentences with their
/// cut pieces joined), optionally only the leading ones of a long input.
#[derive(Debug)]
pub(crate) struct SummaryInput {
    units: Vec<Unit>,
    max_units: usize,
    max_bytes: usize,
    bytes: usize,
    /// Whether the last unit may still grow (its pieces keep coming).
    open: bool,
    /// Whether units were left out: no more are taken.
    closed: bool,
}

impl SummaryInput {
    /// Takes the leading units, at most `max_units` of them and at most `max_bytes` of English
    /// and Dutch text; a unit that would go past the byte limit is left out whole, and no unit
    /// after a left-out one is taken.
    pub(crate) fn limited(max_units: usize, max_bytes: usize) -> Self {
        SummaryInput {
            units: Vec::new(),
            max_units,
            max_bytes,
            bytes: 0,
            open: false,
            closed: false,
        }
    }

    /// Adds the next segment of the document.
    pub(crate) fn push(&mut self, s: &SentenceOutput) {
        let Some(english) = &s.translation else {
            return;
        };
        if self.closed {
            return;
        }
        let dutch = flatten(&s.source);
        match self.units.last_mut() {
            Some(unit) if s.continues && self.open => {
                unit.members.push(s.index);
                let before = unit.english.len() + unit.dutch.len();
                push_joined(&mut unit.english, english);
                push_joined(&mut unit.dutch, &dutch);
                self.bytes += unit.english.len() + unit.dutch.len() - before;
                if self.bytes > self.max_bytes {
                    self.units.pop();
                    self.close();
                }
            }
            _ => {
                let unit = Unit {
                    members: vec![s.index],
                    english: english.trim().to_string(),
                    dutch: dutch.into_owned(),
                    paragraph: s.paragraph,
                    headline: s.kind == SegmentKind::Headline,
                };
                let bytes = unit.english.len() + unit.dutch.len();
                if self.units.len() >= self.max_units
                    || self.bytes.saturating_add(bytes) > self.max_bytes
                {
                    self.close();
                    return;
                }
                self.bytes += bytes;
                self.units.push(unit);
                self.open = true;
            }
        }
    }

    fn close(&mut self) {
        self.closed = true;
        self.open = false;
    }

    /// Runs the summariser on what was collected.
    pub(crate) fn summarise(mut self, summarizer: &dyn Summarizer) -> Result<OutputSummary> {
        let limited_to = self.closed.then_some(self.units.len());
        // Headlines are not sentences of the story; use them only when there is nothing else.
        if self.units.iter().any(|u| !u.headline) {
            self.units.retain(|u| !u.headline);
        }
        let units = self.units;
        let english: Vec<&str> = units.iter().map(|u| u.english.as_str()).collect();
        let paragraphs: Vec<usize> = units.iter().map(|u| u.paragraph).collect();
        let summary = if units.is_empty() {
            summarize::Summary::default()
        } else {
            summarizer.summarize_document(
                &summarize::Document::new(&english).with_paragraphs(&paragraphs),
            )?
        };
        let items = summary
            .sentences
            .into_iter()
            .map(|s| {
                let unit = s.index.and_then(|i| units.get(i));
                SummaryItem {
                    text: s.text,
                    source: unit.map(|u| u.dutch.clone()),
                    sentences: unit.map(|u| u.members.clone()).unwrap_or_default(),
                    score: s.score,
                }
            })
            .collect();
        Ok(OutputSummary {
            summarizer: summarizer.name().to_string(),
            sentences: items,
            limited_to,
        })
    }
}

/// The summary of a document read whole: from its leading sentences within the same limits as a
/// streamed input's (the extractive summariser compares every pair of sentences, so a very long
/// input would otherwise cost memory and time that grow with its square), so that both paths
/// give the same summary.
fn summarise(summarizer: &dyn Summarizer, sentences: &[SentenceOutput]) -> Result<OutputSummary> {
    let mut input = SummaryInput::limited(
        crate::stream::DEFAULT_SUMMARY_SENTENCES,
        crate::stream::DEFAULT_SUMMARY_BYTES,
    );
    for s in sentences {
        input.push(s);
    }
    input.summarise(summarizer)
}

fn push_joined(out: &mut String, piece: &str) {
    let piece = piece.trim();
    if !out.is_empty() && !piece.is_empty() {
        out.push(' ');
    }
    out.push_str(piece);
}

/// Everything [`Pipeline::run`] produced for one article.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Output {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The input text, exactly as given (spans point into it).
    pub source: String,
    /// The English article, in the input's layout (no final line break).
    pub translation: String,
    /// The summary; `None` when summaries are off.
    pub summary: Option<OutputSummary>,
    /// Every segment, in input order, metadata included.
    pub sentences: Vec<SentenceOutput>,
    /// The model.
    pub model: ModelDescription,
    /// Time per stage.
    pub timings: Timings,
}

impl Output {
    /// Whether there was nothing to translate.
    pub fn is_empty(&self) -> bool {
        self.sentences.iter().all(|s| s.translation.is_none())
    }

    /// Source tokens fed to the model, over all sentences.
    pub fn source_tokens(&self) -> usize {
        self.sentences.iter().map(|s| s.source_tokens).sum()
    }

    /// Tokens generated, over all sentences.
    pub fn target_tokens(&self) -> usize {
        self.sentences.iter().map(|s| s.target_tokens).sum()
    }

    /// Segments that were translated.
    pub fn translated_sentences(&self) -> usize {
        self.sentences
            .iter()
            .filter(|s| s.translation.is_some())
            .count()
    }
}

/// One segment of the article and its translation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentenceOutput {
    /// Position in [`Output::sentences`].
    pub index: usize,
    /// The Dutch text, exactly `Output::source[span]` (line breaks of a wrapped sentence kept).
    pub source: String,
    /// Byte range in [`Output::source`].
    pub span: Range<usize>,
    /// Paragraph number, from 0.
    pub paragraph: usize,
    /// Sentence, headline, list item (with its marker) or metadata (with key and value).
    #[serde(flatten)]
    pub kind: SegmentKind,
    /// Whether this is a piece of an over-long sentence that continues the previous segment.
    pub continues: bool,
    /// Whether a line break precedes it in the input.
    pub starts_line: bool,
    /// The English text; `None` for metadata, which is not translated.
    pub translation: Option<String>,
    /// The translation's score (beam search: length-normalised log-probability; greedy: mean
    /// token log-probability); `None` for metadata.
    pub score: Option<f32>,
    /// Tokens fed to the encoder, `</s>` included (0 for metadata).
    pub source_tokens: usize,
    /// Tokens generated, `</s>` included (0 for metadata).
    pub target_tokens: usize,
    /// Set when a guard changed the output: `passthrough` (nothing to translate: copied),
    /// `repetition` or `length` (runaway output, decoded again with repeated n-grams banned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flag: Option<&'static str>,
}

/// The summary of an article.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputSummary {
    /// The summariser's name (`extractive`, ...).
    pub summarizer: String,
    /// The summary's sentences, in reading order.
    pub sentences: Vec<SummaryItem>,
    /// Set when the summariser read only the leading sentences of a long, streamed input (see
    /// [`crate::stream`]): how many it read (units: a sentence with its cut pieces joined,
    /// headlines included). Absent from the JSON when the whole input was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limited_to: Option<usize>,
}

impl OutputSummary {
    /// The English summary as one text.
    pub fn text(&self) -> String {
        join(self.sentences.iter().map(|s| s.text.as_str()))
    }

    /// The Dutch sentences the summary was taken from, as one text; `None` if any summary
    /// sentence was generated (abstractive) rather than taken from the article.
    pub fn source_text(&self) -> Option<String> {
        let parts: Option<Vec<&str>> = self.sentences.iter().map(|s| s.source.as_deref()).collect();
        parts.map(|p| join(p.into_iter()))
    }
}

fn join<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    parts.collect::<Vec<_>>().join(" ")
}

/// One sentence of a summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryItem {
    /// The English sentence.
    pub text: String,
    /// The Dutch sentence it translates (extractive summaries); `None` for a generated one.
    pub source: Option<String>,
    /// Indices into [`Output::sentences`] (several for a sentence that was cut in pieces;
    /// empty for a generated one).
    pub sentences: Vec<usize>,
    /// How strongly the summariser chose it, in `[0, 1]`.
    pub score: f32,
}

/// Wall-clock time of each stage (serialised as seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Timings {
    /// Loading (and, if needed, downloading) the model when the pipeline was built.
    #[serde(rename = "load_seconds", serialize_with = "seconds")]
    pub load: Duration,
    /// Segmentation, including the token-limit cuts.
    #[serde(rename = "segment_seconds", serialize_with = "seconds")]
    pub segment: Duration,
    /// Translation.
    #[serde(rename = "translate_seconds", serialize_with = "seconds")]
    pub translate: Duration,
    /// Summarisation.
    #[serde(rename = "summarize_seconds", serialize_with = "seconds")]
    pub summarize: Duration,
    /// The whole [`Pipeline::run`] (loading excluded).
    #[serde(rename = "total_seconds", serialize_with = "seconds")]
    pub total: Duration,
}

fn seconds<S: Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
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

    #[test]
    fn flatten_joins_white_space() {
        assert!(matches!(flatten("a b c"), Cow::Borrowed("a b c")));
        assert_eq!(flatten(" a\n b\t\tc "), "a b c");
        assert_eq!(flatten("a  b"), "a b");
    }
}
