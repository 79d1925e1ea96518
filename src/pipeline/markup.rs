//! HTML and Markdown documents through the pipeline: the article of a [`Markup`] is run as a
//! text is (one block), with word alignments, and the translations are written back in place.

use std::ops::Range;

use super::{DocumentProgress, DocumentRun, Pipeline};
use crate::align::Alignment;
use crate::error::Result;
use crate::formats::markup::{Role, UnitSentence};
use crate::formats::Markup;
use crate::output::{render, OutputFormat, RenderOptions};
use crate::record::{assemble, Output, SentenceOutput, FORMAT_VERSION};
use crate::segment::{flatten, SegmentKind};
use crate::stream::DocumentInput;

/// What [`Pipeline::translate_markup`] gives.
#[derive(Debug, Clone)]
pub struct MarkupOutput {
    /// The translated document, in its own format: every byte outside the translated texts as
    /// in the input. For a package (DOCX, PPTX, ODT, ODP, EPUB) its translated text parts laid
    /// end to end; the file itself is [`MarkupOutput::file`].
    pub document: String,
    /// A package's translated file; `None` for HTML, Markdown and subtitles.
    pub file: Option<Vec<u8>>,
    /// The article's record, as [`Pipeline::run`] gives it for a text: its `source` is the
    /// article read from the document (headings, paragraphs, list items, metadata), the spans of
    /// its sentences point into that. Attribute texts are not in it.
    pub output: Output,
}

impl MarkupOutput {
    /// The output in `format`: the translated document itself in the document's own format
    /// ([`crate::formats::InputFormat::document_format`]), else the article's record rendered as
    /// [`crate::output::render`] renders a text's.
    pub fn rendered(
        &self,
        markup: &Markup,
        format: OutputFormat,
        options: &RenderOptions,
    ) -> Result<Vec<u8>> {
        if markup.format().document_format() == Some(format) {
            Ok(match &self.file {
                Some(file) => file.clone(),
                None => self.document.clone().into_bytes(),
            })
        } else {
            render(&self.output, format, options).map(String::into_bytes)
        }
    }
}

impl Pipeline {
    /// Translates an HTML or Markdown document to be written in `format`: with `run`'s
    /// summary unless the document is written in its own format (which has no place for one).
    pub fn translate_markup_for(
        &self,
        run: &DocumentRun<'_>,
        markup: &Markup,
        format: OutputFormat,
        progress: &mut dyn DocumentProgress,
    ) -> Result<MarkupOutput> {
        let keep = markup.format().document_format() == Some(format);
        let run = DocumentRun {
            summary: run.summary && !keep,
            ..*run
        };
        self.translate_markup_with(&run, markup, progress)
    }

    /// Translates an HTML or Markdown document with the pipeline's settings (summary included).
    pub fn translate_markup(&self, markup: &Markup) -> Result<MarkupOutput> {
        self.translate_markup_with(&self.document_run(), markup, &mut ())
    }

    /// [`Pipeline::translate_markup`] run as `run` says, reporting to `progress` as
    /// [`Pipeline::translate_document_with_progress`] does (for the article).
    pub fn translate_markup_with(
        &self,
        run: &DocumentRun<'_>,
        markup: &Markup,
        progress: &mut dyn DocumentProgress,
    ) -> Result<MarkupOutput> {
        let mut generation = run.generation.clone();
        generation.output_alignments = true;
        let aligned = DocumentRun {
            generation: &generation,
            ..*run
        };
        let (article, places) = markup.article();
        let mut sentences = Vec::new();
        let mut input = DocumentInput::from_text(article.clone(), "<article>");
        let report = self.run_blocks_with_progress(&aligned, &mut input, progress, |_, b| {
            sentences.extend(b);
            Ok(())
        })?;
        let (extras, extra_places) = markup.extras();
        let mut extra_sentences = Vec::new();
        if !extras.trim().is_empty() {
            let beside = DocumentRun {
                summary: false,
                ..aligned
            };
            let mut input = DocumentInput::from_text(extras, "<attributes>");
            self.run_blocks_with(&beside, &mut input, |_, b| {
                extra_sentences.extend(b);
                Ok(())
            })?;
        }
        let mut per_unit = vec![Vec::new(); markup.unit_count()];
        assign(markup, &places, &sentences, &mut per_unit);
        assign(markup, &extra_places, &extra_sentences, &mut per_unit);
        let (document, file) = if markup.is_package() {
            let files = self.translator.files();
            let languages = files
                .source_language
                .as_deref()
                .zip(files.target_language.as_deref());
            let (file, parts) = markup.render_file(&per_unit, languages)?;
            (parts, Some(file))
        } else {
            (markup.render(&per_unit), None)
        };
        let mut timings = report.timings;
        timings.total = timings.total.max(report.timings.total);
        Ok(MarkupOutput {
            document,
            file,
            output: Output {
                format_version: FORMAT_VERSION,
                source: article,
                translation: assemble(&sentences),
                summary: report.summary,
                sentences,
                model: self.model.clone(),
                timings,
            },
        })
    }
}

/// Gives every unit its sentences: those whose span starts in the unit's place in the text.
fn assign(
    markup: &Markup,
    places: &[(usize, Range<usize>)],
    sentences: &[SentenceOutput],
    per_unit: &mut [Vec<UnitSentence>],
) {
    for s in sentences {
        let k = places.partition_point(|(_, r)| r.start <= s.span.start);
        let Some((unit, range)) = k.checked_sub(1).map(|k| &places[k]) else {
            continue;
        };
        if s.span.start > range.end {
            continue;
        }
        let translation = match (&s.translation, &s.kind) {
            // A list marker the segmenter read at the start of a paragraph stays with it.
            (Some(t), SegmentKind::ListItem { marker })
                if markup.role(*unit) != Role::Item && !s.continues =>
            {
                format!("{marker} {t}")
            }
            (Some(t), _) => t.clone(),
            // Metadata: not translated, kept.
            (None, _) => flatten(&s.source).into_owned(),
        };
        let (source, start) = match (&s.kind, s.translation.is_some()) {
            (SegmentKind::ListItem { marker }, true)
                if markup.role(*unit) != Role::Item && !s.continues =>
            {
                // The marker is a word of the unit before the sentence.
                let back = (s.span.start - range.start).min(marker.len() + 1);
                let start = s.span.start - range.start - back;
                (format!("{marker} {}", flatten(&s.source)), start)
            }
            _ => (flatten(&s.source).into_owned(), s.span.start - range.start),
        };
        let alignment = match (&s.kind, &s.alignment) {
            (SegmentKind::ListItem { marker }, Some(a))
                if markup.role(*unit) != Role::Item && !s.continues =>
            {
                // "MARKER " before both texts: one more unit, aligned with itself.
                Some(a.prefixed(marker.len(), marker.len() + 1))
            }
            (_, a) if s.translation.is_some() => a.clone(),
            // Kept text: every unit with itself.
            _ => Some(Alignment::identity(&source)),
        };
        per_unit[*unit].push(UnitSentence {
            start,
            source,
            translation,
            alignment,
        });
    }
}
