//! What each caller sees of the catalog. Filtering runs the permission check on every item,
//! so the result is cached per (catalog generation, caller fingerprint, kind): callers with
//! the same grants share one view, callers with different grants never do.

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
        if !access.is_restricted() {
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
    access.decide(&e.server, kind, &e.backend_name, e.annotations.as_ref()).allowed
}
