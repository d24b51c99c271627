//! Modern backends (2026-07-28), called statelessly: one POST per call, with its `_meta`,
//! `inputResponses` and `requestState` passed through untouched and the SEP-2243 headers
//! recomputed from the backend's own names. Used for modern clients directly, and by
//! [`super::rounds`] for legacy clients.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use mcpgate_protocol::RpcError;
use mcpgate_protocol::envelope::Kind;
use mcpgate_protocol::envelope::{Envelope, splice};
use mcpgate_protocol::modern::param_value;
use mcpgate_upstream::{Exchange, RequestHeaders, UpstreamError};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

use super::answer::{error, final_response, json, respond_inline, send_final, status_of};
use super::unavailable;
use crate::backend::Backend;
use crate::core::{ResultRewrite, Target, credential};
use crate::identity::Access;
use crate::observe::{RequestMeter, trace};
use crate::request::ModernRequest;
use crate::state::Shared;
use tracing::Instrument;

/// `Mcp-Name` and `Mcp-Param-*` for the request as the backend will see it.
pub fn request_headers(target: &Target) -> RequestHeaders<'_> {
    let mut out = RequestHeaders { name: target.name.as_deref(), params: Vec::new() };
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
pub(crate) async fn send_modern(shared: &Shared, access: &Access, target: &Target, params: &str, deadline: Instant) -> Result<Exchange, RpcError> {
    let credential = match timeout_at(deadline, credential(shared, access, &target.backend, target.tool.as_deref())).await {
        Ok(r) => r?,
        Err(_) => return Err(unavailable(&target.backend, &UpstreamError::Timeout)),
    };
    let link = target
        .backend
        .modern_link()
        .ok_or_else(|| unavailable(&target.backend, &UpstreamError::Protocol("a modern backend must use Streamable HTTP".into())))?;
    let span = crate::stage_span!("upstream", otel.kind = "client", mcp.server = %target.backend.name, mcp.method.name = %target.method);
    let mut extra: Vec<(http::HeaderName, http::HeaderValue)> = credential.as_ref().map_or_else(Vec::new, |c| c.headers.clone());
    if let Some(t) = span.in_scope(trace::outbound) {
        extra.extend(t.into_iter().filter_map(|(k, v)| Some((k?, v))));
    }
    access.meter.upstream_sent();
    // Pending until the backend answers: its deadline timer is polled only when it may have fired.
    match crate::timer::within(deadline, link.request_with(&target.method, params, &request_headers(target), &extra).instrument(span)).await {
        Ok(Ok(ex)) => Ok(ex),
        Ok(Err(e)) => Err(unavailable(&target.backend, &e)),
        Err(_) => Err(unavailable(&target.backend, &UpstreamError::Timeout)),
    }
}

/// Modern client, modern backend: the request goes through with its `_meta`, `inputResponses`
/// and `requestState` untouched; headers are recomputed from the backend's names. A task the
/// backend creates is shown under a gateway-minted id (see `tasks`).
pub(crate) async fn stateless(shared: &Arc<Shared>, access: &Access, req: &ModernRequest, target: Target) -> Response {
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
    let meter = access.meter.clone();
    // The first message is read here: a call answered with one JSON body (the common case)
    // needs no channel and no task.
    let first = match next_step(&backend, rewrite, &client_id, &map_final, &meter, timeout_at(deadline, ex.next()).await) {
        Step::Final(out) => return json(status_of(&out), out),
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
                // Biased: a message already there is taken without arming the deadline's timer
                // or waiting on the client's side of the channel.
                biased;
                n = timeout_at(deadline, ex.next()) => n,
                // Closing the client's stream cancels: dropping the exchange closes ours.
                () = tx.closed() => return,
            };
            match next_step(&backend, rewrite, &client_id, &map_final, &meter, next) {
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
    meter: &RequestMeter,
    next: Result<Result<Option<mcpgate_upstream::Inbound>, UpstreamError>, tokio::time::error::Elapsed>,
) -> Step {
    let msg = match next {
        Ok(Ok(Some(m))) => m,
        Ok(Ok(None)) => return Step::Final(unavailable(backend, &UpstreamError::Closed).response(Some(client_id))),
        Ok(Err(e)) => return Step::Final(unavailable(backend, &e).response(Some(client_id))),
        Err(_) => return Step::Final(unavailable(backend, &UpstreamError::Timeout).response(Some(client_id))),
    };
    if msg.is_final {
        meter.upstream_answered();
        // The response was parsed to be recognised: unless its result changes, only its id does.
        let out = match (&msg.id_at, rewrite) {
            (Some(at), ResultRewrite::None) => Some(splice(&msg.bytes, at.clone(), client_id)),
            _ => final_response(backend, rewrite, &msg.bytes, client_id, false),
        }
        .map(map_final)
        .unwrap_or_else(|| unavailable(backend, &UpstreamError::Protocol("unreadable response".into())).response(Some(client_id)));
        return Step::Final(out);
    }
    let Ok(env) = Envelope::parse(&msg.bytes) else { return Step::Skip };
    match env.kind() {
        Some(Kind::Notification) if mcpgate_protocol::errors::is_list_changed(&env) => {
            backend.request_relist();
            Step::Skip
        }
        Some(Kind::Notification) => Step::Relay(msg.bytes),
        // A modern backend must not send requests on a response stream; ignore them.
        _ => Step::Skip,
    }
}
