//! Models that write several languages (OPUS-MT multi-target and tc-big: a `>>xxx<<` token in
//! front of the source chooses the language): the target-language option, against transformers'
//! outputs for `TOKEN + " " + sentence` (tools/fixtures/make_multi.py).

use tolk::translate::{LoadOptions, Translator};

use crate::common::{apply_kwargs, fixture_dir, ids, reference, strings};

const MULTI: &str = "marian-tiny-multi";

fn load(name: &str) -> Translator {
    Translator::from_dir(fixture_dir(name), &LoadOptions::default().with_cache(false)).unwrap()
}

#[test]
fn each_target_language_gives_what_transformers_gives_with_its_token_typed_in() {
    let reference = reference(MULTI);
    let sentences: Vec<&str> = strings(&reference["sentences"]);
    let languages = reference["languages"].as_object().unwrap();
    assert_eq!(languages.len(), 2);
    let mut compared = 0;
    // Each token by every way of naming it.
    for (token, names) in [
        (">>eng<<", ["en", "eng", ">>eng<<", "eng_Latn", "English"]),
        (">>deu<<", ["de", "deu", ">>deu<<", "__de__", "ger"]),
    ] {
        let entry = &languages[token];
        for name in names {
            let translator = load(MULTI).with_target_language(name).unwrap();
            assert_eq!(translator.target_token(), Some(token), "{name}");
            // The tokenizer: the token typed in gives the same ids as the option.
            for (s, want) in sentences.iter().zip(entry["input_ids"].as_array().unwrap()) {
                let typed = translator
                    .tokenizer()
                    .encode(&format!("{token} {s}"))
                    .unwrap();
                assert_eq!(typed, ids(want), "{token} {s}");
            }
            for (setting, recorded) in entry["settings"].as_object().unwrap() {
                let generation = apply_kwargs(translator.generation().clone(), &recorded["kwargs"]);
                let got = translator.translate_with(&sentences, &generation).unwrap();
                for ((t, want), s) in got
                    .iter()
                    .zip(recorded["results"].as_array().unwrap())
                    .zip(&sentences)
                {
                    assert_eq!(t.ids, ids(&want["ids"]), "{token} ({name}) {setting}: {s}");
                    assert_eq!(t.text, want["text"].as_str().unwrap());
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(compared, 2 * 5 * 2 * sentences.len());
    // The two languages give different translations (the token reaches the model).
    let eng = &languages[">>eng<<"]["settings"]["greedy"]["results"];
    let deu = &languages[">>deu<<"]["settings"]["greedy"]["results"];
    assert_ne!(eng, deu);
}

#[test]
fn a_model_of_several_languages_needs_one_and_names_them() {
    let translator = load(MULTI);
    assert_eq!(translator.target_token(), None);
    let e = translator
        .translate(&["Goedemorgen."])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--target-lang"), "{e}");
    assert!(e.contains("6 languages"), "{e}");
    assert!(e.contains("cmn_Hans, cmn_Hant, deu, eng, fry, nld"), "{e}");
    let refused = |code: &str| {
        load(MULTI)
            .with_target_language(code)
            .map(|t| t.target_token().map(str::to_string))
            .unwrap_err()
            .to_string()
    };
    let e = refused("fr");
    assert!(
        e.contains("`fr` is not one of this model's 6 target languages"),
        "{e}"
    );
    assert!(e.contains("eng, fry"), "{e}");
    let e = refused("zh");
    assert!(e.contains(">>cmn_Hans<<, >>cmn_Hant<<"), "{e}");
    assert!(refused("not a language!").contains("not a language code"));
    let chosen = |code: &str| {
        load(MULTI)
            .with_target_language(code)
            .unwrap()
            .target_token()
            .map(str::to_string)
    };
    assert_eq!(chosen("zh-Hant").as_deref(), Some(">>cmn_Hant<<"));
    assert_eq!(chosen("cmn_Hans").as_deref(), Some(">>cmn_Hans<<"));
    assert_eq!(chosen("fy").as_deref(), Some(">>fry<<"));
    assert_eq!(chosen("NL").as_deref(), Some(">>nld<<"));
}

#[test]
fn a_model_of_one_language_checks_the_target_language() {
    // marian-tiny's tokenizer_config.json says nl -> en.
    let t = load("marian-tiny").with_target_language("en").unwrap();
    assert_eq!(t.target_token(), None);
    assert!(load("marian-tiny").with_target_language("eng").is_ok());
    let e = load("marian-tiny")
        .with_target_language("de")
        .unwrap_err()
        .to_string();
    assert!(e.contains("translates into en only, not de"), "{e}");
}

#[test]
fn the_cli_takes_the_target_language_and_says_what_is_missing() {
    let dir = fixture_dir(MULTI);
    let tolk = env!("CARGO_BIN_EXE_tolk");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "translate",
            "--model",
            dir.to_str().unwrap(),
            "--no-summary",
            "--max-new-tokens",
            "8",
        ];
        args.extend_from_slice(extra);
        let mut child = std::process::Command::new(tolk)
            .args(&args)
            .env(
                "TOLK_CACHE_DIR",
                std::env::temp_dir().join("tolk-languages-test"),
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"Goedemorgen, hoe gaat het?\n")
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--target-lang"), "{stderr}");
    assert!(stderr.contains("deu, eng"), "{stderr}");
    let out = run(&["--target-lang", "de", "--source-lang", "nl"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.stdout.is_empty());
}

/// `tolk serve` gives a model that writes several languages its `--pair` target; one it does
/// not write stops the server with the list.
#[test]
#[cfg(all(unix, feature = "serve"))]
fn the_server_translates_into_the_pairs_target() {
    let dir = fixture_dir(MULTI);
    let cache = tempfile::tempdir().unwrap();
    let serve = |pair: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tolk"))
            .args(["serve", "--host", "127.0.0.1", "--port", "0", "--no-web-ui"])
            .args(["--model", dir.to_str().unwrap(), "--pair", pair])
            .args(["--max-new-tokens", "8"])
            .env("TOLK_CACHE_DIR", cache.path())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut child = serve("nl-de");
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let addr = crate::common::listening_addr(&mut stderr);
    let request =
        |method: &str, path: &str, body: &str| crate::common::http(&addr, method, path, body);
    let mut ready = false;
    for _ in 0..300 {
        if request("GET", "/readyz", "").starts_with("HTTP/1.1 200") {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(ready, "never ready");
    let answer = request(
        "POST",
        "/translate",
        r#"{"q": "Goedemorgen, hoe gaat het?", "source": "nl", "target": "de"}"#,
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("translatedText"), "{answer}");
    let _ = child.kill();
    let _ = child.wait();

    // A target the model does not write: the models do not load, and the server says why.
    let child = serve("nl-fr");
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`fr` is not one of this model's"),
        "{stderr}"
    );
}
