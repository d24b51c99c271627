//! Client sessions (legacy era) and the backend sessions each one owns.
//!
//! A backend session is created once per (client session, backend) on first use, with the
//! client's declared capabilities, and is never shared with another client session: whatever
//! identity or credential later issues attach to a session stays with it. Concurrent first
//! calls share one initialisation (`OnceCell`).

mod calls;
mod caps;
pub mod parked;
pub mod quota;
mod registry;
pub mod seal;
pub mod tasks;

pub use calls::Cancelled;
pub use caps::{ClientCaps, capability_of};
pub(crate) use registry::new_session_id;
pub use registry::{Refused, SessionLimits, Sessions, short};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mcpgate_credentials::Resolved;
use mcpgate_protocol::envelope::{Envelope, Kind, json_string};
use mcpgate_protocol::names::ServerName;
use mcpgate_protocol::{ErrorCode, RpcError};
use mcpgate_upstream::{Connection, InitOptions, UpstreamError};
use tokio::sync::{OnceCell, mpsc};

use crate::backend::{Backend, ListChangedSink};

type Cell = Arc<OnceCell<Arc<Connection>>>;

/// A backend session slot: the fingerprint of the credential it was opened with, and the
/// connection (created once). A different credential gets a different session.
#[derive(Clone, Default)]
struct Slot {
    credential: u64,
    cell: Cell,
}

/// A request a backend sent that awaits the client's answer.
#[derive(Debug)]
pub enum PendingServerRequest {
    /// A legacy backend's own request, relayed under a gateway id.
    Relayed {
        server: ServerName,
        /// The backend's own id for the request (raw JSON).
        backend_id: String,
    },
    /// One input request of a modern backend's `input_required` result, asked of this
    /// legacy client by the gateway; the answer (the client's whole response) goes to `reply`.
    Bridged { reply: tokio::sync::oneshot::Sender<Vec<u8>> },
}

pub struct ClientSession {
    pub id: String,
    /// The verified identity that created the session; every later request must carry the
    /// same one (`None` when the gateway runs without authentication).
    pub principal: Option<String>,
    /// The legacy revision agreed with the client.
    pub protocol_version: &'static str,
    /// How backends are greeted on this client's behalf (client capabilities, clientInfo).
    init: InitOptions,
    /// Which server-initiated requests the client declared it can answer.
    client_caps: ClientCaps,
    backends: Mutex<HashMap<ServerName, Slot>>,
    pending: Mutex<HashMap<String, PendingServerRequest>>,
    calls: calls::Calls,
    /// Resource subscriptions the gateway holds for the client (modern backends, which have no
    /// `resources/subscribe`): the task relaying each one's updates, by the URI the client named.
    subscriptions: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    stream: Mutex<Option<mpsc::UnboundedSender<Bytes>>>,
    log_level: Mutex<Option<String>>,
    next_id: AtomicU64,
    created: Instant,
    last_seen_ms: AtomicU64,
    me: Weak<ClientSession>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ClientSession {
    pub fn new(protocol_version: &'static str, client_capabilities: String, client_info: String, principal: Option<String>) -> Arc<Self> {
        Self::with_id(new_session_id(), protocol_version, client_capabilities, client_info, principal)
    }

    /// A session under a chosen id (the gateway's own sessions for stateless callers).
    pub fn with_id(id: String, protocol_version: &'static str, client_capabilities: String, client_info: String, principal: Option<String>) -> Arc<Self> {
        let client_caps = ClientCaps::parse(&client_capabilities);
        Arc::new_cyclic(|me| Self {
            id,
            principal,
            client_caps,
            protocol_version,
            init: InitOptions { protocol_version: protocol_version.to_owned(), capabilities: client_capabilities, client_info },
            backends: Mutex::default(),
            pending: Mutex::default(),
            calls: calls::Calls::default(),
            subscriptions: Mutex::default(),
            stream: Mutex::default(),
            log_level: Mutex::default(),
            next_id: AtomicU64::new(1),
            created: Instant::now(),
            last_seen_ms: AtomicU64::new(0),
            me: me.clone(),
        })
    }

    pub fn touch(&self) {
        self.last_seen_ms.store(self.created.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    pub fn idle_for(&self) -> Duration {
        self.created.elapsed().saturating_sub(Duration::from_millis(self.last_seen_ms.load(Ordering::Relaxed)))
    }

    /// This client's session with `backend`, created on first use with `credential`. When the
    /// credential changes (expired and re-resolved), a new backend session replaces the old.
    pub async fn backend(&self, backend: &Arc<Backend>, http: &reqwest::Client, credential: Option<&Resolved>) -> Result<Arc<Connection>, UpstreamError> {
        let fingerprint = credential.map_or(0, |c| c.fingerprint);
        let (cell, replaced) = {
            let mut map = lock(&self.backends);
            let slot = map.entry(backend.name.clone()).or_insert_with(|| Slot { credential: fingerprint, cell: Cell::default() });
            if slot.credential == fingerprint {
                (slot.cell.clone(), None)
            } else {
                let old = std::mem::replace(slot, Slot { credential: fingerprint, cell: Cell::default() });
                (slot.cell.clone(), old.cell.get().cloned())
            }
        };
        if let Some(old) = replaced {
            tokio::spawn(async move { old.close().await });
        }
        let conn = cell
            // Boxed: opening a backend session is rare, and its state would otherwise enlarge
            // every call's future.
            .get_or_try_init(|| {
                Box::pin(async {
                    let mut headers = backend.headers.clone();
                    for (name, value) in credential.iter().flat_map(|c| c.headers.iter()) {
                        headers.insert(name.clone(), value.clone());
                    }
                    let connect = Connection::connect(backend.spec.clone(), http, headers, &self.init);
                    let conn =
                        tokio::time::timeout(backend.timeouts.connect.max(backend.timeouts.discovery), connect).await.map_err(|_| UpstreamError::Timeout)??;
                    let conn = Arc::new(conn);
                    tracing::debug!(session = %short(&self.id), server = %backend.name, "backend session opened");
                    // Out-of-request messages (list_changed, server requests, resource updates) are
                    // read from the start: a change announced only to this session must not be lost.
                    self.relay_events(backend, &conn).await;
                    let level = lock(&self.log_level).clone();
                    if let Some(level) = level {
                        let params = format!(r#"{{"level":{}}}"#, json_string(&level));
                        if let Ok(ex) = conn.request("logging/setLevel", Some(&params)).await {
                            let _ = ex.response().await;
                        }
                    }
                    Ok::<_, UpstreamError>(conn)
                })
            })
            .await?
            .clone();
        Ok(conn)
    }

    /// Forgets a backend session that failed (e.g. the backend lost it), so the next call
    /// creates a fresh one. Only forgets `failed` itself, not a replacement made meanwhile.
    pub fn forget_backend(&self, server: &ServerName, failed: &Arc<Connection>) {
        let mut map = lock(&self.backends);
        if map.get(server).and_then(|s| s.cell.get()).is_some_and(|c| Arc::ptr_eq(c, failed)) {
            map.remove(server);
        }
    }

    /// Closes and forgets this client's session with `server` (config reload removed it).
    pub async fn drop_backend(&self, server: &ServerName) {
        let slot = lock(&self.backends).remove(server);
        if let Some(conn) = slot.and_then(|s| s.cell.get().cloned()) {
            conn.close().await;
        }
    }

    pub fn open_backends(&self) -> Vec<(ServerName, Arc<Connection>)> {
        lock(&self.backends).iter().filter_map(|(k, s)| Some((k.clone(), s.cell.get()?.clone()))).collect()
    }

    /// Ends every backend session (client DELETE or expiry).
    pub async fn close(&self) {
        let conns: Vec<_> = lock(&self.backends).drain().filter_map(|(_, s)| s.cell.get().cloned()).collect();
        *lock(&self.stream) = None;
        for (_, relay) in lock(&self.subscriptions).drain() {
            relay.abort();
        }
        for c in conns {
            c.close().await;
        }
    }

    /// The level the client set with `logging/setLevel`, if it did.
    pub fn log_level(&self) -> Option<String> {
        lock(&self.log_level).clone()
    }

    pub fn set_log_level(&self, level: String) {
        *lock(&self.log_level) = Some(level);
    }

    /// Mints the id under which a backend's request is shown to the client.
    pub fn register_server_request(&self, server: &ServerName, backend_id: &str) -> String {
        let id = json_string(&format!("mcpgate-{}", self.next_id.fetch_add(1, Ordering::Relaxed)));
        lock(&self.pending).insert(id.clone(), PendingServerRequest::Relayed { server: server.clone(), backend_id: backend_id.to_owned() });
        id
    }

    /// Mints the id of a request the gateway itself asks the client (era bridging).
    pub fn register_bridged_request(&self) -> (String, tokio::sync::oneshot::Receiver<Vec<u8>>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let id = json_string(&format!("mcpgate-{}", self.next_id.fetch_add(1, Ordering::Relaxed)));
        lock(&self.pending).insert(id.clone(), PendingServerRequest::Bridged { reply: tx });
        (id, rx)
    }

    /// How backends are greeted on this client's behalf.
    pub fn init_options(&self) -> &InitOptions {
        &self.init
    }

    pub fn client_caps(&self) -> ClientCaps {
        self.client_caps
    }

    /// Registers a call the gateway drives itself (a modern backend's rounds); the returned
    /// notify fires when the client cancels it.
    pub fn start_driven_call(&self, client_id: &str, server: &ServerName) -> Arc<tokio::sync::Notify> {
        self.calls.start_driven(client_id, server)
    }

    /// Registers a call sent on `conn` under `backend_id`, before it is sent: from now on the
    /// client can cancel it, and a server request the backend sends for it on its GET stream
    /// arrives on the returned inbox (raw, as the backend sent it).
    pub fn start_call(&self, client_id: &str, server: &ServerName, conn: &Arc<Connection>, backend_id: u64) -> mpsc::UnboundedReceiver<Bytes> {
        self.calls.start_backend(client_id, server, conn, backend_id)
    }

    pub fn end_call(&self, client_id: &str) {
        self.calls.end(client_id);
    }

    /// The client's `notifications/cancelled` for `client_id`.
    pub fn cancel(&self, client_id: &str) -> Cancelled {
        self.calls.cancel(client_id)
    }

    /// Keeps the relay of a resource subscription the gateway made for the client (replacing
    /// an earlier one for the same URI).
    pub fn add_subscription(&self, uri: String, relay: tokio::task::AbortHandle) {
        if let Some(old) = lock(&self.subscriptions).insert(uri, relay) {
            old.abort();
        }
    }

    /// Ends the gateway-held subscription to `uri`; false when there was none.
    pub fn remove_subscription(&self, uri: &str) -> bool {
        lock(&self.subscriptions).remove(uri).map(|relay| relay.abort()).is_some()
    }

    /// Calls that have not answered yet.
    pub fn calls_in_flight(&self) -> usize {
        self.calls.len()
    }

    pub fn take_server_request(&self, client_id: &str) -> Option<PendingServerRequest> {
        lock(&self.pending).remove(client_id)
    }

    pub fn connection(&self, server: &ServerName) -> Option<Arc<Connection>> {
        lock(&self.backends).get(server).and_then(|s| s.cell.get().cloned())
    }

    /// Installs the client's GET stream; backends' out-of-request messages go to it from now on.
    pub fn open_stream(&self) -> mpsc::UnboundedReceiver<Bytes> {
        let (tx, rx) = mpsc::unbounded_channel();
        *lock(&self.stream) = Some(tx);
        rx
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

    /// Sends a message on the client's GET stream; false when none is open.
    pub fn push(&self, msg: Bytes) -> bool {
        let mut slot = lock(&self.stream);
        match slot.as_ref().map(|tx| tx.send(msg)) {
            Some(Ok(())) => true,
            Some(Err(_)) => {
                *slot = None;
                false
            }
            None => false,
        }
    }

    async fn relay_events(&self, backend: &Arc<Backend>, conn: &Arc<Connection>) {
        let Some(mut events) = conn.take_events(backend.timeouts.connect).await else { return };
        let me = self.me.clone();
        let backend = Arc::downgrade(backend);
        let conn = Arc::downgrade(conn);
        tokio::spawn(async move {
            while let Some(msg) = events.recv().await {
                let (Some(session), Some(backend), Some(conn)) = (me.upgrade(), backend.upgrade(), conn.upgrade()) else { return };
                let Some(out) = session.translate_event(&backend, &conn, &msg) else { continue };
                if !session.push(out) {
                    // Nobody to ask: answer the backend now rather than let it wait.
                    let env = Envelope::parse(&msg).ok().filter(|e| e.kind() == Some(Kind::Request));
                    if let Some(env) = env {
                        refuse(&conn, &env, "the client has no open stream for server requests");
                    }
                }
            }
        });
    }

    /// A backend's out-of-request message as the client's GET stream should see it, if at all.
    /// A server request goes to the call it belongs to instead when that is clear: the only
    /// call waiting on this backend session, or, when the client has no GET stream to ask on,
    /// the oldest one.
    fn translate_event(&self, backend: &Backend, conn: &Arc<Connection>, msg: &Bytes) -> Option<Bytes> {
        let env = Envelope::parse(msg).ok()?;
        match env.kind()? {
            Kind::Request if self.refuse_unsupported(conn, &env) => None,
            Kind::Request => {
                let waiting = self.calls.waiting_on(&backend.name, conn);
                let has_stream = lock(&self.stream).as_ref().is_some_and(|tx| !tx.is_closed());
                if (waiting == 1 || (waiting > 1 && !has_stream)) && self.calls.hand_to_oldest(&backend.name, conn, msg.clone()) {
                    return None;
                }
                let id = self.register_server_request(&backend.name, env.id()?.get());
                Some(Bytes::from(env.rewrite(&[("id", Some(&id))])))
            }
            Kind::Notification if mcpgate_protocol::errors::is_list_changed(&env) => {
                self.list_changed_by(backend, &env.method().unwrap_or_default());
                None
            }
            Kind::Notification => Some(msg.clone()),
            Kind::Response => None,
        }
    }

    /// `backend` told this client's session that one of its lists changed: the catalog is
    /// re-listed, and this client is told once it has been rebuilt (see `state::rebuild_catalog`).
    pub fn list_changed_by(&self, backend: &Backend, method: &str) {
        let me: std::sync::Weak<dyn ListChangedSink> = self.me.clone();
        backend.request_relist_for(me, Bytes::from(mcpgate_protocol::errors::notification(method, None)));
    }
}

impl ListChangedSink for ClientSession {
    fn deliver(&self, notification: Bytes) {
        self.push(notification);
    }
}

/// Answers a backend's request with an error (in the background: never blocks the caller).
pub(crate) fn refuse(conn: &Arc<Connection>, request: &Envelope<'_>, why: &str) {
    let id = request.id().map_or_else(|| "null".to_owned(), |i| i.get().to_owned());
    let reply = RpcError::new(ErrorCode::MethodNotFound, why).response(Some(&id));
    let conn = conn.clone();
    tokio::spawn(async move {
        let _ = conn.respond(reply).await;
    });
}
