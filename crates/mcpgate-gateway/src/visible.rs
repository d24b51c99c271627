//! What each caller sees of the catalog on the endpoint they use. Filtering runs the
//! permission check (and a virtual server's selection) on every item, so the result is cached
//! per (catalog generation, caller-and-endpoint fingerprint, kind): callers with the same
//! grants on the same endpoint share one view, others never do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::catalog::{Catalog, Entry, ItemKind};
use crate::identity::Access;

/// Most cached views before the cache starts over (bounded memory).
const MAX_VIEWS: usize = 4096;

/// (catalog generation, caller fingerprint, kind).
type ViewKey = (u64, u64, ItemKind);

#[derive(Default)]
pub struct Views {
    map: Mutex<HashMap<ViewKey, Arc<Vec<u32>>>>,
}

impl Views {
    /// The indices of `kind` items in `catalog` that `access` may see.
    pub fn visible(&self, catalog: &Catalog, kind: ItemKind, access: &Access) -> Arc<Vec<u32>> {
        let items = catalog.items(kind);
        if !access.is_restricted() && access.scope().is_none() {
            return Arc::new((0..items.len() as u32).collect());
        }
        let key = (catalog.generation, access.fingerprint(), kind);
        if let Some(v) = self.map.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return v.clone();
        }
        let view: Arc<Vec<u32>> = Arc::new(items.iter().enumerate().filter(|(_, e)| allowed(access, kind, e)).map(|(i, _)| i as u32).collect());
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_VIEWS {
            map.clear();
        }
        map.insert(key, view.clone());
        view
    }
}

pub fn allowed(access: &Access, kind: ItemKind, e: &Entry) -> bool {
    access.shows(kind, e)
}
