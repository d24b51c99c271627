//! Calls that cross into a modern backend or come from a modern client.
//!
//! | client \ backend | legacy                                   | modern                      |
//! |------------------|------------------------------------------|-----------------------------|
//! | legacy           | `forward` (sessions)                     | [`for_session`]: MRTR rounds become real server requests to the client |
//! | modern           | [`super::bridge`]: server requests become `input_required` | [`stateless`]: passed through |

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use mcpgate_protocol::envelope::{Envelope, Kind, Needle, json_string, raw_str};
use mcpgate_protocol::modern::{param_value, request_meta, with_meta};
use mcpgate_protocol::sse::encode_message;
use mcpgate_protocol::{ErrorCode, ObjectWriter, RpcError};
use mcpgate_upstream::{Exchange, RequestHeaders, UpstreamError};
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

use super::{ModernRequest, error};
use crate::backend::{Backend, Era};
use crate::forward::{ResultRewrite, Target, credential, rewrite_contents, unavailable};
use crate::identity::Access;
use crate::reply::Reply;
use crate::session::ClientSession;
use crate::state::Shared;

/// How many `input_required` rounds a legacy client's call may take before the gateway gives up.
const MAX_ROUNDS: usize = 16;

/// A modern client's `tools/call`, `prompts/get`, `resources/read` or `completion/complete`.
pub async fn handle(shared: &Arc<Shared>, access: Access, req: ModernRequest) -> Response {
    let catalog = shared.catalog.load();
    let target = match crate::dispatch::route(shared, &catalog, &req.method, Some(&req.params()), &access, &req.id) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::OK, Some(&req.id), &modern_error(e)),
    };
    drop(catalog);
    match target.backend.era() {
        Era::Modern => stateless(shared, &access, &req, target).await,
        Era::Legacy | Era::Unknown => Box::pin(super::bridge::call(shared, access, req, target)).await,
    }
}

/// 2025-era error codes a modern client must not see (`-32002` became `-32602`).
pub(crate) fn modern_error(mut e: RpcError) -> RpcError {
    if e.code == ErrorCode::ResourceNotFound {
        e.code = ErrorCode::InvalidParams;
    }
    e
}

/// `Mcp-Name` and `Mcp-Param-*` for the request as the backend will see it.
fn request_headers(target: &Target) -> RequestHeaders {
    let mut out = RequestHeaders { name: target.name.clone(), params: Vec::new() };
    if !target.param_headers.is_empty() {
        let params: serde_json::Value = serde_json::from_str(&target.params).unwrap_or_default();
        for h in &target.param_headers {
            if let Some(v) = param_value(params.get("arguments"), h) {
                out.params.push((h.name.clone(), v));
            }
        }
    }
    out
}

/// Sends a request to a modern backend; failures are already the client's error.
async fn send_modern(shared: &Shared, access: &Access, target: &Target, params: &str, deadline: Instant) -> Result<Exchange, RpcError> {
    let credential = match timeout_at(deadline, credential(shared, access, target)).await {
        Ok(r) => r?,
        Err(_) => return Err(unavailable(&target.backend, &UpstreamError::Timeout)),
    };
    let link = target
        .backend
        .modern_link(&shared.http)
        .ok_or_else(|| unavailable(&target.backend, &UpstreamError::Protocol("a modern backend must use Streamable HTTP".into())))?;
    let extra = credential.as_ref().map_or(&[][..], |c| c.headers.as_slice());
    match timeout_at(deadline, link.request_with(&target.method, params, &request_headers(target), extra)).await {
        Ok(Ok(ex)) => Ok(ex),
        Ok(Err(e)) => Err(unavailable(&target.backend, &e)),
        Err(_) => Err(unavailable(&target.backend, &UpstreamError::Timeout)),
    }
}

/// Modern client, modern backend: the request goes through with its `_meta`, `inputResponses`
/// and `requestState` untouched; headers are recomputed from the backend's names. A task the
/// backend creates is shown under a gateway-minted id (see `tasks`).
async fn stateless(shared: &Arc<Shared>, access: &Access, req: &ModernRequest, target: Target) -> Response {
    let server = target.backend.name.clone();
    let principal = access.principal().unwrap_or_default();
    let weak = Arc::downgrade(shared);
    relay_modern(shared, access, req, target, move |response| match weak.upgrade() {
        Some(shared) => super::tasks::expose_created(&shared, &server, &principal, response),
        None => response,
    })
    .await
}

/// A `tasks/*` request for a task of a modern backend.
pub(crate) async fn task_call(shared: &Arc<Shared>, access: &Access, req: &ModernRequest, target: Target, client_task: &str, backend_task: &str) -> Response {
    let (client_task, backend_task) = (client_task.to_owned(), backend_task.to_owned());
    relay_modern(shared, access, req, target, move |response| super::tasks::expose_task_id(response, &backend_task, &client_task)).await
}

async fn relay_modern(
    shared: &Arc<Shared>,
    access: &Access,
    req: &ModernRequest,
    target: Target,
    map_final: impl Fn(Vec<u8>) -> Vec<u8> + Send + 'static,
) -> Response {
    let deadline = Instant::now() + target.backend.timeouts.call;
    let mut ex = match send_modern(shared, access, &target, &target.params, deadline).await {
        Ok(ex) => ex,
        Err(e) => return error(StatusCode::OK, Some(&req.id), &e),
    };
    let backend = target.backend.clone();
    let client_id = req.id.clone();
    let rewrite = target.rewrite;
    // The first message is read here: a call answered with one JSON body (the common case)
    // needs no channel and no task.
    let first = match next_step(&backend, rewrite, &client_id, &map_final, timeout_at(deadline, ex.next()).await) {
        Step::Final(out) => return super::json(status_of(&out), out),
        Step::Relay(bytes) => Some(bytes),
        Step::Skip => None,
    };
    // A streamed answer: the client gets an SSE stream, fed from the rest of the exchange.
    let (tx, rx) = mpsc::channel(16);
    if let Some(bytes) = first {
        // The channel is new and empty: this cannot fail for want of room.
        let _ = tx.try_send((bytes, false));
    }
    let work = Box::pin(async move {
        loop {
            let next = tokio::select! {
                // Closing the client's stream cancels: dropping the exchange closes ours.
                () = tx.closed() => return,
                n = timeout_at(deadline, ex.next()) => n,
            };
            match next_step(&backend, rewrite, &client_id, &map_final, next) {
                Step::Final(out) => return send_final(&tx, out).await,
                Step::Relay(bytes) => {
                    if tx.send((bytes, false)).await.is_err() {
                        return;
                    }
                }
                Step::Skip => {}
            }
        }
    });
    respond_inline(work, rx).await
}

/// What one read from a modern backend's exchange means for the client.
enum Step {
    /// The final response, as the client sees it (an error when the exchange failed).
    Final(Vec<u8>),
    /// A notification to pass on.
    Relay(Bytes),
    /// Nothing for the client.
    Skip,
}

fn next_step(
    backend: &Backend,
    rewrite: ResultRewrite,
    client_id: &str,
    map_final: &impl Fn(Vec<u8>) -> Vec<u8>,
    next: Result<Result<Option<mcpgate_upstream::Inbound>, UpstreamError>, tokio::time::error::Elapsed>,
) -> Step {
    let msg = match next {
        Ok(Ok(Some(m))) => m,
        Ok(Ok(None)) => return Step::Final(unavailable(backend, &UpstreamError::Closed).response(Some(client_id))),
        Ok(Err(e)) => return Step::Final(unavailable(backend, &e).response(Some(client_id))),
        Err(_) => return Step::Final(unavailable(backend, &UpstreamError::Timeout).response(Some(client_id))),
    };
    if msg.is_final {
        let out = final_response(backend, rewrite, &msg.bytes, client_id, false)
            .map(map_final)
            .unwrap_or_else(|| unavailable(backend, &UpstreamError::Protocol("unreadable response".into())).response(Some(client_id)));
        return Step::Final(out);
    }
    let Ok(env) = Envelope::parse(&msg.bytes) else { return Step::Skip };
    match env.kind() {
        Some(Kind::Notification) if crate::session::is_list_changed(&env) => {
            backend.request_relist();
            Step::Skip
        }
        Some(Kind::Notification) => Step::Relay(msg.bytes),
        // A modern backend must not send requests on a response stream; ignore them.
        _ => Step::Skip,
    }
}

/// Runs `work` (which sends a call's messages on the channel `rx` reads) in this task until
/// its first message: a call answered with one JSON body needs no task of its own. Only a call
/// that streams hands the rest of `work` to a task.
pub(crate) async fn respond_inline(
    mut work: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    mut rx: mpsc::Receiver<(Bytes, bool)>,
) -> Response {
    let (first, done) = tokio::select! {
        biased;
        item = rx.recv() => (item, false),
        () = &mut work => (rx.recv().await, true),
    };
    // A finished future must not be polled again; an unfinished one runs on its own.
    if !done {
        tokio::spawn(work);
    }
    match first {
        Some((bytes, true)) => super::json(status_of(&bytes), bytes.to_vec()),
        Some((bytes, false)) => stream_from(bytes, rx),
        None => error(StatusCode::OK, None, &RpcError::new(ErrorCode::Internal, "the call ended without an answer")),
    }
}

pub(crate) async fn send_final(tx: &mpsc::Sender<(Bytes, bool)>, body: Vec<u8>) {
    let _ = tx.send((Bytes::from(body), true)).await;
}

/// The backend's final response as the client sees it: its id, namespaced content URIs, and
/// for a modern client `resultType` (and cache hints on a legacy backend's `resources/read`).
pub(crate) fn final_response(backend: &Backend, rewrite: ResultRewrite, bytes: &[u8], client_id: &str, from_legacy: bool) -> Option<Vec<u8>> {
    let env = Envelope::parse(bytes).ok()?;
    if let Some(err) = env.get("error") {
        let e = Envelope::parse_raw(err).ok()?;
        let code = e.get("code").map(|c| c.get());
        let err = if from_legacy && code == Some("-32002") { Some(String::from_utf8(e.rewrite(&[("code", Some("-32602"))])).ok()?) } else { None };
        let mut replace = vec![("id", Some(client_id))];
        if let Some(err) = &err {
            replace.push(("error", Some(err.as_str())));
        }
        return Some(env.rewrite(&replace));
    }
    let result = env.get("result")?;
    let mut result = match rewrite {
        ResultRewrite::ResourceContents => rewrite_contents(&backend.name, &backend.prefix, result)?,
        ResultRewrite::None => result.get().to_owned(),
    };
    if from_legacy {
        let r = Envelope::parse(result.as_bytes()).ok()?;
        let mut add: Vec<(&str, Option<&str>)> = Vec::new();
        if !r.has("resultType") {
            add.push(("resultType", Some(r#""complete""#)));
        }
        if rewrite == ResultRewrite::ResourceContents && !r.has("ttlMs") {
            // A legacy backend gives no caching hint; the gateway claims nothing.
            add.push(("ttlMs", Some("0")));
            add.push(("cacheScope", Some(r#""private""#)));
        }
        if !add.is_empty() {
            result = String::from_utf8(r.rewrite(&add)).ok()?;
        }
    }
    Some(env.rewrite(&[("id", Some(client_id)), ("result", Some(&result))]))
}

/// The HTTP status a final JSON answer travels with: the modern protocol errors a backend
/// answered (header mismatch, missing capability, unsupported version) keep their 400.
fn status_of(response: &[u8]) -> StatusCode {
    // Without these digits (or an escape), none of the three codes is there.
    static CODES: Needle = Needle::new(b"-3202");
    if !CODES.may_be_in(response) {
        return StatusCode::OK;
    }
    let code = Envelope::parse(response)
        .ok()
        .and_then(|e| e.get("error").and_then(|e| Envelope::parse_raw(e).ok()).and_then(|e| e.get("code").map(|c| c.get().to_owned())));
    match code.as_deref() {
        Some("-32020" | "-32021" | "-32022") => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

/// Turns the messages of one call into the HTTP answer: one JSON body when the first message
/// is the response, else an SSE stream that ends with it.
pub(crate) async fn respond(mut rx: mpsc::Receiver<(Bytes, bool)>) -> Response {
    let Some((first, is_final)) = rx.recv().await else {
        let e = RpcError::new(ErrorCode::Internal, "the call ended without an answer");
        return error(StatusCode::OK, None, &e);
    };
    if is_final {
        return super::json(status_of(&first), first.to_vec());
    }
    stream_from(first, rx)
}

/// An SSE answer: `first`, then the channel's messages up to and including the final one.
fn stream_from(first: Bytes, rx: mpsc::Receiver<(Bytes, bool)>) -> Response {
    let rest = futures::stream::unfold((rx, false), |(mut rx, done)| async move {
        if done {
            return None;
        }
        let (bytes, is_final) = rx.recv().await?;
        Some((bytes, (rx, is_final)))
    });
    let stream = futures::stream::iter([first]).chain(rest).map(|m| Ok::<_, std::convert::Infallible>(Bytes::from(encode_message(&m))));
    crate::front::post::sse_response(Body::from_stream(stream))
}

/// Legacy client, modern backend: the request gets the modern `_meta` built from the client's
/// session; an `input_required` result becomes real server requests to the client (only those
/// its declared capabilities allow), and the backend is retried with the answers until the
/// call completes. The client sees an ordinary legacy call.
pub async fn for_session(shared: &Arc<Shared>, session: &Arc<ClientSession>, access: &Access, target: Target, client_id: String) -> Reply {
    let init = session.init_options();
    // A session cannot poll tasks (`tasks/*` is modern-only): never let a backend create one.
    let meta = request_meta(&super::tasks::without_tasks_extension(&init.capabilities), &init.client_info);
    // A session gets log messages unless it lowered their level (logging/setLevel); a modern
    // backend sends none unless asked per request.
    let level = json_string(&session.log_level().unwrap_or_else(|| "info".to_owned()));
    let meta = Envelope::parse(meta.as_bytes())
        .ok()
        .and_then(|m| String::from_utf8(m.rewrite(&[(mcpgate_protocol::modern::META_LOG_LEVEL, Some(&level))])).ok())
        .unwrap_or(meta);
    let base = with_meta(Some(&target.params), &meta);
    let (tx, rx) = mpsc::channel(16);
    let cancel = session.start_cancellable(&client_id);
    let shared = shared.clone();
    let session = session.clone();
    let access = access.clone();
    tokio::spawn(async move {
        let id = client_id.clone();
        tokio::select! {
            () = legacy_rounds(&shared, &session, &access, &target, &base, &client_id, &tx) => {}
            () = cancel.notified() => tracing::debug!(server = %target.backend.name, "call cancelled by the client"),
            () = tx.closed() => {}
        }
        session.end_cancellable(&id);
    });
    let mut rx = rx;
    match rx.recv().await {
        None => Reply::Json(RpcError::new(ErrorCode::Internal, "the call ended without an answer").response(Some(&id_of_nothing()))),
        Some((first, true)) => Reply::Json(first.to_vec()),
        Some((first, false)) => {
            let rest = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|(b, _)| (b, rx)) });
            Reply::Stream(futures::stream::iter([first]).chain(rest).boxed())
        }
    }
}

fn id_of_nothing() -> String {
    "null".to_owned()
}

async fn legacy_rounds(
    shared: &Shared,
    session: &ClientSession,
    access: &Access,
    target: &Target,
    base: &str,
    client_id: &str,
    tx: &mpsc::Sender<(Bytes, bool)>,
) {
    let backend = &target.backend;
    let mut params = base.to_owned();
    for _ in 0..MAX_ROUNDS {
        let deadline = Instant::now() + backend.timeouts.call;
        let mut ex = match send_modern(shared, access, target, &params, deadline).await {
            Ok(ex) => ex,
            Err(e) => return send_final(tx, e.response(Some(client_id))).await,
        };
        let response = loop {
            let msg = match timeout_at(deadline, ex.next()).await {
                Ok(Ok(Some(m))) => m,
                Ok(Ok(None)) => return send_final(tx, unavailable(backend, &UpstreamError::Closed).response(Some(client_id))).await,
                Ok(Err(e)) => return send_final(tx, unavailable(backend, &e).response(Some(client_id))).await,
                Err(_) => return send_final(tx, unavailable(backend, &UpstreamError::Timeout).response(Some(client_id))).await,
            };
            if msg.is_final {
                break msg.bytes;
            }
            if let Ok(env) = Envelope::parse(&msg.bytes)
                && env.kind() == Some(Kind::Notification)
                && !crate::session::is_list_changed(&env)
                && tx.send((msg.bytes.clone(), false)).await.is_err()
            {
                return;
            }
        };
        let Some(round) = input_required(&response) else {
            let out = final_response(backend, target.rewrite, &response, client_id, false)
                .unwrap_or_else(|| unavailable(backend, &UpstreamError::Protocol("unreadable response".into())).response(Some(client_id)));
            return send_final(tx, out).await;
        };
        // Ask the client everything at once, then wait for every answer.
        let caps = session.client_caps();
        let mut waiting = Vec::new();
        for (key, request) in &round.requests {
            let Ok(r) = Envelope::parse(request.get().as_bytes()) else { continue };
            let method = r.method().unwrap_or_default().into_owned();
            if !caps.allows(&method) {
                let e = RpcError::new(ErrorCode::MissingCapability, format!("server '{}' needs {method}, which this client did not declare", backend.name))
                    .with_data(format!(r#"{{"requiredCapabilities":[{}]}}"#, json_string(capability_of(&method))));
                return send_final(tx, e.response(Some(client_id))).await;
            }
            let (id, answer) = session.register_bridged_request();
            let mut w = ObjectWriter::new();
            w.string("jsonrpc", "2.0").raw("id", &id).raw("method", &json_string(&method));
            if let Some(p) = r.get("params") {
                w.raw("params", p.get());
            }
            if tx.send((Bytes::from(w.finish()), false)).await.is_err() {
                return;
            }
            waiting.push((key.clone(), answer));
        }
        let mut responses = ObjectWriter::new();
        let input_deadline = Instant::now() + Duration::from_secs(600).max(backend.timeouts.call);
        for (key, answer) in waiting {
            let Ok(Ok(bytes)) = timeout_at(input_deadline, answer).await else {
                let e = RpcError::new(ErrorCode::Internal, "the client did not answer the server's request in time");
                return send_final(tx, e.response(Some(client_id))).await;
            };
            let Ok(env) = Envelope::parse(&bytes) else { continue };
            match env.get("result") {
                Some(result) => {
                    responses.raw(&key, result.get());
                }
                None => {
                    // The client refused (an error response): the call cannot go on.
                    let err = env.get("error").map_or("{}", |e| e.get());
                    let e = RpcError::new(ErrorCode::Internal, format!("the client refused the server's request: {err}"));
                    return send_final(tx, e.response(Some(client_id))).await;
                }
            }
        }
        let responses = String::from_utf8(responses.finish()).unwrap_or_default();
        let Ok(p) = Envelope::parse(base.as_bytes()) else { return };
        let state = round.state.as_deref().map(json_string);
        params = String::from_utf8(p.rewrite(&[("inputResponses", Some(&responses)), ("requestState", state.as_deref())])).unwrap_or_default();
    }
    let e = RpcError::new(ErrorCode::Internal, format!("server '{}' asked for input more than {MAX_ROUNDS} times", backend.name));
    send_final(tx, e.response(Some(client_id))).await;
}

/// The client capability a server-to-client request needs ("input" for any other).
pub(crate) fn capability_of(method: &str) -> &'static str {
    match method {
        "sampling/createMessage" => "sampling",
        "elicitation/create" => "elicitation",
        "roots/list" => "roots",
        _ => "input",
    }
}

/// One `input_required` round of a modern backend.
struct Round {
    requests: Vec<(String, Box<RawValue>)>,
    state: Option<String>,
}

fn input_required(response: &[u8]) -> Option<Round> {
    let env = Envelope::parse(response).ok()?;
    let result = Envelope::parse_raw(env.get("result")?).ok()?;
    if result.str("resultType").as_deref() != Some("input_required") {
        return None;
    }
    let requests = result
        .get("inputRequests")
        .and_then(|r| serde_json::from_str::<indexmap::IndexMap<String, Box<RawValue>>>(r.get()).ok())
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    Some(Round { requests, state: result.get("requestState").and_then(raw_str).map(|s| s.into_owned()) })
}
