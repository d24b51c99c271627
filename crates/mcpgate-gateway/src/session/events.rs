//! What a backend sends a client session outside any call (its GET stream), and the client's
//! own GET stream.
//!
//! A server request on a backend's GET stream goes to the call it belongs to when that is clear
//! (the only call waiting on that backend session; with several, the client's GET stream, else
//! the oldest call). In a cluster the client's GET stream may be held by another replica, and
//! the call by a third: the message is delivered over the bus to whoever holds them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mcpgate_protocol::envelope::{Envelope, Kind};
use mcpgate_protocol::{ErrorCode, RpcError};
use mcpgate_store::bus::To;
use mcpgate_store::sessions::Field;
use mcpgate_upstream::Connection;
use tokio::sync::mpsc;

use super::{ClientSession, lock, short};
use crate::backend::{Backend, ListChangedSink};
use crate::cluster::BusMessage;

/// Messages held for a client's GET stream before the client is considered gone.
pub const CLIENT_STREAM_QUEUE: usize = 1024;

impl ClientSession {
    /// Reads `conn`'s out-of-request messages for the life of the connection. `wait`: hold
    /// the caller until the backend has answered the GET (for a session opened here, before its
    /// first call). A backend that already gives another replica this session's GET stream
    /// refuses a second one; that replica relays.
    pub(super) async fn relay_events(&self, backend: &Arc<Backend>, conn: &Arc<Connection>, wait: bool) {
        let wait = if wait { backend.timeouts.connect } else { Duration::ZERO };
        let Some(mut events) = conn.take_events(wait).await else { return };
        let me = self.me.clone();
        let backend = Arc::downgrade(backend);
        let conn = Arc::downgrade(conn);
        tokio::spawn(async move {
            while let Some(msg) = events.recv().await {
                let (Some(session), Some(backend), Some(conn)) = (me.upgrade(), backend.upgrade(), conn.upgrade()) else { return };
                session.on_event(&backend, &conn, msg);
            }
        });
    }

    fn on_event(&self, backend: &Backend, conn: &Arc<Connection>, msg: Bytes) {
        let Ok(env) = Envelope::parse(&msg) else { return };
        match env.kind() {
            Some(Kind::Request) if self.refuse_unsupported(conn, &env) => {}
            Some(Kind::Request) => {
                let waiting = self.calls.waiting_on(&backend.name, conn);
                let has_stream = self.has_stream();
                if (waiting == 1 || (waiting > 1 && !has_stream)) && self.calls.hand_to_oldest(&backend.name, conn, msg.clone()) {
                    return;
                }
                let Some(id) = env.id().map(|i| self.mint_server_request_id(&backend.name, i.get())) else { return };
                let out = Bytes::from(env.rewrite(&[("id", Some(&id))]));
                if self.push(out.clone()) {
                    return;
                }
                match self.cluster() {
                    Some(cluster) => {
                        let (cluster, session, server) = (cluster.clone(), self.id.clone(), backend.name.to_string());
                        let conn = conn.clone();
                        tokio::spawn(async move {
                            // The client's stream, or a call of this session, on another replica.
                            let holder = cluster.store.load_session(&session, u64::MAX / 2, super::now_ms()).await.ok().flatten().and_then(|r| r.stream_holder);
                            match holder {
                                Some(h) if h != cluster.replica => {
                                    let message = String::from_utf8_lossy(&out).into_owned();
                                    cluster.send(To::Replica(h), &BusMessage::Deliver { session, message }).await;
                                }
                                _ => {
                                    let message = String::from_utf8_lossy(&msg).into_owned();
                                    cluster.send(To::All, &BusMessage::ToCall { session, server, message }).await;
                                    drop(conn);
                                }
                            }
                        });
                    }
                    // Nobody to ask: answer the backend now rather than let it wait.
                    None => refuse(conn, &env, "the client has no open stream for server requests"),
                }
            }
            Some(Kind::Notification) if mcpgate_protocol::errors::is_list_changed(&env) => {
                self.list_changed_by(backend, &env.method().unwrap_or_default());
            }
            Some(Kind::Notification) => self.deliver(msg),
            _ => {}
        }
    }

    /// A server request of another replica's backend session, for a call of this session
    /// waiting here on `server`; false when none is.
    pub(crate) fn hand_to_call(&self, server: &mcpgate_protocol::names::ServerName, msg: Bytes) -> bool {
        self.calls.hand_to_any(server, msg)
    }

    /// Whether the client declared the capability a backend's request needs. When it did not,
    /// the backend is answered with an error at once (nothing waits for a call timeout).
    pub fn refuse_unsupported(&self, conn: &Arc<Connection>, env: &Envelope<'_>) -> bool {
        let method = env.method().unwrap_or_default();
        if self.client_caps.allows(&method) {
            return false;
        }
        refuse(conn, env, &format!("the client did not declare the capability for {method}"));
        true
    }

    /// `backend` told this client's session that one of its lists changed: the catalog is
    /// re-listed (on every replica), and this client is told once it has been rebuilt (see
    /// `state::rebuild_catalog`).
    pub fn list_changed_by(&self, backend: &Backend, method: &str) {
        let me: std::sync::Weak<dyn ListChangedSink> = self.me.clone();
        backend.request_relist_for(me, Bytes::from(mcpgate_protocol::errors::notification(method, None)));
        if let Some(cluster) = self.cluster() {
            cluster.post(To::All, BusMessage::Relist { server: backend.name.to_string() });
        }
    }

    fn has_stream(&self) -> bool {
        lock(&self.stream).as_ref().is_some_and(|tx| !tx.is_closed())
    }

    /// Installs the client's GET stream here; backends' out-of-request messages go to it from
    /// now on. In a cluster the store names this replica as its holder, and a stream the client
    /// still had open on another replica is ended there.
    pub fn open_stream(&self) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(CLIENT_STREAM_QUEUE);
        *lock(&self.stream) = Some(tx);
        if let Some(cluster) = self.cluster().cloned() {
            let session = self.id.clone();
            tokio::spawn(async move {
                let before = cluster.store.load_session(&session, u64::MAX / 2, super::now_ms()).await.ok().flatten().and_then(|r| r.stream_holder);
                let _ = cluster.store.set_session_field(&session, &Field::StreamHolder, Some(&cluster.replica)).await;
                if let Some(old) = before.filter(|o| *o != cluster.replica) {
                    cluster.send(To::Replica(old), &BusMessage::StreamMoved { session }).await;
                }
            });
        }
        rx
    }

    /// The client's GET stream here ended (it went away, or moved to another replica).
    pub fn stream_closed(&self) {
        *lock(&self.stream) = None;
        if let Some(cluster) = self.cluster().cloned() {
            let session = self.id.clone();
            tokio::spawn(async move {
                let _ = cluster.store.clear_session_field_if(&session, &Field::StreamHolder, &cluster.replica).await;
            });
        }
    }

    /// The client's GET stream moved to another replica: end the one here (the client reads
    /// the other), leaving the store's record of the holder alone.
    pub fn end_local_stream(&self) {
        *lock(&self.stream) = None;
    }

    /// Sends a message on the client's GET stream here; false when none is open here. A client
    /// that falls [`CLIENT_STREAM_QUEUE`] messages behind has its stream closed (it sees the
    /// stream end and may reopen it) rather than held in memory.
    pub fn push(&self, msg: Bytes) -> bool {
        let mut slot = lock(&self.stream);
        match slot.as_ref().map(|tx| tx.try_send(msg)) {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                if matches!(e, mpsc::error::TrySendError::Full(_)) {
                    tracing::warn!(session = %short(&self.id), "client's GET stream is {CLIENT_STREAM_QUEUE} messages behind; closing it");
                }
                *slot = None;
                false
            }
            None => false,
        }
    }

    /// Sends a message on the client's GET stream wherever it is open (here, or on the replica
    /// the store names); dropped when the client has none.
    pub fn deliver(&self, msg: Bytes) {
        if self.push(msg.clone()) {
            return;
        }
        let Some(cluster) = self.cluster().cloned() else { return };
        let session = self.id.clone();
        tokio::spawn(async move {
            let holder = cluster.store.load_session(&session, u64::MAX / 2, super::now_ms()).await.ok().flatten().and_then(|r| r.stream_holder);
            if let Some(h) = holder.filter(|h| *h != cluster.replica) {
                let message = String::from_utf8_lossy(&msg).into_owned();
                cluster.send(To::Replica(h), &BusMessage::Deliver { session, message }).await;
            } else {
                tracing::debug!(session = %short(&session), "no open stream for a backend notification; dropped");
            }
        });
    }
}

impl ListChangedSink for ClientSession {
    fn deliver(&self, notification: Bytes) {
        ClientSession::deliver(self, notification);
    }

    fn scope(&self) -> Option<&str> {
        self.virtual_server()
    }
}

/// Answers a backend's request with an error (in the background: never blocks the caller).
pub fn refuse(conn: &Arc<Connection>, request: &Envelope<'_>, why: &str) {
    let id = request.id().map_or_else(|| "null".to_owned(), |i| i.get().to_owned());
    let reply = RpcError::new(ErrorCode::MethodNotFound, why).response(Some(&id));
    let conn = conn.clone();
    tokio::spawn(async move {
        let _ = conn.respond(reply).await;
    });
}
