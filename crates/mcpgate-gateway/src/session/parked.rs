//! Calls parked for a modern client's `input_required` round trip (a legacy backend asked the
//! client something), by the id sealed into their `requestState`, and the key those states are
//! sealed with. The registry holds them opaque: `calls::bridge` owns their type and drives them.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Mutex;

use super::seal::Sealer;

/// A parked call, as `calls::bridge` made it.
pub type ParkedCall = Box<dyn Any + Send>;

/// The parked calls of this gateway process and the key their states are sealed with.
#[derive(Default)]
pub struct Bridges {
    pub sealer: Sealer,
    parked: Mutex<HashMap<[u8; 16], ParkedCall>>,
}

impl Bridges {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 16], ParkedCall>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, id: [u8; 16], call: ParkedCall) {
        self.lock().insert(id, call);
    }

    /// Takes a parked call out (once: a replayed state finds nothing).
    pub fn take(&self, id: &[u8; 16]) -> Option<ParkedCall> {
        self.lock().remove(id)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
