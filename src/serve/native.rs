//! tolk's own API: `POST /v1/translate` (a document with the command line's options; the answer
//! is the output in any format, by default the `--format json` record), `POST /v1/summarize`,
//! `GET /healthz`, `GET /readyz` and `GET /metrics`.
//!
//! `POST /v1/translate` takes a JSON object:
//!
//! | field | default | |
//! |---|---|---|
//! | `text` | required | the document: an article (headline, paragraphs, lists, metadata lines), an HTML page, a Markdown document or a JSON-lines corpus |
//! | `input_format` | `text` | `text`, `html`, `markdown`, `jsonl`, `srt` or `vtt`, as `--input-format` (office files and EPUB: `POST /v1/translate_file`) |
//! | `source`, `target` | the first model's pair | language codes; the pair chooses the model |
//! | `format` | `json` | `json`, `jsonl`, `text`, `markdown` or `html`, as `--format` (an HTML page comes back as a page with `html`, a corpus as JSON lines) |
//! | `bilingual` | `false` | Markdown's side-by-side table |
//! | `summary` | `true` | the summary (the server's summariser) |
//! | `options` | the model's | `num_beams`, `max_length`, `max_new_tokens`, `min_length`, `min_new_tokens`, `length_penalty`, `no_repeat_ngram_size`, `repetition_penalty`, `early_stopping` ([`GenerationOverrides`]) |
//!
//! `POST /v1/summarize` takes `{"text": ..., "sentences": N}` (English text; `sentences`
//! optional) and answers `{"summarizer", "input_sentences", "sentences": [{"index", "text",
//! "score"}]}`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::body;
use super::libre::timed_out;
use super::{ApiError, AppState};
use crate::document::{Document, DocumentOptions, Source};
use crate::formats::InputFormat;
use crate::output::{OutputFormat, RenderOptions};
use crate::pipeline::{DocumentRun, GenerationOverrides};

/// `GET /healthz`: the process answers.
pub(crate) async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// `GET /readyz`: 200 once the models are loaded, 503 before (500 if loading failed).
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let models = state.ready()?;
    Ok(Json(json!({
        "status": "ready",
        "models": models.models.iter().map(|m| json!({
            "source": m.model.source,
            "target": m.model.target,
            "model": m.model.pipeline.model().name,
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if let Ok(m) = state.ready() {
        let queued: usize = m.models.iter().map(|l| l.scheduler.queued()).sum();
        state.metrics.queue_depth(queued);
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TranslateRequest {
    text: String,
    source: Option<String>,
    target: Option<String>,
    format: Option<String>,
    input_format: Option<String>,
    #[serde(default)]
    bilingual: bool,
    summary: Option<bool>,
    #[serde(default)]
    options: GenerationOverrides,
    api_key: Option<String>,
}

async fn json_body<T: serde::de::DeserializeOwned>(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let fields = body::read(uri, headers, body, state.options.max_body_bytes).await?;
    if fields.form {
        return Err(ApiError::bad(
            "Invalid request: send a JSON object (Content-Type: application/json)",
        ));
    }
    serde_json::from_value(fields.into_json())
        .map_err(|e| ApiError::bad(format!("Invalid request: {e}")))
}

/// `POST /v1/translate`.
pub(crate) async fn translate(
    State(state): State<Arc<AppState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: TranslateRequest = json_body(&state, &uri, &headers, body).await?;
    let ticket = state.admit(req.api_key.as_deref(), addr, &headers)?;
    ticket.check_chars(&req.text)?;
    let models = &state.ready()?.models;
    let first = models
        .first()
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no model loaded"))?;
    let source = req
        .source
        .as_deref()
        .map_or_else(|| first.model.source.clone(), super::lang::from_client);
    let target = req
        .target
        .as_deref()
        .map_or_else(|| first.model.target.clone(), super::lang::from_client);
    let index = models
        .iter()
        .position(|m| m.model.source == source && m.model.target == target)
        .ok_or_else(|| ApiError::bad(format!("no model translates {source} to {target} here")))?;
    let format: OutputFormat = req
        .format
        .as_deref()
        .unwrap_or("json")
        .parse()
        .map_err(|_| {
            ApiError::bad("Invalid request: format must be json, jsonl, text, markdown or html")
        })?;
    let input_format = match req.input_format.as_deref() {
        None => InputFormat::Text,
        Some(f) => f
            .parse::<InputFormat>()
            .map_err(|e| ApiError::bad(format!("Invalid request: {e}")))?,
    };
    let options = DocumentOptions {
        input_format: Some(input_format),
        output_format: Some(format),
        render: RenderOptions::default().with_bilingual(req.bilingual),
        ..DocumentOptions::default()
    };
    let document = Document::open(Source::Text(req.text, "<request>".into()), &options)
        .map_err(|e| ApiError::bad(format!("Invalid request: {e}")))?;
    let overrides = req.options;
    let summary = req.summary.unwrap_or(true);
    let (id, cancel) = (ticket.id, Arc::clone(&ticket.cancel));
    let worker = Arc::clone(&state);
    let work = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        let loaded = &worker.ready()?.models[index];
        let pipeline = &loaded.model.pipeline;
        let generation = overrides.apply(pipeline.generation().clone());
        let model = pipeline.translator().model();
        generation
            .validate(
                model.config().decoder_vocab_size,
                model.max_target_positions(),
            )
            .map_err(|e| ApiError::bad(format!("Invalid request: {e}")))?;
        let client = loaded.scheduler.client(id, cancel);
        let run = DocumentRun {
            translator: &client,
            generation: &generation,
            summary,
        };
        let mut out = Vec::new();
        let response = std::path::Path::new("<response>");
        pipeline.translate_to(&run, document, &mut out, response, &options, &mut ())?;
        Ok(out)
    });
    let bytes = tokio::time::timeout(state.options.request_timeout, work)
        .await
        .map_err(|_| timed_out(&state))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    ticket.finish();
    let content_type = format.media_type();
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        bytes,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SummarizeRequest {
    text: String,
    sentences: Option<usize>,
    api_key: Option<String>,
}

/// `POST /v1/summarize`: English text to its summary.
pub(crate) async fn summarize(
    State(state): State<Arc<AppState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: SummarizeRequest = json_body(&state, &uri, &headers, body).await?;
    let ticket = state.admit(req.api_key.as_deref(), addr, &headers)?;
    let worker = Arc::clone(&state);
    let work = tokio::task::spawn_blocking(move || -> Result<serde_json::Value, ApiError> {
        let loaded = worker.ready()?;
        let summary = match req.sentences {
            Some(n) => {
                let s = crate::summarize::ExtractiveSummarizer::new(
                    crate::summarize::ExtractiveOptions::default()
                        .with_length(crate::summarize::SummaryLength::Sentences(n)),
                )
                .map_err(|e| ApiError::bad(format!("Invalid request: {e}")))?;
                crate::summarize::summarize_english(&s, &req.text)?
            }
            None => crate::summarize::summarize_english(&*loaded.summarizer, &req.text)?,
        };
        Ok(json!({
            "summarizer": if req.sentences.is_some() { "extractive" } else { loaded.summarizer.name() },
            "input_sentences": summary.input_sentences,
            "sentences": summary.sentences.iter().map(|s| json!({
                "index": s.index, "text": s.text, "score": s.score,
            })).collect::<Vec<_>>(),
        }))
    });
    let value = tokio::time::timeout(state.options.request_timeout, work)
        .await
        .map_err(|_| timed_out(&state))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    ticket.finish();
    Ok(Json(value).into_response())
}
