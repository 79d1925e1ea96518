//! The library's document progress (`Pipeline::translate_document_with_progress`): reported
//! after every batch and every block, with counts that only grow and end at the report's totals,
//! for a document read whole (one block, many batches), a file read in blocks (its size known)
//! and a large stream (no total); the output is the same as without progress. A translator that
//! reports nothing itself (the trait's default) still gives one report per block.

use tolk::config::GenerationConfig;
use tolk::input::DecodeOptions;
use tolk::output::{OutputFormat, RenderOptions, StreamWriter};
use tolk::pipeline::{DocumentPosition, DocumentProgress, DocumentReport, GenerationOverrides};
use tolk::pipeline::{DocumentRun, Pipeline, SummarizerChoice};
use tolk::stream::{BlockSource, DocumentInput, StreamOptions};
use tolk::translate::{BatchOptions, SegmentTranslator, Translation};

use crate::common::fixture_dir;
use crate::pipeline::ARTICLE;

/// Every position reported.
#[derive(Default)]
struct Recorder(Vec<DocumentPosition>);

impl DocumentProgress for Recorder {
    fn update(&mut self, at: &DocumentPosition) {
        self.0.push(*at);
    }
}

/// The tiny model, greedy, 4 new tokens, batches of 2 sentences: many batches per block.
fn pipeline() -> Pipeline {
    Pipeline::builder()
        .model_dir(fixture_dir("marian-tiny"))
        .overrides(
            GenerationOverrides::default()
                .with_num_beams(1)
                .with_max_new_tokens(4),
        )
        .batching(BatchOptions::default().with_max_batch_size(2))
        .summarizer(SummarizerChoice::Disabled)
        .build()
        .unwrap()
}

/// The article ten times over: about 3 KB, 70 sentences.
fn document() -> String {
    [ARTICLE; 10].join("\n")
}

/// Translates `input` with a recorder; returns the output text, the report and the positions.
fn run(
    pipeline: &Pipeline,
    input: &mut dyn BlockSource,
) -> (String, DocumentReport, Vec<DocumentPosition>) {
    let mut writer = StreamWriter::new(
        Vec::new(),
        "<test>",
        OutputFormat::Text,
        &RenderOptions::default(),
        None,
    )
    .unwrap();
    let mut recorder = Recorder::default();
    let report = pipeline
        .translate_document_with_progress(
            &pipeline.document_run(),
            input,
            &mut writer,
            &mut recorder,
        )
        .unwrap();
    let text = String::from_utf8(writer.into_inner()).unwrap();
    (text, report, recorder.0)
}

/// Counts only grow and end at the report's totals.
#[track_caller]
fn check_growing(seen: &[DocumentPosition], report: &DocumentReport, text_len: usize) {
    assert!(!seen.is_empty());
    for pair in seen.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(b.bytes_done >= a.bytes_done, "{a:?} then {b:?}");
        assert!(b.sentences >= a.sentences, "{a:?} then {b:?}");
        assert!(b.source_tokens >= a.source_tokens, "{a:?} then {b:?}");
        assert!(b.blocks >= a.blocks, "{a:?} then {b:?}");
        assert_eq!(a.total_bytes, b.total_bytes);
    }
    let last = seen.last().unwrap();
    assert_eq!(last.bytes_done, text_len as u64);
    assert_eq!(last.sentences, report.sentences);
    assert_eq!(last.source_tokens, report.source_tokens);
    assert_eq!(last.blocks, report.blocks);
    if let Some(total) = last.total_bytes {
        assert_eq!(total, text_len as u64);
        assert_eq!(last.fraction(), Some(1.0));
    }
    // Within a block, batch by batch: more reports than blocks, and some in between.
    assert!(seen.len() > report.blocks, "{seen:?}");
    assert!(
        seen.iter()
            .any(|p| p.sentences > 0 && p.sentences < report.sentences),
        "{seen:?}"
    );
}

#[test]
fn progress_grows_batch_by_batch_for_whole_and_streamed_documents() {
    let pipeline = pipeline();
    let doc = document();

    // Read whole: one block, its size known; a report per batch of 2 sentences.
    let (whole, report, seen) = run(
        &pipeline,
        &mut DocumentInput::from_text(doc.as_str(), "<t>"),
    );
    assert_eq!(report.blocks, 1);
    assert!(report.sentences > 50, "{report:?}");
    check_growing(&seen, &report, doc.len());
    assert_eq!(seen[0].total_bytes, Some(doc.len() as u64));
    assert!(seen[0].bytes_done > 0 && seen[0].bytes_done < doc.len() as u64);
    // Reports as sentences finish (batches of 2 that refill as rows end: at least one report
    // per two sentences, at most one per sentence) and one for the block.
    assert!(
        seen.len() > report.sentences / 2 && seen.len() <= report.sentences + 1,
        "{} reports for {} sentences",
        seen.len(),
        report.sentences
    );
    // The same output as without progress.
    let mut writer = StreamWriter::new(
        Vec::new(),
        "<test>",
        OutputFormat::Text,
        &RenderOptions::default(),
        None,
    )
    .unwrap();
    pipeline
        .translate_document(
            &mut DocumentInput::from_text(doc.as_str(), "<t>"),
            &mut writer,
        )
        .unwrap();
    assert_eq!(String::from_utf8(writer.into_inner()).unwrap(), whole);

    // A file over the threshold, read in blocks: the total comes from its first pass.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doc.txt");
    std::fs::write(&path, &doc).unwrap();
    let small = StreamOptions::default()
        .with_threshold(512)
        .with_block_bytes(400);
    let mut file = DocumentInput::open(&path, &DecodeOptions::default(), &small).unwrap();
    assert!(file.is_streamed());
    let (_, report, seen) = run(&pipeline, &mut file);
    assert!(report.blocks > 3, "{report:?}");
    check_growing(&seen, &report, doc.len());
    assert_eq!(seen[0].total_bytes, Some(doc.len() as u64));
    for block in 1..report.blocks {
        assert!(seen.iter().any(|p| p.blocks == block), "block {block}");
    }

    // A large stream: no total, the same counts.
    let mut stream = DocumentInput::from_reader(
        Box::new(std::io::Cursor::new(doc.clone().into_bytes())),
        "<stdin>",
        &DecodeOptions::default(),
        &small,
    )
    .unwrap();
    let (_, streamed, seen) = run(&pipeline, &mut stream);
    check_growing(&seen, &streamed, doc.len());
    assert!(seen
        .iter()
        .all(|p| p.total_bytes.is_none() && p.fraction().is_none()));
    assert_eq!(
        (streamed.blocks, streamed.sentences),
        (report.blocks, report.sentences)
    );
}

#[test]
fn an_empty_document_reports_its_one_block() {
    let pipeline = pipeline();
    let (text, report, seen) = run(&pipeline, &mut DocumentInput::from_text("  \n", "<t>"));
    assert_eq!(report.sentences, 0);
    assert_eq!(text.trim(), "");
    // No batch ran: the block alone.
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].blocks, 1);
    assert_eq!(seen[0].bytes_done, 3);
    assert_eq!(seen[0].fraction(), Some(1.0));
}

/// A translator that only implements `translate_segments`, as the server's scheduler does.
struct Plain<'a>(&'a dyn SegmentTranslator);

impl SegmentTranslator for Plain<'_> {
    fn translate_segments(
        &self,
        texts: &[&str],
        generation: &GenerationConfig,
    ) -> tolk::Result<Vec<Translation>> {
        self.0.translate_segments(texts, generation)
    }
}

#[test]
fn a_translator_without_batch_reports_gives_one_report_per_block() {
    let pipeline = pipeline();
    let doc = document();
    let own = pipeline.document_run();
    let plain = Plain(own.translator);
    let run = DocumentRun {
        translator: &plain,
        ..own
    };
    let small = StreamOptions::default()
        .with_threshold(512)
        .with_block_bytes(400);
    let mut stream = DocumentInput::from_reader(
        Box::new(std::io::Cursor::new(doc.clone().into_bytes())),
        "<stdin>",
        &DecodeOptions::default(),
        &small,
    )
    .unwrap();
    let mut writer = StreamWriter::new(
        Vec::new(),
        "<test>",
        OutputFormat::Text,
        &RenderOptions::default(),
        None,
    )
    .unwrap();
    let mut recorder = Recorder::default();
    let report = pipeline
        .translate_document_with_progress(&run, &mut stream, &mut writer, &mut recorder)
        .unwrap();
    let seen = recorder.0;
    // One report when the block's translations arrive, one when the block is done.
    assert_eq!(seen.len(), 2 * report.blocks, "{seen:?}");
    for pair in seen.chunks(2) {
        assert_eq!(pair[0].bytes_done, pair[1].bytes_done);
        assert_eq!(pair[0].sentences, pair[1].sentences);
    }
    assert_eq!(seen.last().unwrap().bytes_done, doc.len() as u64);
    assert_eq!(seen.last().unwrap().sentences, report.sentences);
}
