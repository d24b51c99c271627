//! The HTTP round trips this crate makes (Vault, IdP discovery, token endpoints): sent with
//! the current trace context and counted ([`send`]), JSON bodies read with a size limit, and
//! errors phrased without the request (which may carry a token). Never logs a request or
//! response body.

use std::time::Instant;

use serde_json::Value;

use crate::error::sanitize;
use crate::stats::{RequestResult, UpstreamCounters};

/// Sends one request to Vault or the IdP: with the current W3C trace context when tracing is
/// on (the caller's span is the parent), timed and counted in `to`.
pub(crate) async fn send(req: reqwest::RequestBuilder, to: &UpstreamCounters) -> Result<reqwest::Response, reqwest::Error> {
    let (client, req) = req.build_split();
    execute(&client, req?, to).await
}

/// [`send`] for a request already built.
pub(crate) async fn execute(client: &reqwest::Client, mut req: reqwest::Request, to: &UpstreamCounters) -> Result<reqwest::Response, reqwest::Error> {
    inject_trace_context(req.headers_mut());
    let start = Instant::now();
    let result = client.execute(req).await;
    let outcome = match &result {
        Ok(r) if r.status().is_server_error() => RequestResult::ServerError,
        Ok(r) if r.status().is_client_error() => RequestResult::ClientError,
        Ok(_) => RequestResult::Ok,
        Err(_) => RequestResult::TransportError,
    };
    to.record(start.elapsed(), outcome);
    result
}

/// Writes the current span's trace context (`traceparent`, `tracestate`) into `headers`
/// through the globally installed propagator. Without tracing, there is no context and the
/// default propagator writes nothing.
pub fn inject_trace_context(headers: &mut http::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut Injector(headers)));
}

struct Injector<'a>(&'a mut http::HeaderMap);

impl opentelemetry::propagation::Injector for Injector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (http::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::from_str(&value)) {
            self.0.insert(name, value);
        }
    }
}

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
