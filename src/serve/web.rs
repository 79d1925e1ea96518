//! The translation page (`GET /`): plain HTML, CSS and JavaScript compiled into the binary, no
//! framework, nothing from another host. It talks to the server's own API with relative URLs,
//! so it works under any `--url-prefix`. Served with an `ETag` (a request with the same
//! `If-None-Match` gets 304) and a Content-Security-Policy that allows only this server.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The page and its assets: (path below the prefix, content type, body).
const ASSETS: [(&str, &str, &str); 3] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("web/index.html"),
    ),
    (
        "/static/tolk.css",
        "text/css; charset=utf-8",
        include_str!("web/tolk.css"),
    ),
    (
        "/static/tolk.js",
        "text/javascript; charset=utf-8",
        include_str!("web/tolk.js"),
    ),
];

/// Only this server: scripts, styles, requests; no frames, no plug-ins, no inline code.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The paths of the page's files below the prefix.
pub(crate) fn paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.0)
}

/// The answer for the page's file at `path` (one of [`paths`]).
pub(crate) fn answer(path: &str, headers: &HeaderMap) -> Response {
    /// Each asset's ETag, computed once.
    static TAGS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{:016x}\"", crate::fsutil::fnv1a(a.2.as_bytes())))
            .collect()
    });
    let Some(i) = ASSETS.iter().position(|a| a.0 == path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (_, content_type, body) = ASSETS[i];
    let tag = &TAGS[i];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == *tag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    // Cached, and checked again each time (cheap: a 304 without a body).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
