//! A configured backend at run time: its spec, its discovered listing and its health.
//!
//! The listing is written only by the backend's discovery task (see `discovery`); calls read
//! the catalog built from it and never wait for discovery.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;

use http::{HeaderMap, HeaderName, HeaderValue};
use mcpgate_protocol::names::ServerName;
use mcpgate_upstream::{BackendSpec, StdioSpec, TransportSpec};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::catalog::Listing;
use crate::config::{ServerConfig, Timeouts, Transport};

/// A client waiting for a rebuild: the listing generation it asked at, where to tell it, what.
type RelistWaiter = (u64, Weak<dyn ListChangedSink>, Bytes);

/// Where a list change announced to one client's backend session is delivered (that client's
/// GET stream).
pub trait ListChangedSink: Send + Sync {
    fn deliver(&self, notification: Bytes);
    /// The virtual server the client is bound to (`None`: the main endpoint).
    fn scope(&self) -> Option<&str> {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Connecting,
    Ready,
    Unreachable,
}

#[derive(Debug, Clone)]
pub struct Health {
    pub state: State,
    pub last_error: Option<String>,
    pub listing: Option<Arc<Listing>>,
}

pub struct Backend {
    pub name: ServerName,
    pub prefix: String,
    pub config: ServerConfig,
    pub spec: Arc<BackendSpec>,
    /// Static headers from the config, sent on every request to this backend.
    pub headers: HeaderMap,
    pub timeouts: Timeouts,
    health: Mutex<Health>,
    /// Wakes discovery to re-check the backend now (e.g. after a failed call).
    pub(crate) nudge: Notify,
    /// Wakes discovery to list again (a client's session with the backend said list_changed).
    pub(crate) relist: Notify,
    /// Counts list changes seen from this backend (any session's `list_changed`, any new
    /// listing): per-user catalogs listed before a change are stale.
    list_generation: std::sync::atomic::AtomicU64,
    /// Clients whose own backend session said a list changed: each is told after the next
    /// catalog rebuild, even when the shared catalog looks unchanged (their view may differ).
    relist_waiters: Mutex<Vec<RelistWaiter>>,
    /// Bumped on every listing or health update: a waiter is due once it moved past the value
    /// it registered at.
    generation: std::sync::atomic::AtomicU64,
    task: Mutex<Option<AbortHandle>>,
    /// Which protocol era the backend speaks, as discovery last found it.
    era: AtomicU8,
    /// The stateless link to a Streamable HTTP backend (static headers only; a call adds its
    /// credential), made on first use.
    modern: std::sync::OnceLock<Option<mcpgate_upstream::ModernLink>>,
    /// This server's counters (kept across reloads by `observe::Series`).
    pub series: Arc<crate::observe::series::ServerSeries>,
    /// The HTTP client for this backend: the gateway's shared one, or one of its own when the
    /// server has `tls` settings (its CA bundle, its client certificate).
    http: reqwest::Client,
}

/// A backend's protocol era.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Era {
    /// Not known yet (discovery has not reached it).
    Unknown,
    /// Session-based (`initialize`); also every stdio and HTTP+SSE backend.
    Legacy,
    /// 2026-07-28: called statelessly, no backend sessions.
    Modern,
    /// Both: modern clients' calls go statelessly, legacy clients get a backend session, so
    /// each side is spoken to in its own era.
    Dual,
}

impl Era {
    /// Whether modern (stateless) calls go to it as they are.
    pub fn serves_modern(self) -> bool {
        matches!(self, Era::Modern | Era::Dual)
    }

    /// Whether it takes legacy sessions (`initialize`). Unknown is treated as legacy: a call
    /// then fails with the backend's own error rather than a guess.
    pub fn serves_legacy(self) -> bool {
        !matches!(self, Era::Modern)
    }

    /// The eras it speaks, for `/status`.
    pub fn names(self) -> &'static [&'static str] {
        match self {
            Era::Unknown => &[],
            Era::Legacy => &["legacy"],
            Era::Modern => &["modern"],
            Era::Dual => &["legacy", "modern"],
        }
    }
}

impl Backend {
    /// Builds the run-time backend from a validated server config; `shared_http` serves it
    /// unless it has TLS settings of its own.
    pub fn new(config: &ServerConfig, series: &crate::observe::Series, shared_http: &reqwest::Client) -> Arc<Self> {
        let name = ServerName::parse(&config.name).unwrap_or_else(|_| unreachable_name());
        let transport = match config.transport {
            Transport::StreamableHttp => TransportSpec::StreamableHttp { url: parse_url(config) },
            Transport::Sse => TransportSpec::Sse { url: parse_url(config) },
            Transport::Stdio => TransportSpec::Stdio(StdioSpec {
                command: config.command.clone().unwrap_or_default(),
                args: config.args.clone(),
                env: config.env.iter().map(|(k, v)| (k.clone(), v.expose().to_owned())).collect(),
                cwd: config.cwd.clone(),
            }),
        };
        let headers = config.headers.iter().filter_map(|(k, v)| Some((HeaderName::from_bytes(k.as_bytes()).ok()?, sensitive(v.expose())?))).collect();
        Arc::new(Self {
            spec: Arc::new(BackendSpec { name: name.to_string(), transport }),
            prefix: config.effective_prefix(),
            name,
            config: config.clone(),
            headers,
            timeouts: config.timeouts,
            health: Mutex::new(Health { state: State::Connecting, last_error: None, listing: None }),
            nudge: Notify::new(),
            relist: Notify::new(),
            list_generation: std::sync::atomic::AtomicU64::new(0),
            relist_waiters: Mutex::default(),
            generation: std::sync::atomic::AtomicU64::new(0),
            task: Mutex::new(None),
            era: AtomicU8::new(Era::Unknown as u8),
            modern: std::sync::OnceLock::new(),
            series: series.server(&config.name),
            http: own_http(config).unwrap_or_else(|| shared_http.clone()),
        })
    }

    /// The HTTP client that reaches this backend.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn health(&self) -> Health {
        self.health.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_health(&self, state: State, last_error: Option<String>, listing: Option<Arc<Listing>>) {
        if listing.as_ref().is_some_and(|new| !self.health().listing.is_some_and(|old| Arc::ptr_eq(&old, new))) {
            self.list_generation.fetch_add(1, Ordering::Relaxed);
        }
        *self.health.lock().unwrap_or_else(|p| p.into_inner()) = Health { state, last_error, listing };
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn set_task(&self, task: AbortHandle) {
        *self.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    pub fn era(&self) -> Era {
        match self.era.load(Ordering::Relaxed) {
            1 => Era::Legacy,
            2 => Era::Modern,
            3 => Era::Dual,
            _ => Era::Unknown,
        }
    }

    pub(crate) fn set_era(&self, era: Era) {
        self.era.store(era as u8, Ordering::Relaxed);
    }

    /// The stateless link to this backend (Streamable HTTP only).
    pub fn modern_link(&self) -> Option<&mcpgate_upstream::ModernLink> {
        self.modern.get_or_init(|| self.http_url().map(|url| mcpgate_upstream::ModernLink::new(self.http.clone(), url.clone(), self.headers.clone()))).as_ref()
    }

    /// The endpoint of a Streamable HTTP backend (the only transport the modern era uses).
    pub fn http_url(&self) -> Option<&url::Url> {
        match &self.spec.transport {
            TransportSpec::StreamableHttp { url } => Some(url),
            _ => None,
        }
    }

    /// Asks discovery to check the backend now.
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// Asks discovery to list the backend again: it told one of its sessions that a list
    /// changed. The catalog is rebuilt and every listening client is told.
    pub fn request_relist(&self) {
        self.list_generation.fetch_add(1, Ordering::Relaxed);
        self.relist.notify_one();
    }

    /// Changes with every list change seen from this backend.
    pub fn list_generation(&self) -> u64 {
        self.list_generation.load(Ordering::Relaxed)
    }

    /// As [`Self::request_relist`], for a list change the backend announced to one client's
    /// session: that client gets `notification` (the backend's, raw) once the catalog has been
    /// rebuilt, whether or not the shared catalog changed.
    pub fn request_relist_for(&self, client: Weak<dyn ListChangedSink>, notification: Bytes) {
        self.list_generation.fetch_add(1, Ordering::Relaxed);
        let at = self.generation.load(Ordering::Acquire);
        self.relist_waiters.lock().unwrap_or_else(|p| p.into_inner()).push((at, client, notification));
        self.relist.notify_one();
    }

    /// The clients whose wait is over: the listing was updated since they asked (taken: each
    /// is told once).
    pub(crate) fn take_relist_waiters(&self) -> Vec<(Weak<dyn ListChangedSink>, Bytes)> {
        let now = self.generation.load(Ordering::Acquire);
        let mut waiters = self.relist_waiters.lock().unwrap_or_else(|p| p.into_inner());
        let (due, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut *waiters).into_iter().partition(|(at, _, _)| *at < now);
        *waiters = wait;
        due.into_iter().map(|(_, client, msg)| (client, msg)).collect()
    }

    /// Stops discovery (config reload removed or changed this backend).
    pub fn stop(&self) {
        if let Some(t) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            t.abort();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A client with the server's own TLS settings, when it has any. Validation read the files;
/// if they broke since, the backend gets a client that trusts no certificate at all, so its
/// calls fail (naming the server) rather than trusting the system's roots instead.
fn own_http(config: &ServerConfig) -> Option<reqwest::Client> {
    let tls = config.tls.as_ref()?;
    match mcpgate_tls::http_client(Some(tls), Default::default()) {
        Ok(client) => Some(client),
        Err(e) => {
            tracing::error!(server = %config.name, error = %e, "servers[].tls: cannot build the backend's TLS client; its calls will fail");
            reqwest::Client::builder().tls_certs_only(Vec::new()).no_proxy().build().ok()
        }
    }
}

fn sensitive(v: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(v).ok()?;
    v.set_sensitive(true);
    Some(v)
}

fn parse_url(config: &ServerConfig) -> url::Url {
    // Validation guarantees a URL for HTTP transports; this fallback is never reached.
    config.url.as_deref().and_then(|u| url::Url::parse(u).ok()).unwrap_or_else(|| url::Url::parse("http://invalid.invalid/").unwrap_or_else(|_| unreachable!()))
}

fn unreachable_name() -> ServerName {
    ServerName::parse("invalid").unwrap_or_else(|_| unreachable!())
}
