//! The `tolk` binary, run as a user would: every output format, standard input and output,
//! `-o`, exit codes, the `--segment lines` JSON interface, the model-free commands and `models`
//! (against a local directory and the fake Hub). The batch command has its own module
//! (`cli_batch`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output as ProcessOutput, Stdio};

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::common::fixture_dir;

/// An isolated environment: its own Hugging Face cache, tolk cache and home, no user catalogue,
/// no inherited model or offline settings.
pub struct Env {
    pub root: TempDir,
}

impl Env {
    pub fn new() -> Env {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("models")).unwrap();
        Env { root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// Writes a file under the root, creating directories.
    pub fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// `tolk ARGS` in this environment.
    pub fn tolk(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tolk"));
        cmd.args(args)
            .current_dir(self.root.path())
            .env("HF_HOME", self.path("hf"))
            .env("HF_HUB_CACHE", self.path("hf/hub"))
            .env("TOLK_MODELS_DIR", self.path("models"))
            .env("TOLK_CACHE_DIR", self.path("cache"))
            .env("HF_ENDPOINT", dead_endpoint())
            .env_remove("HF_HUB_OFFLINE")
            .env_remove("HF_TOKEN")
            .env_remove("HUGGING_FACE_HUB_TOKEN")
            .env_remove("HUGGINGFACE_HUB_CACHE")
            .env_remove("TOLK_MODEL")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `tolk ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.tolk(args).output().unwrap())
    }

    /// Runs `tolk ARGS` with `input` on standard input.
    pub fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        let mut child = self
            .tolk(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        Run::from(child.wait_with_output().unwrap())
    }
}

/// A local address where nothing listens, so that no test reaches a real server.
fn dead_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    format!("http://{addr}")
}

/// A finished run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<ProcessOutput> for Run {
    fn from(o: ProcessOutput) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8(o.stdout).unwrap(),
            stderr: String::from_utf8(o.stderr).unwrap(),
        }
    }
}

impl Run {
    /// Asserts the exit status and returns self.
    #[track_caller]
    pub fn code(self, expected: i32) -> Run {
        assert_eq!(self.code, expected, "{self:#?}");
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// The tiny model, greedy, at most 8 new tokens: fast on random weights.
pub fn model_args() -> Vec<String> {
    vec![
        "--model".into(),
        fixture_dir("marian-tiny").display().to_string(),
        "--num-beams".into(),
        "1".into(),
        "--max-new-tokens".into(),
        "8".into(),
    ]
}

/// `first` + `model_args()` + `rest`.
pub fn with_model<'a>(first: &[&'a str], rest: &[&'a str], buf: &'a [String]) -> Vec<&'a str> {
    let mut v: Vec<&str> = first.to_vec();
    v.extend(buf.iter().map(String::as_str));
    v.extend_from_slice(rest);
    v
}

pub const ARTICLE: &str = crate::pipeline::ARTICLE;

fn utf16le(text: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        out.extend(u.to_le_bytes());
    }
    out
}

/// Names of the files in `dir` (not recursive), sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn translate_every_format() {
    let env = Env::new();
    let file = env.write("artikel.txt", ARTICLE);
    let file = file.to_str().unwrap();
    let m = model_args();

    let json = env
        .run(&with_model(&["translate", "--format", "json"], &[file], &m))
        .code(0)
        .json();
    assert_eq!(json["format_version"], 2);
    assert_eq!(json["source"], ARTICLE);
    let sentences = json["sentences"].as_array().unwrap();
    assert_eq!(sentences.len(), 8);
    for s in sentences {
        let (a, b) = (
            s["span"]["start"].as_u64().unwrap(),
            s["span"]["end"].as_u64().unwrap(),
        );
        assert_eq!(
            &ARTICLE[a as usize..b as usize],
            s["source"].as_str().unwrap()
        );
    }
    assert_eq!(sentences[0]["type"], "metadata");
    assert_eq!(sentences[0]["key"], "bron");
    assert_eq!(sentences[0]["translation"], Value::Null);
    assert_eq!(sentences[1]["type"], "headline");
    assert_eq!(sentences[6]["type"], "list_item");
    assert_eq!(sentences[6]["marker"], "-");
    assert!(sentences[2]["score"].is_number());
    assert!(sentences[2]["source_tokens"].as_u64().unwrap() > 5);
    let summary = &json["summary"];
    assert_eq!(summary["summarizer"], "extractive");
    assert_eq!(summary["sentences"].as_array().unwrap().len(), 2);
    assert!(summary["sentences"][0]["source"].is_string());
    assert_eq!(
        json["model"]["dir"].as_str().unwrap(),
        fixture_dir("marian-tiny").to_str().unwrap()
    );
    for key in ["load", "segment", "translate", "summarize", "total"] {
        assert!(
            json["timings"][format!("{key}_seconds")].is_number(),
            "{key}"
        );
    }
    let translation = json["translation"].as_str().unwrap().to_string();
    let summary_text: Vec<&str> = summary["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();

    // text: the translation, a blank line, the summary.
    let text = env
        .run(&with_model(&["translate"], &[file], &m))
        .code(0)
        .stdout;
    assert_eq!(
        text,
        format!("{translation}\n\nSummary: {}\n", summary_text.join(" "))
    );
    let text = env
        .run(&with_model(&["translate", "--no-summary"], &[file], &m))
        .code(0)
        .stdout;
    assert_eq!(text, format!("{translation}\n"));

    // markdown: metadata, headline, list, summary; --bilingual adds the table.
    let md = env
        .run(&with_model(&["translate", "-f", "markdown"], &[file], &m))
        .code(0)
        .stdout;
    let blocks: Vec<&str> = md.split("\n\n").collect();
    assert_eq!(blocks[0], "**bron:** ANP");
    assert!(blocks[1].starts_with("# "), "{md}");
    assert!(
        blocks
            .iter()
            .any(|b| b.lines().count() == 2 && b.lines().all(|l| l.starts_with("- "))),
        "{md}"
    );
    assert!(md.contains("\n\n## Summary\n\n- "), "{md}");
    assert!(!md.contains("Nederlands"));
    let md = env
        .run(&with_model(
            &["translate", "-f", "markdown", "--bilingual"],
            &[file],
            &m,
        ))
        .code(0)
        .stdout;
    assert!(md.contains("## Side by side\n\n| # | Nederlands | English |\n|--:|---|---|\n| 1 | Nieuwe brug over de Maas geopend | "), "{md}");
    assert_eq!(md.matches("\n| ").count(), 1 + 7);

    // jsonl: one sentence per line, the same objects as in json.
    let jsonl = env
        .run(&with_model(
            &["translate", "--format", "jsonl"],
            &[file],
            &m,
        ))
        .code(0)
        .stdout;
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8);
    assert_eq!(&lines[..], &sentences[..]);
}

#[test]
fn standard_input_output_and_atomic_output_files() {
    let env = Env::new();
    let m = model_args();
    let from_file = env
        .run(&with_model(
            &["translate"],
            &[env.write("a.txt", ARTICLE).to_str().unwrap()],
            &m,
        ))
        .code(0)
        .stdout;
    let piped = env.run_with_stdin(&with_model(&["translate"], &[], &m), ARTICLE.as_bytes());
    assert_eq!(piped.code(0).stdout, from_file);
    let dash = env.run_with_stdin(&with_model(&["translate"], &["-"], &m), ARTICLE.as_bytes());
    assert_eq!(dash.code(0).stdout, from_file);

    // -o: the file gets the output, standard output nothing, and no temporary file remains.
    std::fs::create_dir(env.path("out")).unwrap();
    let out = env.path("out/a.en.txt");
    let run = env.run_with_stdin(
        &with_model(&["translate", "-o", out.to_str().unwrap()], &[], &m),
        ARTICLE.as_bytes(),
    );
    assert_eq!(run.code(0).stdout, "");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), from_file);
    assert_eq!(names(&env.path("out")), ["a.en.txt"]);
    // A directory that does not exist: an error, nothing written.
    let run = env.run_with_stdin(
        &with_model(&["translate", "-o", "missing/a.txt"], &[], &m),
        ARTICLE.as_bytes(),
    );
    let run = run.code(2);
    assert!(run.stderr.contains("missing/a.txt"), "{}", run.stderr);
}

#[test]
fn bad_input_is_refused_with_a_clear_error_and_status_2() {
    let env = Env::new();
    let m = model_args();
    let check = |name: &str, bytes: &[u8], needles: &[&str]| {
        let path = env.write(name, bytes);
        let run = env
            .run(&with_model(&["translate"], &[path.to_str().unwrap()], &m))
            .code(2);
        assert_eq!(run.stdout, "");
        assert!(
            run.stderr
                .starts_with(&format!("error: {}: ", path.display())),
            "{}",
            run.stderr
        );
        for n in needles {
            assert!(run.stderr.contains(n), "{name}: {n}: {}", run.stderr);
        }
    };
    check(
        "binary.txt",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        &["NUL byte (at byte 8)", "not text"],
    );
    check(
        "latin1.txt",
        b"De caf\xe9 is open.",
        &["not valid UTF-8 at byte 6", "line 1, column 7", "--lossy"],
    );
    let mut no_bom = utf16le("Hallo wereld, dit is een zin.");
    no_bom.drain(..2);
    check(
        "utf16-no-bom.txt",
        &no_bom,
        &["UTF-16 without a byte-order mark"],
    );
    let missing = env
        .run(&with_model(&["translate"], &["does-not-exist.txt"], &m))
        .code(2);
    assert!(
        missing.stderr.starts_with("error: does-not-exist.txt: "),
        "{}",
        missing.stderr
    );

    // --lossy replaces and says so.
    let path = env.write("lossy.txt", b"De caf\xe9 is open.");
    let run = env
        .run(&with_model(
            &["translate", "--lossy", "-f", "json"],
            &[path.to_str().unwrap()],
            &m,
        ))
        .code(0);
    assert_eq!(run.json()["source"], "De caf\u{FFFD} is open.");
    assert!(
        run.stderr
            .contains(": 1 invalid byte sequence replaced with U+FFFD"),
        "{}",
        run.stderr
    );

    // UTF-16 with a byte-order mark and CRLF line endings read as the UTF-8 text.
    let crlf = ARTICLE.replace('\n', "\r\n");
    let u16 = env.write("utf16.txt", utf16le(&crlf));
    let u8 = env.write("utf8.txt", ARTICLE);
    let a = env
        .run(&with_model(
            &["translate", "-f", "json"],
            &[u16.to_str().unwrap()],
            &m,
        ))
        .code(0);
    let b = env
        .run(&with_model(
            &["translate", "-f", "json"],
            &[u8.to_str().unwrap()],
            &m,
        ))
        .code(0);
    assert_eq!(a.json()["sentences"], b.json()["sentences"]);
    assert_eq!(a.json()["source"], ARTICLE);
    assert!(
        a.stderr.contains("utf16.txt: decoded from UTF-16LE"),
        "{}",
        a.stderr
    );
    assert!(!b.stderr.contains("decoded from"), "{}", b.stderr);

    // Empty and white-space-only input: empty output, success.
    for (name, bytes) in [("empty.txt", &b""[..]), ("blank.txt", b" \n\r\n\t")] {
        let p = env.write(name, bytes);
        let run = env
            .run(&with_model(&["translate"], &[p.to_str().unwrap()], &m))
            .code(0);
        assert_eq!(run.stdout, "", "{name}");
        let json = env
            .run(&with_model(
                &["translate", "-f", "json"],
                &[p.to_str().unwrap()],
                &m,
            ))
            .code(0)
            .json();
        assert_eq!(json["sentences"], Value::Array(vec![]));
        assert_eq!(json["translation"], "");
    }
}

#[test]
fn bad_options_and_models_give_status_2() {
    let env = Env::new();
    let file = env.write("a.txt", "Een zin.");
    let file = file.to_str().unwrap();
    let m = model_args();
    let dir = fixture_dir("marian-tiny");
    let run = env
        .run(&[
            "translate",
            "--model",
            dir.to_str().unwrap(),
            "--num-beams",
            "0",
            file,
        ])
        .code(2);
    assert!(
        run.stderr.starts_with("error: invalid option `num_beams`"),
        "{}",
        run.stderr
    );
    let run = env
        .run(&["translate", "--model", "./no-such-model", file])
        .code(2);
    assert!(
        run.stderr
            .contains("error: cannot load the model ./no-such-model\ncaused by: "),
        "{}",
        run.stderr
    );
    let run = env
        .run(&["translate", "--model", "no-such-name", file])
        .code(2);
    assert!(
        run.stderr.contains("not in the catalogue"),
        "{}",
        run.stderr
    );
    // The default model, not cached, with no network: the ways out are named.
    let run = env.run(&["translate", "--offline", file]).code(2);
    assert!(
        run.stderr.contains("tolk models fetch opus-mt-nl-en"),
        "{}",
        run.stderr
    );
    let run = env.run(&["translate", "--format", "xml", file]).code(2);
    assert!(
        run.stderr
            .contains("possible values: text, markdown, json, jsonl"),
        "{}",
        run.stderr
    );
    let run = env
        .run(&with_model(
            &["translate", "--summary-sentences", "2", "--no-summary"],
            &[file],
            &m,
        ))
        .code(2);
    assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
    let run = env
        .run(&with_model(
            &["translate", "--summary-ratio", "2"],
            &[file],
            &m,
        ))
        .code(2);
    assert!(
        run.stderr
            .starts_with("error: invalid option `summary ratio`: 2 is not in (0, 1]"),
        "{}",
        run.stderr
    );
    // A damaged model file: named, with the repair.
    let broken = env.path("broken-model");
    std::fs::create_dir(&broken).unwrap();
    for entry in std::fs::read_dir(fixture_dir("marian-tiny")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), broken.join(entry.file_name())).unwrap();
    }
    let weights = std::fs::read(broken.join("model.safetensors")).unwrap();
    std::fs::write(
        broken.join("model.safetensors"),
        &weights[..weights.len() / 2],
    )
    .unwrap();
    let run = env
        .run(&["translate", "--model", broken.to_str().unwrap(), file])
        .code(2);
    assert!(
        run.stderr.contains("model.safetensors: truncated"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("replace model.safetensors"),
        "{}",
        run.stderr
    );
    if !cfg!(feature = "metal") {
        let run = env
            .run(&with_model(
                &["translate", "--device", "metal"],
                &[file],
                &m,
            ))
            .code(2);
        assert!(
            run.stderr.contains("built without Metal support"),
            "{}",
            run.stderr
        );
    }
    if !cfg!(feature = "cuda") {
        let run = env
            .run(&with_model(&["translate", "--device", "cuda"], &[file], &m))
            .code(2);
        assert!(
            run.stderr.contains("built without CUDA support"),
            "{}",
            run.stderr
        );
    }
    let run = env
        .run(&with_model(&["--threads", "0", "translate"], &[file], &m))
        .code(2);
    assert!(run.stderr.contains("--threads"), "{}", run.stderr);
    // --threads sets the pools; results do not change.
    let one = env
        .run(&with_model(&["--threads", "1", "translate"], &[file], &m))
        .code(0);
    let two = env
        .run(&with_model(&["translate", "--threads", "2"], &[file], &m))
        .code(0);
    assert_eq!(one.stdout, two.stdout);
}

/// The interface evaluation scripts use: one result per line, in order, each line translated
/// as written.
#[test]
fn segment_lines_json_interface() {
    let env = Env::new();
    let lines = [
        "bron: ANP",
        "Dit is de eerste zin. En nog een zin op dezelfde regel.",
        "- een regel die op een lijst lijkt",
        "Zonder punt",
        "Laatste regel.",
    ];
    let text = format!("{}\n\n{}\n", lines[..3].join("\n"), lines[3..].join("\r\n"));
    let file = env.write("zinnen.txt", text);
    let dir = fixture_dir("marian-tiny");
    let run = env
        .run(&[
            "translate",
            "--model",
            dir.to_str().unwrap(),
            "--segment",
            "lines",
            "--format",
            "json",
            "--no-summary",
            "--max-new-tokens",
            "8",
            file.to_str().unwrap(),
        ])
        .code(0);
    let json = run.json();
    assert_eq!(json["summary"], Value::Null);
    let sentences = json["sentences"].as_array().unwrap();
    assert_eq!(sentences.len(), lines.len());
    let translator = tolk::translate::Translator::from_dir(&dir, &Default::default()).unwrap();
    let generation = translator.generation().clone().with_max_new_tokens(8);
    let line_texts: Vec<&str> = sentences
        .iter()
        .map(|s| s["source"].as_str().unwrap())
        .collect();
    let expected = translator.translate_with(&line_texts, &generation).unwrap();
    for (i, (s, t)) in sentences.iter().zip(&expected).enumerate() {
        // A list marker is kept apart from the text; everything else is the line as written.
        let line = lines[i].trim_start_matches("- ");
        assert_eq!(s["source"], line);
        assert_eq!(s["translation"], t.text.as_str());
        assert_eq!(s["source_tokens"], t.source_tokens);
        assert_eq!(s["target_tokens"], t.ids.len());
        assert!((s["score"].as_f64().unwrap() - f64::from(t.score)).abs() < 1e-6);
    }
}

/// `tolk bench` times the same translation several times in one process and reports it.
#[test]
fn bench_reports_the_best_of_its_timed_runs() {
    let env = Env::new();
    let file = env.write(
        "zinnen.txt",
        "Het regent.\nDe trein is te laat.\nWe gaan naar huis.\n",
    );
    let dir = fixture_dir("marian-tiny");
    for quantize in [None, Some("int8")] {
        let mut args = vec![
            "bench",
            "--model",
            dir.to_str().unwrap(),
            "--segment",
            "lines",
            "--no-summary",
            "--num-beams",
            "2",
            "--min-new-tokens",
            "6",
            "--max-new-tokens",
            "6",
            "--repeat",
            "2",
            file.to_str().unwrap(),
        ];
        if let Some(q) = quantize {
            args.extend(["--quantize", q]);
        }
        let json = env.run(&args).code(0).json();
        assert_eq!(json["runs"], 2, "{json}");
        assert_eq!(json["sentences"], 3, "{json}");
        assert_eq!(json["target_tokens"], 18, "{json}");
        let (min, median) = (
            json["min_s"].as_f64().unwrap(),
            json["median_s"].as_f64().unwrap(),
        );
        assert!(0.0 < min && min <= median, "{json}");
        let rate = json["tokens_per_s"].as_f64().unwrap();
        // Both are rounded (microseconds, tenths).
        assert!((rate - 18.0 / min).abs() <= 0.05 + 1e-3 * rate, "{json}");
        assert!(json["load_s"].as_f64().unwrap() > 0.0, "{json}");
    }
    let missing = env.path("nergens.txt");
    let run = env.run(&[
        "bench",
        "--model",
        dir.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("nergens.txt"), "{run:#?}");
    let run = env.run(&["bench", "--repeat", "0", file.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{run:#?}");
}

#[test]
fn segment_and_summarize_commands() {
    let env = Env::new();
    let file = env.write("a.txt", ARTICLE);
    let run = env.run(&["segment", file.to_str().unwrap()]).code(0);
    assert_eq!(
        run.stdout,
        "Nieuwe brug over de Maas geopend\n\
         De nieuwe brug bij Venlo is dinsdag geopend door de burgemeester.\n\
         Duizenden fietsers reden er de eerste dag overheen.\n\
         Volgens de gemeente kostte de bouw 40 miljoen euro.\n\
         De oude brug wordt volgend jaar gesloopt.\n\
         - Lengte: 300 meter\n\
         - Bouwtijd: drie jaar\n"
    );
    // List items with their markers as written; a continued item has none.
    let list = env
        .run_with_stdin(
            &["segment", "-"],
            "Op de lijst:\n\n• melk\n1. brood en kaas\na) appels. Ook peren.\n".as_bytes(),
        )
        .code(0);
    assert_eq!(
        list.stdout,
        "Op de lijst:\n• melk\n1. brood en kaas\na) appels.\nOok peren.\n"
    );
    let json = env
        .run_with_stdin(&["segment", "--format", "json", "-"], ARTICLE.as_bytes())
        .code(0)
        .json();
    let segments = json["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 8);
    assert_eq!(segments[0]["type"], "metadata");
    assert_eq!(segments[0]["value"], "ANP");
    assert_eq!(segments[3]["paragraph"], 1);
    assert_eq!(
        segments[3]["span"]["start"],
        ARTICLE.find("Duizenden").unwrap()
    );
    let lines = env
        .run_with_stdin(&["segment", "--segment", "lines"], b"a. b.\nc\n")
        .code(0);
    assert_eq!(lines.stdout, "a. b.\nc\n");
    // Other languages: the language-independent rules, or English ones.
    let zh = env
        .run_with_stdin(
            &["segment", "--lang", "zh", "-"],
            "北京下雪了\n今天很冷。我们在家吧！".as_bytes(),
        )
        .code(0);
    assert_eq!(zh.stdout, "北京下雪了\n今天很冷。\n我们在家吧！\n");
    let en = env
        .run_with_stdin(
            &["segment", "--lang", "en"],
            b"Mr. Smith left. He was late.",
        )
        .code(0);
    assert_eq!(en.stdout, "Mr. Smith left.\nHe was late.\n");
    let bad = env.run(&["segment", "--lang", "x1", "-"]).code(2);
    assert!(bad.stderr.contains("not a language code"), "{}", bad.stderr);

    let english = "The council approved the budget on Tuesday. Taxes will rise by two percent.\n\n\
                   Councillors argued for hours. The money pays for roads and a new school. \
                   Work starts in May.";
    let en = env.write("en.txt", english);
    let run = env
        .run(&["summarize", "--lang", "en", en.to_str().unwrap()])
        .code(0);
    assert_eq!(
        run.stdout,
        "The council approved the budget on Tuesday.\nTaxes will rise by two percent.\n"
    );
    let json = env
        .run(&[
            "summarize",
            "--summary-sentences",
            "1",
            "-f",
            "json",
            en.to_str().unwrap(),
        ])
        .code(0)
        .json();
    assert_eq!(json["input_sentences"], 5);
    assert_eq!(json["sentences"][0]["index"], 0);
    // A headline at the top is not a summary sentence, and the lead it resembles stays in.
    let headlined = env.write(
        "headlined.txt",
        format!("Council approves budget and higher taxes\n{english}"),
    );
    let run = env
        .run(&["summarize", "--lang", "en", headlined.to_str().unwrap()])
        .code(0);
    assert_eq!(
        run.stdout,
        "The council approved the budget on Tuesday.\nTaxes will rise by two percent.\n"
    );
    let run = env
        .run(&["summarize", "--lang", "nl", en.to_str().unwrap()])
        .code(2);
    assert!(run.stderr.contains("tolk translate"), "{}", run.stderr);
    let empty = env.run_with_stdin(&["summarize"], b"  \n").code(0);
    assert_eq!(empty.stdout, "");
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let env = Env::new();
    let big = "Dit is een zin over de brug. ".repeat(40_000);
    let file = env.write("big.txt", &big);
    let mut child = env
        .tolk(&["segment", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stderr, b"");
}

#[test]
fn models_commands_on_a_directory_and_the_catalogue() {
    let env = Env::new();
    let list = env.run(&["models", "list"]).code(0).stdout;
    let header = list.lines().next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("REPOSITORY"),
        "{list}"
    );
    assert!(
        list.contains("opus-mt-nl-en") && list.contains("Helsinki-NLP/opus-mt-nl-en@"),
        "{list}"
    );
    let json = env.run(&["models", "list", "-f", "json"]).code(0).json();
    let opus = json
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "opus-mt-nl-en")
        .unwrap();
    assert_eq!(opus["cached"], false);
    assert_eq!(opus["task"], "translation");

    let dir = fixture_dir("marian-tiny");
    let info = env
        .run(&["models", "info", dir.to_str().unwrap()])
        .code(0)
        .stdout;
    assert!(info.contains("ready        yes"), "{info}");
    assert!(
        info.contains("model.safetensors") && info.contains("used"),
        "{info}"
    );
    let info = env
        .run(&["models", "info", "opus-mt-nl-en", "-f", "json"])
        .code(0)
        .json();
    assert_eq!(info["ready"], false);
    assert!(info["problem"]
        .as_str()
        .unwrap()
        .contains("not in the cache"));
    let run = env.run(&["models", "fetch", dir.to_str().unwrap()]).code(0);
    assert_eq!(
        run.stdout,
        format!(
            "{0}: a local directory with every file the model needs\n{0}\n",
            dir.display()
        )
    );
    let run = env.run(&["models", "fetch", "opus-mt-nl-en"]).code(2);
    assert!(
        run.stderr.starts_with("error: cannot fetch"),
        "{}",
        run.stderr
    );
}

#[cfg(feature = "hub")]
#[test]
fn models_fetch_from_the_hub_then_translate_offline() {
    use crate::hub_server::{FakeHub, FakeRepo};
    const COMMIT: &str = "1111111111111111111111111111111111111111";
    let hub = FakeHub::start();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(fixture_dir("marian-tiny")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "reference.json" && name != "pytorch_model.bin" {
            files.push((name, std::fs::read(entry.path()).unwrap()));
        }
    }
    hub.add_repo(
        "Helsinki-NLP/opus-mt-nl-en",
        FakeRepo::new().commit(COMMIT, files).branch("main", COMMIT),
    );
    let env = Env::new();
    let with_hub = |args: &[&str]| {
        Run::from(
            env.tolk(args)
                .env("HF_ENDPOINT", hub.endpoint())
                .output()
                .unwrap(),
        )
    };
    let run = with_hub(&["models", "fetch"]).code(0);
    assert!(
        run.stdout.starts_with(&format!(
            "opus-mt-nl-en: Helsinki-NLP/opus-mt-nl-en@{COMMIT}, downloaded 7 file(s)\n"
        )),
        "{}",
        run.stdout
    );
    // Not a terminal: no progress bars.
    assert_eq!(run.stderr, "");
    let again = with_hub(&["models", "fetch"]).code(0);
    assert!(
        again.stdout.contains("already in the cache"),
        "{}",
        again.stdout
    );
    let list = env.run(&["models", "list", "-f", "json"]).code(0).json();
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["name"] == "opus-mt-nl-en" && m["cached"] == true));
    let info = env.run(&["models", "info", "-f", "json"]).code(0).json();
    assert_eq!(info["ready"], true);
    assert_eq!(info["commit"], COMMIT);

    // The default model now loads from the cache with the network gone.
    let file = env.write("a.txt", "Een zin.");
    let json = env
        .run(&[
            "translate",
            "--offline",
            "--max-new-tokens",
            "4",
            "-f",
            "json",
            file.to_str().unwrap(),
        ])
        .code(0)
        .json();
    assert_eq!(json["model"]["name"], "opus-mt-nl-en");
    assert_eq!(json["model"]["repo"], "Helsinki-NLP/opus-mt-nl-en");
    assert_eq!(json["model"]["commit"], COMMIT);
    let forced = with_hub(&["models", "fetch", "--force"]).code(0);
    assert!(
        forced.stdout.contains("downloaded 7 file(s)"),
        "{}",
        forced.stdout
    );

    // A blob damaged in the cache (one flipped byte: size and framing still right) is reported
    // by `models info`, and `models fetch` replaces it.
    let info = env.run(&["models", "info"]).code(0).stdout;
    assert!(info.contains("ready        yes"), "{info}");
    let row = |info: &str, name: &str| {
        info.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {info}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        row(&info, "model.safetensors").ends_with("used sha256 ok"),
        "{info}"
    );
    assert!(
        row(&info, "config.json").ends_with("used git-sha1 ok"),
        "{info}"
    );
    let weights = env
        .path("hf/hub/models--Helsinki-NLP--opus-mt-nl-en/snapshots")
        .join(COMMIT)
        .join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&weights, &bytes).unwrap();
    let info = env.run(&["models", "info"]).code(0).stdout;
    assert!(
        info.contains("ready        no: ") && info.contains("model.safetensors is damaged"),
        "{info}"
    );
    assert!(
        row(&info, "model.safetensors").ends_with("used DAMAGED (sha256 mismatch)"),
        "{info}"
    );
    let json = env.run(&["models", "info", "-f", "json"]).code(0).json();
    assert_eq!(json["ready"], false);
    let entry = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "model.safetensors")
        .unwrap();
    assert_eq!(entry["hash"]["ok"], false);
    assert_eq!(entry["hash"]["algorithm"], "sha256");
    assert_ne!(entry["hash"]["expected"], entry["hash"]["actual"]);
    let repaired = with_hub(&["models", "fetch"]).code(0);
    assert!(
        repaired.stdout.contains("downloaded 1 file(s)"),
        "{}",
        repaired.stdout
    );
    let info = env.run(&["models", "info", "-f", "json"]).code(0).json();
    assert_eq!(info["ready"], true, "{info}");
}

#[test]
fn completions_for_each_shell_name_the_commands() {
    let env = Env::new();
    let commands = [
        "translate",
        "batch",
        "segment",
        "summarize",
        "bench",
        "models",
        "completions",
        "man",
    ];
    for (shell, marker) in [
        ("bash", "complete -F _tolk"),
        ("zsh", "#compdef tolk"),
        ("fish", "complete -c tolk"),
    ] {
        let script = env.run(&["completions", shell]).code(0).stdout;
        assert!(script.contains(marker), "{shell}: {script}");
        for command in commands {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
        // Options of subcommands too, and the nested `models` commands.
        for option in ["--max-new-tokens", "--shard", "--offline"] {
            assert!(
                script.contains(option.trim_start_matches('-')),
                "{shell} lacks {option}"
            );
        }
        assert!(script.contains("fetch"), "{shell} lacks models fetch");
    }
    // The bash script is valid bash.
    let path = env.write("tolk.bash", env.run(&["completions", "bash"]).stdout);
    let status = Command::new("bash").arg("-n").arg(&path).status().unwrap();
    assert!(status.success());
    for shell in ["powershell", "elvish"] {
        assert!(!env.run(&["completions", shell]).code(0).stdout.is_empty());
    }
    let run = env.run(&["completions", "tcsh"]).code(2);
    assert!(run.stderr.contains("invalid value"), "{}", run.stderr);
}

#[test]
fn the_man_page_renders() {
    let env = Env::new();
    let page = env.run(&["man"]).code(0).stdout;
    assert!(page.contains(".TH tolk 1"), "{page}");
    for command in ["translate", "batch", "models", "completions"] {
        assert!(page.contains(command), "the page lacks {command}");
    }

    let run = env.run(&["man", "--dir", "man/man1"]).code(0);
    let listed: Vec<&str> = run.stdout.lines().collect();
    for name in [
        "tolk.1",
        "tolk-batch.1",
        "tolk-models.1",
        "tolk-models-fetch.1",
    ] {
        assert!(
            listed.contains(&format!("man/man1/{name}").as_str()),
            "{name} not in {listed:?}"
        );
        let text = std::fs::read_to_string(env.path("man/man1").join(name)).unwrap();
        assert!(text.contains(".TH"), "{name}: {text}");
    }
    assert!(
        !listed.iter().any(|l| l.ends_with("tolk-help.1")),
        "{listed:?}"
    );

    // Rendered by groff where it is installed (man uses it): no warnings, and the text a reader
    // sees.
    let groff = Command::new("groff")
        .args(["-man", "-Tascii", "-ww", "-P-cbu"])
        .arg(env.path("man/man1/tolk-batch.1"))
        .output();
    match groff {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("--shard"), "{text}");
            assert!(
                out.stderr.is_empty(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        _ => eprintln!("groff is not installed: the rendering check is skipped"),
    }
}

/// `--segment lines` on a pipe is a co-process: the translation of a line can be read before the
/// next line is written (or standard input closed), and equals the line translated alone.
#[test]
fn segment_lines_on_a_pipe_answers_each_line_before_the_next() {
    use std::io::BufRead;
    let env = Env::new();
    let m = model_args();
    let args = with_model(
        &["translate", "--segment", "lines", "--no-summary"],
        &[],
        &m,
    );
    let mut child = env
        .tolk(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let lines = [
        "Het kabinet is gevallen.",
        "De premier biedt zijn ontslag aan.",
    ];
    let mut got = Vec::new();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        // Answered while standard input is still open.
        got.push(
            rx.recv_timeout(std::time::Duration::from_secs(60))
                .expect("no answer to a line before the next"),
        );
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let want: Vec<String> = lines
        .iter()
        .map(|l| {
            env.run_with_stdin(&args, format!("{l}\n").as_bytes())
                .code(0)
                .stdout
                .trim_end()
                .to_string()
        })
        .collect();
    assert_eq!(got, want);
}

/// JSON-lines input: a record per line out, ids of any type kept, input order, the records'
/// translations those of their texts alone; a bad line is named and stops the corpus.
#[test]
fn jsonl_records_keep_their_ids_and_order() {
    let env = Env::new();
    let m = model_args();
    let mut corpus = String::new();
    let mut ids = Vec::new();
    for i in 0..40 {
        let id = match i % 3 {
            0 => json!(i),
            1 => json!(format!("doc-{i}")),
            _ => json!({"n": i}),
        };
        corpus.push_str(&json!({"id": id, "text": format!("Bericht {i}\n\nHet kabinet heeft op dag {i} nieuwe plannen.")}).to_string());
        corpus.push('\n');
        ids.push(id);
    }
    env.write("corpus.jsonl", &corpus);
    let args = with_model(&["translate", "--no-summary", "corpus.jsonl"], &[], &m);
    let run = env.run(&args).code(0);
    let records: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 40);
    for (r, id) in records.iter().zip(&ids) {
        assert_eq!(&r["id"], id);
    }
    // The same as each text translated alone.
    let alone = env
        .run_with_stdin(
            &with_model(&["translate", "--no-summary", "-"], &[], &m),
            "Bericht 7\n\nHet kabinet heeft op dag 7 nieuwe plannen.".as_bytes(),
        )
        .code(0);
    assert_eq!(
        records[7]["translation"].as_str().unwrap(),
        alone.stdout.trim_end()
    );
    // Other field names, and a bad record: named by its line, the lines before it written.
    env.write(
        "other.ndjson",
        "{\"doc\": \"a\", \"body\": \"Hallo.\"}\n{\"doc\": \"b\"}\n{\"doc\": \"c\", \"body\": \"Dag.\"}\n",
    );
    let args = with_model(
        &[
            "translate",
            "--id-field",
            "doc",
            "--text-field",
            "body",
            "--no-summary",
            "other.ndjson",
        ],
        &[],
        &m,
    );
    let run = env.run(&args).code(2);
    assert!(
        run.stderr.contains("other.ndjson: line 2: no field `body`"),
        "{}",
        run.stderr
    );
    let first: Value = serde_json::from_str(run.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["id"], "a");
    // --format other than jsonl is refused.
    let args = with_model(&["translate", "--format", "text", "corpus.jsonl"], &[], &m);
    assert!(env.run(&args).code(2).stderr.contains("JSON lines"));
    // batch picks .jsonl files as corpora.
    let args = with_model(
        &[
            "batch",
            ".",
            "-o",
            "out",
            "--glob",
            "*.jsonl",
            "--no-summary",
        ],
        &[],
        &m,
    );
    env.run(&args).code(0);
    let written = std::fs::read_to_string(env.path("out/corpus.jsonl")).unwrap();
    assert_eq!(written.lines().count(), 40);
}

/// A JSON-lines corpus is decoded as every other input: `--encoding`, byte-order marks and the
/// decoding notes, through the one document path.
#[test]
fn jsonl_corpora_are_decoded_as_other_inputs() {
    let env = Env::new();
    let m = model_args();
    // "Café" in windows-1252: not UTF-8.
    let latin = env.write(
        "oud.jsonl",
        b"{\"id\": 1, \"text\": \"Het caf\xe9 is open.\"}\n{\"id\": 2, \"text\": \"Dag.\"}\n",
    );
    let latin = latin.to_str().unwrap();
    let strict = env.run(&with_model(&["translate", "--no-summary"], &[latin], &m));
    assert_eq!(strict.code, 2, "{strict:#?}");
    assert!(strict.stderr.contains("oud.jsonl"), "{}", strict.stderr);
    let named = env
        .run(&with_model(
            &["translate", "--no-summary", "--encoding", "windows-1252"],
            &[latin],
            &m,
        ))
        .code(0);
    let first: Value = serde_json::from_str(named.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["id"], 1);
    assert_eq!(first["source"], "Het café is open.");
    assert!(
        named
            .stderr
            .contains("oud.jsonl: decoded from windows-1252"),
        "{}",
        named.stderr
    );
    // UTF-16 with a byte-order mark and CRLF line ends: the same records.
    let u16 = env.write(
        "u16.jsonl",
        utf16le(
            "{\"id\": 1, \"text\": \"Het café is open.\"}\r\n{\"id\": 2, \"text\": \"Dag.\"}\r\n",
        ),
    );
    let wide = env
        .run(&with_model(
            &["translate", "--no-summary"],
            &[u16.to_str().unwrap()],
            &m,
        ))
        .code(0);
    let ids: Vec<Value> = wide
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].clone())
        .collect();
    assert_eq!(ids, [json!(1), json!(2)]);
    let record =
        |out: &str| -> Value { serde_json::from_str(out.lines().next().unwrap()).unwrap() };
    let (a, b) = (record(&wide.stdout), record(&named.stdout));
    assert_eq!(a["sentences"], b["sentences"]);
    assert_eq!(a["translation"], b["translation"]);
    // A batch reads its corpora the same way.
    let out = env.path("out").display().to_string();
    let dir = env.path("").display().to_string();
    env.run(&with_model(
        &[
            "batch",
            &dir,
            "-o",
            &out,
            "--glob",
            "oud.jsonl",
            "--no-summary",
            "--encoding",
            "windows-1252",
        ],
        &[],
        &m,
    ))
    .code(0);
    let written = std::fs::read_to_string(env.path("out/oud.jsonl")).unwrap();
    assert!(written.contains("Het café is open."), "{written}");
}

/// Every output format is written for a text: `--format html` makes a page of the article, its
/// summary in a section of its own.
#[test]
fn a_text_is_written_as_an_html_page() {
    let env = Env::new();
    let m = model_args();
    let file = env.write("a.txt", ARTICLE);
    let run = env
        .run(&with_model(
            &["translate", "--format", "html"],
            &[file.to_str().unwrap()],
            &m,
        ))
        .code(0);
    let page = &run.stdout;
    assert!(
        page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"),
        "{page}"
    );
    assert!(page.ends_with("</body>\n</html>\n"), "{page}");
    for part in [
        "<dl>\n<dt>bron</dt><dd>ANP</dd>\n</dl>",
        "<h1>",
        "<p>",
        "<ul>\n<li>",
        "<section class=\"summary\">",
    ] {
        assert!(page.contains(part), "{part}: {page}");
    }
    // Two paragraphs, one list of two items, every element closed.
    assert_eq!(page.matches("<p>").count(), 2, "{page}");
    assert_eq!(page.matches("</p>").count(), 2, "{page}");
    assert!(page.matches("<li>").count() > 2, "{page}"); // two items and the summary
    assert_eq!(
        page.matches("<li>").count(),
        page.matches("</li>").count(),
        "{page}"
    );
}
