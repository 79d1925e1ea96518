//! One document through the pipeline, whatever it is: the library's single entry for a file, a
//! stream or a text, which `tolk translate`, `tolk batch` and `tolk serve` all call.
//!
//! A document has a *source*, what its bytes are ([`InputFormat`]: text, Markdown, HTML, JSON
//! lines), and a *sink*, what is written ([`OutputFormat`]); both are chosen here and nowhere
//! else ([`DocumentOptions::input_for`], [`DocumentOptions::output_for`]). Every source goes
//! through the same input decoding ([`crate::input`]: `--encoding`, `--lossy`, byte-order
//! marks, the notes on what was decoded how):
//!
//! | source | read | translated by | written by |
//! |---|---|---|---|
//! | text | whole, or in blocks over 1 MiB ([`crate::stream`]) | [`Pipeline::translate_document_with_progress`] | [`StreamWriter`], any format |
//! | HTML, Markdown | whole ([`Markup`]) | [`Pipeline::translate_markup_for`] | itself, translated in place, or the article's record in any format |
//! | JSON lines | in blocks, a record per line | [`crate::corpus`]: each record a text document | a JSON line per record |
//!
//! Opening ([`Document::open`]) reads and checks the input before anything else happens, so a
//! bad file is refused before a model is loaded; [`Pipeline::translate_to`] then translates it
//! and writes the sink.
//!
//! ```
//! use tolk::document::{Document, DocumentOptions, Source};
//! use tolk::pipeline::{GenerationOverrides, Pipeline};
//!
//! let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/marian-tiny-trained");
//! let pipeline = Pipeline::builder()
//!     .model_dir(model)
//!     .overrides(GenerationOverrides::default().with_num_beams(1))
//!     .build()?;
//! let options = DocumentOptions::default();
//! let page = "<p>Ik heb <b>koffie</b> gedronken.</p>".to_string();
//! let doc = Document::open(Source::Text(page, "page.html".into()), &options)?;
//! let mut out = Vec::new();
//! let run = pipeline.document_run();
//! let done = pipeline.translate_to(&run, doc, &mut out, "<memory>".as_ref(), &options, &mut ())?;
//! assert_eq!(done.output_format, tolk::output::OutputFormat::Html);
//! assert!(String::from_utf8(out).unwrap().starts_with("<p>"));
//! # Ok::<(), tolk::Error>(())
//! ```

use std::io::{Read, Write};
use std::path::Path;

use crate::corpus::{translate_corpus_blocks, CorpusOptions};
use crate::error::{Error, Result};
use crate::formats::{InputFormat, Markup};
use crate::input::{DecodeOptions, DecodeStats};
use crate::output::{OutputFormat, RenderOptions, StreamWriter};
use crate::pipeline::{DocumentProgress, DocumentReport, DocumentRun, Pipeline};
use crate::record::Timings;
use crate::stream::{BlockSource, DocumentInput, LineSource, StreamOptions};

/// Where a document's bytes come from.
pub enum Source<'a> {
    /// A file (text over [`StreamOptions::threshold`] is checked whole, then read in blocks).
    File(&'a Path),
    /// A stream, such as standard input, with its name for messages.
    Stream(Box<dyn Read + Send + 'static>, String),
    /// Text already in memory (a request's body), with its name: a file name gives the format
    /// by its extension unless [`DocumentOptions::input_format`] says it.
    Text(String, String),
    /// Bytes in memory (an uploaded file), with its name, as [`Source::Text`]; decoded as the
    /// input options say unless the format is a package.
    Bytes(Vec<u8>, String),
}

impl std::fmt::Debug for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => f.debug_tuple("File").field(p).finish(),
            Source::Stream(_, name) => f.debug_tuple("Stream").field(name).finish(),
            Source::Text(_, name) => f.debug_tuple("Text").field(name).finish(),
            Source::Bytes(_, name) => f.debug_tuple("Bytes").field(name).finish(),
        }
    }
}

/// How documents are read and written: the one options value of [`Document::open`] and
/// [`Pipeline::translate_to`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocumentOptions {
    /// What the input is; `None`: by the file name ([`InputFormat::of_path`]), text for a
    /// stream. Default `None`.
    pub input_format: Option<InputFormat>,
    /// What is written; `None`: the input's own (a page as itself, a corpus as JSON lines, a
    /// text as text). Default `None`.
    pub output_format: Option<OutputFormat>,
    /// HTML, Markdown and JSON-lines inputs are written in their own format whatever
    /// `output_format` says (a batch of mixed files with one `--format`); `false`: as
    /// `output_format` says, and a corpus asked for another format is refused. Default `false`.
    pub own_format_wins: bool,
    /// How bytes are decoded. Default: strict UTF-8, or UTF-16 with a byte-order mark.
    pub decode: DecodeOptions,
    /// When text is read in blocks, and where large outputs spool. Default:
    /// [`StreamOptions::default`].
    pub stream: StreamOptions,
    /// How records are written. Default: [`RenderOptions::default`].
    pub render: RenderOptions,
    /// How JSON-lines records are read. Default: [`CorpusOptions::default`].
    pub corpus: CorpusOptions,
    /// A text stream is a co-process's: each line is translated and written, its line ended,
    /// before the next is waited for. Default `false`.
    pub line_by_line: bool,
}

impl DocumentOptions {
    /// The format of an input named `name` (a path, or `<stdin>`, `-`): the one given, else the
    /// name's extension, else text.
    pub fn input_for(&self, name: Option<&Path>) -> InputFormat {
        InputFormat::choose(self.input_format, name)
    }

    /// What an input of `input` format is written as; an error for a corpus asked for another
    /// format than JSON lines (a line per record is the only way to write many documents).
    pub fn output_for(&self, input: InputFormat) -> Result<OutputFormat> {
        let own = match input {
            InputFormat::Jsonl => Some(OutputFormat::Jsonl),
            f => f.document_format(),
        };
        let chosen = match (own, self.output_format) {
            (Some(own), _) if self.own_format_wins => own,
            (_, Some(f)) => f,
            (Some(own), None) => own,
            (None, None) => OutputFormat::Text,
        };
        match (input, chosen) {
            (InputFormat::Jsonl, f) if f != OutputFormat::Jsonl => Err(Error::option(
                "format",
                "JSON-lines input is written as JSON lines: drop --format or use --format jsonl",
            )),
            (_, f) => Ok(f),
        }
    }
}

/// A document opened and checked, ready for [`Pipeline::translate_to`].
pub struct Document {
    name: String,
    input_format: InputFormat,
    output_format: OutputFormat,
    body: Body,
}

enum Body {
    /// Text, whole or in blocks, and whether in blocks.
    Text(Box<dyn BlockSource + Send>, bool),
    /// An HTML or Markdown document, read whole, and how it was decoded.
    Markup(Box<Markup>, DecodeStats),
    /// A JSON-lines corpus, in blocks of lines.
    Corpus(Box<dyn BlockSource + Send>),
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document")
            .field("name", &self.name)
            .field("input_format", &self.input_format)
            .field("output_format", &self.output_format)
            .finish_non_exhaustive()
    }
}

impl Document {
    /// Opens a document: its format chosen ([`DocumentOptions::input_for`],
    /// [`DocumentOptions::output_for`]), its bytes read as far as that needs (a text file
    /// checked whole, a page parsed), so that a bad input fails here.
    pub fn open(source: Source<'_>, options: &DocumentOptions) -> Result<Document> {
        let name = match &source {
            Source::File(p) => p.display().to_string(),
            Source::Stream(_, n) | Source::Text(_, n) | Source::Bytes(_, n) => n.clone(),
        };
        let format = match &source {
            Source::File(p) => options.input_for(Some(p)),
            Source::Stream(..) => options.input_for(None),
            Source::Text(_, n) | Source::Bytes(_, n) => options.input_for(Some(Path::new(n))),
        };
        // Bytes of a text or a corpus are decoded here, as a file's are (a page, subtitles or
        // a package are read by [`Markup::read`], which keeps what it needs of the bytes).
        let source = match source {
            Source::Bytes(bytes, n) if !format.is_markup() => {
                let text = crate::input::decode_with_stats(&bytes, &n, &options.decode)?.0;
                Source::Text(text, n)
            }
            s => s,
        };
        let output_format = options.output_for(format)?;
        let (decode, stream) = (&options.decode, &options.stream);
        let body = match (format, source) {
            (f, source) if f.is_markup() => {
                let (markup, stats) = match source {
                    Source::File(p) => Markup::read_file(format, p, decode)?,
                    Source::Stream(r, n) => Markup::read(format, r, &n, decode)?,
                    Source::Bytes(b, n) => Markup::read(format, b.as_slice(), &n, decode)?,
                    Source::Text(t, n) if format.is_package() => {
                        Markup::read(format, t.as_bytes(), &n, decode)?
                    }
                    Source::Text(t, n) => (Markup::parse(format, t, &n)?, DecodeStats::default()),
                };
                Body::Markup(Box::new(markup), stats)
            }
            (InputFormat::Jsonl, Source::Stream(r, n)) => {
                // A corpus on a pipe is read as it comes: records are written as they are done.
                Body::Corpus(Box::new(LineSource::new(r, &n, decode, stream.block_bytes)))
            }
            (InputFormat::Jsonl, source) => Body::Corpus(Box::new(text_input(source, options)?)),
            (InputFormat::Text, Source::Stream(r, n)) if options.line_by_line => Body::Text(
                Box::new(LineSource::new(r, &n, decode, stream.block_bytes)),
                true,
            ),
            (_, source) => {
                let input = text_input(source, options)?;
                let streamed = input.is_streamed();
                Body::Text(Box::new(input), streamed)
            }
        };
        Ok(Document {
            name,
            input_format: format,
            output_format,
            body,
        })
    }

    /// Its name (a path, `<stdin>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it is.
    pub fn input_format(&self) -> InputFormat {
        self.input_format
    }

    /// What it will be written as.
    pub fn output_format(&self) -> OutputFormat {
        self.output_format
    }

    /// Whether it is read in blocks (a large text, a stream read line by line).
    pub fn is_streamed(&self) -> bool {
        matches!(self.body, Body::Text(_, true))
    }

    /// How it was decoded, when that is known before it is translated (a file; a stream read
    /// in blocks knows at its end: see [`DocumentDone::report`]).
    pub fn decode_stats(&self) -> Option<DecodeStats> {
        match &self.body {
            Body::Text(input, _) | Body::Corpus(input) => input.decode_stats(),
            Body::Markup(_, stats) => Some(*stats),
        }
    }

    /// The text that will be translated, for an HTML, Markdown, subtitle or package document
    /// (its units' texts, a line each; for language detection and character limits); `None`
    /// for text and JSON lines, whose text is read as it is translated.
    pub fn markup_text(&self) -> Option<String> {
        match &self.body {
            Body::Markup(m, _) => Some(m.texts().collect::<Vec<_>>().join("\n")),
            _ => None,
        }
    }

    /// Bytes of text to translate, where known before (for a progress bar).
    pub fn text_bytes(&self) -> Option<u64> {
        match &self.body {
            Body::Markup(m, _) => Some(m.source().len() as u64),
            _ => self.decode_stats().map(|s| s.text_bytes),
        }
    }
}

/// A text source through the input policy.
fn text_input(source: Source<'_>, options: &DocumentOptions) -> Result<DocumentInput> {
    match source {
        Source::File(p) => DocumentInput::open(p, &options.decode, &options.stream),
        Source::Stream(r, n) => DocumentInput::from_reader(r, &n, &options.decode, &options.stream),
        Source::Text(t, n) => Ok(DocumentInput::from_text(t, &n)),
        Source::Bytes(b, n) => {
            let text = crate::input::decode_with_stats(&b, &n, &options.decode)?.0;
            Ok(DocumentInput::from_text(text, &n))
        }
    }
}

/// What [`Pipeline::translate_to`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentDone {
    /// What the input was.
    pub input_format: InputFormat,
    /// What was written.
    pub output_format: OutputFormat,
    /// Counts, decoding, the summary (none for a corpus: each record has its own, in its line)
    /// and timings, over the whole document.
    pub report: DocumentReport,
    /// Whether it was read in blocks.
    pub streamed: bool,
    /// Records of a JSON-lines corpus; `None` for other inputs.
    pub records: Option<usize>,
}

impl Pipeline {
    /// Translates an opened document and writes it to `out` (named `out_name` in errors) as its
    /// [`Document::output_format`], with `options`' rendering, spooling and corpus reading (the
    /// formats were chosen when the document was opened): the one path of every document, run
    /// as `run` says, reporting to `progress` (text and pages; a corpus reports nothing).
    ///
    /// `out` gets the document as it is written (a text's blocks as they are done, a corpus's
    /// lines in order); to write a file all or nothing, give an [`crate::fsutil::AtomicFile`]
    /// and commit it after this returns.
    pub fn translate_to(
        &self,
        run: &DocumentRun<'_>,
        document: Document,
        out: &mut dyn Write,
        out_name: &Path,
        options: &DocumentOptions,
        progress: &mut dyn DocumentProgress,
    ) -> Result<DocumentDone> {
        let Document {
            name,
            input_format,
            output_format,
            body,
        } = document;
        let (report, streamed, records) = match body {
            Body::Text(mut input, streamed) => {
                let mut writer = StreamWriter::new(
                    &mut *out,
                    out_name,
                    output_format,
                    &options.render,
                    options.stream.spool_dir.as_deref(),
                )?
                .with_lines_ended(options.line_by_line && streamed);
                let report =
                    self.translate_document_with_progress(run, &mut *input, &mut writer, progress)?;
                (report, streamed, None)
            }
            Body::Markup(markup, stats) => {
                let done = self.translate_markup_for(run, &markup, output_format, progress)?;
                let bytes = done.rendered(&markup, output_format, &options.render)?;
                out.write_all(&bytes)
                    .and_then(|()| out.flush())
                    .map_err(|e| Error::io(out_name, e))?;
                let o = &done.output;
                let report = DocumentReport {
                    decode: Some(stats),
                    blocks: 1,
                    segments: o.sentences.len(),
                    sentences: o.translated_sentences(),
                    source_tokens: o.source_tokens(),
                    target_tokens: o.target_tokens(),
                    summary: done.output.summary.clone(),
                    timings: done.output.timings,
                };
                (report, false, None)
            }
            Body::Corpus(input) => {
                let started = std::time::Instant::now();
                let c = translate_corpus_blocks(
                    self,
                    run,
                    input,
                    &name,
                    out,
                    out_name,
                    &options.corpus,
                )?;
                let report = DocumentReport {
                    decode: c.decode,
                    blocks: 1,
                    segments: c.sentences,
                    sentences: c.sentences,
                    source_tokens: c.source_tokens,
                    target_tokens: c.target_tokens,
                    summary: None,
                    timings: Timings {
                        total: started.elapsed(),
                        ..Timings::default()
                    },
                };
                (report, false, Some(c.records))
            }
        };
        Ok(DocumentDone {
            input_format,
            output_format,
            report,
            streamed,
            records,
        })
    }
}
