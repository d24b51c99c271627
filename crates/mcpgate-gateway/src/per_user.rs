//! Per-user catalogs (`servers[].catalog: per_user`): a backend that lists different items to
//! different users is listed with each caller's own credential, and that listing is merged
//! into what the caller sees and may call.
//!
//! A listing is kept per (server, credential fingerprint) for `catalog_ttl`, and dropped early
//! when the backend announces a list change (`Backend::list_generation`, bumped by every
//! session's `list_changed` and every new discovery listing). A hit costs no backend round
//! trip. Legacy-era backends are listed on a backend session of the gateway's opened with the
//! caller's credential and kept for its `list_changed`; modern ones statelessly with it.
//! The listing is named, overridden and pinned exactly like a shared one (`catalog::build`).
//!
//! This module is the cache (and the gateway's backend sessions it lists on); fetching,
//! attaching to a request and merging are in `core::personal`, so nothing here reaches the
//! gateway's shared state.
//!
//! Never shares a listing between different credentials; never logs a credential.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mcpgate_protocol::names::ServerName;

use crate::catalog::{Catalog, Listing};
use crate::session::ClientSession;

/// Most (server, credential) listings kept; beyond it the oldest half is dropped.
const MAX_SLOTS: usize = 10_000;

/// Each caller's own listings of the per-user servers.
#[derive(Default)]
pub struct PerUser {
    slots: Mutex<HashMap<(ServerName, u64), Arc<Slot>>>,
}

#[derive(Default)]
pub(crate) struct Slot {
    /// One fetch at a time per credential; later callers wait for it and use its result.
    pub(crate) state: tokio::sync::Mutex<Option<Fetched>>,
    /// The backend session listings are read on (legacy-era backends), kept for its
    /// `list_changed`.
    pub(crate) session: std::sync::OnceLock<Arc<ClientSession>>,
    last_used: Mutex<Option<Instant>>,
}

/// One caller's listing of a server, and the catalog built from it.
pub(crate) struct Fetched {
    pub(crate) listing: Arc<Listing>,
    pub(crate) at: Instant,
    pub(crate) backend_generation: u64,
    /// The shared catalog generation `built` was made under (pins and rules may change).
    pub(crate) shared_generation: u64,
    pub(crate) built: Arc<Catalog>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PerUser {
    /// The cache slot of (`server`, credential `fingerprint`), made on first use.
    pub(crate) fn slot(&self, server: &ServerName, fingerprint: u64) -> Arc<Slot> {
        let mut slots = lock(&self.slots);
        if slots.len() >= MAX_SLOTS && !slots.contains_key(&(server.clone(), fingerprint)) {
            evict_oldest_half(&mut slots);
        }
        let slot = slots.entry((server.clone(), fingerprint)).or_default().clone();
        *lock(&slot.last_used) = Some(Instant::now());
        slot
    }

    /// Forgets every listing of `server` (config reload removed or changed it).
    pub fn forget(&self, server: &ServerName) {
        let dropped: Vec<Arc<Slot>> = {
            let mut slots = lock(&self.slots);
            let keys: Vec<_> = slots.keys().filter(|(s, _)| s == server).cloned().collect();
            keys.iter().filter_map(|k| slots.remove(k)).collect()
        };
        close_sessions(dropped);
    }
}

fn evict_oldest_half(slots: &mut HashMap<(ServerName, u64), Arc<Slot>>) {
    let mut by_age: Vec<_> = slots.iter().map(|(k, s)| (*lock(&s.last_used), k.clone())).collect();
    by_age.sort_by_key(|(used, _)| *used);
    let dropped: Vec<Arc<Slot>> = by_age.iter().take(by_age.len() / 2).filter_map(|(_, k)| slots.remove(k)).collect();
    close_sessions(dropped);
}

fn close_sessions(slots: Vec<Arc<Slot>>) {
    let sessions: Vec<Arc<ClientSession>> = slots.iter().filter_map(|s| s.session.get().cloned()).collect();
    if !sessions.is_empty() {
        tokio::spawn(async move {
            for s in sessions {
                s.close(true).await;
            }
        });
    }
}
