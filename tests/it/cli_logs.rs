//! Logs and progress of the `tolk` binary: log lines go to standard error only (standard output
//! is byte for byte the same with and without `-vv`), `-v` reports the model load, `RUST_LOG`
//! reaches the batch timings, `--quiet` leaves only errors, `batch -v` logs every file, and no
//! progress bar is drawn when standard error is not a terminal (as here).

use crate::cli::{model_args, with_model, Env};

#[test]
fn logs_go_to_standard_error_and_never_change_the_output() {
    let env = Env::new();
    let file = env.write("artikel.txt", crate::cli::ARTICLE);
    let file = file.to_str().unwrap();
    let m = model_args();
    for format in ["text", "jsonl", "markdown"] {
        let plain = env
            .run(&with_model(&["translate", "-f", format], &[file], &m))
            .code(0);
        // No flag, no RUST_LOG: nothing on standard error, so no progress bar either.
        assert_eq!(plain.stderr, "", "{format}");
        let verbose = env
            .run(&with_model(
                &["-vv", "translate", "-f", format],
                &[file],
                &m,
            ))
            .code(0);
        assert_eq!(verbose.stdout, plain.stdout, "{format}");
        assert!(verbose.stderr.contains("DEBUG"), "{}", verbose.stderr);
        assert!(!plain.stdout.contains("INFO") && !plain.stdout.contains("DEBUG"));
    }
}

#[test]
fn verbose_shows_the_model_load_and_rust_log_the_batches() {
    let env = Env::new();
    let m = model_args();
    let text = crate::cli::ARTICLE.as_bytes();

    let run = env
        .run_with_stdin(&with_model(&["translate", "-v"], &[], &m), text)
        .code(0);
    let load = run
        .stderr
        .lines()
        .find(|l| l.contains("model loaded from"))
        .unwrap_or_else(|| panic!("no load line: {}", run.stderr));
    assert!(load.contains(" INFO "), "{load}");
    assert!(load.contains("backend=host"), "{load}");
    assert!(
        run.stderr.contains("model from the directory"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("translated 7 sentences"),
        "{}",
        run.stderr
    );
    // -v is info: no batch lines.
    assert!(!run.stderr.contains("DEBUG"), "{}", run.stderr);

    // RUST_LOG alone, in the standard syntax.
    let out = env
        .tolk(&with_model(&["translate", "--no-summary"], &[], &m))
        .env("RUST_LOG", "tolk=debug")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text)?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let batch = stderr
        .lines()
        .find(|l| l.contains("joined the search"))
        .unwrap_or_else(|| panic!("no batch line: {stderr}"));
    assert!(batch.contains("DEBUG"), "{batch}");
    assert!(batch.contains("source_tokens="), "{batch}");
    assert!(batch.contains(" s "), "{batch}");

    // A RUST_LOG that does not parse is reported, never fatal.
    let out = env
        .tolk(&with_model(
            &["translate", "--no-summary", "a.txt"],
            &[],
            &m,
        ))
        .env("RUST_LOG", "tolk=loud")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("warning: RUST_LOG ignored: "),
        "{stderr}"
    );
}

#[test]
fn quiet_leaves_only_errors() {
    let env = Env::new();
    let file = env.write("artikel.txt", crate::cli::ARTICLE);
    let m = model_args();
    let out = env
        .tolk(&with_model(
            &["translate", "-q"],
            &[file.to_str().unwrap()],
            &m,
        ))
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "");
    assert!(!out.stdout.is_empty());

    // An error still shows, and only the error.
    let out = env
        .tolk(&with_model(&["translate", "--quiet"], &["missing.txt"], &m))
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        !stderr.contains("TRACE") && !stderr.contains("INFO"),
        "{stderr}"
    );

    // -q and -v contradict each other.
    env.run(&with_model(
        &["translate", "-q", "-v"],
        &[file.to_str().unwrap()],
        &m,
    ))
    .code(2);
}

#[test]
fn batch_logs_every_file() {
    let env = Env::new();
    env.write("in/a.txt", crate::cli::ARTICLE);
    env.write("in/b.txt", "Een korte zin.\n");
    let m = model_args();
    let run = env
        .run(&with_model(&["-v", "batch", "in", "-o", "out"], &[], &m))
        .code(0);
    for name in ["a.txt", "b.txt"] {
        assert!(
            run.stderr
                .lines()
                .any(|l| l.contains(" INFO ") && l.contains(&format!("done: {name} in "))),
            "{name}: {}",
            run.stderr
        );
    }
    assert!(run.stderr.contains("2 inputs into out"), "{}", run.stderr);
    // The per-document line carries the file it belongs to.
    assert!(
        run.stderr
            .lines()
            .any(|l| l.contains("file{input=a.txt}") && l.contains("translated ")),
        "{}",
        run.stderr
    );
    // Without -v: as before, the summary line alone.
    let run = env
        .run(&with_model(&["batch", "in", "-o", "out2"], &[], &m))
        .code(0);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("2 done, 0 skipped, 0 failed"),
        "{}",
        run.stderr
    );
}

#[cfg(feature = "hub")]
#[test]
fn verbose_shows_the_resolution_and_every_download() {
    use crate::common::fixture_dir;
    use crate::hub_server::{FakeHub, FakeRepo};
    const COMMIT: &str = "2222222222222222222222222222222222222222";
    let hub = FakeHub::start();
    let mut files = Vec::new();
    for name in [
        "config.json",
        "model.safetensors",
        "source.spm",
        "target.spm",
        "vocab.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        let bytes = std::fs::read(fixture_dir("marian-tiny").join(name)).unwrap();
        files.push((name.to_string(), bytes));
    }
    let weights = files[1].1.len();
    hub.add_repo(
        "Helsinki-NLP/opus-mt-nl-en",
        FakeRepo::new().commit(COMMIT, files).branch("main", COMMIT),
    );
    let env = Env::new();
    let file = env.write("a.txt", "Een zin.");
    let translate = |extra: &str| {
        let out = env
            .tolk(&[
                extra,
                "translate",
                "--max-new-tokens",
                "4",
                file.to_str().unwrap(),
            ])
            .env("HF_ENDPOINT", hub.endpoint())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    // The first run downloads: the commit, every file with its size, the model load.
    let (first, stderr) = translate("-v");
    assert!(
        stderr.contains(&format!(
            "Helsinki-NLP/opus-mt-nl-en at main is commit {COMMIT}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "downloaded model.safetensors: {weights} bytes in "
        )),
        "{stderr}"
    );
    assert!(stderr.contains("resolve{model=opus-mt-nl-en}"), "{stderr}");
    assert!(stderr.contains("model loaded from"), "{stderr}");
    // The second comes from the cache, and says which commit.
    let (second, stderr) = translate("-v");
    assert_eq!(first, second);
    assert!(
        stderr.contains("Helsinki-NLP/opus-mt-nl-en at main from the cache")
            && stderr.contains(&format!("commit={COMMIT}")),
        "{stderr}"
    );
    assert!(!stderr.contains("downloaded model"), "{stderr}");
}
