//! `tolk batch`: mirrored outputs, resume, overwrite, bad files among good ones, shards, the lock
//! file, unwritable output directories, and runs killed at random moments.
//!
//! The kill test is parameterised by environment variables, so that a long soak can run the same
//! code as CI: `TOLK_KILL_FILES` (corpus size, default 50), `TOLK_KILL_ITERATIONS` (kills,
//! default 3), `TOLK_KILL_SEED` (delays). For example
//! `TOLK_KILL_FILES=200 TOLK_KILL_ITERATIONS=50 cargo test --release killed`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::cli::{model_args, with_model, Env, Run, ARTICLE};

fn article(i: usize) -> String {
    format!(
        "Bericht {i}\n\nDe gemeente meldt dat er {i} nieuwe woningen komen. De bouw begint in het \
         voorjaar.\n\nVolgens de wethouder is dat goed nieuws voor {} gezinnen.\n",
        i * 3 + 1
    )
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            } else {
                out.push(
                    p.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn report(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["input"].as_str().unwrap().to_string(),
                f["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

fn batch(env: &Env, extra: &[&str], m: &[String]) -> Run {
    let mut args = vec!["batch", "in", "-o", "out"];
    args.extend_from_slice(extra);
    env.run(&with_model(&args, &[], m))
}

#[test]
fn good_and_bad_files_resume_and_overwrite() {
    let env = Env::new();
    let m = model_args();
    env.write("in/a.txt", ARTICLE);
    env.write("in/sub/b.txt", article(1));
    env.write("in/sub/deeper/c.txt", article(2));
    env.write("in/empty.txt", "");
    let mut utf16 = vec![0xFF, 0xFE];
    for u in article(3).encode_utf16() {
        utf16.extend(u.to_le_bytes());
    }
    env.write("in/utf16.txt", utf16);
    env.write("in/binary.txt", b"GIF89a\x01\x00\x00\x00");
    env.write("in/latin1.txt", b"De caf\xe9 is open.\n");
    env.write("in/notes.md", "niet gezocht");
    env.write("in/.hidden.txt", "verborgen");

    let run = batch(&env, &["--format", "json"], &m).code(1);
    assert!(
        run.stderr
            .contains("failed: binary.txt: contains a NUL byte"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("failed: latin1.txt: is not valid UTF-8 at byte 6"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("5 done, 0 skipped, 2 failed"),
        "{}",
        run.stderr
    );
    assert_eq!(
        tree(&env.path("out")),
        [
            "a.json",
            "empty.json",
            "sub/b.json",
            "sub/deeper/c.json",
            "tolk-report.json",
            "utf16.json"
        ]
    );
    let r = report(&env.path("out/tolk-report.json"));
    assert_eq!(
        (
            r["done"].as_u64(),
            r["skipped"].as_u64(),
            r["failed"].as_u64()
        ),
        (Some(5), Some(0), Some(2))
    );
    assert_eq!(
        statuses(&r),
        [
            ("a.txt", "done"),
            ("binary.txt", "failed"),
            ("empty.txt", "done"),
            ("latin1.txt", "failed"),
            ("sub/b.txt", "done"),
            ("sub/deeper/c.txt", "done"),
            ("utf16.txt", "done"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let files = r["files"].as_array().unwrap();
    assert_eq!(files[2]["reason"], "empty input: nothing to translate");
    assert_eq!(files[6]["reason"], "decoded from UTF-16LE");
    assert_eq!(files[0]["output"], "a.json");
    assert!(r["sentences"].as_u64().unwrap() > 10);
    let out: Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("out/sub/b.json")).unwrap())
            .unwrap();
    assert_eq!(out["source"], article(1));
    let out: Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("out/utf16.json")).unwrap())
            .unwrap();
    assert_eq!(out["source"], article(3));

    // A re-run skips what is done and retries what failed.
    let before = modified(&env.path("out/a.json"));
    std::thread::sleep(Duration::from_millis(20));
    let run = batch(&env, &["--format", "json"], &m).code(1);
    assert!(
        run.stderr.contains("0 done, 5 skipped, 2 failed"),
        "{}",
        run.stderr
    );
    assert_eq!(modified(&env.path("out/a.json")), before);
    // A changed input is done again.
    std::thread::sleep(Duration::from_millis(20));
    env.write("in/sub/b.txt", article(9));
    let run = batch(&env, &["--format", "json"], &m).code(1);
    assert!(
        run.stderr.contains("1 done, 4 skipped, 2 failed"),
        "{}",
        run.stderr
    );
    // --overwrite redoes everything; --lossy rescues the Latin-1 file.
    let run = batch(&env, &["--format", "json", "--overwrite", "--lossy"], &m).code(1);
    assert!(
        run.stderr.contains("6 done, 0 skipped, 1 failed"),
        "{}",
        run.stderr
    );
    assert!(modified(&env.path("out/a.json")) > before);
    // Without the bad file: success.
    std::fs::remove_file(env.path("in/binary.txt")).unwrap();
    batch(&env, &["--format", "json"], &m).code(0);
    // --quiet: failures and the summary line are not repeated... but the status says it all.
    env.write("in/binary.txt", b"\x00");
    let run = batch(&env, &["--format", "json", "--quiet"], &m).code(1);
    assert!(run.stderr.contains("failed: binary.txt"), "{}", run.stderr);
    assert!(!run.stderr.contains("done,"), "{}", run.stderr);
}

#[test]
fn formats_globs_and_agreement_with_translate() {
    let env = Env::new();
    let m = model_args();
    let a = env.write("in/x/a.txt", ARTICLE);
    env.write("in/b.nl", article(4));
    env.write("in/c.text", article(5));
    for (format, ext) in [
        ("text", "txt"),
        ("markdown", "md"),
        ("json", "json"),
        ("jsonl", "jsonl"),
    ] {
        let out = format!("out-{format}");
        let args = with_model(
            &[
                "batch", "in", "-o", &out, "--format", format, "--glob", "*.txt", "--glob", "*.nl",
            ],
            &[],
            &m,
        );
        env.run(&args).code(0);
        assert_eq!(
            tree(&env.path(&out)),
            [
                format!("b.{ext}"),
                "tolk-report.json".into(),
                format!("x/a.{ext}")
            ]
        );
        let single = env
            .run(&with_model(
                &["translate", "--format", format],
                &[a.to_str().unwrap()],
                &m,
            ))
            .code(0)
            .stdout;
        let batched = std::fs::read_to_string(env.path(&format!("{out}/x/a.{ext}"))).unwrap();
        if format == "json" {
            // Identical but for the timings.
            let strip = |s: &str| {
                let mut v: Value = serde_json::from_str(s).unwrap();
                v.as_object_mut().unwrap().remove("timings");
                v
            };
            assert_eq!(strip(&batched), strip(&single));
        } else {
            assert_eq!(batched, single, "{format}");
        }
    }
    // Two inputs that would share an output: the second is refused, the first kept.
    env.write("in/x/a.md", "Een ander artikel.");
    let run = env
        .run(&with_model(
            &[
                "batch",
                "in",
                "-o",
                "out-clash",
                "--glob",
                "x/*",
                "-f",
                "json",
            ],
            &[],
            &m,
        ))
        .code(1);
    assert!(
        run.stderr
            .contains("failed: x/a.txt: its output x/a.json is already the output of x/a.md"),
        "{}",
        run.stderr
    );
    std::fs::remove_file(env.path("in/x/a.md")).unwrap();
    // A pattern with a slash matches the relative path.
    env.run(&with_model(
        &["batch", "in", "-o", "out-deep", "--glob", "x/*.txt"],
        &[],
        &m,
    ))
    .code(0);
    assert_eq!(tree(&env.path("out-deep")), ["tolk-report.json", "x/a.txt"]);
}

#[test]
fn shards_are_disjoint_and_cover_everything() {
    let env = Env::new();
    let m = model_args();
    let all: BTreeSet<String> = (0..24)
        .map(|i| {
            let rel = format!("d{}/artikel-{i}.txt", i % 4);
            env.write(&format!("in/{rel}"), format!("Zin {i}."));
            rel
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for k in 0..3 {
        let shard = format!("{k}/3");
        batch(&env, &["--shard", &shard], &m).code(0);
        let r = report(&env.path(&format!("out/tolk-report-shard-{k}-of-3.json")));
        assert_eq!(r["shard"], shard);
        let files: Vec<String> = statuses(&r).into_iter().map(|(f, _)| f).collect();
        assert!(!files.is_empty(), "shard {k} is empty");
        total += files.len();
        seen.extend(files);
    }
    assert_eq!(total, all.len(), "disjoint");
    assert_eq!(seen, all, "complete");
    // Stable: the same shard of the same files, listed elsewhere, is the same slice.
    let again = Env::new();
    for rel in all.iter().rev() {
        again.write(&format!("in/{rel}"), "Zin.");
    }
    batch(&again, &["--shard", "1/3"], &m).code(0);
    let r1 = report(&env.path("out/tolk-report-shard-1-of-3.json"));
    let r2 = report(&again.path("out/tolk-report-shard-1-of-3.json"));
    assert_eq!(statuses(&r1), statuses(&r2));
    let run = batch(&env, &["--shard", "3/3"], &m).code(2);
    assert!(run.stderr.contains("K counts from 0"), "{}", run.stderr);
}

/// Whether every output under `out` is complete: JSON outputs parse and carry their input;
/// hidden files are only temporary files or the lock.
fn check_no_partial_outputs(env: &Env, out: &Path) -> usize {
    let mut temps = 0;
    for rel in tree(out) {
        let name = rel.rsplit('/').next().unwrap();
        if name.starts_with('.') {
            assert!(
                name.contains(".tolk-tmp-") || name == ".tolk-batch.lock",
                "unexpected hidden file {rel}"
            );
            temps += usize::from(name.contains(".tolk-tmp-"));
            continue;
        }
        let text = std::fs::read_to_string(out.join(&rel)).unwrap();
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{rel} is not complete JSON ({e}): {text:?}"));
        if rel != "tolk-report.json" {
            let input = env.path(&format!("in/{}", rel.replace(".json", ".txt")));
            assert_eq!(
                json["source"],
                std::fs::read_to_string(input).unwrap(),
                "{rel}"
            );
        }
    }
    temps
}

/// Kills batch runs at random moments: never a partial output, and the next run cleans up and
/// completes.
#[test]
fn killed_runs_leave_no_partial_outputs() {
    let var = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let files = var("TOLK_KILL_FILES", 50) as usize;
    let iterations = var("TOLK_KILL_ITERATIONS", 3);
    let mut seed = var("TOLK_KILL_SEED", 0x5EED_1234_ABCD_0001) | 1;
    let env = Env::new();
    let m = model_args();
    for i in 0..files {
        env.write(&format!("in/part{}/artikel-{i}.txt", i % 5), article(i));
    }
    let redo = with_model(
        &[
            "batch",
            "in",
            "-o",
            "out",
            "--format",
            "json",
            "--overwrite",
        ],
        &[],
        &m,
    );
    let resume = with_model(&["batch", "in", "-o", "out", "--format", "json"], &[], &m);
    let output = |i: usize| env.path(&format!("out/part{}/artikel-{i}.json", i % 5));

    // A full run shows how long there is to hit.
    let t = Instant::now();
    env.run(&redo).code(0);
    let full = t.elapsed();
    let mut temps_seen = 0;
    for round in 0..iterations {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = full.mul_f64((seed % 1000) as f64 / 1000.0 * 1.1);
        // Alternate between redoing everything and resuming after losing a third of the outputs.
        let args = if round % 2 == 0 {
            &redo
        } else {
            for i in (round as usize % 3..files).step_by(3) {
                let _ = std::fs::remove_file(output(i));
            }
            &resume
        };
        let mut child = env.tolk(args).spawn().unwrap();
        std::thread::sleep(delay);
        // Mostly SIGKILL; every third round Ctrl-C (SIGINT), which stops tolk just as abruptly.
        if cfg!(unix) && round % 3 == 2 {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
        } else {
            let _ = child.kill();
        }
        child.wait().unwrap();
        temps_seen += check_no_partial_outputs(&env, &env.path("out"));
    }
    // The next run removes the leftovers and does exactly what is missing.
    for i in (0..files).step_by(4) {
        let _ = std::fs::remove_file(output(i));
    }
    let missing = (0..files).filter(|&i| !output(i).exists()).count() as u64;
    assert!(missing < files as u64, "the killed runs kept their outputs");
    let run = env.run(&resume).code(0);
    check_no_partial_outputs(&env, &env.path("out"));
    let r = report(&env.path("out/tolk-report.json"));
    assert_eq!(r["done"].as_u64().unwrap(), missing);
    assert_eq!(r["skipped"].as_u64().unwrap(), files as u64 - missing);
    assert!((0..files).all(|i| output(i).exists()));
    let leftovers: Vec<String> = tree(&env.path("out"))
        .into_iter()
        .filter(|f| f.rsplit('/').next().unwrap().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    eprintln!(
        "killed {iterations} runs of {files} files (full run {full:?}); temporary files seen after kills: {temps_seen}; {}",
        run.stderr.trim()
    );
}

#[test]
fn the_lock_file_refuses_a_second_run() {
    let env = Env::new();
    let m = model_args();
    env.write("in/a.txt", "Een zin.");
    std::fs::create_dir(env.path("out")).unwrap();
    // A run holding the lock: the operating system's lock on the file, whose body names it.
    let hold = |name: &str| {
        let path = env.path(&format!("out/{name}"));
        let info = serde_json::json!({"pid": 4242, "host": "0badf00d", "host_name": "testhost", "started_unix": 0});
        std::fs::write(&path, info.to_string()).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.try_lock().unwrap();
        file
    };
    let held = hold(".tolk-batch.lock");
    let run = batch(&env, &[], &m).code(2);
    assert!(
        run.stderr.contains(
            "another tolk batch run (process 4242 on testhost) is writing to this output directory"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(".tolk-batch.lock"), "{}", run.stderr);
    assert!(!env.path("out/a.txt").exists());
    // A shard has a lock of its own.
    batch(&env, &["--shard", "0/2", "--overwrite"], &m).code(0);
    // Released (as when its process ends, however it ends): the file left behind is taken over.
    drop(held);
    batch(&env, &[], &m).code(0);
    assert!(env.path("out/a.txt").exists());
    assert!(
        !env.path("out/.tolk-batch.lock").exists(),
        "removed at the end"
    );
}

#[test]
fn unusable_directories_are_clear_errors() {
    let env = Env::new();
    let m = model_args();
    // No input directory: nothing runs (checked before the model loads).
    let run = env
        .run(&["batch", "nowhere", "-o", "out", "--model", "./no-model"])
        .code(2);
    assert!(
        run.stderr
            .starts_with("error: cannot read the input directory nowhere"),
        "{}",
        run.stderr
    );
    env.write("in/a.txt", "Een zin.");
    env.write("in/sub/b.txt", "Nog een zin.");
    // A model that cannot load: nothing runs.
    let run = env
        .run(&["batch", "in", "-o", "out", "--model", "./no-model"])
        .code(2);
    assert!(
        run.stderr.contains("cannot load the model"),
        "{}",
        run.stderr
    );
    // Output into the input directory itself.
    let run = batch_to(&env, "in", &m).code(2);
    assert!(
        run.stderr.contains("is the input directory"),
        "{}",
        run.stderr
    );
    // The output directory is a file.
    env.write("file-out", "x");
    let run = batch_to(&env, "file-out", &m).code(2);
    assert!(
        run.stderr.starts_with("error: file-out: "),
        "{}",
        run.stderr
    );
    // A subdirectory cannot be created mid-run (a file is in the way): the run stops, keeps what
    // it wrote, says why, and exits 3 (aborted: worth retrying), not 1 (bad inputs).
    env.write("blocked/sub", "in the way");
    let run = batch_to(&env, "blocked", &m).code(3);
    assert!(
        run.stderr
            .contains("error: cannot write to the output directory, stopping: blocked/sub"),
        "{}",
        run.stderr
    );
    assert!(env.path("blocked/a.txt").exists());
    let r = report(&env.path("blocked/tolk-report.json"));
    assert!(r["aborted"].as_str().unwrap().contains("blocked/sub"));
    // Once the directory is usable again, the same command finishes the run.
    std::fs::remove_file(env.path("blocked/sub")).unwrap();
    batch_to(&env, "blocked", &m).code(0);
    let r = report(&env.path("blocked/tolk-report.json"));
    assert_eq!(
        statuses(&r),
        [
            ("a.txt".to_string(), "skipped".to_string()),
            ("sub/b.txt".to_string(), "done".to_string())
        ]
    );
    assert!(r["aborted"].is_null());
    // ... also when nothing could be written at all.
    std::fs::create_dir_all(env.path("blocked2/a.txt")).unwrap();
    let run = batch_to(&env, "blocked2", &m).code(3);
    assert!(
        run.stderr
            .contains("error: cannot write to the output directory, stopping: blocked2/a.txt"),
        "{}",
        run.stderr
    );
    // A read-only output directory (not testable as root, which may write anywhere).
    let ro = env.path("readonly");
    std::fs::create_dir(&ro).unwrap();
    set_mode(&ro, 0o555);
    let writable = std::fs::write(ro.join("probe"), "x").is_ok();
    if writable {
        eprintln!("running as root: the read-only directory case is skipped");
    } else {
        let run = batch_to(&env, "readonly", &m).code(2);
        assert!(
            run.stderr
                .contains("readonly/.tolk-batch.lock: Permission denied"),
            "{}",
            run.stderr
        );
    }
    set_mode(&ro, 0o755);
}

fn batch_to(env: &Env, out: &str, m: &[String]) -> Run {
    env.run(&with_model(&["batch", "in", "-o", out], &[], m))
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) {}
