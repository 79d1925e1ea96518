//! Options shared by the commands that load a model, and the pipeline built from them.

use anyhow::Context;
use candle_core::{DType, Device};
use clap::{Args, ValueEnum};

use std::sync::Arc;
use tolk::corpus::CorpusOptions;
use tolk::document::DocumentOptions;
use tolk::formats::InputFormat;
use tolk::input::{DecodeOptions, EncodingChoice};
use tolk::model::Quantization;
use tolk::output::OutputFormat;
use tolk::pipeline::{segmenter_for, GenerationOverrides, Pipeline, SummarizerChoice};
use tolk::segment::{Language, SegmentMode};
use tolk::source::{ModelSpec, DEFAULT_MODEL};
use tolk::stream::StreamOptions;
use tolk::summarize::AbstractiveSummarizer;
use tolk::summarize::{ExtractiveOptions, SummaryLength};
use tolk::translate::{BatchOptions, Guards, LoadOptions};

use super::progress::DownloadBars;
use super::text::parse_language;
use super::Global;

/// `--format` of `translate` and `batch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// The English article, a blank line, then `Summary: ...`.
    Text,
    /// Headline, article, summary; `--bilingual` adds a Dutch/English table.
    Markdown,
    /// Everything: source, translation, summary, every sentence with span and score, model,
    /// timings.
    Json,
    /// One JSON object per sentence.
    Jsonl,
    /// The translated HTML page (HTML input only; the default for it).
    Html,
}

impl From<FormatArg> for OutputFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Text => OutputFormat::Text,
            FormatArg::Markdown => OutputFormat::Markdown,
            FormatArg::Json => OutputFormat::Json,
            FormatArg::Jsonl => OutputFormat::Jsonl,
            FormatArg::Html => OutputFormat::Html,
        }
    }
}

/// `--input-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormatArg {
    /// By the file's extension; standard input is text.
    Auto,
    /// Plain text.
    Text,
    /// JSON lines: one record with an id and a text per line.
    Jsonl,
    /// An HTML page or fragment: its text translated in place, markup kept.
    Html,
    /// A Markdown document: its text translated in place, markup kept.
    Markdown,
    /// A Word document (.docx): translated in place, formatting kept.
    Docx,
    /// A PowerPoint presentation (.pptx): slides and notes.
    Pptx,
    /// An OpenDocument text (.odt).
    Odt,
    /// An OpenDocument presentation (.odp).
    Odp,
    /// An EPUB book.
    Epub,
    /// SubRip subtitles (.srt): cue text translated, timings kept.
    Srt,
    /// WebVTT subtitles (.vtt).
    Vtt,
}

impl InputFormatArg {
    /// The format it names; `None` for auto.
    pub fn format(self) -> Option<InputFormat> {
        match self {
            InputFormatArg::Auto => None,
            InputFormatArg::Text => Some(InputFormat::Text),
            InputFormatArg::Jsonl => Some(InputFormat::Jsonl),
            InputFormatArg::Html => Some(InputFormat::Html),
            InputFormatArg::Markdown => Some(InputFormat::Markdown),
            InputFormatArg::Docx => Some(InputFormat::Docx),
            InputFormatArg::Pptx => Some(InputFormat::Pptx),
            InputFormatArg::Odt => Some(InputFormat::Odt),
            InputFormatArg::Odp => Some(InputFormat::Odp),
            InputFormatArg::Epub => Some(InputFormat::Epub),
            InputFormatArg::Srt => Some(InputFormat::Srt),
            InputFormatArg::Vtt => Some(InputFormat::Vtt),
        }
    }
}

/// `--segment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SegmentArg {
    /// Sentences, headlines and list items (metadata fields at the top are kept as written).
    Sentences,
    /// Every non-empty line as written, as one unit (no metadata, no sentence splitting).
    Lines,
    /// Every paragraph as one unit.
    Paragraphs,
}

impl From<SegmentArg> for SegmentMode {
    fn from(s: SegmentArg) -> Self {
        match s {
            SegmentArg::Sentences => SegmentMode::Sentences,
            SegmentArg::Lines => SegmentMode::Lines,
            SegmentArg::Paragraphs => SegmentMode::Paragraphs,
        }
    }
}

/// `--dtype`.
/// `--quantize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QuantizeArg {
    /// int8 weights, activations in 8 bits plus their rounding error in 8 more: as faithful to
    /// float32 as int8 weights allow (CPU; the quantised model is cached for fast loading).
    Int8,
    /// int8 weights and 8-bit activations: faster in large batches, changes about a third of
    /// the sentences of a real model.
    Int8Fast,
}

impl From<QuantizeArg> for Quantization {
    fn from(q: QuantizeArg) -> Self {
        match q {
            QuantizeArg::Int8 => Quantization::Int8,
            QuantizeArg::Int8Fast => Quantization::Int8Fast,
        }
    }
}

/// `--guards`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GuardsArg {
    /// On, except with `--segment lines` (which then matches transformers exactly).
    Auto,
    /// Always on.
    On,
    /// Off: the model's output as it is.
    Off,
}

/// `--summarizer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummarizerArg {
    /// Ranks the translation's own sentences (fast, no extra model).
    Extractive,
    /// Writes a new summary with a BART-family model (`--summary-model`, downloaded once).
    Abstractive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DtypeArg {
    /// 32-bit floats: exact (matches transformers), the default.
    F32,
    /// 16-bit floats (GPUs).
    F16,
    /// bfloat16 (GPUs).
    Bf16,
}

/// Everything that decides how a pipeline is built.
#[derive(Debug, Clone, Args)]
pub struct PipelineArgs {
    /// The model: a catalogue name (`tolk models list`), a Hub repository ORG/NAME[@REVISION], or
    /// a local directory with config.json, source.spm, target.spm, vocab.json and the weights.
    #[arg(long, short, env = "TOLK_MODEL", default_value = DEFAULT_MODEL, value_name = "SPEC",
          action = clap::ArgAction::Append, help_heading = "Model")]
    pub model: Vec<String>,

    /// Git revision (branch, tag, commit) of a Hub or catalogue model.
    #[arg(long, value_name = "REV", help_heading = "Model")]
    pub revision: Option<String>,

    /// Language of the input (ISO 639 code), instead of the model's source language: the
    /// segmenter's rules.
    #[arg(long, value_name = "CODE", value_parser = parse_language, help_heading = "Model")]
    pub source_lang: Option<Language>,

    /// Language to translate into, for a model that writes several (`en`, `eng`, `>>eng<<`,
    /// `eng_Latn`); for one that writes one language, checked against it.
    #[arg(long, value_name = "CODE", help_heading = "Model")]
    pub target_lang: Option<String>,

    /// Never download: use the Hugging Face cache or a directory only (also HF_HUB_OFFLINE=1).
    #[arg(long, help_heading = "Model")]
    pub offline: bool,

    /// Device: cpu, cuda[:N] or metal[:N] (cuda and metal need a build with that feature).
    #[arg(
        long,
        default_value = "cpu",
        value_name = "DEVICE",
        help_heading = "Model"
    )]
    pub device: String,

    /// Weight and activation precision.
    #[arg(long, value_enum, default_value = "f32", help_heading = "Model")]
    pub dtype: DtypeArg,

    /// Quantise the weights at load time (faster, smaller; outputs may differ slightly).
    #[arg(long, value_enum, value_name = "KIND", help_heading = "Model")]
    pub quantize: Option<QuantizeArg>,

    /// Guards against runaway output: a length cap tied to the input, loop detection with a
    /// constrained second decoding, and pass-through of text without letters.
    #[arg(long, value_enum, default_value = "auto", help_heading = "Generation")]
    pub guards: GuardsArg,

    /// What is translated as one unit.
    #[arg(
        long,
        value_enum,
        default_value = "sentences",
        help_heading = "Segmentation"
    )]
    pub segment: SegmentArg,

    /// Cut segments longer than this many characters at clause boundaries (0: no limit;
    /// default 400, none with --segment lines).
    #[arg(long, value_name = "N", help_heading = "Segmentation")]
    pub max_chars: Option<usize>,

    /// Cut segments longer than this many model tokens (default 400, at most the model's
    /// positions); nothing is ever truncated.
    #[arg(long, value_name = "N", help_heading = "Segmentation")]
    pub max_segment_tokens: Option<usize>,

    #[command(flatten)]
    pub generation: GenerationOverrides,

    /// Most sentences per batch [default: 32].
    #[arg(long, value_name = "N", help_heading = "Batching")]
    pub batch_size: Option<usize>,

    /// Most padded source tokens per batch [default: 4096].
    #[arg(long, value_name = "N", help_heading = "Batching")]
    pub max_batch_tokens: Option<usize>,

    /// Summary length in sentences (default: 1 to 3, by article length).
    #[arg(long, value_name = "N", conflicts_with_all = ["summary_ratio", "no_summary"],
          help_heading = "Summary")]
    pub summary_sentences: Option<usize>,

    /// Summary length as a share of the article's sentences, in (0, 1].
    #[arg(
        long,
        value_name = "R",
        conflicts_with = "no_summary",
        help_heading = "Summary"
    )]
    pub summary_ratio: Option<f32>,

    /// No summary.
    #[arg(long, help_heading = "Summary")]
    pub no_summary: bool,

    /// Summariser.
    #[arg(
        long,
        value_enum,
        default_value = "extractive",
        help_heading = "Summary"
    )]
    pub summarizer: SummarizerArg,

    /// Model of the abstractive summariser: catalogue name, Hub repo id or directory.
    #[arg(
        long,
        value_name = "MODEL",
        default_value = "distilbart-cnn-12-6",
        help_heading = "Summary"
    )]
    pub summary_model: String,

    /// Replace invalid UTF-8 with U+FFFD instead of refusing the input.
    #[arg(long, help_heading = "Input")]
    pub lossy: bool,

    /// What the input is: `auto` (by extension: .jsonl and .ndjson are JSON lines, everything
    /// else, standard input too, text), `text`, or `jsonl` (one {"id": ..., "text": ...} record
    /// per line; the output has one record per line, with its id).
    #[arg(long, value_enum, default_value = "auto", help_heading = "Input")]
    pub input_format: InputFormatArg,

    /// JSON lines: the field holding a record's id.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "id",
        help_heading = "Input"
    )]
    pub id_field: String,

    /// JSON lines: the field holding a record's text.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "text",
        help_heading = "Input"
    )]
    pub text_field: String,
    /// Encoding of input without a byte-order mark: a WHATWG label (windows-1252, iso-8859-1,
    /// iso-8859-15, utf-16le, shift_jis, ...), or auto to detect it from the first 64 KiB after
    /// the first non-ASCII byte [default: UTF-8, anything else refused].
    #[arg(long, value_name = "LABEL", value_parser = parse_encoding, help_heading = "Input")]
    pub encoding: Option<EncodingChoice>,

    /// Inputs larger than this are translated block by block in bounded memory, each block
    /// written as soon as it is done, the summary made from the first 2000 sentences (a number of
    /// bytes, or with K, M or G: 1024-based).
    #[arg(long, value_name = "SIZE", env = "TOLK_STREAM_THRESHOLD", default_value = "1M",
          value_parser = parse_size, help_heading = "Input")]
    pub stream_threshold: u64,

    /// Most bytes of text in one block of a streamed input (at least 64).
    #[arg(long, value_name = "SIZE", env = "TOLK_STREAM_BLOCK", default_value = "256K",
          value_parser = parse_size, help_heading = "Input")]
    pub stream_block: u64,
}

impl PipelineArgs {
    /// How documents are read (input format, decoding, streaming, corpus fields): the
    /// library's one options value; the output side is the command's.
    pub fn document_options(&self) -> DocumentOptions {
        DocumentOptions {
            input_format: self.input_format.format(),
            decode: self.decode_options(),
            stream: self.stream_options(),
            corpus: self.corpus_options(),
            ..DocumentOptions::default()
        }
    }

    /// How JSON-lines records are read.
    pub fn corpus_options(&self) -> CorpusOptions {
        CorpusOptions {
            id_field: self.id_field.clone(),
            text_field: self.text_field.clone(),
            ..CorpusOptions::default()
        }
    }

    /// How inputs are decoded (`--lossy`, `--encoding`).
    pub fn decode_options(&self) -> DecodeOptions {
        DecodeOptions::default()
            .with_lossy(self.lossy)
            .with_encoding(self.encoding)
    }

    /// When and how inputs are streamed (`--stream-threshold`, `--stream-block`).
    pub fn stream_options(&self) -> StreamOptions {
        StreamOptions::default()
            .with_threshold(self.stream_threshold)
            .with_block_bytes(usize::try_from(self.stream_block).unwrap_or(usize::MAX))
    }

    /// The model spec with `--revision` applied (one `--model`: only `serve` takes several).
    pub fn spec(&self) -> anyhow::Result<ModelSpec> {
        match self.model.as_slice() {
            [one] => self.spec_of(one),
            _ => anyhow::bail!("--model: give one model (only `tolk serve` takes several)"),
        }
    }

    /// `text` as a model spec, with `--revision` applied.
    pub fn spec_of(&self, text: &str) -> anyhow::Result<ModelSpec> {
        Ok(ModelSpec::parse(text)?.with_revision(self.revision.as_deref())?)
    }

    /// Loads the model and builds the pipeline, with a download bar per file on a terminal.
    pub fn build(&self, global: Global) -> anyhow::Result<Pipeline> {
        self.build_spec(self.spec()?, global)
    }

    /// [`PipelineArgs::build`] for one model of several.
    pub fn build_spec(&self, spec: ModelSpec, global: Global) -> anyhow::Result<Pipeline> {
        let summarizer = self.summarizer(global)?;
        self.build_with_hint(spec, summarizer, global, None)
    }

    /// [`PipelineArgs::build_spec`] with a summariser already made, and the language pair a
    /// model serves (`tolk serve`'s `--pair`): its source is the input's language unless
    /// `--source-lang` says otherwise, and its target is what a model that writes several
    /// languages writes when `--target-lang` names none.
    pub fn build_with_hint(
        &self,
        spec: ModelSpec,
        summarizer: SummarizerChoice,
        global: Global,
        pair_hint: Option<(&str, &str)>,
    ) -> anyhow::Result<Pipeline> {
        let mut builder = Pipeline::builder()
            .model(spec.clone())
            .device(device(&self.device)?)
            .dtype(match self.dtype {
                DtypeArg::F32 => DType::F32,
                DtypeArg::F16 => DType::F16,
                DtypeArg::Bf16 => DType::BF16,
            })
            .overrides(self.generation.clone())
            .segment_mode(self.segment.into())
            .quantize(self.quantize.map(Quantization::from))
            .summarizer(summarizer);
        match self.guards {
            GuardsArg::Auto => {}
            GuardsArg::On => builder = builder.guards(Guards::on()),
            GuardsArg::Off => builder = builder.guards(Guards::default()),
        }
        if let Some(n) = self.max_chars {
            builder = builder.segmenter(segmenter_for(self.segment.into()).with_max_chars(n));
        }
        if self.offline {
            builder = builder.offline(true);
        }
        // The pair (`tolk serve --pair`) names the source language where --source-lang does
        // not: the segmenter's rules, and a multilingual model's source token.
        let source = self.source_lang.clone().or_else(|| {
            pair_hint.and_then(|(source, _)| tolk::segment::Language::new(source).ok())
        });
        if let Some(language) = source {
            builder = builder.source_language(language);
        }
        if let Some(code) = &self.target_lang {
            builder = builder.target_language(code.clone());
        }
        if let Some((_, code)) = pair_hint {
            builder = builder.target_language_hint(code);
        }
        if let Some(n) = self.max_segment_tokens {
            builder = builder.max_segment_tokens(n);
        }
        if self.batch_size.is_some() || self.max_batch_tokens.is_some() {
            let mut batching = BatchOptions::default();
            if let Some(n) = self.batch_size {
                anyhow::ensure!(n > 0, "--batch-size must be at least 1");
                batching = batching.with_max_batch_size(n);
            }
            if let Some(n) = self.max_batch_tokens {
                anyhow::ensure!(n > 0, "--max-batch-tokens must be at least 1");
                batching = batching.with_max_batch_tokens(n);
            }
            builder = builder.batching(batching);
        }
        let mut bars = DownloadBars::new(global.quiet);
        builder.build_with_progress(&mut bars).map_err(|e| match e {
            // A bad option is not a model problem: say only what is wrong with it.
            e @ tolk::Error::Option { .. } => anyhow::Error::new(e),
            e => anyhow::Error::new(e).context(format!("cannot load the model {spec}")),
        })
    }

    /// The summariser the options ask for (an abstractive one is loaded here).
    pub fn summarizer(&self, global: Global) -> anyhow::Result<SummarizerChoice> {
        if self.no_summary {
            return Ok(SummarizerChoice::Disabled);
        }
        if self.summarizer == SummarizerArg::Abstractive {
            let s = abstractive(&self.summary_model, self.offline, self.quantize, global)?;
            return Ok(SummarizerChoice::Custom(s));
        }
        let length = match (self.summary_sentences, self.summary_ratio) {
            (Some(n), _) => SummaryLength::Sentences(n),
            (None, Some(r)) => SummaryLength::Ratio(r),
            (None, None) => SummaryLength::Auto,
        };
        Ok(SummarizerChoice::Extractive(
            ExtractiveOptions::default().with_length(length),
        ))
    }
}

/// Loads the abstractive summariser `spec` (catalogue name, Hub repo id or directory).
pub fn abstractive(
    spec: &str,
    offline: bool,
    quantize: Option<QuantizeArg>,
    global: Global,
) -> anyhow::Result<Arc<AbstractiveSummarizer>> {
    let spec = ModelSpec::parse(spec)?;
    let resolver = tolk::source::Resolver::from_env()?.with_offline(offline);
    let mut bars = DownloadBars::new(global.quiet);
    let files = resolver
        .resolve(&spec, &mut bars)
        .with_context(|| format!("cannot load the summarisation model {spec}"))?;
    let options = LoadOptions::default().with_quantize(quantize.map(Quantization::from));
    let s = AbstractiveSummarizer::from_files(files, &options)
        .with_context(|| format!("cannot load the summarisation model {spec}"))?;
    Ok(Arc::new(s))
}

/// `cpu`, `cuda[:N]`, `metal[:N]`.
pub fn device(text: &str) -> anyhow::Result<Device> {
    let text = text.trim().to_ascii_lowercase();
    let (kind, ordinal) = match text.split_once(':') {
        Some((kind, n)) => (
            kind,
            n.parse::<usize>()
                .with_context(|| format!("--device {text}: `{n}` is not a device number"))?,
        ),
        None => (text.as_str(), 0),
    };
    match kind {
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => cuda(ordinal),
        "metal" => metal(ordinal),
        other => anyhow::bail!("--device {other}: expected cpu, cuda[:N] or metal[:N]"),
    }
}

#[cfg(feature = "cuda")]
fn cuda(ordinal: usize) -> anyhow::Result<Device> {
    Device::new_cuda(ordinal).with_context(|| format!("cannot open CUDA device {ordinal}"))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_ordinal: usize) -> anyhow::Result<Device> {
    anyhow::bail!(
        "this tolk was built without CUDA support; rebuild it with `cargo build --release --features cuda` (needs the CUDA toolkit), or use --device cpu"
    )
}

#[cfg(feature = "metal")]
fn metal(ordinal: usize) -> anyhow::Result<Device> {
    Device::new_metal(ordinal).with_context(|| format!("cannot open Metal device {ordinal}"))
}

#[cfg(not(feature = "metal"))]
fn metal(_ordinal: usize) -> anyhow::Result<Device> {
    anyhow::bail!(
        "this tolk was built without Metal support; rebuild it on macOS with `cargo build --release --features metal`, or use --device cpu"
    )
}

/// `--encoding LABEL`: `auto` or a WHATWG encoding label.
pub fn parse_encoding(text: &str) -> Result<EncodingChoice, String> {
    EncodingChoice::from_label(text).map_err(|e| match e {
        tolk::Error::Option { message, .. } => message,
        e => e.to_string(),
    })
}

/// A size in bytes as options take it ([`parse_size`]) and show it (`2M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "serve"), allow(dead_code))]
pub struct Size(pub u64);

impl std::str::FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_size(s).map(Size)
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0;
        match [(30, "G"), (20, "M"), (10, "K")]
            .into_iter()
            .find(|&(shift, _)| n != 0 && n.is_multiple_of(1u64 << shift))
        {
            Some((shift, unit)) => write!(f, "{}{unit}", n >> shift),
            None => write!(f, "{n}"),
        }
    }
}

/// A size in bytes: a number, optionally followed by K, M or G (powers of 1024; `KiB`, `MB` and
/// lowercase are accepted too).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (for example 1048576, 512K or 1M)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("`{text}`: unknown unit (use K, M or G)")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}
