//! Counters of the work the resolver did, for tests, benchmarks and metrics: requests to
//! Vault and the IdP (with their latency and how they ended), cache hits, coalesced waits.
//! Owns counting only; never records who asked or what was returned.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A snapshot of the counters since they were created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every HTTP request sent to Vault (reads, logins, renewals, lookups).
    pub vault_requests: u64,
    /// KV reads sent to Vault.
    pub vault_reads: u64,
    /// Vault lookups answered without a read (cached, or shared with a concurrent read).
    pub vault_cache_hits: u64,
    /// Logins (AppRole, JWT, Kubernetes; for token auth: reading the token and looking it up).
    pub vault_logins: u64,
    /// Renewals of the gateway's Vault token.
    pub vault_renewals: u64,
    /// Token-exchange requests sent to the IdP.
    pub exchanges: u64,
    /// Exchanges answered without a request (cached, or shared with a concurrent one).
    pub exchange_cache_hits: u64,
    /// client_credentials requests sent to the token endpoint.
    pub client_credentials_requests: u64,
    /// client_credentials tokens reused.
    pub client_credentials_cache_hits: u64,
    /// Calls refused because the caller's identity could not address a credential.
    pub identities_rejected: u64,
    /// Source failures that fell through to the next source (`on_error: next`).
    pub fall_throughs: u64,
    /// Lookups that waited for a request another call had already started (Vault reads,
    /// exchanges, client_credentials tokens, IdP discovery), instead of sending their own.
    pub coalesced_waits: u64,
}

/// A latency histogram of atomics only: recording is three relaxed `fetch_add`s, never a
/// lock, an allocation or a hash. Buckets are cumulated when read, not when recorded. The
/// gateway's metrics use it too.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket, not cumulative; the last one is `+Inf`.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_ns: AtomicU64,
}

/// Upper bounds in seconds. Finer at the low end than the OpenTelemetry MCP default
/// (`0.01 … 300`): a backend, Vault or an IdP on the same network answers in well under 10 ms.
pub const BOUNDS: [f64; 18] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

const BOUNDS_NS: [u64; 18] = {
    let mut out = [0u64; 18];
    let mut i = 0;
    while i < BOUNDS.len() {
        out[i] = (BOUNDS[i] * 1e9) as u64;
        i += 1;
    }
    out
};

/// What a read of a [`Histogram`] gives: cumulative `(upper bound, count)` pairs ending with
/// `+Inf`, the sum in seconds, and the count.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NS.iter().position(|b| ns <= *b).unwrap_or(BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Read while others record; the count is the buckets' total, so `+Inf` always equals it.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(BOUNDS.len() + 1);
        for (i, b) in self.buckets.iter().enumerate() {
            total += b.load(Ordering::Relaxed);
            buckets.push((BOUNDS.get(i).copied().unwrap_or(f64::INFINITY), total));
        }
        HistogramSnapshot { buckets, sum: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9, count: total }
    }
}

/// How the requests to one upstream (Vault, or the IdP's endpoints) went.
#[derive(Debug, Default)]
pub struct UpstreamCounters {
    /// From sending to the response head (or the failure).
    pub latency: Histogram,
    ok: AtomicU64,
    client_error: AtomicU64,
    server_error: AtomicU64,
    transport_error: AtomicU64,
}

/// How one request to Vault or the IdP ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestResult {
    /// 1xx–3xx.
    Ok,
    /// 4xx (a missing secret, a refused token, a bad request).
    ClientError,
    /// 5xx.
    ServerError,
    /// No HTTP answer: connect, TLS, timeout.
    TransportError,
}

impl RequestResult {
    pub const ALL: [RequestResult; 4] = [RequestResult::Ok, RequestResult::ClientError, RequestResult::ServerError, RequestResult::TransportError];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestResult::Ok => "ok",
            RequestResult::ClientError => "client_error",
            RequestResult::ServerError => "server_error",
            RequestResult::TransportError => "transport_error",
        }
    }
}

impl UpstreamCounters {
    pub(crate) fn record(&self, took: Duration, result: RequestResult) {
        self.latency.observe(took);
        bump(match result {
            RequestResult::Ok => &self.ok,
            RequestResult::ClientError => &self.client_error,
            RequestResult::ServerError => &self.server_error,
            RequestResult::TransportError => &self.transport_error,
        });
    }

    /// Requests that ended with `result`.
    pub fn count(&self, result: RequestResult) -> u64 {
        match result {
            RequestResult::Ok => &self.ok,
            RequestResult::ClientError => &self.client_error,
            RequestResult::ServerError => &self.server_error,
            RequestResult::TransportError => &self.transport_error,
        }
        .load(Ordering::Relaxed)
    }
}

/// Every counter of the credential machinery. One set can outlive many resolvers (the
/// gateway keeps one across config reloads, so its metrics never go backwards):
/// [`crate::Resolver::with_counters`].
#[derive(Debug, Default)]
pub struct Counters {
    pub(crate) vault_requests: AtomicU64,
    pub(crate) vault_reads: AtomicU64,
    pub(crate) vault_cache_hits: AtomicU64,
    pub(crate) vault_logins: AtomicU64,
    pub(crate) vault_renewals: AtomicU64,
    pub(crate) exchanges: AtomicU64,
    pub(crate) exchange_cache_hits: AtomicU64,
    pub(crate) client_credentials_requests: AtomicU64,
    pub(crate) client_credentials_cache_hits: AtomicU64,
    pub(crate) identities_rejected: AtomicU64,
    pub(crate) fall_throughs: AtomicU64,
    pub(crate) coalesced_waits: AtomicU64,
    /// Requests to Vault.
    pub vault: UpstreamCounters,
    /// Requests to the IdP (token exchange, client_credentials, OIDC discovery).
    pub idp: UpstreamCounters,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            vault_requests: get(&self.vault_requests),
            vault_reads: get(&self.vault_reads),
            vault_cache_hits: get(&self.vault_cache_hits),
            vault_logins: get(&self.vault_logins),
            vault_renewals: get(&self.vault_renewals),
            exchanges: get(&self.exchanges),
            exchange_cache_hits: get(&self.exchange_cache_hits),
            client_credentials_requests: get(&self.client_credentials_requests),
            client_credentials_cache_hits: get(&self.client_credentials_cache_hits),
            identities_rejected: get(&self.identities_rejected),
            fall_throughs: get(&self.fall_throughs),
            coalesced_waits: get(&self.coalesced_waits),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_with_the_count() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(200));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(1000));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets[0], (0.0005, 1));
        assert_eq!(s.buckets[4], (0.01, 2), "3 ms falls in the 5 ms bucket, counted again at 10 ms");
        assert_eq!(s.buckets.last().map(|b| b.1), Some(3));
        assert!((s.sum - 1000.0032).abs() < 1e-6);
    }

    #[test]
    fn a_duration_on_a_bound_counts_in_that_bucket() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(1));
        assert_eq!(h.snapshot().buckets[1], (0.001, 1));
        assert_eq!(h.snapshot().buckets[0], (0.0005, 0));
    }
}
