//! Turning one call's messages into the HTTP answer: one JSON body when the first message is
//! the response, else an SSE stream that ends with it; and the final response as the client
//! sees it (its id, namespaced URIs, `resultType` for modern clients).

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use mcpgate_protocol::envelope::{Envelope, Needle};
use mcpgate_protocol::sse::encode_message;
use mcpgate_protocol::{ErrorCode, RpcError};
use tokio::sync::mpsc;

use super::rewrite_contents;
use crate::backend::Backend;
use crate::core::ResultRewrite;

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
        tokio::spawn(tracing::Instrument::instrument(work, tracing::Span::current()));
    }
    match first {
        Some((bytes, true)) => json(status_of(&bytes), bytes.to_vec()),
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
pub(crate) fn status_of(response: &[u8]) -> StatusCode {
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
        return json(status_of(&first), first.to_vec());
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
    let (messages, watch) = crate::observe::outcome::watch(futures::stream::iter([first]).chain(rest).boxed());
    let stream = messages.map(|m| Ok::<_, std::convert::Infallible>(Bytes::from(encode_message(&m))));
    let mut resp = crate::reply::sse_response(Body::from_stream(stream));
    resp.extensions_mut().insert(watch);
    resp
}

pub(crate) fn json(status: StatusCode, body: Vec<u8>) -> Response {
    let answered = crate::observe::outcome::classify(&body);
    let mut resp = crate::reply::json_response(status, body);
    if let Some(a) = answered {
        resp.extensions_mut().insert(a);
    }
    resp
}

pub(crate) fn error(status: StatusCode, id: Option<&str>, e: &RpcError) -> Response {
    json(status, e.response(id))
}
