//! Large inputs, streamed block by block: the same output as the whole document (library and
//! command line, files and standard input, UTF-16, every format, just below and just above the
//! threshold), nothing lost when blocks cut paragraphs and lines, every word of an unpunctuated
//! 20,000-word sentence translated, errors far into a large input with their byte offset, the
//! summary cap, and `tolk batch` on a large file.

use serde_json::Value;

use tolk::input::{DecodeOptions, DecodeStats};
use tolk::output::{render, OutputFormat, RenderOptions, StreamWriter};
use tolk::pipeline::{DocumentReport, SummaryLimits};
use tolk::pipeline::{GenerationOverrides, Pipeline, PipelineBuilder};
use tolk::record::Output;
use tolk::stream::{BlockReader, BlockSource, DocumentInput, StreamOptions};
use tolk::translate::BatchOptions;

use crate::cli::{model_args, with_model, Env};
use crate::common::fixture_dir;

/// A Dutch document of at least `bytes` bytes made of the repository's texts: the seed article
/// (a metadata field, a headline, nine paragraphs), then paragraphs of the tokenizer corpus,
/// headlines and lists.
fn document(bytes: usize) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let seed = std::fs::read_to_string(format!(
        "{root}/tests/data/segment/nos-belarus-2020-10.nl.txt"
    ))
    .unwrap();
    let corpus =
        std::fs::read_to_string(format!("{root}/tests/data/tokenizer/corpus.nl.txt")).unwrap();
    let lines: Vec<&str> = corpus.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut doc = seed.trim_end().to_string();
    let mut n = 0;
    while doc.len() < bytes {
        let at = (3 * n) % lines.len();
        let para: Vec<&str> = lines.iter().cycle().skip(at).take(3).copied().collect();
        doc.push_str("\n\n");
        match n % 4 {
            0 => doc.push_str(&format!("Deel {n} van het verslag\n\n{}", para.join("\n"))),
            1 => doc.push_str(&format!("- {}\n- {}", para[0], para[1])),
            _ => doc.push_str(&para.join(" ")),
        }
        n += 1;
    }
    doc.push('\n');
    doc
}

/// The tiny model, greedy, 4 new tokens; `batch_size` 1 makes every score independent of the
/// other sentences of its batch, so that outputs can be compared byte for byte.
fn pipeline(batch_size: Option<usize>) -> Pipeline {
    let mut b: PipelineBuilder = Pipeline::builder()
        .model_dir(fixture_dir("marian-tiny"))
        .overrides(
            GenerationOverrides::default()
                .with_num_beams(1)
                .with_max_new_tokens(4),
        );
    if let Some(n) = batch_size {
        b = b.batching(BatchOptions::default().with_max_batch_size(n));
    }
    b.build().unwrap()
}

/// `text` streamed in blocks of `block` bytes, written in `format`.
fn streamed(
    pipeline: &Pipeline,
    text: &[u8],
    block: usize,
    format: OutputFormat,
    render_options: &RenderOptions,
) -> (String, DocumentReport) {
    let mut blocks = BlockReader::new(text, "<test>", &DecodeOptions::default(), block);
    let mut writer = StreamWriter::new(Vec::new(), "<test>", format, render_options, None).unwrap();
    let report = pipeline
        .translate_document(&mut blocks, &mut writer)
        .unwrap();
    (String::from_utf8(writer.into_inner()).unwrap(), report)
}

/// The output without the lines that carry timings.
fn untimed(text: &str) -> String {
    text.lines()
        .filter(|l| !l.contains("_seconds"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Sentence records of the whole-document output and of a JSON-lines output.
fn records(output: &Output) -> Vec<Value> {
    output
        .sentences
        .iter()
        .map(|s| serde_json::to_value(s).unwrap())
        .collect()
}

fn jsonl_records(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn streamed_blocks_give_the_whole_documents_output_byte_for_byte() {
    let text = document(7000);
    let largest_paragraph = text.split("\n\n").map(str::len).max().unwrap();
    let pipeline = pipeline(Some(1));
    let whole = pipeline.run(&text).unwrap();
    assert!(whole.sentences.len() > 40);
    for block in [largest_paragraph + 2, 1500, 4000] {
        for (format, bilingual) in [
            (OutputFormat::Text, false),
            (OutputFormat::Jsonl, false),
            (OutputFormat::Json, false),
            (OutputFormat::Markdown, false),
            (OutputFormat::Markdown, true),
        ] {
            let options = RenderOptions::default().with_bilingual(bilingual);
            let want = render(&whole, format, &options).unwrap();
            let (got, report) = streamed(&pipeline, text.as_bytes(), block, format, &options);
            assert!(report.blocks > 1, "{block}");
            assert_eq!(report.segments, whole.sentences.len());
            assert_eq!(report.sentences, whole.translated_sentences());
            assert_eq!(report.source_tokens, whole.source_tokens());
            assert_eq!(untimed(&got), untimed(&want), "{format} block {block}");
            if format == OutputFormat::Json {
                let mut got: Value = serde_json::from_str(&got).unwrap();
                let mut want: Value = serde_json::from_str(&want).unwrap();
                got["timings"] = Value::Null;
                want["timings"] = Value::Null;
                assert_eq!(got, want);
            }
        }
    }
}

#[test]
fn with_batches_of_several_sentences_only_scores_differ_and_barely() {
    let text = document(5000);
    let pipeline = pipeline(None);
    let whole = records(&pipeline.run(&text).unwrap());
    let (got, _) = streamed(
        &pipeline,
        text.as_bytes(),
        1200,
        OutputFormat::Jsonl,
        &RenderOptions::default(),
    );
    let got = jsonl_records(&got);
    assert_eq!(got.len(), whole.len());
    for (mut g, mut w) in got.into_iter().zip(whole) {
        // A sentence's batch neighbours differ between the two runs, and with them the padded
        // shapes and the order of floating-point sums.
        let (gs, ws) = (g["score"].take(), w["score"].take());
        assert_eq!(g, w);
        if let (Some(a), Some(b)) = (gs.as_f64(), ws.as_f64()) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }
}

/// Checks what holds however blocks were cut: indices count up, spans point at the source in
/// order, only white space and list markers (`-` in these texts) lie outside them, every
/// translatable segment is translated, and paragraphs never go back.
fn check_cover(text: &str, sentences: &[Value]) {
    let mut end = 0;
    let mut paragraph = 0;
    let mut outside = String::new();
    for (i, s) in sentences.iter().enumerate() {
        assert_eq!(s["index"].as_u64().unwrap() as usize, i);
        let a = s["span"]["start"].as_u64().unwrap() as usize;
        let b = s["span"]["end"].as_u64().unwrap() as usize;
        assert!(a >= end && b > a, "{s}");
        assert_eq!(&text[a..b], s["source"].as_str().unwrap());
        outside.push_str(&text[end..a]);
        end = b;
        let p = s["paragraph"].as_u64().unwrap() as usize;
        assert!(p >= paragraph);
        paragraph = p;
        if s["type"] != "metadata" {
            assert!(s["translation"].is_string(), "{s}");
            assert!(s["target_tokens"].as_u64().unwrap() > 0, "{s}");
        }
    }
    outside.push_str(&text[end..]);
    assert!(
        outside.chars().all(|c| c.is_whitespace() || c == '-'),
        "{outside:?}"
    );
}

#[test]
fn small_blocks_cut_inside_paragraphs_and_lines_lose_nothing() {
    // Long paragraphs of long lines, no list markers.
    let text = document(4000)
        .replace("\n- ", "\n")
        .replace("\n\n", "\n")
        .replacen('\n', "\n\n", 3);
    let pipeline = pipeline(None);
    for block in [64, 90, 200, 333] {
        let (got, report) = streamed(
            &pipeline,
            text.as_bytes(),
            block,
            OutputFormat::Jsonl,
            &RenderOptions::default(),
        );
        assert!(report.blocks >= text.len() / block, "{block}");
        let records = jsonl_records(&got);
        check_cover(&text, &records);
        if block < 100 {
            // Sentences longer than a block are cut between words.
            assert!(records.iter().any(|r| r["continues"] == true), "{block}");
        }
    }
}

/// A sentence of 20,000 different words without punctuation or line breaks.
fn endless_sentence() -> (String, Vec<String>) {
    let stems = [
        "kabinet", "gemeente", "fietser", "brug", "rivier", "dijk", "haven", "school", "trein",
        "markt",
    ];
    let words: Vec<String> = (0..20_000)
        .map(|i| format!("{}{i}", stems[i % stems.len()]))
        .collect();
    (format!("Het {}", words.join(" ")), words)
}

/// Every word of `words` lies, in order, in exactly one segment; every segment is translated.
fn check_words(text: &str, sentences: &[Value], words: &[String]) {
    check_cover(text, sentences);
    let seen: Vec<&str> = sentences
        .iter()
        .flat_map(|s| s["source"].as_str().unwrap().split_whitespace())
        .collect();
    assert_eq!(seen.first(), Some(&"Het"));
    assert_eq!(seen.len(), words.len() + 1);
    assert!(seen.iter().skip(1).zip(words).all(|(a, b)| a == b));
    assert!(sentences.len() > 100);
    assert!(sentences.iter().skip(1).all(|s| s["continues"] == true));
}

#[test]
fn a_20000_word_sentence_without_punctuation_is_split_and_fully_translated() {
    let (text, words) = endless_sentence();
    let pipeline = pipeline(None);
    // Whole (it is under the threshold).
    let whole = pipeline.run(&text).unwrap();
    check_words(&text, &records(&whole), &words);
    // Streamed, with blocks that cut the sentence between words.
    let (got, report) = streamed(
        &pipeline,
        text.as_bytes(),
        16 << 10,
        OutputFormat::Jsonl,
        &RenderOptions::default(),
    );
    assert!(report.blocks > 5);
    check_words(&text, &jsonl_records(&got), &words);
}

#[test]
fn the_summary_of_a_streamed_input_reads_only_its_lead() {
    let text = document(6000);
    let limited = |limits: SummaryLimits| {
        Pipeline::builder()
            .model_dir(fixture_dir("marian-tiny"))
            .overrides(
                GenerationOverrides::default()
                    .with_num_beams(1)
                    .with_max_new_tokens(4),
            )
            .summary_limits(limits)
            .build()
            .unwrap()
    };
    let pipeline = pipeline(None);
    let (got, report) = streamed(
        &limited(SummaryLimits::default().with_sentences(5)),
        text.as_bytes(),
        2000,
        OutputFormat::Json,
        &RenderOptions::default(),
    );
    let json: Value = serde_json::from_str(&got).unwrap();
    let summary = &json["summary"];
    assert_eq!(summary["limited_to"], 5);
    assert_eq!(report.summary.as_ref().unwrap().limited_to, Some(5));
    // The fifth unit starts at or before segment 6 (the metadata field is no unit).
    for s in summary["sentences"].as_array().unwrap() {
        for i in s["sentences"].as_array().unwrap() {
            assert!(i.as_u64().unwrap() <= 6, "{summary}");
        }
    }
    // Byte limit: a unit that would pass it is left out, and no later one is taken.
    let report = streamed(
        &limited(SummaryLimits::default().with_bytes(1)),
        text.as_bytes(),
        2000,
        OutputFormat::Text,
        &RenderOptions::default(),
    )
    .1;
    let summary = report.summary.unwrap();
    assert_eq!((summary.limited_to, summary.sentences.len()), (Some(0), 0));
    // Without limits reached, the whole summary.
    let whole = pipeline.run(&text).unwrap();
    let report = streamed(
        &pipeline,
        text.as_bytes(),
        2000,
        OutputFormat::Text,
        &RenderOptions::default(),
    )
    .1;
    assert_eq!(report.summary.unwrap().limited_to, None);
    assert!(whole.summary.unwrap().limited_to.is_none());
}

/// The CLI arguments of the exact settings (batches of one sentence).
fn exact_args() -> Vec<String> {
    let mut m = model_args();
    m.extend(["--batch-size".into(), "1".into()]);
    m
}

#[test]
fn the_command_line_streams_just_above_the_threshold_with_the_same_output() {
    let env = Env::new();
    let text = document(6000);
    let size = text.len().to_string();
    let below = (text.len() - 1).to_string();
    let file = env.write("groot.txt", &text);
    let file = file.to_str().unwrap();
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let file16 = env.write("groot16.txt", &utf16);
    let file16 = file16.to_str().unwrap();
    let m = exact_args();
    for format in ["text", "jsonl", "json", "markdown"] {
        let args = |threshold: &str| {
            vec![
                "translate".to_string(),
                "--format".into(),
                format.into(),
                "--bilingual".into(),
                "--stream-threshold".into(),
                threshold.into(),
                "--stream-block".into(),
                "1500".into(),
            ]
        };
        let run = |threshold: &str, input: &str| {
            let a = args(threshold);
            let first: Vec<&str> = a.iter().map(String::as_str).collect();
            env.run(&with_model(&first, &[input], &m)).code(0).stdout
        };
        // At the threshold: read whole; one byte under it: streamed.
        let whole = run(&size, file);
        let streamed = run(&below, file);
        assert_eq!(untimed(&streamed), untimed(&whole), "{format}");
        // Standard input, and UTF-16, streamed too.
        let a = args(&below);
        let first: Vec<&str> = a.iter().map(String::as_str).collect();
        let piped = env
            .run_with_stdin(&with_model(&first, &["-"], &m), text.as_bytes())
            .code(0)
            .stdout;
        assert_eq!(untimed(&piped), untimed(&whole), "{format} stdin");
        if format == "text" {
            assert_eq!(run("1K", file16), whole);
        }
    }
    // -o: the same bytes, written atomically.
    let out = env.path("uit.jsonl");
    let a = ["translate", "-f", "jsonl", "--stream-threshold", "1K", "-o"];
    let mut first: Vec<&str> = a.to_vec();
    first.push(out.to_str().unwrap());
    env.run(&with_model(&first, &[file], &m)).code(0);
    let whole = env
        .run(&with_model(&["translate", "-f", "jsonl"], &[file], &m))
        .code(0)
        .stdout;
    assert_eq!(std::fs::read_to_string(&out).unwrap(), whole);
    let jsonl = jsonl_records(&whole);
    check_cover(&text, &jsonl);
}

#[test]
fn invalid_utf8_far_into_a_large_input_is_reported_with_its_byte_offset() {
    let env = Env::new();
    let line = "Het kabinet is gevallen en de premier biedt zijn ontslag aan.\n";
    let mut bytes = line.repeat(3_000_000 / line.len()).into_bytes();
    let at = bytes.len() + 3;
    let line_no = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
    bytes.extend_from_slice(b"Caf\xE9 open.\n");
    let file = env.write("groot.txt", &bytes);
    let m = model_args();
    let out = env.path("uit.txt");
    // A file is checked whole before the model loads: nothing is written.
    let run = env
        .run(&with_model(
            &["translate", "-o", out.to_str().unwrap()],
            &[file.to_str().unwrap()],
            &m,
        ))
        .code(2);
    let want = format!("is not valid UTF-8 at byte {at} (line {line_no}, column 4: bytes e9)");
    assert!(run.stderr.contains(&want), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    assert!(!out.exists());
    let names = crate::cli::names(env.root.path());
    assert!(!names.iter().any(|n| n.contains("uit.txt")), "{names:?}");
    // Standard input is streamed as it comes: the blocks before the bad byte are written, then
    // the error, with the same offset (here the bad byte comes in the same read as the text
    // before it).
    let mut small = line.repeat(60).into_bytes();
    let at = small.len() + 3;
    small.extend_from_slice(b"Caf\xE9 open.\n");
    small.extend_from_slice(line.repeat(10).as_bytes());
    let run = env
        .run_with_stdin(
            &with_model(
                &[
                    "translate",
                    "--stream-threshold",
                    "1K",
                    "--stream-block",
                    "1K",
                    "-f",
                    "jsonl",
                ],
                &["-"],
                &m,
            ),
            &small,
        )
        .code(2);
    assert!(
        run.stderr.contains(&format!(
            "<stdin>: is not valid UTF-8 at byte {at} (line 61, column 4"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stdout.lines().count() >= 30, "{}", run.stdout);
}

#[test]
fn batch_streams_large_files_with_the_same_outputs() {
    let env = Env::new();
    let big = document(5000);
    env.write("in/groot.txt", &big);
    env.write("in/klein.txt", "Een klein bericht. Met twee zinnen.");
    let m = exact_args();
    let input = env.path("in");
    let output = env.path("out");
    let run = env.run(&with_model(
        &[
            "batch",
            input.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
            "--format",
            "markdown",
            "--bilingual",
            "--stream-threshold",
            "2K",
            "--stream-block",
            "1K",
        ],
        &[],
        &m,
    ));
    run.code(0);
    let file = env.write("groot.txt", &big);
    let whole = env
        .run(&with_model(
            &["translate", "-f", "markdown", "--bilingual"],
            &[file.to_str().unwrap()],
            &m,
        ))
        .code(0)
        .stdout;
    assert_eq!(
        std::fs::read_to_string(output.join("groot.md")).unwrap(),
        whole
    );
    assert!(output.join("klein.md").exists());
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(output.join("tolk-report.json")).unwrap())
            .unwrap();
    assert_eq!(report["done"], 2);
    let files = report["files"].as_array().unwrap();
    let big_report = files.iter().find(|f| f["input"] == "groot.txt").unwrap();
    // One table row per translated sentence.
    let rows = whole
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| #"))
        .count();
    assert_eq!(big_report["sentences"].as_u64().unwrap() as usize, rows);
    // No temporary or spool files are left.
    let names = crate::cli::names(&output);
    assert_eq!(names, ["groot.md", "klein.md", "tolk-report.json"]);
}

/// A Dutch text in Windows-1252 (or ISO-8859-1, `latin1` without € and curly quotes), long
/// enough to be streamed in many blocks.
fn legacy_document(latin1: bool) -> (String, Vec<u8>) {
    let paragraph = if latin1 {
        "Het café in Curaçao is geopend. De reünie van naïeve idealisten was een succes.\r\n\
         Zij aten crème brûlée en paté; de prijs: 5 ½ gulden.\r\n\r\n"
    } else {
        "Het café kost €5. „Naïef”, zei de reünist, ‘maar ideeën zijn gratis’.\r\n\
         Überhaupt: één ë, één ï en één ü – zo’n mooie taal.\r\n\r\n"
    };
    let text = paragraph.repeat(300);
    let (bytes, _, unmappable) = tolk::input::encoding_rs::WINDOWS_1252.encode(&text);
    assert!(!unmappable);
    (text.replace("\r\n", "\n"), bytes.into_owned())
}

/// Reads a file through the library's input policy and joins its blocks.
fn read_blocks(
    path: &std::path::Path,
    decode: &DecodeOptions,
    stream: &StreamOptions,
) -> (String, usize, Option<DecodeStats>) {
    let mut input = DocumentInput::open(path, decode, stream).unwrap();
    let mut text = String::new();
    let mut blocks = 0;
    while let Some(block) = input.next_block().unwrap() {
        assert_eq!(block.offset, text.len());
        text.push_str(&block.text);
        blocks += 1;
    }
    (text, blocks, input.decode_stats())
}

#[test]
fn windows_1252_and_iso_8859_1_files_decode_alike_whole_and_streamed() {
    let env = Env::new();
    for (latin1, label) in [
        (false, "windows-1252"),
        (true, "iso-8859-1"),
        (false, "auto"),
    ] {
        let (text, bytes) = legacy_document(latin1);
        let path = env.write(&format!("{label}.txt"), &bytes);
        let decode = DecodeOptions::default().with_encoding(Some(label.parse().unwrap()));
        let (whole, blocks, stats) = read_blocks(&path, &decode, &StreamOptions::whole());
        assert_eq!(blocks, 1);
        assert_eq!(whole, text, "{label}");
        let stats = stats.unwrap();
        assert_eq!(stats.encoding.name(), "windows-1252");
        assert_eq!(stats.detected, label == "auto");
        let small = StreamOptions::default()
            .with_threshold(1024)
            .with_block_bytes(700);
        let (streamed, blocks, stats) = read_blocks(&path, &decode, &small);
        assert!(blocks > 20, "{blocks}");
        assert_eq!(streamed, text, "{label}");
        assert_eq!(stats.unwrap().encoding.name(), "windows-1252");
        // From a pipe too: decoded as it comes.
        let reader = Box::new(std::io::Cursor::new(bytes.clone()));
        let mut input = DocumentInput::from_reader(reader, "<stdin>", &decode, &small).unwrap();
        let mut piped = String::new();
        while let Some(block) = input.next_block().unwrap() {
            piped.push_str(&block.text);
        }
        assert_eq!(piped, text, "{label} piped");
        // The default refuses the file, with the offset of the first byte that is not UTF-8,
        // and names the encoding as the way out.
        for stream in [StreamOptions::whole(), small] {
            let e = DocumentInput::open(&path, &DecodeOptions::default(), &stream).unwrap_err();
            assert_eq!(e.remedy(), Some(tolk::error::Remedy::Encoding));
            let first = bytes.iter().position(|b| !b.is_ascii()).unwrap();
            assert!(
                e.to_string()
                    .contains(&format!("is not valid UTF-8 at byte {first} ")),
                "{e}"
            );
        }
    }
}

#[test]
fn the_command_line_reads_named_and_detected_encodings() {
    let env = Env::new();
    let m = model_args();
    let (text, bytes) = legacy_document(false);
    let path = env.write("oud.txt", &bytes);
    let p = path.to_str().unwrap();
    // Refused by default; the hint names --encoding (and --lossy).
    let run = env.run(&with_model(&["translate"], &[p], &m)).code(2);
    assert!(
        run.stderr.contains("is not valid UTF-8 at byte 7 "),
        "{}",
        run.stderr
    );
    let hint = run
        .stderr
        .lines()
        .find(|l| l.starts_with("hint: "))
        .unwrap_or_default();
    assert!(
        hint.contains("--encoding") && hint.contains("--lossy"),
        "{}",
        run.stderr
    );
    // Named: the same source as the UTF-8 file, streamed or not.
    let utf8 = env.write("nieuw.txt", &text);
    let want = env
        .run(&with_model(
            &["translate", "-f", "json", "--no-summary"],
            &[utf8.to_str().unwrap()],
            &m,
        ))
        .code(0)
        .json();
    for extra in [
        &[][..],
        &["--stream-threshold", "2K", "--stream-block", "1K"][..],
    ] {
        let mut args = vec![
            "translate",
            "-f",
            "json",
            "--no-summary",
            "--encoding",
            "cp1252",
        ];
        args.extend_from_slice(extra);
        let got = env.run(&with_model(&args, &[p], &m)).code(0).json();
        assert_eq!(got["source"], want["source"], "{extra:?}");
        assert_eq!(got["translation"], want["translation"], "{extra:?}");
    }
    // Detected, and said so.
    let run = env
        .run(&with_model(
            &["translate", "--encoding", "auto", "--no-summary"],
            &[p],
            &m,
        ))
        .code(0);
    assert!(
        run.stderr
            .contains("oud.txt: decoded from windows-1252 (detected)"),
        "{}",
        run.stderr
    );
    // segment and summarize take it too; a bad label is a usage error.
    let seg = env
        .run(&["segment", "--encoding", "windows-1252", p])
        .code(0);
    assert!(
        seg.stdout
            .starts_with("Het café kost €5.\n„Naïef”, zei de reünist"),
        "{}",
        seg.stdout
    );
    let en = env.write(
        "en.txt",
        tolk::input::encoding_rs::WINDOWS_1252
            .encode("The café opened. It was packed with naïve visitors.")
            .0,
    );
    let sum = env
        .run(&["summarize", "--encoding", "latin1", en.to_str().unwrap()])
        .code(0);
    assert!(sum.stdout.contains("café"), "{}", sum.stdout);
    let bad = env.run(&["segment", "--encoding", "klingon", p]).code(2);
    assert!(
        bad.stderr.contains("unknown encoding `klingon`"),
        "{}",
        bad.stderr
    );
}

#[test]
fn batch_reads_named_encodings_and_notes_detected_ones() {
    let env = Env::new();
    let m = model_args();
    let (_, bytes) = legacy_document(false);
    env.write("in/oud.txt", &bytes);
    env.write("in/nieuw.txt", "Het café is open.");
    let run_batch = |extra: &[&str]| {
        let mut args = vec!["batch", "--format", "json", "--no-summary", "--overwrite"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["in", "-o", "out"]);
        env.run(&with_model(&args, &[], &m))
    };
    let run = run_batch(&[]).code(1);
    assert!(
        run.stderr.contains("oud.txt") && run.stderr.contains("--encoding"),
        "{}",
        run.stderr
    );
    run_batch(&["--encoding", "auto"]).code(0);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("out/tolk-report.json")).unwrap())
            .unwrap();
    let files = report["files"].as_array().unwrap();
    let old = files.iter().find(|f| f["input"] == "oud.txt").unwrap();
    assert_eq!(
        old["reason"], "decoded from windows-1252 (detected)",
        "{old}"
    );
    let new = files.iter().find(|f| f["input"] == "nieuw.txt").unwrap();
    assert!(new["reason"].is_null(), "{new}");
}
