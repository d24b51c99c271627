//! What this replica does with the other replicas' messages (see `cluster::BusMessage`).
//!
//! Every handler acts only on what this replica holds (a cached session, its GET stream, a
//! call running here, a parked call); a message about something it does not hold is ignored.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use mcpgate_protocol::errors::notification;
use mcpgate_protocol::names::ServerName;
use mcpgate_store::bus::Inbox;

use crate::cluster::BusMessage;
use crate::session::Cancelled;
use crate::state::Shared;

/// Handles bus messages until the process ends.
pub fn listen(shared: &Arc<Shared>, mut inbox: Inbox) {
    let weak = Arc::downgrade(shared);
    tokio::spawn(async move {
        while let Some(payload) = inbox.recv().await {
            let Some(shared) = Weak::upgrade(&weak) else { return };
            match serde_json::from_slice::<BusMessage>(&payload) {
                Ok(msg) => handle(&shared, msg).await,
                Err(e) => tracing::warn!(error = %e, "unreadable message from another replica"),
            }
        }
    });
}

async fn handle(shared: &Arc<Shared>, msg: BusMessage) {
    match msg {
        BusMessage::Closed { session } => shared.sessions.forget(&session).await,
        BusMessage::PinsChanged => {
            if let Some(store) = shared.pins.store()
                && let Err(e) = store.refresh().await
            {
                tracing::warn!("{e}; keeping the pins read before");
            }
        }
        BusMessage::Relist { server } => {
            if let Some(backend) = ServerName::parse(&server).ok().and_then(|s| shared.backend(&s)) {
                backend.request_relist();
            }
        }
        BusMessage::Cancel { session, request_id } => {
            let Some(s) = shared.sessions.get(&session) else { return };
            if let Cancelled::Backend(conn, backend_id) = s.cancel(&request_id) {
                let params = format!(r#"{{"requestId":{backend_id},"reason":"cancelled by the client"}}"#);
                let _ = conn.notify(notification("notifications/cancelled", Some(&params))).await;
            }
        }
        BusMessage::Deliver { session, message } => {
            if let Some(s) = shared.sessions.get(&session) {
                s.push(Bytes::from(message));
            }
        }
        BusMessage::ToCall { session, server, message } => {
            if let (Some(s), Ok(server)) = (shared.sessions.get(&session), ServerName::parse(&server)) {
                s.hand_to_call(&server, Bytes::from(message));
            }
        }
        BusMessage::Answer { session, id, response } => {
            if let Some(s) = shared.sessions.get(&session) {
                s.answer_bridged(&id, response.into_bytes());
            }
        }
        BusMessage::StreamMoved { session } => {
            if let Some(s) = shared.sessions.get(&session) {
                s.end_local_stream();
            }
        }
        BusMessage::Resume(req) => crate::calls::bridge::resume_for_replica(shared, *req).await,
        BusMessage::ResumeReply { corr, message, last } => shared.resumes.deliver(&corr, message, last),
    }
}
