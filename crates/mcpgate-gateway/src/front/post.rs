//! POST on the MCP endpoint: one JSON-RPC message per request.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use mcpgate_protocol::dupkeys::{self, StructureError};
use mcpgate_protocol::envelope::{Envelope, Kind, Needle};
use mcpgate_protocol::sse::encode_message;
use mcpgate_protocol::versions::META_PROTOCOL_VERSION;

use super::checks;
use crate::clients::legacy as dispatch;
use crate::governance::VirtualServer;
use crate::observe::labels::{ERAS, METHOD_INVALID, METHOD_NOTIFICATION, METHOD_RESPONSE, METHODS, OUTCOMES, method_index};
use crate::observe::outcome::{Answered, End, Watch};
use crate::observe::{CallError, Era, Outcome, RequestMeter, trace};
use crate::reject::Reject;
use crate::reply::Reply;
use crate::state::Shared;
use tracing::Instrument;

pub async fn post(State(shared): State<Arc<Shared>>, request: axum::extract::Request) -> Response {
    if !shared.governance.load().expose_full_catalog {
        return StatusCode::NOT_FOUND.into_response();
    }
    serve(shared, None, request).await
}

/// A POST on the main endpoint (`scope: None`) or on a virtual server's path.
pub(crate) async fn serve(shared: Arc<Shared>, scope: Option<Arc<VirtualServer>>, request: axum::extract::Request) -> Response {
    // Split rather than extract `HeaderMap`: that extractor clones every header.
    let (parts, body) = request.into_parts();
    let meter = if shared.config.load().metrics.enabled { RequestMeter::start(&shared.series) } else { RequestMeter::disabled() };
    let span = trace::request_span(&parts.headers);
    let mut seen = Seen { method: METHOD_INVALID, era: Era::Unknown };
    // Boxed: the handler's future is moved (copied) twice on its way to the connection, and
    // unboxed it would carry every state of the call, kilobytes.
    let result = Box::pin(handle(&shared, &parts.headers, body, scope, &meter, &mut seen)).instrument(span.clone()).await;
    let _entered = span.enter();
    if !span.is_none() {
        span.record("mcp.method.name", METHODS[seen.method as usize]);
        span.record("mcp.protocol.era", ERAS[seen.era as usize]);
    }
    match result {
        Ok(resp) => finish(resp, &meter, &seen, &span),
        Err(reject) => {
            meter.finish(seen.method, seen.era, Outcome::Rejected, None);
            span.record("otel.status_code", "ERROR");
            reject.into_response()
        }
    }
}

/// What the request turned out to be, as far as it was read.
struct Seen {
    method: u8,
    era: Era,
}

/// Records how the request ended: now for a JSON answer, at the stream's end for SSE.
fn finish(mut resp: Response, meter: &RequestMeter, seen: &Seen, span: &tracing::Span) -> Response {
    let (method, era) = (seen.method, seen.era);
    if let Some(watch) = resp.extensions_mut().remove::<Watch>() {
        let (meter, span) = (meter.clone(), span.clone());
        let guard = meter.series().map(|s| crate::observe::series::stream_opened(s, 0));
        watch.on_end(move |end| {
            drop(guard);
            let (outcome, error) = match end {
                End::Answered(Ok(())) => (Outcome::Ok, None),
                End::Answered(Err(e)) => (Outcome::Error, Some(e)),
                End::Cancelled => (Outcome::Cancelled, None),
            };
            record_on_span(&span, outcome, meter.error_type(outcome, error));
            meter.finish(method, era, outcome, error);
        });
        return resp;
    }
    let (outcome, error) = match resp.extensions().get::<Answered>() {
        Some(Ok(())) => (Outcome::Ok, None),
        Some(Err(e)) => (Outcome::Error, Some(*e)),
        None if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN => (Outcome::Unauthenticated, None),
        None if resp.status().is_success() => (Outcome::Ok, None),
        None => (Outcome::Rejected, None),
    };
    record_on_span(span, outcome, meter.error_type(outcome, error));
    meter.finish(method, era, outcome, error);
    resp
}

fn record_on_span(span: &tracing::Span, outcome: Outcome, error: Option<CallError>) {
    if span.is_none() || outcome == Outcome::Ok {
        return;
    }
    span.record("otel.status_code", "ERROR");
    span.record("error.type", error.map_or(OUTCOMES[outcome as usize], |e| e.as_str()));
}

async fn handle(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    body: Body,
    scope: Option<Arc<VirtualServer>>,
    meter: &RequestMeter,
    seen: &mut Seen,
) -> Result<Response, Reject> {
    let config = shared.config.load();
    checks::origin(&config, headers)?;
    let access = crate::stage_span!("authenticate");
    let access = match checks::access(shared, headers, scope).instrument(access).await {
        Ok(mut a) => {
            a.meter = meter.clone();
            a
        }
        Err(denied) => {
            if let Some(s) = meter.series() {
                crate::observe::series::bump(&s.auth_failures[crate::observe::labels::auth_failure_index(denied.reason)]);
            }
            let mut resp = denied.challenge;
            // The body is left unread; tell the client not to reuse this connection for its
            // next request (it would race the server closing it).
            resp.headers_mut().insert(axum::http::header::CONNECTION, HeaderValue::from_static("close"));
            return Ok(resp);
        }
    };
    checks::content_type(headers)?;
    checks::accept_post(headers)?;
    let max = config.limits.max_body_bytes;
    let wait = config.limits.body_read_timeout;
    let bytes = match tokio::time::timeout(wait, axum::body::to_bytes(body, max)).await {
        Ok(read) => read.map_err(|_| Reject::TooLarge(max))?,
        Err(_) => {
            // The rest of the body may still be on its way: this connection cannot carry
            // another request.
            let mut resp = Reject::BodyTimeout(wait).into_response();
            resp.headers_mut().insert(axum::http::header::CONNECTION, HeaderValue::from_static("close"));
            return Ok(resp);
        }
    };
    let env = message(&bytes)?;
    let kind = dispatch::kind_of(&env)?;
    let method = env.method();
    seen.method = match (kind, method.as_deref()) {
        (Kind::Request, Some(m)) => method_index(m),
        (Kind::Notification, _) => METHOD_NOTIFICATION,
        _ => METHOD_RESPONSE,
    };
    let mcp = checks::McpHeaders::read(headers);
    if is_modern(&bytes, &env, &mcp) || announces_modern(&env, &mcp) {
        seen.era = Era::Modern;
        return Ok(Box::pin(crate::clients::modern::handle(shared, headers, &env, kind, access)).await);
    }
    seen.era = Era::Legacy;
    if method.as_deref() == Some("initialize") && mcp.session_id().is_none() {
        let (session, body) = Box::pin(dispatch::initialize(shared, &env, &access)).await?;
        let mut resp = json(body);
        if let Ok(v) = HeaderValue::from_str(&session.id) {
            resp.headers_mut().insert(checks::SESSION_HEADER, v);
        }
        return Ok(resp);
    }
    mcp.protocol_version()?;
    let id = mcp.session_id().ok_or(Reject::MissingSession)?;
    let session = checks::session(shared, id, &access).await?;
    checks::same_identity(&session, &access)?;
    let reply = match (kind, method) {
        (Kind::Request, Some(m)) => dispatch::request(shared, &session, &env, &m, &access).await,
        // Boxed, like the modern era's and `initialize` above: each is a large state that
        // would otherwise be part of (and copied with) every call's future.
        (Kind::Notification, Some(m)) => Box::pin(dispatch::client_notification(&session, &env, &m)).await,
        _ => Box::pin(dispatch::client_response(shared, &session, &env, &access)).await,
    };
    Ok(into_response(reply))
}

/// The body as one JSON-RPC object: valid JSON, no duplicate key at any depth, no batch.
pub fn message(bytes: &[u8]) -> Result<Envelope<'_>, Reject> {
    if let Some(checked) = structure(bytes) {
        return checked;
    }
    // Not one JSON object (or the scan could not tell): the full check says what is wrong,
    // first the syntax and duplicates, then the shape.
    dupkeys::check(bytes).map_err(structure_error)?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(Reject::Batch);
    }
    Envelope::parse(bytes).map_err(|_| Reject::Invalid("the body must be a JSON-RPC object".into()))
}

/// A body that is one JSON object, validated, checked for duplicate keys and split into its
/// members by one pass over the text. `None` when it is not (or the pass cannot tell): the
/// caller runs the full check, which gives the same answer for every body this one answers.
fn structure(bytes: &[u8]) -> Option<Result<Envelope<'_>, Reject>> {
    let text = std::str::from_utf8(bytes).ok()?;
    Envelope::parse_checked(text).map(|checked| checked.map_err(structure_error))
}

fn structure_error(e: StructureError) -> Reject {
    match e {
        StructureError::Syntax(s) => Reject::Parse(s),
        StructureError::DuplicateKey(k) => Reject::DuplicateKey(k),
    }
}

/// Whether this is a modern-era (2026-07-28) request: one that carries its protocol version in
/// `params._meta`. The headers only decide how to look: the body decides.
pub fn is_modern(body: &[u8], env: &Envelope<'_>, mcp: &checks::McpHeaders<'_>) -> bool {
    // Without escapes in the body, the key is there only if its bytes are: most legacy
    // requests are told apart without parsing params. A request whose version header is not a
    // legacy one is almost always modern, so the search would only find what the parse finds.
    static VERSION_KEY: Needle = Needle::new(META_PROTOCOL_VERSION.as_bytes());
    let likely_modern = mcp.version().is_some_and(|v| !mcpgate_protocol::versions::is_supported_legacy(v));
    if !likely_modern && !VERSION_KEY.may_be_in(body) {
        return false;
    }
    // Split already by the parse of the body, in the common case: no second scan.
    let Some(Ok(params)) = env.object("params") else { return false };
    params.object("_meta").is_some_and(|meta| meta.is_ok_and(|m| m.has(META_PROTOCOL_VERSION)))
}

/// A request that announces a non-legacy version in its header, outside any session, is
/// treated as modern too (so a missing `_meta` gets the modern error, not "initialize first").
pub fn announces_modern(env: &Envelope<'_>, mcp: &checks::McpHeaders<'_>) -> bool {
    let header = mcp.version();
    header.is_some_and(|v| !mcpgate_protocol::versions::is_supported_legacy(v)) && mcp.session_id().is_none() && env.method().as_deref() != Some("initialize")
}

fn json(body: Vec<u8>) -> Response {
    crate::reply::json_response(StatusCode::OK, body)
}

pub fn into_response(reply: Reply) -> Response {
    match reply {
        Reply::Json(body) => crate::calls::answer::json(StatusCode::OK, body),
        Reply::Accepted => StatusCode::ACCEPTED.into_response(),
        Reply::Rejected(r) => r.into_response(),
        Reply::Stream(s) => {
            let (s, watch) = crate::observe::outcome::watch(s);
            let body = Body::from_stream(s.map(|m| Ok::<_, std::convert::Infallible>(Bytes::from(encode_message(&m)))));
            let mut resp = crate::reply::sse_response(body);
            resp.extensions_mut().insert(watch);
            resp
        }
    }
}
