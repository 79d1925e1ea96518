//! `tolk serve`: LibreTranslate's API and the native one over real HTTP on 127.0.0.1 (port 0),
//! with the tiny committed model: response shapes (string and list `q`; JSON, form and multipart
//! bodies), every bad input a clear 4xx, API keys, limits (413, 429, 503), 32 concurrent clients
//! getting what one-by-one requests get, their segments sharing batches, a client that goes away,
//! and a graceful shutdown with requests in flight.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tolk::pipeline::{GenerationOverrides, Pipeline, SummarizerChoice};
use tolk::serve::{ApiKey, Models, SchedulerOptions, ServeOptions, ServedModel, Server};
use tolk::translate::SegmentTranslator;

use crate::common::fixture_dir;
use crate::common::{Fault, Faulty};

fn pipeline(tokens: usize) -> Arc<Pipeline> {
    Arc::new(
        Pipeline::builder()
            .model_dir(fixture_dir("marian-tiny"))
            .overrides(
                GenerationOverrides::default()
                    .with_num_beams(1)
                    .with_max_new_tokens(tokens),
            )
            .summarizer(SummarizerChoice::default())
            .build()
            .unwrap(),
    )
}

#[allow(clippy::result_large_err)]
fn start_with(options: ServeOptions, tokens: usize) -> Server {
    start_translating(options, tokens, None)
}

/// [`start_with`], the model's segments translated by `translator` (default: its own).
#[allow(clippy::result_large_err)] // the loader returns the library's error type
fn start_translating(
    options: ServeOptions,
    tokens: usize,
    translator: Option<Arc<dyn SegmentTranslator>>,
) -> Server {
    let options = ServeOptions {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..options
    };
    let server = Server::start(options, move || {
        Ok(Models {
            models: vec![ServedModel {
                pipeline: pipeline(tokens),
                source: "nl".into(),
                target: "en".into(),
                translator,
            }],
            summarizer: None,
        })
    })
    .unwrap();
    assert_eq!(server.wait_until_ready(), Some(Ok(())));
    server
}

fn start() -> Server {
    start_with(ServeOptions::default(), 8)
}

/// One HTTP/1.1 exchange on a fresh connection: (status, headers in lower case, body).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    http_with(addr, method, path, content_type, &[], body)
}

/// [`http`] with more request headers.
fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: {content_type}\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

fn post_json(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let (status, _, b) = http(
        addr,
        "POST",
        path,
        "application/json",
        body.to_string().as_bytes(),
    );
    (status, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

fn error(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let (status, _, b) = http(addr, "POST", path, content_type, body);
    let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    (status, v["error"].as_str().unwrap_or("").to_string())
}

const ARTICLE: &str = "Kabinet valt\n\nHet kabinet is gevallen. De premier biedt zijn ontslag aan.";

#[test]
fn libretranslate_shapes_for_strings_lists_forms_and_auto() {
    let server = start();
    let a = server.addr();
    let (s, v) = post_json(
        a,
        "/translate",
        &json!({"q": ARTICLE, "source": "nl", "target": "en"}),
    );
    assert_eq!(s, 200, "{v}");
    let one = v["translatedText"].as_str().unwrap().to_string();
    assert!(one.contains("\n\n"), "the layout is kept: {one:?}");
    assert!(v.get("detectedLanguage").is_none() && v.get("alternatives").is_none());
    // The same text through the library's pipeline.
    let want = pipeline(8).run(ARTICLE).unwrap().translation;
    assert_eq!(one, want);
    // A list: a list back, same length and order.
    let (s, v) = post_json(
        a,
        "/translate",
        &json!({"q": [ARTICLE, "", "Goedemorgen."], "source": "nl", "target": "en", "api_key": null}),
    );
    assert_eq!(s, 200, "{v}");
    let list = v["translatedText"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0], one);
    assert_eq!(list[1], "");
    // A form body (libretranslatepy) and multipart (LibreTranslate's web page).
    let form = format!(
        "q={}&source=nl&target=en",
        ARTICLE.replace(' ', "+").replace('\n', "%0A")
    );
    let (s, _, b) = http(
        a,
        "POST",
        "/translate",
        "application/x-www-form-urlencoded",
        form.as_bytes(),
    );
    assert_eq!(s, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["translatedText"],
        one
    );
    let multipart = format!(
        "--XX\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n{ARTICLE}\r\n--XX\r\nContent-Disposition: form-data; name=\"source\"\r\n\r\nnl\r\n--XX\r\nContent-Disposition: form-data; name=\"target\"\r\n\r\nen\r\n--XX--\r\n"
    );
    let (s, _, b) = http(
        a,
        "POST",
        "/translate",
        "multipart/form-data; boundary=XX",
        multipart.as_bytes(),
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["translatedText"],
        one
    );
    // auto: detectedLanguage, an object for a string, a list for a list.
    let (_, v) = post_json(
        a,
        "/translate",
        &json!({"q": "Het kabinet heeft dinsdag nieuwe maatregelen aangekondigd.", "source": "auto", "target": "en"}),
    );
    assert_eq!(v["detectedLanguage"]["language"], "nl", "{v}");
    assert!(v["detectedLanguage"]["confidence"].as_f64().unwrap() > 0.0);
    let (_, v) = post_json(
        a,
        "/translate",
        &json!({"q": ["Het kabinet is gevallen.", "De premier biedt zijn ontslag aan."], "source": "auto", "target": "en"}),
    );
    assert_eq!(v["detectedLanguage"].as_array().unwrap().len(), 2, "{v}");
    // Alternatives: other hypotheses, never the translation itself.
    let (_, v) = post_json(
        a,
        "/translate",
        &json!({"q": "Goedemorgen allemaal.", "source": "nl", "target": "en", "alternatives": 2}),
    );
    let alts = v["alternatives"].as_array().unwrap();
    assert!(!alts.is_empty() && alts.len() <= 2, "{v}");
    assert!(alts.iter().all(|x| x != &v["translatedText"]));
    // Identity: source = target gives the text back.
    let (_, v) = post_json(
        a,
        "/translate",
        &json!({"q": "Hallo", "source": "nl", "target": "nl"}),
    );
    assert_eq!(v["translatedText"], "Hallo");
    // The other endpoints.
    let (s, _, b) = http(a, "GET", "/languages", "application/json", b"");
    assert_eq!(s, 200);
    let langs: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        langs,
        json!([{"code": "en", "name": "English", "targets": ["en"]},
               {"code": "nl", "name": "Dutch", "targets": ["en", "nl"]}])
    );
    let (s, _, b) = http(
        a,
        "POST",
        "/detect",
        "application/x-www-form-urlencoded",
        b"q=Het+weer+is+vandaag+erg+mooi+in+Amsterdam",
    );
    assert_eq!(s, 200);
    let d: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(d[0]["language"], "nl", "{d}");
    let (s, _, b) = http(a, "GET", "/frontend/settings", "", b"");
    assert_eq!(s, 200);
    let f: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        (f["charLimit"].clone(), f["keyRequired"].clone()),
        (json!(-1), json!(false))
    );
    server.shutdown().unwrap();
}

#[test]
fn bad_inputs_are_clear_4xx_and_the_server_keeps_serving() {
    let server = start();
    let a = server.addr();
    let j = "application/json";
    for (body, status, message) in [
        (
            json!({"source": "nl", "target": "en"}).to_string(),
            400,
            "Invalid request: missing q parameter",
        ),
        (
            json!({"q": "", "source": "nl", "target": "en"}).to_string(),
            400,
            "Invalid request: missing q parameter",
        ),
        (
            json!({"q": [], "source": "nl", "target": "en"}).to_string(),
            400,
            "Invalid request: missing q parameter",
        ),
        (
            json!({"q": "x", "target": "en"}).to_string(),
            400,
            "Invalid request: missing source parameter",
        ),
        (
            json!({"q": "x", "source": "nl"}).to_string(),
            400,
            "Invalid request: missing target parameter",
        ),
        (
            json!({"q": "x", "source": "xx", "target": "en"}).to_string(),
            400,
            "xx is not supported",
        ),
        (
            json!({"q": "x", "source": "nl", "target": "de"}).to_string(),
            400,
            "de is not supported",
        ),
        (
            json!({"q": "x", "source": "en", "target": "nl"}).to_string(),
            400,
            "Dutch (nl) is not available as a target language from English (en)",
        ),
        (
            json!({"q": 5, "source": "nl", "target": "en"}).to_string(),
            400,
            "Invalid request: q must be a string or a list of strings",
        ),
        (
            json!({"q": ["a", 5], "source": "nl", "target": "en"}).to_string(),
            400,
            "Invalid request: q must be a string or a list of strings",
        ),
        (
            json!({"q": "x", "source": "nl", "target": "en", "alternatives": "abc"}).to_string(),
            400,
            "Invalid request: alternatives parameter is not a number",
        ),
        (
            json!({"q": "x", "source": "nl", "target": "en", "format": "markdown"}).to_string(),
            400,
            "markdown format is not supported",
        ),
        (json!(["x"]).to_string(), 400, "Invalid JSON format"),
        ("{\"q\":".to_string(), 400, "Invalid JSON format"),
    ] {
        let (s, e) = error(a, "/translate", j, body.as_bytes());
        assert_eq!(
            (s, e.starts_with(message)),
            (status, true),
            "{body}: {s} {e}"
        );
    }
    let (s, e) = error(
        a,
        "/translate",
        j,
        b"{\"q\": \"caf\xe9\", \"source\": \"nl\", \"target\": \"en\"}",
    );
    assert_eq!(s, 400);
    assert!(e.contains("not valid UTF-8"), "{e}");
    let (s, e) = error(
        a,
        "/translate",
        "application/x-www-form-urlencoded",
        b"q=caf%E9&source=nl&target=en\xff",
    );
    assert_eq!(s, 400, "{e}");
    // A 50 MB body: 413, read no further than the limit.
    let big = vec![b'a'; 50 << 20];
    let (s, e) = error(a, "/translate", j, &big);
    assert_eq!(s, 413, "{e}");
    let (s, _, _) = http(a, "GET", "/nope", "", b"");
    assert_eq!(s, 404);
    // Still serving.
    let (s, _) = post_json(
        a,
        "/translate",
        &json!({"q": "Hallo wereld.", "source": "nl", "target": "en"}),
    );
    assert_eq!(s, 200);
    // The native API refuses what it does not know.
    let (s, v) = post_json(a, "/v1/translate", &json!({"text": "x", "optionz": {}}));
    assert_eq!(s, 400, "{v}");
    let (s, v) = post_json(
        a,
        "/v1/translate",
        &json!({"text": "x", "options": {"num_beams": 0}}),
    );
    assert_eq!(s, 400, "{v}");
    server.shutdown().unwrap();
}

/// The translation page: served at / with its assets, cacheable by ETag, under a restrictive
/// Content-Security-Policy, everything it loads from this server (relative links, so that a
/// --url-prefix works); off with --no-web-ui.
#[test]
fn the_page_is_served_with_its_assets_under_a_prefix_or_not_at_all() {
    let server = start();
    let a = server.addr();
    let (s, head, body) = http(a, "GET", "/", "", b"");
    assert_eq!(s, 200);
    let page = String::from_utf8(body).unwrap();
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    // Every resource of the page is relative: from this server, under any prefix.
    for link in ["href=\"static/tolk.css\"", "src=\"static/tolk.js\""] {
        assert!(page.contains(link), "{link}");
    }
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    assert!(
        !page.contains("<script>") && !page.contains("style="),
        "inline code: {page}"
    );
    // Labelled controls.
    for id in ["source", "target", "text", "api-key"] {
        assert!(page.contains(&format!("for=\"{id}\"")), "no label for {id}");
    }
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an etag")
        .trim()
        .to_string();
    let (s, _, body) = http_with(a, "GET", "/", "", &[("If-None-Match", &etag)], b"");
    assert_eq!((s, body.len()), (304, 0));
    for (path, kind) in [
        ("/static/tolk.js", "text/javascript"),
        ("/static/tolk.css", "text/css"),
    ] {
        let (s, head, body) = http(a, "GET", path, "", b"");
        assert_eq!(s, 200, "{path}");
        assert!(head.contains(kind), "{head}");
        let text = String::from_utf8(body).unwrap();
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{path}"
        );
    }
    // The script calls the API with relative paths that the server has.
    let (_, _, js) = http(a, "GET", "/static/tolk.js", "", b"");
    let js = String::from_utf8(js).unwrap();
    for api in [
        "\"v1/translate\"",
        "\"detect\"",
        "\"languages\"",
        "\"frontend/settings\"",
    ] {
        assert!(js.contains(api), "{api}");
    }
    server.shutdown().unwrap();

    let prefixed = start_with(
        ServeOptions {
            url_prefix: "/tolk".into(),
            ..ServeOptions::default()
        },
        4,
    );
    let a = prefixed.addr();
    assert_eq!(http(a, "GET", "/tolk/", "", b"").0, 200);
    assert_eq!(http(a, "GET", "/tolk/static/tolk.js", "", b"").0, 200);
    let (s, head, _) = http(a, "GET", "/tolk", "", b"");
    assert_eq!(s, 308);
    assert!(head.contains("location: /tolk/"), "{head}");
    assert_eq!(http(a, "GET", "/tolk/languages", "", b"").0, 200);
    assert_eq!(http(a, "GET", "/", "", b"").0, 404);
    assert_eq!(http(a, "GET", "/languages", "", b"").0, 404);
    prefixed.shutdown().unwrap();

    let api_only = start_with(
        ServeOptions {
            web_ui: false,
            ..ServeOptions::default()
        },
        4,
    );
    let a = api_only.addr();
    assert_eq!(http(a, "GET", "/", "", b"").0, 404);
    assert_eq!(http(a, "GET", "/static/tolk.js", "", b"").0, 404);
    api_only.shutdown().unwrap();
}

/// A round that panics or fails answers its own requests with 500 and the server goes on; the
/// scheduler never leaves a request waiting.
#[test]
fn a_failing_or_panicking_round_fails_only_its_own_requests() {
    // Rounds 1 and 3 of the scheduler go wrong.
    let faulty = Faulty::new(
        pipeline(4).shared_translator(),
        &[(1, Fault::Panic), (3, Fault::Fail)],
    );
    let server = start_translating(
        ServeOptions::default(),
        4,
        Some(Arc::new(faulty) as Arc<dyn SegmentTranslator>),
    );
    let a = server.addr();
    let j = "application/json";
    let body = json!({"q": "Het regent.", "source": "nl", "target": "en"}).to_string();
    // One at a time: each request is a round of its own.
    let answers: Vec<(u16, String)> = (0..5)
        .map(|_| {
            let (s, _, b) = http(a, "POST", "/translate", j, body.as_bytes());
            let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
            (s, v["error"].as_str().unwrap_or("").to_string())
        })
        .collect();
    let codes: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(codes, [200, 500, 200, 500, 200], "{answers:?}");
    assert!(answers[1].1.contains("panicked"), "{answers:?}");
    assert!(
        answers[3].1.contains("injected failure on round 3"),
        "{answers:?}"
    );
    // Still ready.
    assert_eq!(http(a, "GET", "/readyz", "", b"").0, 200);
    server.shutdown().unwrap();
}

/// A client is a key from the key file, else its address, which only trusted proxies may
/// name; keys may have limits of their own.
#[test]
fn clients_are_keys_from_the_key_file_or_addresses_through_trusted_proxies() {
    let j = "application/json";
    let ask = |a: SocketAddr, key: Option<&str>, q: &str, headers: &[(&str, &str)]| {
        let body = json!({"q": q, "source": "nl", "target": "en", "api_key": key}).to_string();
        http_with(a, "POST", "/translate", j, headers, body.as_bytes()).0
    };
    // Without a key file a made-up key is no identity: the address is limited.
    let open = start_with(
        ServeOptions {
            req_limit: Some(5),
            ..ServeOptions::default()
        },
        4,
    );
    let a = open.addr();
    let codes: Vec<u16> = (0..12)
        .map(|i| ask(a, Some(&format!("made-up-{i}")), "Hallo", &[]))
        .collect();
    assert_eq!(codes[..5], [200; 5], "{codes:?}");
    assert!(codes[5..].iter().all(|&c| c == 429), "{codes:?}");
    // Nor does a forwarded address from a peer that is no trusted proxy.
    let forged = [("X-Forwarded-For", "203.0.113.7")];
    assert_eq!(ask(a, None, "Hallo", &forged), 429);
    open.shutdown().unwrap();

    // Behind a trusted proxy (here the loopback), each forwarded client has its own limit.
    let proxied = start_with(
        ServeOptions {
            req_limit: Some(2),
            trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
            ..ServeOptions::default()
        },
        4,
    );
    let a = proxied.addr();
    for client in ["203.0.113.1", "for=\"[2001:db8::5]:443\""] {
        let header = if client.starts_with("for=") {
            ("Forwarded", client)
        } else {
            ("X-Forwarded-For", client)
        };
        let codes: Vec<u16> = (0..3).map(|_| ask(a, None, "Hallo", &[header])).collect();
        assert_eq!(codes, [200, 200, 429], "{client}");
    }
    proxied.shutdown().unwrap();

    // Keys with their own limits beside the server's.
    let keyed = start_with(
        ServeOptions {
            api_keys: vec![
                ApiKey {
                    key: "bulk".into(),
                    req_limit: Some(3),
                    char_limit: Some(60),
                },
                "small".into(),
            ],
            req_limit: Some(1),
            char_limit: Some(10),
            ..ServeOptions::default()
        },
        4,
    );
    let a = keyed.addr();
    let long = "Dit is een zin van meer dan twintig tekens.";
    let bulk: Vec<u16> = (0..4).map(|_| ask(a, Some("bulk"), long, &[])).collect();
    assert_eq!(bulk, [200, 200, 200, 429]);
    assert_eq!(ask(a, Some("small"), long, &[]), 400);
    assert_eq!(ask(a, Some("small"), "Hallo", &[]), 429);
    // A made-up key is refused, never counted as a new client.
    assert_eq!(ask(a, Some("made-up"), "Hallo", &[]), 403);
    keyed.shutdown().unwrap();
}

#[test]
fn api_keys_and_limits() {
    let keyed = start_with(
        ServeOptions {
            api_keys: vec!["s3cret".into()],
            char_limit: Some(20),
            batch_limit: Some(2),
            ..ServeOptions::default()
        },
        4,
    );
    let a = keyed.addr();
    let j = "application/json";
    let ask = |key: Value, q: Value| {
        let body = json!({"q": q, "source": "nl", "target": "en", "api_key": key}).to_string();
        error(a, "/translate", j, body.as_bytes())
    };
    assert_eq!(
        ask(Value::Null, json!("Hallo")),
        (
            400,
            "Please contact the server operator to get an API key".into()
        )
    );
    assert_eq!(
        ask(json!("wrong"), json!("Hallo")),
        (403, "Invalid API key".into())
    );
    assert_eq!(ask(json!("s3cret"), json!("Hallo")).0, 200);
    assert_eq!(
        ask(
            json!("s3cret"),
            json!("Dit is een zin van meer dan twintig tekens.")
        ),
        (
            400,
            "Invalid request: request (43) exceeds text limit (20)".into()
        )
    );
    assert_eq!(
        ask(json!("s3cret"), json!(["a", "b", "c"])),
        (
            400,
            "Invalid request: request (3) exceeds text limit (2)".into()
        )
    );
    let (_, _, b) = http(a, "GET", "/frontend/settings", "", b"");
    let f: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        (f["apiKeys"].clone(), f["charLimit"].clone()),
        (json!(true), json!(20))
    );
    keyed.shutdown().unwrap();

    // Rate: the third request of a minute is 429, with Retry-After.
    let limited = start_with(
        ServeOptions {
            req_limit: Some(2),
            ..ServeOptions::default()
        },
        4,
    );
    let a = limited.addr();
    let body = json!({"q": "Hallo", "source": "nl", "target": "en"}).to_string();
    for _ in 0..2 {
        assert_eq!(http(a, "POST", "/translate", j, body.as_bytes()).0, 200);
    }
    let (s, head, b) = http(a, "POST", "/translate", j, body.as_bytes());
    assert_eq!(s, 429);
    assert!(head.contains("retry-after:"), "{head}");
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["error"],
        "Slowdown: 2 per 1 minute"
    );
    limited.shutdown().unwrap();

    // Busy: no room for another request in flight, or no time: 503 with Retry-After.
    for options in [
        ServeOptions {
            max_in_flight: 0,
            ..ServeOptions::default()
        },
        ServeOptions {
            request_timeout: Duration::from_millis(1),
            ..ServeOptions::default()
        },
    ] {
        let busy = start_with(options, 200);
        let (s, head, _) = http(
            busy.addr(),
            "POST",
            "/translate",
            j,
            json!({"q": ARTICLE.repeat(20), "source": "nl", "target": "en"})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(s, 503);
        assert!(head.contains("retry-after:"), "{head}");
        busy.shutdown().unwrap();
    }
}

fn metric(addr: SocketAddr, name: &str) -> f64 {
    let (_, _, b) = http(addr, "GET", "/metrics", "", b"");
    String::from_utf8(b)
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name} "))
                .map(|v| v.parse().unwrap())
        })
        .unwrap_or(0.0)
}

#[test]
fn concurrent_clients_get_what_one_by_one_requests_get_in_shared_batches() {
    let server = start_with(
        ServeOptions {
            scheduler: SchedulerOptions {
                max_wait: Duration::from_millis(30),
                ..SchedulerOptions::default()
            },
            ..ServeOptions::default()
        },
        8,
    );
    let a = server.addr();
    let texts: Vec<String> = (0..32)
        .map(|i| format!("Bericht {i}\n\nHet kabinet heeft op dag {i} nieuwe plannen. De minister reageert morgen."))
        .collect();
    let alone: Vec<Value> = texts
        .iter()
        .map(|t| {
            post_json(
                a,
                "/translate",
                &json!({"q": t, "source": "nl", "target": "en"}),
            )
            .1
        })
        .collect();
    let before = metric(a, "tolk_batches_multi_request_total");
    let together: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = texts
            .iter()
            .map(|t| {
                s.spawn(move || {
                    post_json(
                        a,
                        "/translate",
                        &json!({"q": t, "source": "nl", "target": "en"}),
                    )
                    .1
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(together, alone);
    let after = metric(a, "tolk_batches_multi_request_total");
    assert!(
        after > before,
        "no batch held segments of several requests ({before} -> {after})"
    );
    // The native API: the --format json record.
    let (s, v) = post_json(a, "/v1/translate", &json!({"text": ARTICLE}));
    assert_eq!(s, 200);
    assert_eq!(
        v["translation"],
        pipeline(8).run(ARTICLE).unwrap().translation
    );
    assert_eq!(v["sentences"].as_array().unwrap().len(), 3);
    assert!(v["summary"]["sentences"].is_array());
    // Any input format through the one document path: a page comes back as a page.
    let (s, _, page) = http(
        a,
        "POST",
        "/v1/translate",
        "application/json",
        json!({"text": "<p>Het kabinet is <b>gevallen</b>.</p>", "input_format": "html", "format": "html"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(s, 200);
    let page = String::from_utf8(page).unwrap();
    assert!(page.starts_with("<p>") && page.contains("<b>"), "{page}");
    let (s, v) = post_json(
        a,
        "/v1/translate",
        &json!({"text": "x", "input_format": "docx"}),
    );
    assert_eq!(s, 400, "{v}");
    let (s, v) = post_json(
        a,
        "/v1/summarize",
        &json!({"text": "The water board starts a trial dike. It is made of seagrass. The dike is 800 metres long. It should be ready in 2026.", "sentences": 2}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["sentences"].as_array().unwrap().len(), 2);
    for path in ["/healthz", "/readyz"] {
        assert_eq!(http(a, "GET", path, "", b"").0, 200);
    }
    server.shutdown().unwrap();
}

#[test]
fn a_client_that_goes_away_is_dropped_and_shutdown_finishes_requests_in_flight() {
    let server = start_with(ServeOptions::default(), 60);
    let a = server.addr();
    let long: Vec<String> = (0..200)
        .map(|i| format!("Dit is zin nummer {i} van een lang verhaal over de polder."))
        .collect();
    let body = json!({"q": long.join(" "), "source": "nl", "target": "en"}).to_string();
    {
        let mut s = TcpStream::connect(a).unwrap();
        let head = format!(
            "POST /translate HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        // Gone before the answer.
    }
    let mut cancelled = 0.0;
    for _ in 0..200 {
        cancelled = metric(a, "tolk_cancelled_requests_total");
        if cancelled >= 1.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(cancelled >= 1.0, "the abandoned request was not cancelled");
    // Requests in flight when the server is told to stop are all answered.
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| http(a, "POST", "/translate", "application/json", body.as_bytes()).0)
            })
            .collect();
        // Until all four are in.
        for _ in 0..400 {
            if metric(a, "tolk_requests_in_flight") >= 4.0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(metric(a, "tolk_requests_in_flight"), 4.0);
        server.shutdown().unwrap();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<u16>>()
    });
    assert_eq!(results, vec![200; 4]);
    assert!(TcpStream::connect(a).is_err(), "no longer accepting");
}

#[test]
fn libretranslate_html_is_translated_in_place_as_the_library_does() {
    let server = start();
    let html =
        "<p>Het kabinet is <b>gevallen</b>.</p><img alt=\"De premier\" src=\"p.jpg\"><pre>x</pre>";
    let (s, v) = post_json(
        server.addr(),
        "/translate",
        &json!({"q": [html, "<h1>Kabinet valt</h1>"], "source": "nl", "target": "en", "format": "html"}),
    );
    assert_eq!(s, 200, "{v}");
    let out = v["translatedText"][0].as_str().unwrap();
    let markup = tolk::formats::Markup::parse(tolk::formats::InputFormat::Html, html, "t").unwrap();
    let p = pipeline(8);
    let want = p.translate_markup(&markup).unwrap().document;
    assert_eq!(out, want);
    assert!(
        out.starts_with("<p>") && out.ends_with("<pre>x</pre>"),
        "{out}"
    );
    assert_eq!(out.matches("<b>").count(), 1, "{out}");
    assert!(v["translatedText"][1].as_str().unwrap().starts_with("<h1>"));
    let (s, e) = error(
        server.addr(),
        "/translate",
        "application/json",
        br#"{"q": "x", "source": "nl", "target": "en", "format": "xml"}"#,
    );
    assert_eq!((s, e.as_str()), (400, "xml format is not supported"));
}

/// A multipart body: text fields, then a file field; (content type, body).
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "tolk-test-boundary-7d3";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    if let Some((filename, bytes)) = file {
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[test]
fn files_are_translated_in_their_own_format_and_downloaded_once_ready() {
    let reverse: Arc<dyn SegmentTranslator> = Arc::new(crate::formats::Reverse);
    let server = start_translating(
        ServeOptions {
            max_file_bytes: 64 << 10,
            ..ServeOptions::default()
        },
        8,
        Some(Arc::clone(&reverse)),
    );
    let addr = server.addr();
    let nl_en = [("source", "nl"), ("target", "en")];
    // LibreTranslate's two steps: a link, then the file.
    let (ct, body) = multipart(&nl_en, Some(("Weer/../a.docx", &crate::documents::docx())));
    let (status, _, b) = http(addr, "POST", "/translate_file", &ct, &body);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(status, 200, "{v}");
    let url = v["translatedFileUrl"].as_str().unwrap();
    let path = url.strip_prefix("http://test").expect(url);
    assert!(
        path.starts_with("/download_file/") && path.ends_with("-a.en.docx"),
        "{path}"
    );
    let (status, head, file) = http(addr, "GET", path, "text/plain", b"");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        "{head}"
    );
    assert!(
        head.contains("attachment; filename=\"a.en.docx\""),
        "{head}"
    );
    let doc = crate::documents::part(&file, "word/document.xml");
    assert!(
        crate::documents::texts(&doc, "w:t").contains("alweer regent Het"),
        "{doc}"
    );
    // Names that were never given, or that try to be paths, are 404.
    for bad in [
        "/download_file/00000000000000000000000000000000-a.docx",
        "/download_file/..%2F..%2Fetc%2Fpasswd",
        "/download_file/x",
    ] {
        assert_eq!(http(addr, "GET", bad, "text/plain", b"").0, 404, "{bad}");
    }
    // tolk's own endpoint answers with the file; subtitles keep their timing lines.
    let srt = "1\r\n00:00:01,000 --> 00:00:02,500\r\nHet regent\r\nalweer.\r\n";
    let (ct, body) = multipart(
        &[("source", "auto"), ("target", "en")],
        Some(("s.srt", srt.as_bytes())),
    );
    let (status, head, out) = http(addr, "POST", "/v1/translate_file", &ct, &body);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
    assert!(
        head.contains("application/x-subrip") && head.contains("s.en.srt"),
        "{head}"
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "1\r\n00:00:01,000 --> 00:00:02,500\r\nalweer.\r\nregent Het\r\n"
    );
    // Refusals, each with its reason.
    /// Fields, the file, the status wanted and what its message says.
    type Case<'a> = (
        Vec<(&'a str, &'a str)>,
        Option<(&'a str, Vec<u8>)>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (nl_en.to_vec(), None, 400, "missing file"),
        (
            vec![("target", "en")],
            Some(("a.txt", b"Hoi.".to_vec())),
            400,
            "missing source",
        ),
        (
            nl_en.to_vec(),
            Some(("a.exe", b"MZ".to_vec())),
            400,
            ".exe files are not supported",
        ),
        (
            nl_en.to_vec(),
            Some(("a.docx", b"Hoi".to_vec())),
            400,
            "not a readable zip",
        ),
        (
            nl_en.to_vec(),
            Some(("a.txt", vec![b'a'; 70 << 10])),
            413,
            "larger than",
        ),
        (
            vec![("source", "nl"), ("target", "de")],
            Some(("a.txt", b"Hoi.".to_vec())),
            400,
            "not available",
        ),
    ];
    for (fields, file, want, says) in cases {
        let (ct, body) = multipart(&fields, file.as_ref().map(|(n, b)| (*n, b.as_slice())));
        let (status, message) = error(addr, "/translate_file", &ct, &body);
        assert_eq!(status, want, "{message}");
        assert!(message.contains(says), "{says}: {message}");
    }
    let (_, settings) = {
        let (s, _, b) = http(addr, "GET", "/frontend/settings", "text/plain", b"");
        (s, serde_json::from_slice::<Value>(&b).unwrap())
    };
    assert_eq!(settings["filesTranslation"], true);
    assert!(settings["supportedFilesFormat"]
        .as_array()
        .unwrap()
        .contains(&json!(".docx")));
    server.shutdown().unwrap();

    // Turned off: refused, and the page is told.
    let server = start_translating(
        ServeOptions {
            file_translation: false,
            ..ServeOptions::default()
        },
        8,
        Some(reverse),
    );
    let (ct, body) = multipart(&nl_en, Some(("a.txt", b"Hoi.")));
    assert_eq!(error(server.addr(), "/translate_file", &ct, &body).0, 403);
    let (_, _, b) = http(
        server.addr(),
        "GET",
        "/frontend/settings",
        "text/plain",
        b"",
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["supportedFilesFormat"],
        json!([])
    );
    server.shutdown().unwrap();
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// The body reader on strange bodies (JSON, forms, multipart with odd parts, bytes that are
    /// none of them): fields, or a 400 or 413 with a message; never a panic or a 5xx. The fuzz
    /// target `fuzz/fuzz_targets/body.rs` runs the same reader for longer.
    #[test]
    fn the_body_reader_answers_any_body_with_fields_or_a_4xx(
        kind in 0usize..6,
        noise in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
        text in "[a-z=&%\"{}\\[\\]:,\\\\ \r\n-]{0,120}",
        limit in 16usize..400,
    ) {
        let (content_type, body): (&str, Vec<u8>) = match kind {
            0 => ("application/json", text.clone().into_bytes()),
            1 => ("application/json", format!("{{\"q\": \"{text}\", \"source\": [1, {{}}]}}").into_bytes()),
            2 => ("application/x-www-form-urlencoded", text.clone().into_bytes()),
            3 => {
                let mut b = format!("--X\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n{text}\r\n--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{text}\"\r\n\r\n").into_bytes();
                b.extend(&noise);
                b.extend(b"\r\n--X--\r\n");
                ("multipart/form-data; boundary=X", b)
            }
            4 => ("multipart/form-data; boundary=X", noise.clone()),
            _ => ("text/plain", noise.clone()),
        };
        if let Err((status, message)) = tolk::serve::fuzz_body(content_type, &text, &body, limit) {
            proptest::prop_assert!(status == 400 || status == 413, "{status}: {message}");
            proptest::prop_assert!(!message.is_empty());
        }
    }
}
