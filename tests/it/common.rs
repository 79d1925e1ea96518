//! Shared helpers: the committed fixtures and their reference records.

use std::path::PathBuf;

use serde_json::Value;
use tolk::config::{EarlyStopping, GenerationConfig};

/// Directory of a committed fixture model (tests/fixtures/NAME).
pub fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The reference record written by tools/fixtures/make_fixtures.py.
pub fn reference(name: &str) -> Value {
    let path = fixture_dir(name).join("reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Applies a setting's transformers `generate()` keyword arguments to the model's defaults.
pub fn apply_kwargs(mut g: GenerationConfig, kwargs: &Value) -> GenerationConfig {
    for (k, v) in kwargs.as_object().unwrap() {
        match k.as_str() {
            "num_beams" => g.num_beams = v.as_u64().unwrap() as usize,
            "max_new_tokens" => g.max_new_tokens = Some(v.as_u64().unwrap() as usize),
            "max_length" => g.max_length = Some(v.as_u64().unwrap() as usize),
            "min_new_tokens" => g.min_new_tokens = Some(v.as_u64().unwrap() as usize),
            "min_length" => g.min_length = v.as_u64().unwrap() as usize,
            "length_penalty" => g.length_penalty = v.as_f64().unwrap() as f32,
            "num_return_sequences" => g.num_return_sequences = v.as_u64().unwrap() as usize,
            "no_repeat_ngram_size" => g.no_repeat_ngram_size = v.as_u64().unwrap() as usize,
            "repetition_penalty" => g.repetition_penalty = v.as_f64().unwrap() as f32,
            "forced_eos_token_id" => g.forced_eos_token_id = v.as_u64().map(|t| t as u32),
            "forced_bos_token_id" => g.forced_bos_token_id = v.as_u64().map(|t| t as u32),
            "early_stopping" => {
                g.early_stopping = match v {
                    Value::Bool(true) => EarlyStopping::Eager,
                    Value::Bool(false) => EarlyStopping::Heuristic,
                    _ => EarlyStopping::Never,
                }
            }
            other => panic!("setting uses an unmapped generate() argument `{other}`"),
        }
    }
    g
}

/// The strings of a JSON array (a reference's `sentences`).
pub fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// Token ids of a JSON array.
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// What a [`Faulty`] translator does on one of its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Panics.
    Panic,
    /// Returns an error.
    Fail,
}

/// A fault injector: translates with `inner`, except on the calls (rounds, counted from 0)
/// that `faults` names, where it panics or fails instead.
pub struct Faulty {
    pub inner: std::sync::Arc<dyn tolk::translate::SegmentTranslator>,
    pub faults: Vec<(usize, Fault)>,
    pub calls: std::sync::atomic::AtomicUsize,
}

impl Faulty {
    pub fn new(
        inner: std::sync::Arc<dyn tolk::translate::SegmentTranslator>,
        faults: &[(usize, Fault)],
    ) -> Self {
        Faulty {
            inner,
            faults: faults.to_vec(),
            calls: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl tolk::translate::SegmentTranslator for Faulty {
    fn translate_segments(
        &self,
        texts: &[&str],
        generation: &GenerationConfig,
    ) -> tolk::Result<Vec<tolk::translate::Translation>> {
        let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match self.faults.iter().find(|(at, _)| *at == call).map(|f| f.1) {
            Some(Fault::Panic) => panic!("injected panic on round {call}"),
            Some(Fault::Fail) => Err(tolk::Error::Internal(format!(
                "injected failure on round {call}"
            ))),
            None => self.inner.translate_segments(texts, generation),
        }
    }
}

/// The address `tolk serve` printed in its first line on standard error
/// (`tolk serve: listening on http://ADDR/ ...`).
#[cfg(all(unix, feature = "serve"))]
pub fn listening_addr(stderr: &mut impl std::io::BufRead) -> String {
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    line.split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(|a| a.trim_end_matches('/').to_string())
        .unwrap_or_else(|| panic!("{line}"))
}

/// One HTTP/1.1 request with a JSON body (empty for a GET) on a connection of its own; the
/// whole answer, status line first.
#[cfg(all(unix, feature = "serve"))]
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}
