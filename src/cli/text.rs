//! `tolk segment` and `tolk summarize`: the model-free stages on their own.

use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde::Serialize;

use tolk::input::{DecodeOptions, EncodingChoice};
use tolk::pipeline::segmenter_for;
use tolk::segment::{Language, SegmentKind};
use tolk::summarize::{
    summarize_english, ExtractiveOptions, ExtractiveSummarizer, Summarizer, SummaryLength,
};

use super::args::{abstractive, parse_encoding, SegmentArg, SummarizerArg};
use super::Global;
use super::{emit, read_input};

/// `--format` of `segment` and `summarize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TextFormat {
    /// One sentence per line.
    Text,
    /// A JSON object with every detail.
    Json,
}

/// Options of `tolk segment`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  tolk segment artikel.txt
  tolk segment --format json artikel.txt   # byte spans, paragraphs, kinds, metadata
  tolk segment --lang zh article.zh.txt    # language-independent rules")]
pub struct SegmentArgs {
    /// The text; `-` or nothing reads standard input.
    #[arg(value_name = "FILE|-")]
    pub file: Option<PathBuf>,

    /// What one segment is.
    #[arg(long, value_enum, default_value = "sentences")]
    pub segment: SegmentArg,

    /// Cut segments longer than this many characters (0: no limit; default 400, none with
    /// --segment lines).
    #[arg(long, value_name = "N")]
    pub max_chars: Option<usize>,

    /// Treat leading `key: value` lines as text, not metadata.
    #[arg(long)]
    pub no_metadata: bool,

    /// Language of the text (ISO 639 code): `nl` has the Dutch rules (abbreviations, initials,
    /// numbers), `en` English abbreviations, any other the language-independent rules (Unicode
    /// sentence marks, `。！？` without spaces, quotes, ellipses).
    #[arg(long, value_name = "CODE", default_value = "nl", value_parser = parse_language)]
    pub lang: Language,

    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    pub format: TextFormat,

    /// Write to this file (atomically) instead of standard output.
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Replace invalid UTF-8 with U+FFFD instead of refusing the input.
    #[arg(long)]
    pub lossy: bool,

    /// Encoding of input without a byte-order mark: a WHATWG label (windows-1252, iso-8859-1,
    /// ...) or auto [default: UTF-8].
    #[arg(long, value_name = "LABEL", value_parser = parse_encoding)]
    pub encoding: Option<EncodingChoice>,
}

#[derive(Serialize)]
struct SegmentJson<'a> {
    index: usize,
    text: &'a str,
    span: Range<usize>,
    paragraph: usize,
    #[serde(flatten)]
    kind: &'a SegmentKind,
    continues: bool,
    starts_line: bool,
}

#[derive(Serialize)]
struct SegmentsJson<'a> {
    format_version: u32,
    source: &'a str,
    segments: Vec<SegmentJson<'a>>,
}

/// `--lang CODE`.
pub(crate) fn parse_language(text: &str) -> Result<Language, String> {
    Language::new(text).map_err(|e| match e {
        tolk::Error::Option { message, .. } => message,
        e => e.to_string(),
    })
}

/// Runs `tolk segment`.
pub fn segment(args: SegmentArgs, global: Global) -> anyhow::Result<ExitCode> {
    let decode = DecodeOptions::default()
        .with_lossy(args.lossy)
        .with_encoding(args.encoding);
    let source = read_input(args.file.as_deref(), &decode, global)?;
    let mut segmenter = segmenter_for(args.segment.into()).with_language(args.lang);
    if let Some(n) = args.max_chars {
        segmenter = segmenter.with_max_chars(n);
    }
    if args.no_metadata {
        segmenter = segmenter.with_metadata(false);
    }
    let doc = segmenter.segment(&source);
    let text = match args.format {
        // A list item's line starts with its marker, as written (the model never reads it).
        TextFormat::Text => doc
            .translatable()
            .map(|s| match &s.kind {
                SegmentKind::ListItem { marker } if !s.continues => {
                    format!("{marker} {}\n", s.flat_text())
                }
                _ => format!("{}\n", s.flat_text()),
            })
            .collect::<String>(),
        TextFormat::Json => {
            let json = SegmentsJson {
                format_version: tolk::record::FORMAT_VERSION,
                source: &source,
                segments: doc
                    .segments
                    .iter()
                    .enumerate()
                    .map(|(index, s)| SegmentJson {
                        index,
                        text: &s.text,
                        span: s.span.clone(),
                        paragraph: s.paragraph,
                        kind: &s.kind,
                        continues: s.continues,
                        starts_line: s.starts_line,
                    })
                    .collect(),
            };
            let mut out = serde_json::to_string_pretty(&json)?;
            out.push('\n');
            out
        }
    };
    emit(args.output.as_ref(), &text)?;
    Ok(ExitCode::SUCCESS)
}

/// Options of `tolk summarize`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  tolk summarize --lang en article.en.txt
  tolk summarize --lang en --summary-sentences 2 --format json article.en.txt
  tolk summarize --lang en --summarizer abstractive article.en.txt

To summarise a Dutch article, translate it: `tolk translate` prints the translation and its
summary.")]
pub struct SummarizeArgs {
    /// The English text; `-` or nothing reads standard input.
    #[arg(value_name = "FILE|-")]
    pub file: Option<PathBuf>,

    /// Language of the text; only English (`en`) is summarised directly.
    #[arg(long, default_value = "en", value_name = "LANG")]
    pub lang: String,

    /// Summary length in sentences (default: 1 to 3, by article length).
    #[arg(long, value_name = "N", conflicts_with = "summary_ratio")]
    pub summary_sentences: Option<usize>,

    /// Summary length as a share of the text's sentences, in (0, 1].
    #[arg(long, value_name = "R")]
    pub summary_ratio: Option<f32>,

    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    pub format: TextFormat,

    /// Write to this file (atomically) instead of standard output.
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Replace invalid UTF-8 with U+FFFD instead of refusing the input.
    #[arg(long)]
    pub lossy: bool,

    /// Encoding of input without a byte-order mark: a WHATWG label (windows-1252, iso-8859-1,
    /// ...) or auto [default: UTF-8].
    #[arg(long, value_name = "LABEL", value_parser = parse_encoding)]
    pub encoding: Option<EncodingChoice>,

    /// Summariser.
    #[arg(long, value_enum, default_value = "extractive")]
    pub summarizer: SummarizerArg,

    /// Model of the abstractive summariser: catalogue name, Hub repo id or directory.
    #[arg(long, value_name = "MODEL", default_value = "distilbart-cnn-12-6")]
    pub summary_model: String,

    /// Never download the summarisation model (Hugging Face cache or directory only).
    #[arg(long)]
    pub offline: bool,

    /// Quantise the abstractive summariser's weights at load time (faster, smaller).
    #[arg(long, value_enum, value_name = "KIND")]
    pub quantize: Option<super::args::QuantizeArg>,
}

#[derive(Serialize)]
struct SummaryJson {
    summarizer: String,
    input_sentences: usize,
    sentences: Vec<SummarySentenceJson>,
}

#[derive(Serialize)]
struct SummarySentenceJson {
    index: Option<usize>,
    text: String,
    score: f32,
}

/// Runs `tolk summarize`.
pub fn summarize(args: SummarizeArgs, global: Global) -> anyhow::Result<ExitCode> {
    let lang = args.lang.trim().to_ascii_lowercase();
    if lang != "en" && !lang.starts_with("en-") && lang != "english" {
        anyhow::bail!(
            "--lang {}: only English text is summarised directly; for a Dutch article use `tolk translate`, which prints the translation and its summary",
            args.lang
        );
    }
    let decode = DecodeOptions::default()
        .with_lossy(args.lossy)
        .with_encoding(args.encoding);
    let source = read_input(args.file.as_deref(), &decode, global)?;
    let length = match (args.summary_sentences, args.summary_ratio) {
        (Some(n), _) => SummaryLength::Sentences(n),
        (None, Some(r)) => SummaryLength::Ratio(r),
        (None, None) => SummaryLength::Auto,
    };
    let (summary, name) = match args.summarizer {
        SummarizerArg::Extractive => {
            let s = ExtractiveSummarizer::new(ExtractiveOptions::default().with_length(length))?;
            (summarize_english(&s, &source)?, "extractive".to_string())
        }
        SummarizerArg::Abstractive => {
            let s = abstractive(&args.summary_model, args.offline, args.quantize, global)?;
            (summarize_english(&*s, &source)?, s.name().to_string())
        }
    };
    let text = match args.format {
        TextFormat::Text => summary
            .sentences
            .iter()
            .map(|s| {
                format!(
                    "{}\n",
                    s.text.split_whitespace().collect::<Vec<_>>().join(" ")
                )
            })
            .collect::<String>(),
        TextFormat::Json => {
            let json = SummaryJson {
                summarizer: name,
                input_sentences: summary.input_sentences,
                sentences: summary
                    .sentences
                    .into_iter()
                    .map(|s| SummarySentenceJson {
                        index: s.index,
                        text: s.text,
                        score: s.score,
                    })
                    .collect(),
            };
            let mut out = serde_json::to_string_pretty(&json)?;
            out.push('\n');
            out
        }
    };
    emit(args.output.as_ref(), &text)?;
    Ok(ExitCode::SUCCESS)
}
