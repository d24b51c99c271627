//! Per-user catalogs on the request path: a caller's own listing of each `catalog: per_user`
//! server, fetched with the caller's credential (or taken from the cache in `per_user`),
//! attached to the request's [`Access`], and merged with the shared catalog for lists and
//! routing. A cache hit costs no backend round trip.
//!
//! Never shares a listing between different credentials; never logs a credential.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpgate_protocol::RpcError;
use mcpgate_protocol::versions::LATEST_LEGACY;
use mcpgate_upstream::UpstreamError;

use crate::backend::{Backend, Era};
use crate::catalog::{self, Catalog, Entry, ItemKind, Listing, Personal, ServerEntry};
use crate::discovery::{Lister, list_all};
use crate::identity::Access;
use crate::per_user::{Fetched, PerUser, Slot};
use crate::session::ClientSession;
use crate::state::Shared;

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
        match catalog_for(&shared.per_user, shared, &access, &backend, ttl).await {
            Ok(c) => catalogs.push(c),
            Err(e) => tracing::warn!(server = %backend.name, subject = access.subject(), "per-user listing unavailable: {}", e.message),
        }
    }
    access.with_personal(Arc::new(Personal { catalogs }))
}

/// The caller's listing of `backend`: from the cache when fresh, else fetched now.
async fn catalog_for(cache: &PerUser, shared: &Arc<Shared>, access: &Access, backend: &Arc<Backend>, ttl: Duration) -> Result<Arc<Catalog>, RpcError> {
    let credential = crate::core::credential(shared, access, backend, None).await?;
    let fingerprint = credential.as_ref().map_or(0, |c| c.fingerprint);
    let slot = cache.slot(&backend.name, fingerprint);
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

/// Lists the backend with the caller's credential.
async fn fetch(
    shared: &Shared,
    backend: &Arc<Backend>,
    slot: &Slot,
    access: &Access,
    credential: Option<&mcpgate_credentials::Resolved>,
) -> Result<Listing, UpstreamError> {
    match backend.era() {
        // A dual-era backend is listed statelessly too (the listing is the same in both eras).
        Era::Modern | Era::Dual => {
            let link = backend.modern_link().ok_or_else(|| UpstreamError::Protocol("a modern backend must use Streamable HTTP".into()))?;
            let headers = credential.map_or(&[][..], |c| c.headers.as_slice());
            // What to list is what the backend's discovery offered (no second server/discover).
            let caps = backend.health().listing.map(|l| l.caps).unwrap_or_default();
            let greeting = greeting_of(caps)?;
            list_all(&Lister::ModernAs(link, headers), &greeting).await
        }
        Era::Legacy | Era::Unknown => {
            // The gateway's own session (never in the shared store): this replica lists on it.
            let session = slot.session.get_or_init(|| {
                let id = format!("per-user-{:032x}", rand::random::<u128>());
                ClientSession::internal(&shared.session_ctx(), id, LATEST_LEGACY, "{}".into(), mcpgate_upstream::gateway_client_info(), access.principal())
            });
            let conn = session.backend(backend, credential).await?;
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
    shared.pins.after_build(&built.quarantined, &built.pin_report, &shared.audit);
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
