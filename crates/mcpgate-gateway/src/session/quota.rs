//! Per-principal counts of long-lived things (open `subscriptions/listen` streams), so one caller
//! cannot hold them all. A slot is taken with [`Quota::acquire`] and given back when its guard
//! is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Quota {
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

/// A taken slot; dropping it gives it back.
pub struct QuotaGuard {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    principal: String,
}

impl Quota {
    /// A slot for `principal` unless it already holds `max`.
    pub fn acquire(&self, principal: &str, max: usize) -> Option<QuotaGuard> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(principal.to_owned()).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(QuotaGuard { counts: self.counts.clone(), principal: principal.to_owned() })
    }

    /// Slots `principal` holds now.
    pub fn held(&self, principal: &str) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).get(principal).copied().unwrap_or(0)
    }
}

impl Drop for QuotaGuard {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.principal) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.principal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principal_holds_at_most_max_slots_and_gets_them_back() {
        let q = Quota::default();
        let a1 = q.acquire("alice", 2).expect("first");
        let _a2 = q.acquire("alice", 2).expect("second");
        assert!(q.acquire("alice", 2).is_none());
        assert!(q.acquire("bob", 2).is_some(), "another principal is not affected");
        drop(a1);
        assert_eq!(q.held("alice"), 1);
        assert!(q.acquire("alice", 2).is_some());
    }
}
