//! The sessions this process holds, their ids, and idle expiry.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::ClientSession;

/// 128 bits from the OS RNG, hex: visible ASCII as the spec requires, unguessable.
pub(crate) fn new_session_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A session id shortened for logs (enough to correlate, too little to hijack).
pub fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

/// How many sessions may be open, and when an idle one may make room for a new one.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub max_total: usize,
    /// Per authenticated principal (sessions without a principal count only towards the total).
    pub max_per_principal: usize,
    pub evict_idle_after: Duration,
}

/// Why a new session was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every slot is taken and no session is idle long enough to give its slot up.
    Full,
    /// This principal holds its quota, none of them idle long enough.
    PrincipalQuota,
}

/// The id of the longest-idle session among `sessions`, if it has been idle at least `min`.
fn longest_idle<'a>(sessions: impl Iterator<Item = &'a Arc<ClientSession>>, min: Duration) -> Option<String> {
    sessions.map(|s| (s.idle_for(), s)).filter(|(idle, _)| *idle >= min).max_by_key(|(idle, _)| *idle).map(|(_, s)| s.id.clone())
}

/// All live client sessions.
#[derive(Default)]
pub struct Sessions {
    map: RwLock<HashMap<String, Arc<ClientSession>>>,
}

impl Sessions {
    pub fn get(&self, id: &str) -> Option<Arc<ClientSession>> {
        let s = self.map.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned();
        if let Some(s) = &s {
            s.touch();
        }
        s
    }

    /// Adds a session within `limits`. When a limit is reached, the longest-idle session that
    /// has been idle at least `limits.evict_idle_after` makes room: the newcomer's own when its
    /// principal is at its quota, else one of the principal holding the most sessions (so one
    /// caller's pile of sessions goes before anyone else's). Returns the evicted session, to be
    /// closed by the caller.
    pub fn insert(&self, s: Arc<ClientSession>, limits: &SessionLimits) -> Result<Option<Arc<ClientSession>>, Refused> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
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

    pub fn remove(&self, id: &str) -> Option<Arc<ClientSession>> {
        self.map.write().unwrap_or_else(|p| p.into_inner()).remove(id)
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn all(&self) -> Vec<Arc<ClientSession>> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Removes sessions idle longer than `limit`; returns them for closing.
    pub fn expire(&self, limit: Duration) -> Vec<Arc<ClientSession>> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let idle: Vec<String> = map.iter().filter(|(_, s)| s.idle_for() > limit).map(|(k, _)| k.clone()).collect();
        idle.iter().filter_map(|k| map.remove(k)).collect()
    }
}
