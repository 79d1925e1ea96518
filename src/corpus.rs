//! JSON-lines corpora, the shape research corpora come in: one record per line, each an object
//! with an id and a text (`{"id": 17, "text": "..."}`; the field names are settable). Every
//! record's text is a document and takes the pipeline's one path; the output has one line per
//! record: its id, then every field of the `--format json` record (`translation`, `summary`,
//! `sentences`, ...), in input order.
//!
//! Records are small documents, so they are translated several at a time: their segments meet in
//! one [`Scheduler`]'s rounds, which fills the model's batches as a long document would.
//! Memory stays bounded by the number of records in flight, whatever the corpus's length.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::input::DecodeStats;
use crate::pipeline::{DocumentRun, Pipeline};
use crate::record::{assemble, Output, FORMAT_VERSION};
use crate::scheduler::{Scheduler, SchedulerOptions};
use crate::stream::{BlockSource, DocumentInput};

/// How a corpus is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusOptions {
    /// The field holding a record's id (any JSON value, copied to the output). Default `id`.
    pub id_field: String,
    /// The field holding a record's text (a string). Default `text`.
    pub text_field: String,
    /// Records translated at once. Default 16.
    pub concurrency: usize,
}

impl Default for CorpusOptions {
    fn default() -> Self {
        CorpusOptions {
            id_field: "id".into(),
            text_field: "text".into(),
            concurrency: 16,
        }
    }
}

/// What translating a corpus did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorpusReport {
    /// How its bytes were decoded (known once the corpus is read).
    pub decode: Option<DecodeStats>,
    /// Records translated.
    pub records: usize,
    /// Segments translated, over all records.
    pub sentences: usize,
    /// Source tokens, over all records.
    pub source_tokens: usize,
    /// Generated tokens, over all records.
    pub target_tokens: usize,
}

/// One line of input, parsed: (line number, id, text).
type Record = (usize, Value, String);

fn parse_line(line: &str, number: usize, name: &str, options: &CorpusOptions) -> Result<Record> {
    let bad = |message: String| Error::Input {
        source_name: name.to_string(),
        message: format!("line {number}: {message}"),
        remedy: None,
    };
    let value: Value =
        serde_json::from_str(line).map_err(|e| bad(format!("not a JSON object: {e}")))?;
    let Value::Object(mut map) = value else {
        return Err(bad("not a JSON object".into()));
    };
    let text = match map.remove(&options.text_field) {
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(bad(format!(
                "field `{}` is not a string but {other}",
                options.text_field
            )))
        }
        None => return Err(bad(format!("no field `{}`", options.text_field))),
    };
    let id = map.remove(&options.id_field).unwrap_or(Value::Null);
    Ok((number, id, text))
}

/// Translates a corpus from `input` (its decoded text, in blocks: the input policy's, so that
/// `--encoding`, `--lossy` and byte-order marks apply; named `name` in errors) to `out` (named
/// `out_name`), a line per record, in input order, each written (and flushed) as soon as the
/// records before it are. Each record is a text document run as `run` says (its generation
/// settings and summary; its segments go through a [`Scheduler`] over `run`'s translator). A
/// line that is not a record (not JSON, no text field) stops the corpus with an error naming
/// the line; the lines before it are written. Empty lines are skipped.
///
/// [`crate::document`] is the entry that opens corpora and calls this.
pub fn translate_corpus_blocks(
    pipeline: &Pipeline,
    run: &DocumentRun<'_>,
    input: Box<dyn BlockSource + Send + '_>,
    name: &str,
    out: &mut dyn Write,
    out_name: &Path,
    options: &CorpusOptions,
) -> Result<CorpusReport> {
    // The records' segments meet in one scheduler, whose loop runs here with `run`'s
    // translator; it stops when the corpus is done, or fails.
    let scheduler = Scheduler::new(
        SchedulerOptions {
            round_segments: pipeline.translator().batching().max_batch_size,
            ..SchedulerOptions::default()
        },
        Arc::new(()),
    );
    let workers = options.concurrency.max(1);
    let mut report = CorpusReport::default();
    std::thread::scope(|scope| -> Result<()> {
        /// Closes the scheduler however the corpus ends, so that its loop ends too.
        struct Closing<'a>(&'a Scheduler);
        impl Drop for Closing<'_> {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        let _closing = Closing(&scheduler);
        let translator = run.translator;
        let scheduler = &scheduler;
        scope.spawn(move || scheduler.serve(translator));
        // Records to the workers, a bounded number ahead; results back, tagged by position.
        let (todo_tx, todo_rx) = mpsc::sync_channel::<(usize, Record)>(workers);
        let todo_rx = Arc::new(std::sync::Mutex::new(todo_rx));
        let (done_tx, done_rx) = mpsc::channel::<(usize, Result<String>, usize, usize, usize)>();
        for _ in 0..workers {
            let (todo_rx, done_tx) = (Arc::clone(&todo_rx), done_tx.clone());
            scope.spawn(move || loop {
                let next = todo_rx.lock().ok().and_then(|rx| rx.recv().ok());
                let Some((position, (_, id, text))) = next else {
                    return;
                };
                let client = scheduler.client(position as u64, Arc::new(AtomicBool::new(false)));
                let run = DocumentRun {
                    translator: &client,
                    ..*run
                };
                let result = record_line(pipeline, &run, id, text);
                let (line, counts) = match result {
                    Ok((line, counts)) => (Ok(line), counts),
                    Err(e) => (Err(e), (0, 0, 0)),
                };
                if done_tx
                    .send((position, line, counts.0, counts.1, counts.2))
                    .is_err()
                {
                    return;
                }
            });
        }
        drop(done_tx);
        // The reader: blocks of decoded text in, cut into lines (a line may run over blocks),
        // until the end or a bad line.
        let reader = scope.spawn(move || -> Result<Option<DecodeStats>> {
            let mut input = input;
            let (mut position, mut number) = (0, 0);
            let mut carry = String::new();
            let mut send = |line: &str, number: usize| -> Result<bool> {
                if line.trim().is_empty() {
                    return Ok(true);
                }
                let record = parse_line(line, number, name, options)?;
                if todo_tx.send((position, record)).is_err() {
                    return Ok(false);
                }
                position += 1;
                Ok(true)
            };
            while let Some(block) = input.next_block()? {
                let text = if carry.is_empty() {
                    block.text
                } else {
                    std::mem::take(&mut carry) + &block.text
                };
                for line in text.split_inclusive('\n') {
                    match line.strip_suffix('\n') {
                        Some(line) => {
                            number += 1;
                            if !send(line, number)? {
                                return Ok(input.decode_stats());
                            }
                        }
                        None => carry.push_str(line),
                    }
                }
            }
            if !carry.is_empty() {
                send(&carry, number + 1)?;
            }
            Ok(input.decode_stats())
        });
        // The writer: results in input order. After a failed record, the ones before it are
        // still written; then the corpus stops (dropping the channel stops the workers).
        let mut pending: BTreeMap<usize, String> = BTreeMap::new();
        let mut next = 0;
        let mut failure: Option<(usize, Error)> = None;
        for (position, line, sentences, source, target) in done_rx {
            match line {
                Ok(line) => {
                    pending.insert(position, line);
                    report.sentences += sentences;
                    report.source_tokens += source;
                    report.target_tokens += target;
                }
                Err(e) => {
                    if failure.as_ref().is_none_or(|(at, _)| position < *at) {
                        failure = Some((position, e));
                    }
                }
            }
            let stop = failure.as_ref().map_or(usize::MAX, |(at, _)| *at);
            while next < stop {
                let Some(line) = pending.remove(&next) else {
                    break;
                };
                out.write_all(line.as_bytes())
                    .and_then(|()| out.write_all(b"\n"))
                    .and_then(|()| out.flush())
                    .map_err(|e| Error::io(out_name, e))?;
                report.records += 1;
                next += 1;
            }
            if let Some((at, _)) = &failure {
                if next >= *at {
                    break;
                }
            }
        }
        if let Some((_, e)) = failure {
            return Err(e);
        }
        report.decode = reader
            .join()
            .map_err(|_| Error::Internal("the corpus reader panicked".into()))??;
        Ok(())
    })?;
    Ok(report)
}

/// One record through the pipeline: its output line, and its sentence and token counts.
fn record_line(
    pipeline: &Pipeline,
    run: &DocumentRun<'_>,
    id: Value,
    text: String,
) -> Result<(String, (usize, usize, usize))> {
    let mut sentences = Vec::new();
    let mut input = DocumentInput::from_text(text.clone(), "<record>");
    let report = pipeline.run_blocks_with(run, &mut input, |_, block| {
        sentences.extend(block);
        Ok(())
    })?;
    let output = Output {
        format_version: FORMAT_VERSION,
        source: text,
        translation: assemble(&sentences),
        summary: report.summary,
        sentences,
        model: pipeline.model().clone(),
        timings: report.timings,
    };
    let body = serde_json::to_string(&output)
        .map_err(|e| Error::Internal(format!("cannot write JSON: {e}")))?;
    let id = serde_json::to_string(&id)
        .map_err(|e| Error::Internal(format!("cannot write JSON: {e}")))?;
    let line = format!("{{\"id\":{id},{}", body.get(1..).unwrap_or("}"));
    Ok((
        line,
        (report.sentences, report.source_tokens, report.target_tokens),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_parsed_with_their_line_numbers() {
        let o = CorpusOptions::default();
        let (n, id, text) = parse_line(r#"{"id": "a-1", "text": "Hallo."}"#, 3, "c", &o).unwrap();
        assert_eq!((n, id, text.as_str()), (3, Value::from("a-1"), "Hallo."));
        let e = parse_line(r#"{"id": 1}"#, 4, "c.jsonl", &o)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "c.jsonl: line 4: no field `text`");
        let e = parse_line(r#"{"text": 5}"#, 5, "c", &o)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 5: field `text` is not a string"), "{e}");
        assert!(parse_line("[1]", 6, "c", &o).is_err());
        assert!(parse_line("{", 7, "c", &o)
            .unwrap_err()
            .to_string()
            .contains("line 7"));
        let custom = CorpusOptions {
            id_field: "doc".into(),
            text_field: "body".into(),
            ..o
        };
        let (_, id, text) = parse_line(r#"{"doc": 9, "body": "x"}"#, 1, "c", &custom).unwrap();
        assert_eq!((id, text.as_str()), (Value::from(9), "x"));
    }
}
