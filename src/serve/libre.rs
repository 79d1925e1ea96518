//! LibreTranslate's API, as LibreTranslate 1.9 answers it (checked field by field against its
//! `app.py`): the fields, their checks in its order, its error messages and status codes, its
//! response shapes (a list for a list `q`; `detectedLanguage` only for `source: "auto"`, an
//! object for one text and a list for several).
//!
//! Differences, on purpose: LibreTranslate's 500 for a `q` or `alternatives` of the wrong type is
//! a 400 here; `format: "html"` translates the HTML in place (text of blocks and alt/title attributes,
//! inline markup moved to the aligned words, as `tolk translate` does for .html files); LibreTranslate's
//! rewriting of a translation's final punctuation to the source's (`"Hello, world。"`) is not
//! copied: the model's punctuation stays.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::body::{self, Texts};
use super::{lang, translate_text, ApiError, AppState};

/// `POST /translate`.
pub(crate) async fn translate(
    State(state): State<Arc<AppState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let fields = body::read(&uri, &headers, body, state.options.max_body_bytes).await?;
    let key = fields.string("api_key")?;
    let ticket = state.admit(key.as_deref(), addr, &headers)?;
    let Some(q) = fields.texts()? else {
        return Err(ApiError::bad("Invalid request: missing q parameter"));
    };
    let Some(source) = fields.string("source")? else {
        return Err(ApiError::bad("Invalid request: missing source parameter"));
    };
    let Some(target) = fields.string("target")? else {
        return Err(ApiError::bad("Invalid request: missing target parameter"));
    };
    let alternatives = fields.count("alternatives")?.unwrap_or(0);
    let texts = q.all();
    if let (Some(limit), Texts::Many(list)) = (state.options.batch_limit, &q) {
        if list.len() > limit {
            return Err(ApiError::bad(format!(
                "Invalid request: request ({}) exceeds text limit ({limit})",
                list.len()
            )));
        }
    }
    for t in &texts {
        ticket.check_chars(t)?;
    }
    let codes = state.languages()?;
    let target = lang::from_client(&target);
    let source = lang::from_client(&source);
    let detected = if source == "auto" {
        let joined = texts.join("\n");
        let sources: Vec<String> = codes
            .iter()
            .filter(|c| state.model(c, &target).ok().flatten().is_some() || **c == target)
            .cloned()
            .collect();
        Some(lang::detect(&joined, &sources)[0].clone())
    } else {
        None
    };
    let source = detected.as_ref().map_or(source, |(c, _)| c.clone());
    if !codes.contains(&source) {
        return Err(ApiError::bad(format!("{source} is not supported")));
    }
    if !codes.contains(&target) {
        return Err(ApiError::bad(format!("{target} is not supported")));
    }
    let format = fields.string("format")?.unwrap_or_else(|| "text".into());
    let html = match format.as_str() {
        "text" => false,
        "html" => true,
        other => return Err(ApiError::bad(format!("{other} format is not supported"))),
    };
    let mut translated = Vec::with_capacity(texts.len());
    let mut alts: Vec<Vec<String>> = Vec::with_capacity(texts.len());
    if source == target {
        // LibreTranslate's identity translation.
        translated.clone_from(&texts);
        alts = vec![Vec::new(); texts.len()];
    } else {
        let Some(index) = state
            .ready()?
            .models
            .iter()
            .position(|m| m.model.source == source && m.model.target == target)
        else {
            return Err(ApiError::bad(format!(
                "{} ({}) is not available as a target language from {} ({})",
                lang::name(&target),
                target,
                lang::name(&source),
                source
            )));
        };
        // Every text of the list at once: their segments meet in the scheduler's rounds.
        let work = texts
            .iter()
            .map(|t| translate_text(&state, index, t.clone(), None, alternatives, html, &ticket));
        let results = tokio::time::timeout(
            state.options.request_timeout,
            futures_util::future::try_join_all(work),
        )
        .await
        .map_err(|_| timed_out(&state))??;
        for r in results {
            translated.push(r.translation);
            alts.push(r.alternatives);
        }
    }
    ticket.finish();
    let detected_json = detected.map(|(code, confidence)| {
        json!({ "confidence": confidence, "language": lang::to_client(&code) })
    });
    let mut out = serde_json::Map::new();
    match q {
        Texts::One(_) => {
            out.insert("translatedText".into(), json!(translated[0]));
            if alternatives > 0 {
                out.insert("alternatives".into(), json!(alts[0]));
            }
            if let Some(d) = detected_json {
                out.insert("detectedLanguage".into(), d);
            }
        }
        Texts::Many(_) => {
            if alternatives > 0 {
                out.insert("alternatives".into(), json!(alts));
            }
            if let Some(d) = detected_json {
                out.insert(
                    "detectedLanguage".into(),
                    Value::Array(vec![d; translated.len()]),
                );
            }
            out.insert("translatedText".into(), json!(translated));
        }
    }
    Ok(Json(Value::Object(out)).into_response())
}

pub(crate) fn timed_out(state: &AppState) -> ApiError {
    ApiError::busy(
        format!(
            "the request took longer than {} s; try again later",
            state.options.request_timeout.as_secs()
        ),
        5,
    )
}

/// `POST /detect`: candidates over the languages the models take, best first.
pub(crate) async fn detect(
    State(state): State<Arc<AppState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let fields = body::read(&uri, &headers, body, state.options.max_body_bytes).await?;
    let key = fields.string("api_key")?;
    let ticket = state.admit(key.as_deref(), addr, &headers)?;
    let Some(q) = fields.texts()? else {
        return Err(ApiError::bad("Invalid request: missing q parameter"));
    };
    let sources: Vec<String> = state
        .ready()?
        .models
        .iter()
        .map(|m| m.model.source.clone())
        .chain(std::iter::once("en".to_string()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let found = lang::detect(&q.all().join("\n"), &sources);
    ticket.finish();
    Ok(Json(
        found
            .into_iter()
            .map(|(code, confidence)| {
                json!({ "confidence": confidence, "language": lang::to_client(&code) })
            })
            .collect::<Vec<_>>(),
    )
    .into_response())
}

/// `GET /languages`: every language, with the languages it translates to (itself included, as
/// LibreTranslate's identity translation; Mastodon relies on it).
pub(crate) async fn languages(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let codes = state.languages()?;
    let models = &state.ready()?.models;
    let mut entries: Vec<(String, Value)> = codes
        .iter()
        .map(|code| {
            let mut targets: Vec<String> = models
                .iter()
                .filter(|m| &m.model.source == code)
                .map(|m| lang::to_client(&m.model.target))
                .chain(std::iter::once(lang::to_client(code)))
                .collect();
            targets.sort();
            targets.dedup();
            (
                lang::name(code),
                json!({ "code": lang::to_client(code), "name": lang::name(code), "targets": targets }),
            )
        })
        .collect();
    // English first, then by name, as LibreTranslate lists them.
    entries.sort_by(|a, b| (a.0 != "English", &a.0).cmp(&(b.0 != "English", &b.0)));
    Ok(Json(entries.into_iter().map(|(_, v)| v).collect::<Vec<_>>()).into_response())
}

/// `GET /frontend/settings`.
pub(crate) async fn frontend_settings(
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    let models = &state.ready()?.models;
    let target = models
        .first()
        .map_or_else(|| "en".to_string(), |m| m.model.target.clone());
    let keys = !state.options.api_keys.is_empty();
    Ok(Json(json!({
        "apiKeys": keys,
        "charLimit": state.options.char_limit.map_or(-1, |n| n as i64),
        "filesTranslation": state.options.file_translation,
        "frontendTimeout": 500,
        "keyRequired": keys,
        "language": {
            "source": { "code": "auto", "name": "Auto Detect" },
            "target": { "code": target, "name": lang::name(&target) },
        },
        "suggestions": false,
        "supportedFilesFormat": if state.options.file_translation {
            super::files::supported()
        } else {
            Vec::new()
        },
    }))
    .into_response())
}
