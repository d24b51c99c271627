//! Client sessions (legacy era) and the backend sessions each one owns.
//!
//! A backend session is created once per (client session, backend, credential) on first use,
//! with the client's declared capabilities, and is never shared with another client session:
//! whatever identity or credential later issues attach to a session stays with it. Concurrent
//! first calls share one initialisation (`OnceCell`).
//!
//! In a cluster (`cluster:` configured), a [`ClientSession`] is this replica's cached view of a
//! record in the shared store: any replica can serve any request of the session, and a backend
//! session opened by one replica is resumed by the others without a new `initialize`
//! ([`backends`]). What only one process can hold (the client's GET stream, a call waiting for
//! its answer) stays local; the others reach it through the bus ([`events`], `replicas`).
//!
//! Never logs a session id whole (only [`short`]), a credential or a client's answer.

mod backends;
mod calls;
mod caps;
mod events;
pub mod keys;
pub mod parked;
pub mod quota;
mod registry;
mod requests;
pub mod seal;
pub mod tasks;

pub use calls::{Cancelled, Inbox};
pub use caps::{ClientCaps, capability_of};
pub use events::refuse;
pub use registry::{Evicted, Refused, SessionLimits, Sessions, short};
pub use requests::AnswerTarget;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mcpgate_protocol::names::ServerName;
use mcpgate_protocol::versions::{DEFAULT_WHEN_ABSENT, LEGACY_VERSIONS};
use mcpgate_store::sessions::{BackendSession, SessionRecord};
use mcpgate_upstream::{Connection, InitOptions};
use tokio::sync::mpsc;

use crate::cluster::Cluster;
use keys::KeyRing;

/// What every session of this process shares: the key ring its ids are signed with, and the
/// cluster it belongs to (if any).
#[derive(Clone)]
pub struct SessionCtx {
    pub keys: Arc<KeyRing>,
    pub cluster: Option<Arc<Cluster>>,
}

impl SessionCtx {
    /// A single process: random keys, no store.
    pub fn local() -> Self {
        Self { keys: Arc::new(KeyRing::random()), cluster: None }
    }
}

pub struct ClientSession {
    pub id: String,
    /// The verified identity that created the session; every later request must carry the
    /// same one (`None` when the gateway runs without authentication).
    pub principal: Option<String>,
    /// The legacy revision agreed with the client.
    pub protocol_version: &'static str,
    /// The virtual server whose path created the session: it is used on that path only and
    /// shows only that virtual server's items (unset: the main endpoint).
    virtual_server: std::sync::OnceLock<Arc<str>>,
    /// How backends are greeted on this client's behalf (client capabilities, clientInfo).
    init: InitOptions,
    /// Which server-initiated requests the client declared it can answer.
    client_caps: ClientCaps,
    ctx: SessionCtx,
    /// Whether the session lives in the shared store (client sessions of a cluster; the
    /// gateway's own internal sessions never do).
    stored: bool,
    /// Keyed by configured server names, so a fast hash.
    backends: Mutex<foldhash::HashMap<ServerName, backends::Slot>>,
    /// Backend sessions other replicas opened, as the store last told us: resumed on first use.
    known: Mutex<BTreeMap<(String, u64), BackendSession>>,
    /// Backend sessions that failed here (the backend lost them): never resumed again.
    failed: Mutex<HashMap<(String, u64), String>>,
    /// Requests the gateway itself asked the client (era bridging), by id: where the answer goes.
    bridged: Mutex<HashMap<String, tokio::sync::oneshot::Sender<Vec<u8>>>>,
    calls: calls::Calls,
    /// Resource subscriptions the gateway holds for the client (modern backends, which have no
    /// `resources/subscribe`): the task relaying each one's updates, by the URI the client named.
    subscriptions: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    stream: Mutex<Option<mpsc::Sender<Bytes>>>,
    log_level: Mutex<Option<String>>,
    next_id: AtomicU64,
    created: Instant,
    last_seen_ms: AtomicU64,
    /// When this replica last told the store the session was used (ms since `created`).
    stored_touch_ms: AtomicU64,
    me: Weak<ClientSession>,
}

/// The key of the virtual-server binding among a stored session record's extra fields.
const VIRTUAL_SERVER_KEY: &str = "virtual_server";

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ClientSession {
    /// A new client session under a freshly signed id.
    pub fn new(ctx: &SessionCtx, protocol_version: &'static str, client_capabilities: String, client_info: String, principal: Option<String>) -> Arc<Self> {
        let id = ctx.keys.new_session_id();
        Self::build(ctx, id, protocol_version, client_capabilities, client_info, principal, ctx.cluster.is_some())
    }

    /// One of the gateway's own sessions (for stateless callers, or a subscription), under a
    /// chosen id; never stored.
    pub fn internal(
        ctx: &SessionCtx,
        id: String,
        protocol_version: &'static str,
        client_capabilities: String,
        client_info: String,
        principal: Option<String>,
    ) -> Arc<Self> {
        Self::build(ctx, id, protocol_version, client_capabilities, client_info, principal, false)
    }

    /// This replica's view of a session another replica created.
    pub(crate) fn from_record(ctx: &SessionCtx, id: String, rec: SessionRecord) -> Arc<Self> {
        let version = LEGACY_VERSIONS.iter().find(|v| **v == rec.protocol_version).copied().unwrap_or(DEFAULT_WHEN_ABSENT);
        let s = Self::build(ctx, id, version, rec.capabilities, rec.client_info, rec.principal, true);
        *lock(&s.log_level) = rec.log_level;
        *lock(&s.known) = rec.backends;
        if let Some(v) = rec.extra.get(VIRTUAL_SERVER_KEY) {
            s.bind_virtual_server(Arc::from(v.as_str()));
        }
        s
    }

    fn build(
        ctx: &SessionCtx,
        id: String,
        protocol_version: &'static str,
        client_capabilities: String,
        client_info: String,
        principal: Option<String>,
        stored: bool,
    ) -> Arc<Self> {
        let client_caps = ClientCaps::parse(&client_capabilities);
        Arc::new_cyclic(|me| Self {
            id,
            principal,
            client_caps,
            protocol_version,
            virtual_server: std::sync::OnceLock::new(),
            init: InitOptions { protocol_version: protocol_version.to_owned(), capabilities: client_capabilities, client_info },
            ctx: ctx.clone(),
            stored,
            backends: Mutex::default(),
            known: Mutex::default(),
            failed: Mutex::default(),
            bridged: Mutex::default(),
            calls: calls::Calls::default(),
            subscriptions: Mutex::default(),
            stream: Mutex::default(),
            log_level: Mutex::default(),
            next_id: AtomicU64::new(1),
            created: Instant::now(),
            last_seen_ms: AtomicU64::new(0),
            stored_touch_ms: AtomicU64::new(0),
            me: me.clone(),
        })
    }

    /// Binds the session to the virtual server it was created on (once, at `initialize`).
    pub fn bind_virtual_server(&self, name: Arc<str>) {
        let _ = self.virtual_server.set(name);
    }

    /// The virtual server the session belongs to (`None`: the main endpoint).
    pub fn virtual_server(&self) -> Option<&str> {
        self.virtual_server.get().map(|n| &**n)
    }

    /// The record the store keeps for this session (the virtual-server binding included, so
    /// every replica keeps the session on its path).
    pub(crate) fn record(&self) -> SessionRecord {
        let mut extra = BTreeMap::new();
        if let Some(v) = self.virtual_server() {
            extra.insert(VIRTUAL_SERVER_KEY.to_owned(), v.to_owned());
        }
        SessionRecord {
            principal: self.principal.clone(),
            protocol_version: self.protocol_version.to_owned(),
            capabilities: self.init.capabilities.clone(),
            client_info: self.init.client_info.clone(),
            log_level: lock(&self.log_level).clone(),
            created_ms: now_ms(),
            extra,
            ..Default::default()
        }
    }

    /// The cluster this session's state is shared in, when it is.
    pub(crate) fn cluster(&self) -> Option<&Arc<Cluster>> {
        if self.stored { self.ctx.cluster.as_ref() } else { None }
    }

    pub fn touch(&self) {
        self.last_seen_ms.store(self.created.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    pub fn idle_for(&self) -> Duration {
        self.created.elapsed().saturating_sub(Duration::from_millis(self.last_seen_ms.load(Ordering::Relaxed)))
    }

    /// Whether this replica should tell the store the session is in use (at most once per
    /// `every`): true once per period, and records that it did.
    pub(crate) fn due_for_store_touch(&self, every: Duration) -> bool {
        let now = self.created.elapsed().as_millis() as u64;
        let last = self.stored_touch_ms.load(Ordering::Relaxed);
        now.saturating_sub(last) >= every.as_millis() as u64
            && self.stored_touch_ms.compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    /// Whether something here must keep the session cached (an open stream, a waiting call).
    pub(crate) fn is_busy(&self) -> bool {
        lock(&self.stream).as_ref().is_some_and(|tx| !tx.is_closed()) || self.calls.len() > 0
    }

    /// The level the client set with `logging/setLevel`, if it did.
    pub fn log_level(&self) -> Option<String> {
        lock(&self.log_level).clone()
    }

    /// Remembers the level (in the store too, for the other replicas' new backend sessions).
    pub async fn set_log_level(&self, level: String) {
        *lock(&self.log_level) = Some(level.clone());
        if let Some(cluster) = self.cluster()
            && let Err(e) = cluster.store.set_session_field(&self.id, &mcpgate_store::sessions::Field::LogLevel, Some(&level)).await
        {
            tracing::warn!(session = %short(&self.id), error = %e, "could not share the log level");
        }
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
    pub fn start_call(&self, client_id: &str, server: &ServerName, conn: &Arc<Connection>, backend_id: u64) -> Inbox {
        self.calls.start_backend(client_id, server, conn, backend_id)
    }

    pub fn end_call(&self, client_id: &str) {
        self.calls.end(client_id);
    }

    /// The client's `notifications/cancelled` for `client_id`, for a call running here.
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

    /// Ends the session here: every backend session (DELETE at the backend), the client's
    /// stream, the subscriptions. `ended_here` false: another replica ended it and closes the
    /// backend sessions; this one only lets go of its own connections.
    pub async fn close(&self, ended_here: bool) {
        let conns: Vec<_> = lock(&self.backends).drain().filter_map(|(_, s)| s.connection()).collect();
        *lock(&self.stream) = None;
        for (_, relay) in lock(&self.subscriptions).drain() {
            relay.abort();
        }
        if ended_here {
            for c in conns {
                c.close().await;
            }
        }
    }
}

/// The backend sessions the store knows for a session, by (server, credential fingerprint).
pub type StoredBackends = BTreeMap<(String, u64), BackendSession>;

impl ClientSession {
    /// Ends the session for good: its backend sessions here and those `stored` (opened by other
    /// replicas) are ended at their backends, best effort (with the backend's static headers
    /// only: the caller's credential is not at hand).
    pub async fn end_everywhere(&self, stored: StoredBackends, backends: &[Arc<crate::backend::Backend>]) {
        let mine: Vec<String> = self.open_backends().iter().filter_map(|(_, c)| c.shareable_id().map(str::to_owned)).collect();
        self.close(true).await;
        for ((server, _), b) in stored {
            if mine.contains(&b.session_id) {
                continue;
            }
            let Some(backend) = backends.iter().find(|x| x.name.as_str() == server) else { continue };
            if let Ok(conn) = Connection::attach(backend.spec.clone(), backend.http(), backend.headers.clone(), &b.session_id, &b.protocol_version) {
                conn.close().await;
            }
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Arc<ClientSession> {
        ClientSession::new(&SessionCtx::local(), LEGACY_VERSIONS[0], "{}".into(), "{}".into(), Some("alice".into()))
    }

    #[test]
    fn a_virtual_server_binding_travels_with_the_stored_record() {
        let s = session();
        s.bind_virtual_server(Arc::from("support"));
        let rec = s.record();
        assert_eq!(rec.extra.get(VIRTUAL_SERVER_KEY).map(String::as_str), Some("support"));
        // Another replica's view of the same session is bound to the same path.
        let resumed = ClientSession::from_record(&SessionCtx::local(), s.id.clone(), rec);
        assert_eq!(resumed.virtual_server(), Some("support"));
    }

    #[test]
    fn a_main_endpoint_session_stays_unbound_everywhere() {
        let s = session();
        let rec = s.record();
        assert!(rec.extra.is_empty(), "{:?}", rec.extra);
        assert_eq!(ClientSession::from_record(&SessionCtx::local(), s.id.clone(), rec).virtual_server(), None);
    }
}
