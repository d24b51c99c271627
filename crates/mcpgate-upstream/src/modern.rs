//! Stateless (2026-07-28) Streamable HTTP: every request is one self-contained POST with its
//! `_meta` and the SEP-2243 request-metadata headers; no session, no GET stream. Closing the
//! response stream (dropping the [`Exchange`]) is the cancellation.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue};
use mcpgate_protocol::ObjectWriter;
use mcpgate_protocol::envelope::{Envelope, Needle, raw_str};
use mcpgate_protocol::modern::{HEADER_METHOD, HEADER_NAME, HEADER_PARAM_PREFIX, encode_header_value, request_meta, with_meta};
use mcpgate_protocol::versions::MODERN_VERSION;
use serde_json::value::RawValue;

use crate::error::{InvalidResponse, UpstreamError, content_type_of, content_type_starts, shown_content_type};
use crate::exchange::Exchange;
use crate::h1::Answer;
use crate::spec::gateway_client_info;
use crate::streamable::VERSION_HEADER;

/// A modern backend endpoint with the headers every request carries (credentials included).
pub struct ModernLink {
    client: reqwest::Client,
    url: url::Url,
    /// Plain-HTTP backends: the in-task client (see `h1`) and the request target.
    fast: Option<(std::sync::Arc<crate::h1::Pool>, String)>,
    headers: HeaderMap,
    next_id: AtomicU64,
}

/// The request-metadata headers of one call, computed from the body the backend will see.
#[derive(Debug, Default, Clone)]
pub struct RequestHeaders<'a> {
    /// The `Mcp-Name` source value (tool or prompt name, resource URI, task id).
    pub name: Option<&'a str>,
    /// `Mcp-Param-{name}` values, unencoded.
    pub params: Vec<(String, String)>,
}

impl ModernLink {
    pub fn new(client: reqwest::Client, url: url::Url, mut headers: HeaderMap) -> Self {
        headers.insert(ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(VERSION_HEADER, HeaderValue::from_static(MODERN_VERSION));
        // A clone keeps this map's table size: room now for each request's own headers (method,
        // name, a credential, trace context, `Host`, `Content-Length`) spares a regrow per call.
        headers.reserve(8);
        let fast = crate::h1::pool_for(&url).map(|p| (p, crate::h1::target_of(&url)));
        Self { client, url, fast, headers, next_id: AtomicU64::new(1) }
    }

    /// Sends `method` with `params` (which must already carry the modern `_meta`).
    pub async fn request(&self, method: &str, params: &str, meta_headers: &RequestHeaders<'_>) -> Result<Exchange, UpstreamError> {
        self.request_with(method, params, meta_headers, &[]).await
    }

    /// As [`Self::request`], with per-call headers (a caller's backend credential) on top of the
    /// link's own.
    pub async fn request_with(
        &self,
        method: &str,
        params: &str,
        meta_headers: &RequestHeaders<'_>,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<Exchange, UpstreamError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut w = ObjectWriter::jsonrpc(params.len() + method.len() + 72);
        w.number("id", id).string("method", method).raw("params", params);
        let mut headers = self.headers.clone();
        for (name, value) in extra {
            headers.insert(name.clone(), value.clone());
        }
        if let Ok(v) = HeaderValue::from_str(method) {
            headers.insert(HeaderName::from_static(HEADER_METHOD), v);
        }
        if let Some(Ok(v)) = meta_headers.name.map(|n| HeaderValue::from_str(&encode_header_value(n))) {
            headers.insert(HeaderName::from_static(HEADER_NAME), v);
        }
        for (name, value) in &meta_headers.params {
            let header = HeaderName::from_bytes(format!("{HEADER_PARAM_PREFIX}{name}").as_bytes());
            if let (Ok(h), Ok(v)) = (header, HeaderValue::from_str(&encode_header_value(value))) {
                headers.insert(h, v);
            }
        }
        let answer = match &self.fast {
            Some((pool, target)) => pool.post(target, headers, w.finish()).await?,
            None => {
                let resp = self.client.post(self.url.clone()).headers(headers).body(w.finish()).send().await.map_err(|e| UpstreamError::from_reqwest(&e))?;
                crate::streamable::answer_of(resp).await?
            }
        };
        match answer {
            Answer::Streaming { body, .. } => Ok(Exchange::sse(id, body)),
            Answer::Full { status, headers, body } => {
                // Modern servers answer protocol errors with 4xx and a JSON-RPC error body:
                // that body is the answer to show, not a transport failure.
                if content_type_starts(&headers, "application/json") && (status.is_success() || is_error_response(&body)) {
                    return Ok(Exchange::single(id, rekey(body, id)));
                }
                match status {
                    http::StatusCode::ACCEPTED => Err(UpstreamError::Invalid(InvalidResponse::AcceptedWithoutAnswer)),
                    s if s.is_success() => Err(UpstreamError::Invalid(InvalidResponse::ContentType(shown_content_type(&content_type_of(&headers))))),
                    s => Err(UpstreamError::Status { status: s.as_u16() }),
                }
            }
        }
    }

    /// A request the gateway makes for itself (discovery): its own `_meta`, no capabilities.
    pub async fn call_own(&self, method: &str, params: Option<&str>) -> Result<Vec<u8>, UpstreamError> {
        let params = with_meta(params, &request_meta("{}", &gateway_client_info()));
        let resp = self.request(method, &params, &RequestHeaders::default()).await?.response().await?;
        Ok(resp.to_vec())
    }
}

fn is_error_response(body: &[u8]) -> bool {
    Envelope::parse(body).is_ok_and(|e| e.has("error"))
}

/// An error answered with `id: null` (refused before the body was read) is still the answer
/// to this request.
fn rekey(body: Bytes, id: u64) -> Bytes {
    static ERROR: Needle = Needle::new(br#""error""#);
    if !ERROR.may_be_in(&body) {
        return body;
    }
    match Envelope::parse(&body) {
        Ok(env) if env.id().is_none() && env.has("error") => Bytes::from(env.rewrite(&[("id", Some(&id.to_string()))])),
        _ => body,
    }
}

/// What `server/discover` told us about a modern backend.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub result: Box<RawValue>,
}

impl Discovered {
    pub fn member(&self, key: &str) -> Option<&RawValue> {
        Envelope::parse_raw(&self.result).ok()?.get(key)
    }
}

/// Asks the backend whether it speaks 2026-07-28 (`server/discover`). `Ok(None)`: it does not
/// (a legacy server; use `initialize`). Errors are transport failures.
pub async fn probe(link: &ModernLink) -> Result<Option<Discovered>, UpstreamError> {
    let resp = match link.call_own("server/discover", None).await {
        Ok(r) => r,
        // 400/404/405 without a modern error body: a legacy server.
        Err(UpstreamError::Status { status }) if (400..500).contains(&status) => return Ok(None),
        Err(UpstreamError::Protocol(_)) => return Ok(None),
        Err(UpstreamError::Invalid(why)) if why != InvalidResponse::Truncated => return Ok(None),
        Err(e) => return Err(e),
    };
    let Ok(env) = Envelope::parse(&resp) else { return Ok(None) };
    let Some(result) = env.get("result") else { return Ok(None) };
    let Ok(r) = Envelope::parse_raw(result) else { return Ok(None) };
    let speaks_modern = r
        .get("supportedVersions")
        .and_then(|v| serde_json::from_str::<Vec<&RawValue>>(v.get()).ok())
        .is_some_and(|vs| vs.iter().any(|v| raw_str(v).as_deref() == Some(MODERN_VERSION)));
    Ok(speaks_modern.then(|| Discovered { result: result.to_owned() }))
}
