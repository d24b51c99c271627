//! The stored series: every counter and histogram the gateway keeps, as atomics. Series per
//! server, per catalog item and per rate-limit rule are created once (at catalog build or on
//! first use) and kept for the life of the process, so counters never go backwards across
//! reloads and catalog rebuilds; the call path only follows a pointer and adds.
//!
//! Label values come from the config and the catalog only; never from raw client input.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mcpgate_credentials::Histogram;

use super::labels::{AUTH_FAILURES, AUTHZ_REASONS, BACKEND_ERRORS, CallError, ERAS, KINDS, METHODS, OUTCOMES, SOURCES};

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn read(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Whole-gateway and upstream durations of calls with one outcome.
#[derive(Debug, Default)]
pub struct Durations {
    /// From the request's arrival to its final answer.
    pub gateway: Histogram,
    /// From sending to the backend to its final answer (only calls that reached it).
    pub upstream: Histogram,
}

/// The calls of one method to one item (a tool, a prompt) or, for resources and
/// completions, to one server.
#[derive(Debug)]
pub struct ItemSeries {
    pub method: u8,
    pub server: Arc<str>,
    /// A tool's or prompt's name as the backend knows it.
    pub name: Option<Arc<str>>,
    pub ok: Durations,
    /// Failed calls by error type, created on first failure (failures are rare; the lock is
    /// never taken on success).
    pub errors: Mutex<Vec<(CallError, Arc<Durations>)>>,
}

impl ItemSeries {
    /// The durations of calls that failed with `e`.
    pub fn failed(&self, e: CallError) -> Arc<Durations> {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, d)) = errors.iter().find(|(k, _)| *k == e) {
            return d.clone();
        }
        let d = Arc::new(Durations::default());
        errors.push((e, d.clone()));
        d
    }
}

/// What one server's calls did on the gateway's side.
#[derive(Debug)]
pub struct ServerSeries {
    pub name: Arc<str>,
    /// Permission decisions by kind and reason (the decision follows from the reason).
    pub authz: [[AtomicU64; AUTHZ_REASONS.len()]; KINDS.len()],
    /// Credentials resolved, by source.
    pub credentials: [AtomicU64; SOURCES.len()],
    /// Credential lookups refused, by reason code.
    pub credential_failures: Mutex<Vec<(&'static str, u64)>>,
    /// Calls the gateway could not complete with the backend, by cause.
    pub backend_errors: [AtomicU64; BACKEND_ERRORS.len()],
    /// Series of the server's resource reads, subscriptions and completions.
    pub per_server_items: [OnceLock<Arc<ItemSeries>>; 4],
}

/// A rate-limit rule's rejections.
#[derive(Debug)]
pub struct RuleSeries {
    pub rule: Arc<str>,
    pub rejected: AtomicU64,
    /// The shared store could not be reached; the rule's `on_store_error` decided.
    pub store_errors: AtomicU64,
}

/// (method, server, item name).
pub type ItemKey = (u8, Arc<str>, Option<Arc<str>>);

/// Every series. One per process; the call path reaches its series through pointers kept on
/// catalog entries, backends and compiled rules.
#[derive(Debug)]
pub struct Series {
    /// `[method][era][outcome]`.
    pub requests: Box<[AtomicU64]>,
    pub auth_failures: [AtomicU64; AUTH_FAILURES.len()],
    /// `[ok, failed]`.
    pub reloads: [AtomicU64; 2],
    /// `notifications/{tools,prompts,resources}/list_changed` sent, one per kind and change.
    pub list_changed: [AtomicU64; 3],
    /// Open SSE answers to POSTs, and open GET streams.
    pub open_streams: [AtomicI64; 2],
    /// Spans dropped because the export queue was full, and export batches that failed.
    pub spans_dropped: AtomicU64,
    pub span_exports_failed: AtomicU64,
    pub audit_lines_dropped: AtomicU64,
    pub items: Mutex<HashMap<ItemKey, Arc<ItemSeries>>>,
    pub servers: Mutex<HashMap<Arc<str>, Arc<ServerSeries>>>,
    pub rules: Mutex<HashMap<Arc<str>, Arc<RuleSeries>>>,
    /// The credential resolver's counters, kept across reloads.
    pub credentials: Arc<mcpgate_credentials::Counters>,
}

impl Default for Series {
    fn default() -> Self {
        Self {
            requests: (0..METHODS.len() * ERAS.len() * OUTCOMES.len()).map(|_| AtomicU64::new(0)).collect(),
            auth_failures: Default::default(),
            reloads: Default::default(),
            list_changed: Default::default(),
            open_streams: Default::default(),
            spans_dropped: AtomicU64::new(0),
            span_exports_failed: AtomicU64::new(0),
            audit_lines_dropped: AtomicU64::new(0),
            items: Mutex::default(),
            servers: Mutex::default(),
            rules: Mutex::default(),
            credentials: Arc::default(),
        }
    }
}

/// Index into [`Series::requests`].
pub fn request_index(method: u8, era: usize, outcome: usize) -> usize {
    (method as usize * ERAS.len() + era) * OUTCOMES.len() + outcome
}

impl Series {
    /// The series of `method` calls to `name` on `server` (the same one every time).
    pub fn item(&self, method: u8, server: &str, name: Option<&str>) -> Arc<ItemSeries> {
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        let key = (method, Arc::<str>::from(server), name.map(Arc::<str>::from));
        items
            .entry(key.clone())
            .or_insert_with(|| Arc::new(ItemSeries { method, server: key.1, name: key.2, ok: Durations::default(), errors: Mutex::default() }))
            .clone()
    }

    pub fn server(&self, name: &str) -> Arc<ServerSeries> {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        servers
            .entry(Arc::from(name))
            .or_insert_with(|| {
                Arc::new(ServerSeries {
                    name: Arc::from(name),
                    authz: Default::default(),
                    credentials: Default::default(),
                    credential_failures: Mutex::default(),
                    backend_errors: Default::default(),
                    per_server_items: Default::default(),
                })
            })
            .clone()
    }

    pub fn rule(&self, name: &str) -> Arc<RuleSeries> {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        rules
            .entry(Arc::from(name))
            .or_insert_with(|| Arc::new(RuleSeries { rule: Arc::from(name), rejected: AtomicU64::new(0), store_errors: AtomicU64::new(0) }))
            .clone()
    }
}

/// Counts an open stream (0: an SSE answer to a POST, 1: a GET stream) until dropped.
pub fn stream_opened(series: &Arc<Series>, kind: usize) -> StreamGuard {
    series.open_streams[kind].fetch_add(1, Ordering::Relaxed);
    StreamGuard { series: series.clone(), kind }
}

impl ServerSeries {
    pub fn credential_failed(&self, reason: &'static str) {
        let mut f = self.credential_failures.lock().unwrap_or_else(|p| p.into_inner());
        match f.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => f.push((reason, 1)),
        }
    }
}

/// Counts an open stream until dropped.
pub struct StreamGuard {
    series: Arc<Series>,
    kind: usize,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.series.open_streams[self.kind].fetch_sub(1, Ordering::Relaxed);
    }
}

/// Records one call's durations.
pub fn record_call(d: &Durations, gateway: Duration, upstream: Option<Duration>) {
    d.gateway.observe(gateway);
    if let Some(u) = upstream {
        d.upstream.observe(u);
    }
}
