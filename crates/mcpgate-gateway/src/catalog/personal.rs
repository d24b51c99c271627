//! One caller's own catalogs of the `catalog: per_user` servers, as a request carries them
//! (`identity::Access`); filled by `core::personal`.

use std::sync::Arc;

use super::{Catalog, Entry, ItemKind};

/// What the per-user servers list for this caller, ready to merge.
#[derive(Default)]
pub struct Personal {
    pub(crate) catalogs: Vec<Arc<Catalog>>,
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
