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
//! Never shares a listing between different credentials; never logs a credential.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcpgate_protocol::RpcError;
use mcpgate_protocol::names::ServerName;
use mcpgate_protocol::versions::LATEST_LEGACY;
use mcpgate_upstream::UpstreamError;

use crate::backend::{Backend, Era};
use crate::catalog::{self, Catalog, Entry, ItemKind, Listing, ServerEntry};
use crate::discovery::{Lister, list_all};
use crate::identity::Access;
use crate::session::ClientSession;
use crate::state::Shared;

/// Most (server, credential) listings kept; beyond it the oldest half is dropped.
const MAX_SLOTS: usize = 10_000;

/// Each caller's own listings of the per-user servers.
#[derive(Default)]
pub struct PerUser {
    slots: Mutex<HashMap<(ServerName, u64), Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    /// One fetch at a time per credential; later callers wait for it and use its result.
    state: tokio::sync::Mutex<Option<Fetched>>,
    /// The backend session listings are read on (legacy-era backends), kept for its
    /// `list_changed`.
    session: std::sync::OnceLock<Arc<ClientSession>>,
    last_used: Mutex<Option<Instant>>,
}

struct Fetched {
    listing: Arc<Listing>,
    at: Instant,
    backend_generation: u64,
    /// The shared catalog generation `built` was made under (pins and rules may change).
    shared_generation: u64,
    built: Arc<Catalog>,
}

/// What the per-user servers list for this caller, ready to merge.
#[derive(Default)]
pub struct Personal {
    catalogs: Vec<Arc<Catalog>>,
}

impl Personal {
    pub fn items(&self, kind: ItemKind) -> impl Iterator<Item = &Entry> {
        self.catalogs.iter().flat_map(move |c| c.items(kind).iter())
    }

    pub fn tool(&self, exposed: &str) -> Option<&Entry> {
        self.catalogs.iter().find_map(|c| c.tool(exposed))
    }

    pub fn prompt(&self, exposed: &str) -> Option<&Entry> {
        self.catalogs.iter().find_map(|c| c.prompt(exposed))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Methods whose answer depends on the caller's own listings.
fn needs_listing(method: &str) -> bool {
    matches!(method, "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list" | "tools/call" | "prompts/get" | "completion/complete")
}

/// `access` with the caller's own listings of every per-user server, for list and call
/// methods; `None` (nothing to attach, no cost) when no server is per-user. A backend that
/// cannot be listed for the caller contributes nothing (logged), like an unreachable shared one.
pub async fn attach(shared: &Arc<Shared>, access: &Access, method: &str) -> Option<Access> {
    if !needs_listing(method) || shared.governance.load().per_user.is_empty() {
        return None;
    }
    // Boxed: rare, and its state would otherwise enlarge every request's future.
    Some(Box::pin(attach_all(shared, access.clone())).await)
}

async fn attach_all(shared: &Arc<Shared>, access: Access) -> Access {
    let per_user: Vec<(Arc<Backend>, Duration)> = shared
        .governance
        .load()
        .per_user
        .iter()
        .filter_map(|(name, ttl)| Some((shared.backends.load().iter().find(|b| b.name.as_str() == name)?.clone(), *ttl)))
        .collect();
    let mut catalogs = Vec::with_capacity(per_user.len());
    for (backend, ttl) in per_user {
        match shared.per_user.catalog_for(shared, &access, &backend, ttl).await {
            Ok(c) => catalogs.push(c),
            Err(e) => tracing::warn!(server = %backend.name, subject = access.subject(), "per-user listing unavailable: {}", e.message),
        }
    }
    access.with_personal(Arc::new(Personal { catalogs }))
}

impl PerUser {
    /// The caller's listing of `backend`: from the cache when fresh, else fetched now.
    async fn catalog_for(&self, shared: &Arc<Shared>, access: &Access, backend: &Arc<Backend>, ttl: Duration) -> Result<Arc<Catalog>, RpcError> {
        let credential = crate::core::credential(shared, access, backend, None).await?;
        let fingerprint = credential.as_ref().map_or(0, |c| c.fingerprint);
        let slot = self.slot(&backend.name, fingerprint);
        let mut state = slot.state.lock().await;
        let shared_generation = shared.catalog.load().generation;
        let backend_generation = backend.list_generation();
        if let Some(f) = state.as_mut().filter(|f| f.backend_generation == backend_generation && f.at.elapsed() < ttl) {
            if f.shared_generation != shared_generation {
                // Rules or pins changed: rebuild from the listing kept, no backend round trip.
                f.built = build(shared, backend, f.listing.clone());
                f.shared_generation = shared_generation;
            }
            return Ok(f.built.clone());
        }
        let deadline = backend.timeouts.discovery.max(backend.timeouts.connect);
        let listing = match tokio::time::timeout(deadline, fetch(shared, backend, &slot, access, credential.as_ref())).await {
            Ok(Ok(l)) => Arc::new(l),
            Ok(Err(e)) => return Err(crate::calls::unavailable(backend, &e)),
            Err(_) => return Err(crate::calls::unavailable(backend, &UpstreamError::Timeout)),
        };
        tracing::debug!(server = %backend.name, subject = access.subject(), tools = listing.tools.len(), "per-user listing fetched");
        let built = build(shared, backend, listing.clone());
        *state = Some(Fetched { listing, at: Instant::now(), backend_generation, shared_generation, built: built.clone() });
        Ok(built)
    }

    fn slot(&self, server: &ServerName, fingerprint: u64) -> Arc<Slot> {
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
                s.close().await;
            }
        });
    }
}

/// Lists the backend with the caller's credential.
async fn fetch(
    shared: &Shared,
    backend: &Arc<Backend>,
    slot: &Slot,
    access: &Access,
    credential: Option<&mcpgate_credentials::Resolved>,
) -> Result<Listing, UpstreamError> {
    match backend.era() {
        Era::Modern => {
            let link = backend.modern_link(&shared.http).ok_or_else(|| UpstreamError::Protocol("a modern backend must use Streamable HTTP".into()))?;
            let headers = credential.map_or(&[][..], |c| c.headers.as_slice());
            // What to list is what the backend's discovery offered (no second server/discover).
            let caps = backend.health().listing.map(|l| l.caps).unwrap_or_default();
            let greeting = greeting_of(caps)?;
            list_all(&Lister::ModernAs(link, headers), &greeting).await
        }
        Era::Legacy | Era::Unknown => {
            let session =
                slot.session.get_or_init(|| ClientSession::new(LATEST_LEGACY, "{}".into(), mcpgate_upstream::gateway_client_info(), access.principal()));
            let conn = session.backend(backend, &shared.http, credential).await?;
            let greeting = conn.init_result().raw.clone();
            match list_all(&Lister::Legacy(&conn), &greeting).await {
                Ok(l) => Ok(l),
                Err(e) => {
                    session.forget_backend(&backend.name, &conn);
                    Err(e)
                }
            }
        }
    }
}

/// A greeting naming the lists the backend offers, as `list_all` reads it.
fn greeting_of(caps: catalog::BackendCaps) -> Result<Box<serde_json::value::RawValue>, UpstreamError> {
    let mut offered = serde_json::Map::new();
    for (on, key) in [(caps.tools, "tools"), (caps.prompts, "prompts"), (caps.resources, "resources")] {
        if on {
            offered.insert(key.into(), serde_json::json!({}));
        }
    }
    serde_json::value::to_raw_value(&serde_json::json!({ "capabilities": offered })).map_err(|e| UpstreamError::Protocol(e.to_string()))
}

/// The caller's listing named, overridden and pinned like a shared one.
fn build(shared: &Shared, backend: &Backend, listing: Arc<Listing>) -> Arc<Catalog> {
    let rules = shared.governance.load().rules(backend.name.as_str()).for_caller();
    let entry = ServerEntry { name: backend.name.clone(), prefix: backend.prefix.clone(), listing: Some(listing), rules: Arc::new(rules) };
    let built = catalog::build(std::slice::from_ref(&entry), &shared.pins.snapshot());
    shared.pins.after_build(&built);
    Arc::new(built)
}

/// The entry for `name` of `kind` that this caller may address: the shared catalog's or the
/// caller's own, and neither when both have it (an ambiguous name is withheld, never picked).
pub fn find<'a>(catalog: &'a Catalog, access: &'a Access, kind: ItemKind, name: &str) -> Option<&'a Entry> {
    let (shared, own) = match kind {
        ItemKind::Tool => (catalog.tool(name), access.personal().and_then(|p| p.tool(name))),
        ItemKind::Prompt => (catalog.prompt(name), access.personal().and_then(|p| p.prompt(name))),
        _ => return None,
    };
    match (shared, own) {
        (Some(_), Some(_)) => None,
        (a, b) => a.or(b),
    }
}

/// `visible` (shared entries, sorted) with the caller's own entries the caller may see,
/// sorted by exposed name; a name both have is left out (withheld for this caller).
pub fn merge<'a>(mut visible: Vec<&'a Entry>, personal: &'a Personal, kind: ItemKind, access: &Access) -> Vec<&'a Entry> {
    visible.extend(personal.items(kind).filter(|e| access.shows(kind, e)));
    visible.sort_by(|a, b| a.exposed.cmp(&b.exposed));
    let mut out: Vec<&Entry> = Vec::with_capacity(visible.len());
    let mut i = 0;
    while i < visible.len() {
        let mut j = i + 1;
        while j < visible.len() && visible[j].exposed == visible[i].exposed {
            j += 1;
        }
        if j == i + 1 {
            out.push(visible[i]);
        }
        i = j;
    }
    out
}
