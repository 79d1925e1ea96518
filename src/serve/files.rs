//! Files: LibreTranslate's `POST /translate_file` (a multipart `file` with `source`, `target`
//! and `api_key`, answered with `{"translatedFileUrl": ...}`) and `GET /download_file/{name}`,
//! and tolk's `POST /v1/translate_file`, which answers with the translated file itself.
//!
//! Every format of the one document path is taken: text, HTML, Markdown, DOCX, PPTX, ODT, ODP,
//! EPUB, SRT and WebVTT, each written back as itself. Translated files wait in a spool held in
//! memory, under names with 128 random bits that nothing from the client ever turns into a
//! path; they expire after `--file-ttl`, and the spool holds at most `--file-spool` bytes (the
//! oldest files go first).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::body::{self, Upload};
use super::libre::timed_out;
use super::{lang, ApiError, AppState};
use crate::document::{Document, DocumentOptions, Source};
use crate::formats::InputFormat;
use crate::pipeline::DocumentRun;

/// The formats `/translate_file` takes, as LibreTranslate lists them (`supportedFilesFormat`).
pub(crate) fn supported() -> Vec<String> {
    [
        ".txt", ".html", ".htm", ".md", ".docx", ".pptx", ".odt", ".odp", ".epub", ".srt", ".vtt",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Translated files waiting to be downloaded.
#[derive(Debug, Default)]
pub(crate) struct Spool {
    files: Mutex<HashMap<String, Spooled>>,
}

#[derive(Debug)]
struct Spooled {
    bytes: Arc<Vec<u8>>,
    filename: String,
    media_type: &'static str,
    made: Instant,
}

impl Spool {
    /// Keeps `bytes` for `ttl` within `limit` bytes in all (older files dropped to make room);
    /// returns its name.
    fn put(
        &self,
        bytes: Vec<u8>,
        filename: String,
        media_type: &'static str,
        ttl: Duration,
        limit: usize,
    ) -> Result<String, ApiError> {
        if bytes.len() > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the translated file ({} bytes) is larger than the server's file spool ({limit} bytes)",
                    bytes.len()
                ),
            ));
        }
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("no randomness: {e}"),
            )
        })?;
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let mut files = self.files.lock().map_err(|_| poisoned())?;
        let now = Instant::now();
        files.retain(|_, f| now.duration_since(f.made) < ttl);
        let mut held: usize = files.values().map(|f| f.bytes.len()).sum();
        while held + bytes.len() > limit {
            let Some(oldest) = files
                .iter()
                .min_by_key(|(_, f)| f.made)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(f) = files.remove(&oldest) {
                held -= f.bytes.len();
                tracing::info!(
                    bytes = f.bytes.len(),
                    "file spool full: the oldest translated file dropped"
                );
            }
        }
        files.insert(
            id.clone(),
            Spooled {
                bytes: Arc::new(bytes),
                filename,
                media_type,
                made: now,
            },
        );
        Ok(id)
    }

    /// The file named `name` (its id, then `-` and the file name), if it is there and fresh.
    fn get(&self, name: &str, ttl: Duration) -> Option<(Arc<Vec<u8>>, String, &'static str)> {
        let id = name.split('-').next()?;
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut files = self.files.lock().ok()?;
        let now = Instant::now();
        files.retain(|_, f| now.duration_since(f.made) < ttl);
        files
            .get(id)
            .map(|f| (Arc::clone(&f.bytes), f.filename.clone(), f.media_type))
    }
}

fn poisoned() -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "poisoned")
}

/// A file name made safe to show and to put in a header: its last path component, control
/// characters, quotes and separators replaced.
fn safe_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '"' | '\\' | '/' | ';' | '%') {
                '_'
            } else {
                c
            }
        })
        .take(200)
        .collect();
    let clean = clean.trim().trim_start_matches('.').to_string();
    if clean.is_empty() {
        "document.txt".to_string()
    } else {
        clean
    }
}

/// What one file request asked for and got.
struct Translated {
    bytes: Vec<u8>,
    filename: String,
    media_type: &'static str,
}

/// Reads a file request, translates its file and returns it: the part both endpoints share.
async fn translate_upload(
    state: &Arc<AppState>,
    addr: SocketAddr,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Translated, super::Ticket), ApiError> {
    if !state.options.file_translation {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Files translation are disabled on this server.",
        ));
    }
    let limit = state.options.max_file_bytes.saturating_add(64 << 10);
    let mut fields = body::read(uri, headers, body, limit).await?;
    let key = fields.string("api_key")?;
    let ticket = state.admit(key.as_deref(), addr, headers)?;
    let Some(source) = fields.string("source")? else {
        return Err(ApiError::bad("Invalid request: missing source parameter"));
    };
    let Some(target) = fields.string("target")? else {
        return Err(ApiError::bad("Invalid request: missing target parameter"));
    };
    let Some(at) = fields.files.iter().position(|f| f.field == "file") else {
        return Err(ApiError::bad("Invalid request: missing file parameter"));
    };
    let Upload {
        filename, bytes, ..
    } = fields.files.swap_remove(at);
    if bytes.len() > state.options.max_file_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Invalid request: the file ({} bytes) is larger than {} bytes",
                bytes.len(),
                state.options.max_file_bytes
            ),
        ));
    }
    let filename = safe_name(&filename);
    let ext = Path::new(&filename)
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| format!(".{}", e.to_ascii_lowercase()))
        .unwrap_or_default();
    if !supported().contains(&ext) {
        return Err(ApiError::bad(format!(
            "Invalid request: {} files are not supported; send one of {}",
            if ext.is_empty() {
                "extensionless"
            } else {
                &ext
            },
            supported().join(", ")
        )));
    }
    let format = InputFormat::of_path(Path::new(&filename));
    let options = DocumentOptions {
        input_format: Some(format),
        ..DocumentOptions::default()
    };
    let document_options = options.clone();
    // Opened (a package checked whole) off the async threads, within the request's time; text
    // is decoded so that its language can be told and its characters counted before it is
    // queued.
    let open_name = filename.clone();
    let opening = tokio::task::spawn_blocking(move || -> Result<(Document, String), ApiError> {
        let bad = |e: crate::Error| ApiError::bad(format!("Invalid request: {e}"));
        if format.is_markup() {
            let document =
                Document::open(Source::Bytes(bytes, open_name), &options).map_err(bad)?;
            let sample = document.markup_text().unwrap_or_default();
            Ok((document, sample))
        } else {
            let text = crate::input::decode_with_stats(&bytes, &open_name, &options.decode)
                .map_err(bad)?
                .0;
            let document =
                Document::open(Source::Text(text.clone(), open_name), &options).map_err(bad)?;
            Ok((document, text))
        }
    });
    let (document, sample) = tokio::time::timeout(state.options.request_timeout, opening)
        .await
        .map_err(|_| timed_out(state))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    ticket.check_chars(&sample)?;
    let target = lang::from_client(&target);
    let mut source = lang::from_client(&source);
    let models = &state.ready()?.models;
    if source == "auto" {
        let sources: Vec<String> = models
            .iter()
            .filter(|m| m.model.target == target)
            .map(|m| m.model.source.clone())
            .collect();
        source = match sources.as_slice() {
            [] => target.clone(),
            [one] => one.clone(),
            _ => lang::detect(&sample, &sources)[0].0.clone(),
        };
    }
    let index = models
        .iter()
        .position(|m| m.model.source == source && m.model.target == target)
        .ok_or_else(|| {
            ApiError::bad(format!(
                "{} ({target}) is not available as a target language from {} ({source})",
                lang::name(&target),
                lang::name(&source)
            ))
        })?;
    let output = document.output_format();
    let stem = Path::new(&filename)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("document");
    let out_name = format!("{stem}.{}.{}", lang::to_client(&target), output.extension());
    let media_type = output.media_type();
    let (id, cancel) = (ticket.id, Arc::clone(&ticket.cancel));
    let worker = Arc::clone(state);
    let work = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        let loaded = &worker.ready()?.models[index];
        let pipeline = &loaded.model.pipeline;
        let generation = pipeline.generation().clone();
        let client = loaded.scheduler.client(id, cancel);
        // The file alone: no summary (a file has no place for one).
        let run = DocumentRun {
            translator: &client,
            generation: &generation,
            summary: false,
        };
        let mut out = Vec::new();
        pipeline.translate_to(
            &run,
            document,
            &mut out,
            Path::new("<file>"),
            &document_options,
            &mut (),
        )?;
        Ok(out)
    });
    let bytes = tokio::time::timeout(state.options.request_timeout, work)
        .await
        .map_err(|_| timed_out(state))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok((
        Translated {
            bytes,
            filename: out_name,
            media_type,
        },
        ticket,
    ))
}

/// The URL the client reaches the server at: its `Host`, under the URL prefix; https when a
/// trusted proxy says so.
fn base_url(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .map_or_else(|| state.options.addr.to_string(), str::to_string);
    let trusted = state
        .options
        .trusted_proxies
        .iter()
        .any(|c| c.contains(peer.ip()));
    let https = trusted
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let scheme = if https { "https" } else { "http" };
    format!(
        "{scheme}://{host}{}",
        state.options.url_prefix.trim_end_matches('/')
    )
}

/// Percent-encodes a path segment.
fn encode_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `POST /translate_file`.
pub(crate) async fn translate_file(
    State(state): State<Arc<AppState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (t, ticket) = translate_upload(&state, addr, &uri, &headers, body).await?;
    let id = state.spool.put(
        t.bytes,
        t.filename.clone(),
        t.media_type,
        state.options.file_ttl,
        state.options.file_spool_bytes,
    )?;
    ticket.finish();
    let url = format!(
        "{}/download_file/{id}-{}",
        base_url(&state, &headers, addr),
        encode_segment(&t.filename)
    );
    Ok(Json(json!({ "translatedFileUrl": url })).into_response())
}

/// `POST /v1/translate_file`: the translated file itself.
pub(crate) async fn translate_file_native(
    State(state): State<Arc<AppState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (t, ticket) = translate_upload(&state, addr, &uri, &headers, body).await?;
    ticket.finish();
    Ok(attachment(t.bytes, &t.filename, t.media_type))
}

fn attachment(bytes: Vec<u8>, filename: &str, media_type: &'static str) -> Response {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        encode_segment(filename)
    );
    let mut r = (
        [(header::CONTENT_TYPE, HeaderValue::from_static(media_type))],
        bytes,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// `GET /download_file/{name}`.
pub(crate) async fn download_file(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    let (bytes, filename, media_type) =
        state
            .spool
            .get(&name, state.options.file_ttl)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "no such file: it has expired or was never here",
                )
            })?;
    Ok(attachment(bytes.as_ref().clone(), &filename, media_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_become_paths() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("C:\\x\\..\\a b.docx"), "a b.docx");
        assert_eq!(safe_name("\"; rm -rf.docx"), "__ rm -rf.docx");
        assert_eq!(safe_name(".."), "document.txt");
        assert_eq!(encode_segment("a b/é.docx"), "a%20b%2F%C3%A9.docx");
    }

    #[test]
    fn the_spool_expires_and_keeps_to_its_size() {
        let spool = Spool::default();
        let ttl = Duration::from_secs(60);
        let a = spool.put(vec![1; 60], "a".into(), "x/y", ttl, 100).unwrap();
        assert_eq!(spool.get(&format!("{a}-a.docx"), ttl).unwrap().0.len(), 60);
        let b = spool.put(vec![2; 60], "b".into(), "x/y", ttl, 100).unwrap();
        assert!(spool.get(&a, ttl).is_none(), "the oldest went to make room");
        assert!(spool.get(&b, ttl).is_some());
        assert!(spool.get(&b, Duration::ZERO).is_none(), "expired");
        assert!(spool
            .put(vec![0; 101], "c".into(), "x/y", ttl, 100)
            .is_err());
        assert!(spool.get("../../etc/passwd", ttl).is_none());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
    }
}
