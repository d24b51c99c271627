//! GET (the session's server-to-client stream) and DELETE (end the session).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use mcpgate_protocol::sse::encode_message;

use super::checks;
use crate::governance::VirtualServer;
use crate::reject::Reject;
use crate::reply::sse_response;
use crate::state::Shared;

const KEEPALIVE: Duration = Duration::from_secs(15);

pub async fn get(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !shared.governance.load().expose_full_catalog {
        return StatusCode::NOT_FOUND.into_response();
    }
    open(shared, None, headers).await
}

/// The GET stream of a session on the main endpoint (`scope: None`) or a virtual server.
pub(crate) async fn open(shared: Arc<Shared>, scope: Option<Arc<VirtualServer>>, headers: HeaderMap) -> Response {
    if let Err(r) = checks::origin(&shared.config.load(), &headers) {
        return r.into_response();
    }
    let access = match checks::access(&shared, &headers, scope).await {
        Ok(a) => a,
        Err(denied) => return denied.challenge,
    };
    let result = async {
        if !checks::accepts(&headers, "text/event-stream") {
            return Err(Reject::NotAcceptable("text/event-stream"));
        }
        checks::protocol_version(&headers)?;
        let id = checks::session_id(&headers).ok_or(Reject::MissingSession)?;
        let session = checks::session(&shared, id, &access).await?;
        checks::same_identity(&session, &access)?;
        Ok(session)
    }
    .await;
    let session = match result {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let rx = session.open_stream();
    // Tells the session (and, in a cluster, the store) when the client's stream is gone.
    let open = StreamOpen(session);
    let stopping = shared.stopping.clone();
    let counted = shared.config.load().metrics.enabled.then(|| crate::observe::series::stream_opened(&shared.series, 1));
    let stream = futures::stream::unfold((rx, (open, counted), stopping), |(mut rx, open, stopping)| async move {
        tokio::select! {
            msg = rx.recv() => msg.map(|m| (Ok::<_, std::convert::Infallible>(Bytes::from(encode_message(&m))), (rx, open, stopping))),
            _ = tokio::time::sleep(KEEPALIVE) => Some((Ok(Bytes::from_static(b": keepalive\n\n")), (rx, open, stopping))),
            // The replica is leaving: the client reconnects (to another one).
            () = stopping.cancelled() => None,
        }
    });
    sse_response(Body::from_stream(stream))
}

pub async fn delete(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !shared.governance.load().expose_full_catalog {
        return StatusCode::NOT_FOUND.into_response();
    }
    end(shared, None, headers).await
}

/// DELETE of a session on the main endpoint (`scope: None`) or a virtual server.
pub(crate) async fn end(shared: Arc<Shared>, scope: Option<Arc<VirtualServer>>, headers: HeaderMap) -> Response {
    if let Err(r) = checks::origin(&shared.config.load(), &headers) {
        return r.into_response();
    }
    let access = match checks::access(&shared, &headers, scope).await {
        Ok(a) => a,
        Err(denied) => return denied.challenge,
    };
    let Some(id) = checks::session_id(&headers) else { return Reject::MissingSession.into_response() };
    let session = match checks::session(&shared, id, &access).await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if checks::same_identity(&session, &access).is_err() {
        return Reject::SessionIdentity.into_response();
    }
    match shared.sessions.delete(id, &shared.session_ctx(), &shared.backends.load()).await {
        Ok(()) => {
            tracing::info!(session = %crate::session::short(id), "session deleted by client");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => crate::state::refusal(r).into_response(),
    }
}

/// The client's GET stream, alive; dropped when the client goes away.
struct StreamOpen(std::sync::Arc<crate::session::ClientSession>);

impl Drop for StreamOpen {
    fn drop(&mut self) {
        self.0.stream_closed();
    }
}
