//! The HTTP round trips this crate makes (Vault, IdP discovery, token endpoints): JSON
//! bodies read with a size limit, and errors phrased without the request (which may carry a
//! token). Never logs a request or response body.

use serde_json::Value;

use crate::error::sanitize;

/// Largest response body read from Vault or an IdP.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Reads a response body as JSON, at most [`MAX_BODY_BYTES`].
pub(crate) async fn read_json(mut resp: reqwest::Response) -> Result<Value, String> {
    if resp.content_length().is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(format!("response larger than {MAX_BODY_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("response larger than {MAX_BODY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body).map_err(|_| "response is not JSON".to_owned())
}

/// A transport error in words, without the request.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    // The source chain says why (refused, DNS, TLS) and never holds headers or bodies.
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() { what.to_owned() } else { format!("{what} ({})", sanitize(&cause, 120)) }
}

/// The first message of a Vault-style `{"errors": [...]}` or an OAuth `{"error": ...}` body,
/// made safe for an error message.
pub(crate) fn error_message(body: &Value) -> Option<String> {
    if let Some(first) = body.get("errors").and_then(Value::as_array).and_then(|a| a.first()).and_then(Value::as_str) {
        return Some(sanitize(first, 200));
    }
    None
}
