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

    /// Adds a session unless `max` are already open.
    pub fn insert(&self, s: Arc<ClientSession>, max: usize) -> bool {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= max {
            return false;
        }
        s.touch();
        map.insert(s.id.clone(), s);
        true
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
