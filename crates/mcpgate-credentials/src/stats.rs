//! Counters of the work the resolver did, for tests, benchmarks and metrics. Owns counting
//! only; never records who asked or what was returned.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the counters since the resolver was built.
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
}

#[derive(Default)]
pub(crate) struct Counters {
    pub vault_requests: AtomicU64,
    pub vault_reads: AtomicU64,
    pub vault_cache_hits: AtomicU64,
    pub vault_logins: AtomicU64,
    pub vault_renewals: AtomicU64,
    pub exchanges: AtomicU64,
    pub exchange_cache_hits: AtomicU64,
    pub client_credentials_requests: AtomicU64,
    pub client_credentials_cache_hits: AtomicU64,
    pub identities_rejected: AtomicU64,
    pub fall_throughs: AtomicU64,
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
        }
    }
}
