//! The sessions this process holds, their limits and expiry.
//!
//! A single process keeps every session here and nowhere else. In a cluster the store holds
//! them (`mcpgate_store::sessions`) and this is a cache: a session is loaded on its first
//! request here, told to the store as used at most every few seconds (never on the hot path),
//! and dropped from the cache when it has been idle here a while (it stays in the store).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use mcpgate_store::StoreError;
use mcpgate_store::sessions::{Created, PoolLimits};

use super::StoredBackends;

use super::{ClientSession, SessionCtx, now_ms};
use crate::backend::Backend;
pub use crate::config::SessionLimits;

/// A session id shortened for logs (enough to correlate, too little to hijack).
pub fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

/// Why a new session was refused, or could not be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Every slot is taken and no session is idle long enough to give its slot up.
    Full,
    /// This principal holds its quota, none of them idle long enough.
    PrincipalQuota,
    /// No such session (never made, ended, expired, or an id no live key signed).
    Unknown,
    /// The store is needed and does not answer (the message says why).
    Store(String),
}

/// A session evicted to make room, and the backend sessions the store knew for it: end them
/// with [`ClientSession::end_everywhere`].
pub type Evicted = (Arc<ClientSession>, StoredBackends);

/// How long a cluster replica keeps an unused session cached (it stays in the store).
const CACHE_IDLE: Duration = Duration::from_secs(120);

/// All live client sessions (of this process, or cached from the store).
#[derive(Default)]
pub struct Sessions {
    /// Keyed by ids the gateway drew at random (a client only looks them up), so a fast hash.
    map: RwLock<foldhash::HashMap<String, Arc<ClientSession>>>,
}

impl Sessions {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, foldhash::HashMap<String, Arc<ClientSession>>> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, foldhash::HashMap<String, Arc<ClientSession>>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A session held here, without asking the store (the gateway's own sessions, and bus
    /// messages about sessions this replica may hold).
    pub fn get(&self, id: &str) -> Option<Arc<ClientSession>> {
        let s = self.read().get(id).cloned();
        if let Some(s) = &s {
            s.touch();
        }
        s
    }

    /// The session `id` for a client request: cached, or (in a cluster) loaded from the store.
    /// An id no live key signed is unknown without a store lookup.
    pub async fn find(&self, id: &str, ctx: &SessionCtx, limits: &SessionLimits) -> Result<Arc<ClientSession>, Refused> {
        let cached = self.read().get(id).cloned();
        if let Some(s) = cached {
            let idle = s.idle_for();
            match s.cluster().cloned() {
                // Idle past the timeout here: expired, unless other replicas kept it in use.
                Some(cluster) if idle + touch_every(limits.idle_timeout) >= limits.idle_timeout => {
                    if let Ok(false) = cluster.store.touch_session(id, limits.idle_timeout.as_millis() as u64, now_ms()).await {
                        self.forget(id).await;
                        return Err(Refused::Unknown);
                    }
                }
                None if idle > limits.idle_timeout => {
                    let removed = self.write().remove(id);
                    if let Some(s) = removed {
                        tracing::info!(session = %short(id), "session expired after {:?} idle", limits.idle_timeout);
                        s.close(true).await;
                    }
                    return Err(Refused::Unknown);
                }
                _ => {}
            }
            s.touch();
            if let Some(cluster) = s.cluster().cloned()
                && s.due_for_store_touch(touch_every(limits.idle_timeout))
            {
                // Told in the background: a request never waits for it. A session found gone
                // (deleted or expired elsewhere) is dropped here and answers 404 next time.
                let (weak, idle) = (Arc::downgrade(&s), limits.idle_timeout.as_millis() as u64);
                let id = id.to_owned();
                tokio::spawn(async move {
                    if let Ok(false) = cluster.store.touch_session(&id, idle, now_ms()).await
                        && let Some(s) = weak.upgrade()
                    {
                        tracing::info!(session = %short(&id), "session ended elsewhere; dropped here");
                        s.close(false).await;
                    }
                });
            }
            return Ok(s);
        }
        let Some(cluster) = &ctx.cluster else { return Err(Refused::Unknown) };
        if !ctx.keys.is_session_id(id) {
            return Err(Refused::Unknown);
        }
        let rec = cluster.store.load_session(id, limits.idle_timeout.as_millis() as u64, now_ms()).await.map_err(|e| store_down(&e))?;
        let Some(rec) = rec else { return Err(Refused::Unknown) };
        let s = ClientSession::from_record(ctx, id.to_owned(), rec);
        s.touch();
        let mut map = self.write();
        // Another request may have loaded it meanwhile: one view per replica.
        Ok(map.entry(id.to_owned()).or_insert(s).clone())
    }

    /// Adds a new session within `limits`. When a limit is reached, the longest-idle session
    /// that has been idle at least `limits.evict_idle_after` makes room (the newcomer's own when
    /// its principal is at its quota, else one of the principal holding the most sessions; in a
    /// cluster, the longest-idle of the pool). Returns the evicted session, to be closed.
    pub async fn insert(&self, s: Arc<ClientSession>, limits: &SessionLimits) -> Result<Option<Evicted>, Refused> {
        let Some(cluster) = s.cluster().cloned() else { return Ok(self.insert_local(s, limits)?.map(|e| (e, Default::default()))) };
        let pool = PoolLimits {
            max_total: limits.max_total as u64,
            max_per_principal: limits.max_per_principal as u64,
            idle_ms: limits.idle_timeout.as_millis() as u64,
            evict_after_ms: limits.evict_idle_after.as_millis() as u64,
        };
        let principal_key = s.principal.as_ref().map(|p| s.ctx.keys.principal_digest(p));
        let created = cluster.store.create_session(&s.id, &s.record(), principal_key.as_deref(), &pool, now_ms()).await.map_err(|e| store_down(&e))?;
        let evicted = match created {
            Created::Full => return Err(Refused::Full),
            Created::PrincipalQuota => return Err(Refused::PrincipalQuota),
            Created::Stored { evicted } => evicted,
        };
        s.touch();
        self.write().insert(s.id.clone(), s.clone());
        Ok(evicted.map(|e| {
            let (id, rec) = *e;
            tracing::info!(session = %short(&id), "session evicted to make room");
            // Closed where it is cached (its connections); its backend sessions end here.
            cluster.post(mcpgate_store::bus::To::All, crate::cluster::BusMessage::Closed { session: id.clone() });
            let stored = rec.backends.clone();
            let victim = self.write().remove(&id).unwrap_or_else(|| ClientSession::from_record(&s.ctx, id, rec));
            (victim, stored)
        }))
    }

    /// [`Self::insert`] for sessions that never go to the store (the gateway's own).
    pub fn insert_internal(&self, s: Arc<ClientSession>, limits: &SessionLimits) -> Result<Option<Arc<ClientSession>>, Refused> {
        self.insert_local(s, limits)
    }

    fn insert_local(&self, s: Arc<ClientSession>, limits: &SessionLimits) -> Result<Option<Arc<ClientSession>>, Refused> {
        let mut map = self.write();
        let mut evicted = None;
        if let Some(principal) = &s.principal {
            let own = map.values().filter(|o| o.principal.as_ref() == Some(principal)).count();
            if own >= limits.max_per_principal {
                let victim =
                    longest_idle(map.values().filter(|o| o.principal.as_ref() == Some(principal)), limits.evict_idle_after).ok_or(Refused::PrincipalQuota)?;
                evicted = map.remove(&victim);
            }
        }
        if evicted.is_none() && map.len() >= limits.max_total {
            let mut per: HashMap<Option<&String>, usize> = HashMap::new();
            for o in map.values() {
                *per.entry(o.principal.as_ref()).or_default() += 1;
            }
            let mut by_size: Vec<_> = per.into_iter().collect();
            by_size.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
            let victim = by_size
                .iter()
                .find_map(|(p, _)| longest_idle(map.values().filter(|o| o.principal.as_ref() == *p), limits.evict_idle_after))
                .ok_or(Refused::Full)?;
            evicted = map.remove(&victim);
        }
        s.touch();
        map.insert(s.id.clone(), s);
        if let Some(e) = &evicted {
            tracing::info!(session = %short(&e.id), idle = ?e.idle_for(), "session evicted to make room");
        }
        Ok(evicted)
    }

    /// Ends the session `id` (client DELETE): gone from the store, from every replica's cache,
    /// and its backend sessions ended. `Unknown` when there was no such session.
    pub async fn delete(&self, id: &str, ctx: &SessionCtx, backends: &[Arc<Backend>]) -> Result<(), Refused> {
        let local = self.write().remove(id);
        let Some(cluster) = &ctx.cluster else {
            let s = local.ok_or(Refused::Unknown)?;
            s.close(true).await;
            return Ok(());
        };
        if local.is_none() && !ctx.keys.is_session_id(id) {
            return Err(Refused::Unknown);
        }
        let rec = cluster.store.delete_session(id).await.map_err(|e| store_down(&e))?;
        cluster.post(mcpgate_store::bus::To::All, crate::cluster::BusMessage::Closed { session: id.to_owned() });
        let Some(rec) = rec else {
            return match local {
                Some(s) => {
                    s.close(true).await;
                    Ok(())
                }
                None => Err(Refused::Unknown),
            };
        };
        let stored = rec.backends.clone();
        let s = local.unwrap_or_else(|| ClientSession::from_record(ctx, id.to_owned(), rec));
        s.end_everywhere(stored, backends).await;
        Ok(())
    }

    /// Drops the session from this replica's cache (another replica ended it, or it is idle
    /// here); its backend sessions are not ended from here.
    pub async fn forget(&self, id: &str) {
        let removed = self.write().remove(id);
        if let Some(s) = removed {
            s.close(false).await;
        }
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn all(&self) -> Vec<Arc<ClientSession>> {
        self.read().values().cloned().collect()
    }

    /// Removes sessions idle longer than `limit`; returns them for closing. In a cluster,
    /// cached sessions idle here for a while are dropped from the cache only (returned with
    /// `false`); the store decides when a session expires.
    pub fn expire(&self, limit: Duration) -> Vec<(Arc<ClientSession>, bool)> {
        let mut map = self.write();
        let due: Vec<(String, bool)> = map
            .iter()
            .filter_map(|(k, s)| match s.cluster() {
                None => (s.idle_for() > limit).then(|| (k.clone(), true)),
                Some(_) => (s.idle_for() > CACHE_IDLE.min(limit) && !s.is_busy()).then(|| (k.clone(), false)),
            })
            .collect();
        due.into_iter().filter_map(|(k, end)| map.remove(&k).map(|s| (s, end))).collect()
    }
}

/// How often a replica tells the store a session it serves is in use.
fn touch_every(idle_timeout: Duration) -> Duration {
    (idle_timeout / 20).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

fn store_down(e: &StoreError) -> Refused {
    Refused::Store(crate::cluster::store_refusal(e))
}

/// The id of the longest-idle session among `sessions`, if it has been idle at least `min`.
fn longest_idle<'a>(sessions: impl Iterator<Item = &'a Arc<ClientSession>>, min: Duration) -> Option<String> {
    sessions.map(|s| (s.idle_for(), s)).filter(|(idle, _)| *idle >= min).max_by_key(|(idle, _)| *idle).map(|(_, s)| s.id.clone())
}
