//! Request bodies as LibreTranslate reads them: JSON for `application/json` (and `+json`), else
//! the query string and a form body (`application/x-www-form-urlencoded` or
//! `multipart/form-data`), the first value of a repeated field winning. Every problem is a clear
//! 4xx: a body over the limit (413), invalid UTF-8, malformed JSON, JSON that is not an object,
//! fields of the wrong type.

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use serde_json::{Map, Value};

use super::ApiError;

/// A request's fields, whatever the body type.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    values: Map<String, Value>,
    /// Whether the fields came from a form (strings only; line endings normalised).
    pub form: bool,
    /// Files of a multipart form, in order.
    pub files: Vec<Upload>,
}

/// A file of a multipart form.
#[derive(Debug)]
pub(crate) struct Upload {
    /// The form field's name (`file`).
    pub field: String,
    /// The file name the client gave (only its last component is ever used, and never as a
    /// path).
    pub filename: String,
    pub bytes: Vec<u8>,
}

/// `q`: one text or several.
#[derive(Debug, Clone)]
pub(crate) enum Texts {
    One(String),
    Many(Vec<String>),
}

impl Texts {
    pub(crate) fn all(&self) -> Vec<String> {
        match self {
            Texts::One(t) => vec![t.clone()],
            Texts::Many(ts) => ts.clone(),
        }
    }
}

/// Reads the body (at most `limit` bytes) and the query string into fields.
pub(crate) async fn read(
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Fields, ApiError> {
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Invalid request: the body is larger than {limit} bytes"),
        )
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mime = mime.as_str();
    let json =
        mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"));
    let mut fields = Fields::default();
    if json {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(fields);
        }
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            ApiError::bad(format!(
                "Invalid request: the body is not valid UTF-8 ({e})"
            ))
        })?;
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => fields.values = map,
            Ok(_) => return Err(ApiError::bad("Invalid JSON format")),
            Err(e) => return Err(ApiError::bad(format!("Invalid JSON format: {e}"))),
        }
        return Ok(fields);
    }
    fields.form = true;
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(query) = uri.query() {
        pairs.extend(form_pairs(query.as_bytes())?);
    }
    if mime == "multipart/form-data" {
        let boundary = multer::parse_boundary(content_type)
            .map_err(|e| ApiError::bad(format!("Invalid request: {e}")))?;
        let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(bytes) });
        let mut multipart = multer::Multipart::new(stream, boundary);
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::bad(format!("Invalid request: {e}")))?
        {
            let name = field.name().unwrap_or("").to_string();
            if let Some(filename) = field.file_name().map(str::to_string) {
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| ApiError::bad(format!("Invalid request: {e}")))?;
                fields.files.push(Upload {
                    field: name,
                    filename,
                    bytes: bytes.to_vec(),
                });
                continue;
            }
            let text = field
                .text()
                .await
                .map_err(|e| ApiError::bad(format!("Invalid request: {e}")))?;
            pairs.push((name, text));
        }
    } else if !bytes.is_empty() {
        pairs.extend(form_pairs(&bytes)?);
    }
    for (name, value) in pairs {
        fields.values.entry(name).or_insert(Value::String(
            value.replace("\r\n", "\n").replace('\r', "\n"),
        ));
    }
    Ok(fields)
}

fn form_pairs(bytes: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(ApiError::bad(
            "Invalid request: the form is not valid UTF-8",
        ));
    }
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes)
        .map_err(|e| ApiError::bad(format!("Invalid request: {e}")))
}

impl Fields {
    /// A string field; `None` when absent, null or empty (LibreTranslate treats them alike).
    pub(crate) fn string(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::bad(format!(
                "Invalid request: {name} must be a string"
            ))),
        }
    }

    /// `q`: a string or (JSON only) a list of strings; `None` when missing or empty.
    pub(crate) fn texts(&self) -> Result<Option<Texts>, ApiError> {
        match self.values.get("q") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(Texts::One(s.clone()))),
            Some(Value::Array(a)) if a.is_empty() => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(ApiError::bad(
                        "Invalid request: q must be a string or a list of strings",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|v| Some(Texts::Many(v))),
            Some(_) => Err(ApiError::bad(
                "Invalid request: q must be a string or a list of strings",
            )),
        }
    }

    /// A non-negative count (a number, or a string of one); `None` when absent.
    pub(crate) fn count(&self, name: &str) -> Result<Option<usize>, ApiError> {
        let bad = || ApiError::bad(format!("Invalid request: {name} parameter is not a number"));
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(|n| Some(n.max(0) as usize))
                .map_err(|_| bad()),
            Some(Value::Number(n)) => n.as_i64().map(|n| Some(n.max(0) as usize)).ok_or_else(bad),
            Some(_) => Err(bad()),
        }
    }

    /// The fields as JSON (the native API's body).
    pub(crate) fn into_json(self) -> Value {
        Value::Object(self.values)
    }
}
