//! Legacy client, modern backend: the request gets the modern `_meta` built from the client's
//! session; an `input_required` result becomes real server requests to the client (only those
//! its declared capabilities allow), and the backend is retried with the answers until the
//! call completes. The client sees an ordinary legacy call.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use mcpgate_protocol::envelope::{Envelope, Kind, json_string, raw_str};
use mcpgate_protocol::modern::{request_meta, with_meta};
use mcpgate_protocol::{ErrorCode, ObjectWriter, RpcError};
use mcpgate_upstream::UpstreamError;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

use super::answer::{final_response, send_final};
use super::modern::send_modern;
use super::unavailable;
use crate::core::Target;
use crate::identity::Access;
use crate::reply::Reply;
use crate::session::{ClientSession, capability_of};
use crate::state::Shared;

/// How many `input_required` rounds a legacy client's call may take before the gateway gives up.
const MAX_ROUNDS: usize = 16;

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
    let cancel = session.start_driven_call(&client_id, &target.backend.name);
    let shared = shared.clone();
    let session = session.clone();
    let access = access.clone();
    let span = tracing::Span::current();
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            let id = client_id.clone();
            tokio::select! {
                () = legacy_rounds(&shared, &session, &access, &target, &base, &client_id, &tx) => {}
                () = cancel.notified() => tracing::debug!(server = %target.backend.name, "call cancelled by the client"),
                () = tx.closed() => {}
            }
            session.end_call(&id);
        },
        span,
    ));
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
                access.meter.upstream_answered();
                break msg.bytes;
            }
            if let Ok(env) = Envelope::parse(&msg.bytes)
                && env.kind() == Some(Kind::Notification)
                && !mcpgate_protocol::errors::is_list_changed(&env)
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
            let mut w = ObjectWriter::jsonrpc(128);
            w.raw("id", &id).string("method", &method);
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
