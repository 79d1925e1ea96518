//! `tolk serve`: a translation server that LibreTranslate's clients can use unchanged, with a
//! native API beside it, batching the segments of all requests in flight together.
//!
//! - **LibreTranslate's API** (`libre.rs`), field by field as LibreTranslate 1.9 answers:
//!   `POST /translate` (JSON, form or multipart bodies; `q` a string or a list; `source` a code
//!   or `auto`; `alternatives`; `api_key`), `GET /languages`, `POST /detect`,
//!   `GET /frontend/settings`, errors as `{"error": "..."}` with its status codes and messages.
//! - **Native API** (`native.rs`): `POST /v1/translate` (an article, with the command line's
//!   generation options; the `--format json` record, or any other format, as the answer),
//!   `POST /v1/summarize`, `GET /healthz`, `GET /readyz`, `GET /metrics` (Prometheus).
//! - **One document path.** Every text goes through [`Pipeline::run_blocks_with`] as any document
//!   does; only its segments' way to the model differs: through the model's [`Scheduler`], which
//!   batches the segments of every request in flight (`scheduler.rs`).
//! - **Safe under load.** Bounded body size (413), characters per text (LibreTranslate's
//!   `char_limit`), list length, requests in flight and queued segments (503 with `Retry-After`),
//!   per-client request rate (429 with `Retry-After`), a per-request timeout; a request whose
//!   client goes away is dropped from the queue; API keys compared in constant time and never
//!   logged; CORS off unless asked for; clients choose among the models loaded at start only.
//! - **Operations.** The listener opens at once (`/healthz` answers) while the models load in the
//!   background (`/readyz` says when they are in); SIGTERM or SIGINT stops accepting and lets the
//!   requests in flight finish within the grace period.

mod access;
mod body;
mod files;
mod lang;
mod libre;
mod metrics;
mod native;
mod web;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::document::{Document, DocumentOptions, Source};
use crate::formats::InputFormat;
pub use crate::scheduler::SchedulerOptions;

use crate::config::GenerationConfig;
use crate::error::{Error, Result};
use crate::pipeline::{DocumentRun, Pipeline};
use crate::record::{assemble, SentenceOutput};
use crate::scheduler::{self, Scheduler, SchedulerError};
use crate::stream::DocumentInput;
use crate::summarize::Summarizer;
use crate::translate::{SegmentTranslator, Translation};
pub use access::{ApiKey, Cidr};

/// The request body reader alone, for fuzzing (`fuzz/fuzz_targets/body.rs` and the property
/// test in the test suite): reads `body` as a request with `content_type` and `query` would be
/// read, at most `limit` bytes; the number of fields and files, or the status and message of
/// the refusal. Not part of the API.
#[doc(hidden)]
pub fn fuzz_body(
    content_type: &str,
    query: &str,
    body: &[u8],
    limit: usize,
) -> std::result::Result<(usize, usize), (u16, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| (500, e.to_string()))?;
    let uri: axum::http::Uri = format!("/translate?{query}")
        .parse()
        .unwrap_or_else(|_| axum::http::Uri::from_static("/translate"));
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        headers.insert(axum::http::header::CONTENT_TYPE, v);
    }
    let body = axum::body::Body::from(body.to_vec());
    runtime.block_on(async move {
        match body::read(&uri, &headers, body, limit).await {
            Ok(fields) => {
                let files = fields.files.len();
                let json = fields.into_json();
                Ok((json.as_object().map_or(0, |o| o.len()), files))
            }
            Err(e) => Err((e.status.as_u16(), e.message)),
        }
    })
}
use access::{Limiter, Refusal};
use metrics::Metrics;

/// One model the server offers, with its language pair.
#[derive(Clone)]
pub struct ServedModel {
    /// The pipeline (segmentation, translation, layout); its summariser serves `/v1/translate`.
    pub pipeline: Arc<Pipeline>,
    /// The source language's code (`nl`).
    pub source: String,
    /// The target language's code (`en`).
    pub target: String,
    /// What translates the segments that the model's scheduler batches; `None`: the pipeline's
    /// translator. (Another [`SegmentTranslator`]: one with instrumentation, or a test's fault
    /// injector.)
    pub translator: Option<Arc<dyn SegmentTranslator>>,
}

impl std::fmt::Debug for ServedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedModel")
            .field("source", &self.source)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// What the server serves, once loaded.
#[derive(Clone, Default)]
pub struct Models {
    /// The translation models.
    pub models: Vec<ServedModel>,
    /// The summariser of `POST /v1/summarize` (English text); `None`: the extractive one.
    pub summarizer: Option<Arc<dyn Summarizer>>,
}

/// The server's settings.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The address to listen on. Default `127.0.0.1:5000` (LibreTranslate's port).
    pub addr: SocketAddr,
    /// Valid API keys, each with its own limits if it has any; empty: no key needed, and a
    /// client is its address. Default: none.
    pub api_keys: Vec<ApiKey>,
    /// Proxies whose forwarded client addresses are believed (`Forwarded`, `X-Forwarded-For`);
    /// from any other peer those headers are ignored. Default: none.
    pub trusted_proxies: Vec<Cidr>,
    /// Most clients the rate limiter holds at once (those with a request in the last minute);
    /// more are refused with 503 and a log line. Default 100 000.
    pub max_clients: usize,
    /// Most characters of one text (LibreTranslate's `--char-limit`). Default: none.
    pub char_limit: Option<usize>,
    /// Most texts in one request's list (`--batch-limit`). Default: none.
    pub batch_limit: Option<usize>,
    /// Most bytes of a request body. Default 2 MiB.
    pub max_body_bytes: usize,
    /// Most requests answered at once; more get 503. Default 64.
    pub max_in_flight: usize,
    /// Most requests per minute from one client (API key, else address); more get 429.
    /// Default: none.
    pub req_limit: Option<u32>,
    /// Time a request may take; then 503. Default 120 s.
    pub request_timeout: Duration,
    /// The origin allowed by CORS (`*` for any). Default: none (no CORS headers).
    pub cors: Option<String>,
    /// How long requests in flight may take to finish after SIGTERM or SIGINT. Default 30 s.
    pub shutdown_grace: Duration,
    /// How the schedulers form rounds.
    pub scheduler: SchedulerOptions,
    /// Serve the translation page at `/` (LibreTranslate's web UI). Default `true`.
    pub web_ui: bool,
    /// A path every route is under (`/tolk`: the page at `/tolk/`, the API at
    /// `/tolk/translate`, ...), for a proxy that forwards a path; empty: none. Default: none.
    pub url_prefix: String,
    /// Translate files (`/translate_file`, `/v1/translate_file`; LibreTranslate's
    /// `--disable-files-translation` turns it off). Default `true`.
    pub file_translation: bool,
    /// Most bytes of an uploaded file. Default 32 MiB.
    pub max_file_bytes: usize,
    /// How long a translated file waits for its download. Default 30 minutes.
    pub file_ttl: Duration,
    /// Most bytes of translated files held for download at once (in memory; the oldest go
    /// first). Default 256 MiB.
    pub file_spool_bytes: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 5000)),
            api_keys: Vec::new(),
            trusted_proxies: Vec::new(),
            max_clients: 100_000,
            char_limit: None,
            batch_limit: None,
            max_body_bytes: 2 << 20,
            max_in_flight: 64,
            req_limit: None,
            request_timeout: Duration::from_secs(120),
            cors: None,
            shutdown_grace: Duration::from_secs(30),
            scheduler: SchedulerOptions::default(),
            web_ui: true,
            url_prefix: String::new(),
            file_translation: true,
            max_file_bytes: 32 << 20,
            file_ttl: Duration::from_secs(30 * 60),
            file_spool_bytes: 256 << 20,
        }
    }
}

/// A loaded model with its scheduler.
struct Loaded {
    model: ServedModel,
    scheduler: Scheduler,
}

/// What the handlers share.
pub(crate) struct AppState {
    options: ServeOptions,
    models: OnceLock<std::result::Result<LoadedModels, String>>,
    metrics: Arc<Metrics>,
    in_flight: AtomicU64,
    next_request: AtomicU64,
    limiter: Mutex<Limiter>,
    spool: files::Spool,
}

struct LoadedModels {
    models: Vec<Loaded>,
    summarizer: Arc<dyn Summarizer>,
}

/// An answer that is an error: `{"error": message}` with the status (and `Retry-After`).
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(crate) fn bad(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn busy(message: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
            retry_after: Some(retry_after),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        r
    }
}

/// An error of the library, as an answer: a full queue, a stopped scheduler and cancellation as
/// 503, everything else (a failed round included) a 500 (bad input is refused before it
/// reaches the library).
impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match &e {
            Error::Scheduler(SchedulerError::Busy { .. }) => ApiError::busy(e.to_string(), 2),
            Error::Scheduler(SchedulerError::Stopped | SchedulerError::Cancelled) => {
                ApiError::busy(e.to_string(), 5)
            }
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

/// A request's claim on the server: counted in flight, cancelled when dropped unfinished (its
/// client went away, or it timed out), so that its segments leave the queue.
pub(crate) struct Ticket {
    state: Arc<AppState>,
    pub(crate) id: u64,
    pub(crate) cancel: Arc<AtomicBool>,
    finished: bool,
    /// Most characters in one text for this client (its key's, else the server's).
    pub(crate) char_limit: Option<usize>,
}

impl Ticket {
    /// Refuses a text over the client's character limit (LibreTranslate's message).
    pub(crate) fn check_chars(&self, text: &str) -> std::result::Result<(), ApiError> {
        if let Some(limit) = self.char_limit {
            let n = text.chars().count();
            if n > limit {
                return Err(ApiError::bad(format!(
                    "Invalid request: request ({n}) exceeds text limit ({limit})"
                )));
            }
        }
        Ok(())
    }
}

impl Ticket {
    /// The request is answered: dropping the ticket no longer cancels it.
    pub(crate) fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.state.metrics.in_flight(-1);
        if !self.finished {
            self.cancel.store(true, Ordering::Release);
            self.state.metrics.cancelled();
        }
    }
}

impl AppState {
    /// The loaded models, or 503 while they load (500 if loading failed).
    fn ready(&self) -> std::result::Result<&LoadedModels, ApiError> {
        match self.models.get() {
            Some(Ok(m)) if m.models.iter().any(|l| !l.scheduler.is_running()) => Err(
                ApiError::busy("a translation scheduler has stopped; see the log", 30),
            ),
            Some(Ok(m)) => Ok(m),
            Some(Err(e)) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the models could not be loaded: {e}"),
            )),
            None => Err(ApiError::busy("the models are still loading", 5)),
        }
    }

    /// Admits a request: its API key checked (when the server has keys), its client found
    /// (the key, else the address: [`access`]), within its client's rate and below the
    /// in-flight limit. The ticket carries the client's character limit.
    pub(crate) fn admit(
        self: &Arc<Self>,
        key: Option<&str>,
        peer: SocketAddr,
        headers: &HeaderMap,
    ) -> std::result::Result<Ticket, ApiError> {
        let matched = self.check_key(key)?;
        let client = match matched {
            Some(k) => format!("key:{}", crate::fsutil::fnv1a(k.key.as_bytes())),
            None => {
                access::client_address(peer, headers, &self.options.trusted_proxies).to_string()
            }
        };
        let req_limit = matched.and_then(|k| k.req_limit).or(self.options.req_limit);
        if let Some(limit) = req_limit {
            let mut limiter = self
                .limiter
                .lock()
                .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "poisoned"))?;
            match limiter.check(&client, limit, Instant::now()) {
                Ok(()) => {}
                Err(Refusal::Rate { limit, retry_after }) => {
                    return Err(ApiError {
                        status: StatusCode::TOO_MANY_REQUESTS,
                        message: format!("Slowdown: {limit} per 1 minute"),
                        retry_after: Some(retry_after),
                    })
                }
                Err(Refusal::Full { .. }) => {
                    return Err(ApiError::busy(
                        "the server is serving too many clients; try again later",
                        60,
                    ))
                }
            }
        }
        let n = self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.metrics.in_flight(1);
        let mut ticket = Ticket {
            state: Arc::clone(self),
            id: self.next_request.fetch_add(1, Ordering::Relaxed),
            cancel: Arc::new(AtomicBool::new(false)),
            finished: true,
            char_limit: matched
                .and_then(|k| k.char_limit)
                .or(self.options.char_limit),
        };
        if n as usize >= self.options.max_in_flight {
            drop(ticket);
            return Err(ApiError::busy(
                format!(
                    "the server is answering {} requests already; try again later",
                    self.options.max_in_flight
                ),
                1,
            ));
        }
        // From here on, dropping it unfinished means the request was abandoned.
        ticket.finished = false;
        Ok(ticket)
    }

    /// Checks the API key, if the server has keys (in constant time; the key is never logged):
    /// the key file's entry, or `None` when keys are not checked.
    fn check_key(&self, key: Option<&str>) -> std::result::Result<Option<&ApiKey>, ApiError> {
        if self.options.api_keys.is_empty() {
            return Ok(None);
        }
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return Err(ApiError::bad(
                "Please contact the server operator to get an API key",
            ));
        };
        let mut found = None;
        for k in &self.options.api_keys {
            if constant_time_eq(k.key.as_bytes(), key.as_bytes()) && found.is_none() {
                found = Some(k);
            }
        }
        match found {
            Some(k) => Ok(Some(k)),
            None => Err(ApiError::new(StatusCode::FORBIDDEN, "Invalid API key")),
        }
    }

    /// The model translating `source` to `target` (model codes).
    fn model(&self, source: &str, target: &str) -> std::result::Result<Option<&Loaded>, ApiError> {
        Ok(self
            .ready()?
            .models
            .iter()
            .find(|m| m.model.source == source && m.model.target == target))
    }

    /// Every language the loaded models take or give, sorted.
    fn languages(&self) -> std::result::Result<Vec<String>, ApiError> {
        let mut codes: Vec<String> = self
            .ready()?
            .models
            .iter()
            .flat_map(|m| [m.model.source.clone(), m.model.target.clone()])
            .collect();
        codes.sort();
        codes.dedup();
        Ok(codes)
    }
}

/// Byte strings equal, in time that depends on their lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, &x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(!x);
    }
    diff == 0
}

/// What translating one text gave: the translation, and alternatives when they were asked for.
pub(crate) struct TextResult {
    pub translation: String,
    pub alternatives: Vec<String>,
}

/// The request's segments go through the scheduler; every hypothesis of each segment is kept,
/// for alternatives.
struct Recording<'a> {
    inner: &'a dyn SegmentTranslator,
    hypotheses: Mutex<Vec<Vec<String>>>,
}

impl SegmentTranslator for Recording<'_> {
    fn translate_segments(
        &self,
        texts: &[&str],
        generation: &GenerationConfig,
    ) -> Result<Vec<Translation>> {
        let out = self.inner.translate_segments(texts, generation)?;
        if let Ok(mut h) = self.hypotheses.lock() {
            h.extend(
                out.iter()
                    .map(|t| t.hypotheses.iter().map(|h| h.text.clone()).collect()),
            );
        }
        Ok(out)
    }
}

/// Translates one text with `model` through its scheduler, on a blocking thread: the pipeline's
/// document path, without a summary. With `alternatives`, up to that many other translations
/// (each segment's next hypotheses, put into the layout), without duplicates.
pub(crate) async fn translate_text(
    state: &Arc<AppState>,
    model: usize,
    text: String,
    generation: Option<GenerationConfig>,
    alternatives: usize,
    html: bool,
    ticket: &Ticket,
) -> std::result::Result<TextResult, ApiError> {
    let state = Arc::clone(state);
    let (id, cancel) = (ticket.id, Arc::clone(&ticket.cancel));
    tokio::task::spawn_blocking(move || -> std::result::Result<TextResult, ApiError> {
        let loaded = &state.ready()?.models[model];
        let pipeline = &loaded.model.pipeline;
        let mut generation = generation.unwrap_or_else(|| pipeline.generation().clone());
        if alternatives > 0 {
            generation.num_return_sequences = alternatives + 1;
            generation.num_beams = generation.num_beams.max(alternatives + 1);
        }
        let client = loaded.scheduler.client(id, cancel);
        let recording = Recording {
            inner: &client,
            hypotheses: Mutex::new(Vec::new()),
        };
        let run = DocumentRun {
            translator: &recording,
            generation: &generation,
            summary: false,
        };
        if html {
            // The page's text translated in place, inline markup on the aligned words, through
            // the one document entry (one translation: alternatives are for texts).
            let options = DocumentOptions {
                input_format: Some(InputFormat::Html),
                ..DocumentOptions::default()
            };
            let document = Document::open(Source::Text(text, "<request>".into()), &options)
                .map_err(|e| ApiError::bad(e.to_string()))?;
            let mut out = Vec::new();
            let response = std::path::Path::new("<response>");
            pipeline.translate_to(&run, document, &mut out, response, &options, &mut ())?;
            return Ok(TextResult {
                translation: String::from_utf8(out)
                    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
                alternatives: Vec::new(),
            });
        }
        let mut input = DocumentInput::from_text(text, "<request>");
        let mut sentences: Vec<SentenceOutput> = Vec::new();
        pipeline.run_blocks_with(&run, &mut input, |_, block| {
            sentences.extend(block);
            Ok(())
        })?;
        let translation = assemble(&sentences);
        let hypotheses = recording.hypotheses.into_inner().unwrap_or_default();
        let mut alts: Vec<String> = Vec::new();
        for k in 1..=alternatives {
            let mut alt = sentences.clone();
            let mut h = hypotheses.iter();
            for s in alt.iter_mut().filter(|s| s.translation.is_some()) {
                if let Some(t) = h.next().and_then(|hs| hs.get(k)) {
                    s.translation = Some(t.clone());
                }
            }
            let text = assemble(&alt);
            if !text.trim().is_empty() && text != translation && !alts.contains(&text) {
                alts.push(text);
            }
        }
        Ok(TextResult {
            translation,
            alternatives: alts,
        })
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// Counts every answer by route and status, and logs it (never a body, so never a key).
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let method = req.method().clone();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let took = started.elapsed();
    state.metrics.request(&route, status, took);
    tracing::info!(
        target: "tolk::serve",
        %method,
        route,
        status,
        ms = took.as_secs_f64() * 1e3,
        "request"
    );
    response
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Not Found")
}

fn router(state: Arc<AppState>) -> Router {
    use axum::routing::{get, post};
    let prefix = state.options.url_prefix.trim_end_matches('/').to_string();
    let at = |path: &str| format!("{prefix}{path}");
    let mut app = Router::new()
        .route(&at("/translate"), post(libre::translate))
        .route(&at("/detect"), post(libre::detect))
        .route(&at("/languages"), get(libre::languages))
        .route(&at("/frontend/settings"), get(libre::frontend_settings))
        .route(&at("/health"), get(native::healthz))
        .route(&at("/healthz"), get(native::healthz))
        .route(&at("/readyz"), get(native::readyz))
        .route(&at("/metrics"), get(native::metrics))
        .route(&at("/v1/translate"), post(native::translate))
        .route(&at("/v1/summarize"), post(native::summarize))
        .route(&at("/translate_file"), post(files::translate_file))
        .route(&at("/download_file/{name}"), get(files::download_file))
        .route(
            &at("/v1/translate_file"),
            post(files::translate_file_native),
        );
    if state.options.web_ui {
        for path in web::paths() {
            app = app.route(
                &at(path),
                get(move |headers: HeaderMap| async move { web::answer(path, &headers) }),
            );
        }
        if !prefix.is_empty() {
            // The page's relative links need the slash.
            let to = at("/");
            app = app.route(
                &prefix,
                get(move || async move { axum::response::Redirect::permanent(&to) }),
            );
        }
    }
    let mut app = app
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            observe,
        ))
        .layer(axum::extract::DefaultBodyLimit::disable());
    if let Some(origin) = &state.options.cors {
        use tower_http::cors::{AllowOrigin, CorsLayer};
        let allow = if origin == "*" {
            AllowOrigin::any()
        } else {
            match HeaderValue::from_str(origin) {
                Ok(v) => AllowOrigin::exact(v),
                Err(_) => AllowOrigin::list(Vec::<HeaderValue>::new()),
            }
        };
        app = app.layer(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
                .allow_headers([
                    axum::http::header::CONTENT_TYPE,
                    axum::http::header::AUTHORIZATION,
                ])
                .max_age(Duration::from_secs(1_728_000)),
        );
    }
    app.with_state(state)
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    state: Arc<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds `options.addr` and serves on threads of its own: `/healthz` at once, everything else
    /// once `load` (run in the background) has returned the models.
    pub fn start(
        options: ServeOptions,
        load: impl FnOnce() -> Result<Models> + Send + 'static,
    ) -> Result<Server> {
        let listener =
            std::net::TcpListener::bind(options.addr).map_err(|e| bind_error(options.addr, e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| bind_error(options.addr, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| bind_error(options.addr, e))?;
        let limiter = Mutex::new(Limiter::new(options.max_clients));
        let state = Arc::new(AppState {
            options,
            models: OnceLock::new(),
            metrics: Arc::new(Metrics::default()),
            in_flight: AtomicU64::new(0),
            next_request: AtomicU64::new(0),
            limiter,
            spool: files::Spool::default(),
        });
        {
            let state = Arc::clone(&state);
            std::thread::Builder::new()
                .name("tolk-load".into())
                .spawn(move || {
                    let started = Instant::now();
                    let loaded = load().and_then(|models| {
                        let summarizer: Arc<dyn Summarizer> = match models.summarizer {
                            Some(s) => s,
                            None => Arc::new(crate::summarize::ExtractiveSummarizer::new(
                                crate::summarize::ExtractiveOptions::default(),
                            )?),
                        };
                        Ok(LoadedModels {
                            models: models
                                .models
                                .into_iter()
                                .map(|model| {
                                    let translator = match &model.translator {
                                        Some(t) => Arc::clone(t),
                                        None => model.pipeline.shared_translator()
                                            as Arc<dyn SegmentTranslator>,
                                    };
                                    Ok(Loaded {
                                        scheduler: Scheduler::start(
                                            translator,
                                            state.options.scheduler.clone(),
                                            Arc::clone(&state.metrics)
                                                as Arc<dyn scheduler::SchedulerObserver>,
                                        )?,
                                        model,
                                    })
                                })
                                .collect::<Result<Vec<_>>>()?,
                            summarizer,
                        })
                    });
                    state.metrics.loaded(started.elapsed());
                    let _ = state.models.set(loaded.map_err(|e| e.to_string()));
                })
                .map_err(|e| Error::Internal(format!("cannot start the loader thread: {e}")))?;
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = router(Arc::clone(&state));
        let grace = state.options.shutdown_grace;
        let thread = std::thread::Builder::new()
            .name("tolk-serve".into())
            .spawn(move || -> Result<()> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| Error::Internal(format!("cannot start the runtime: {e}")))?;
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .map_err(|e| bind_error(addr, e))?;
                    let (signal_tx, mut signal_rx) = tokio::sync::watch::channel(false);
                    let shutdown = async move {
                        tokio::select! {
                            _ = stopped => {}
                            _ = termination() => {}
                        }
                        let _ = signal_tx.send(true);
                    };
                    let serve = axum::serve(
                        listener,
                        app.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .with_graceful_shutdown(shutdown);
                    let serving = tokio::spawn(async move { serve.await });
                    // After the signal, the requests in flight have `grace` to finish.
                    let _ = signal_rx.wait_for(|s| *s).await;
                    match tokio::time::timeout(grace, serving).await {
                        Ok(Ok(Ok(()))) | Err(_) => Ok(()),
                        Ok(Ok(Err(e))) => Err(Error::io(addr.to_string(), e)),
                        Ok(Err(e)) => Err(Error::Internal(e.to_string())),
                    }
                })
            })
            .map_err(|e| Error::Internal(format!("cannot start the server thread: {e}")))?;
        Ok(Server {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address it listens on (with the port the system chose for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the models are loaded (or failed to load: then the error).
    pub fn ready(&self) -> Option<std::result::Result<(), String>> {
        self.state
            .models
            .get()
            .map(|r| r.as_ref().map(|_| ()).map_err(Clone::clone))
    }

    /// Waits until the models are loaded (or failed to load: the error), or the server stopped
    /// before (`None`).
    pub fn wait_until_ready(&self) -> Option<std::result::Result<(), String>> {
        loop {
            if let Some(r) = self.ready() {
                return Some(r);
            }
            if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops accepting connections and waits for the requests in flight (within the grace).
    pub fn shutdown(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join()
    }

    /// Serves until SIGTERM or SIGINT, then finishes the requests in flight (within the grace).
    pub fn wait(mut self) -> Result<()> {
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(Error::Internal("the server thread panicked".into())),
            None => Ok(()),
        }
    }

    /// Rounds that held segments of more than one request so far.
    pub fn multi_request_batches(&self) -> u64 {
        self.state.metrics.multi_request_batches()
    }
}

fn bind_error(addr: SocketAddr, e: std::io::Error) -> Error {
    Error::io(format!("{addr}"), e)
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn termination() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_by_content() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
