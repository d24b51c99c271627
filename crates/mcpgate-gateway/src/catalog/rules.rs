//! Per-server naming and override rules as the catalog applies them: the prefix mode, each
//! item's override (`expose_as`, description, annotations, hide) and the pinning mode.

use indexmap::IndexMap;

use super::ItemKind;
use crate::config::{CatalogMode, ItemOverride, PinMode, PrefixMode, ServerConfig};

/// How one server's items are named, overridden and pinned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerRules {
    pub prefix_mode: PrefixMode,
    pub pinning: PinMode,
    /// `catalog: per_user`: the shared catalog carries none of this server's items (each
    /// caller's own listing does, see `per_user`).
    pub per_user: bool,
    tools: IndexMap<String, ItemOverride>,
    prompts: IndexMap<String, ItemOverride>,
}

impl ServerRules {
    pub fn from_config(c: &ServerConfig) -> Self {
        let per_user = c.catalog == CatalogMode::PerUser;
        Self { prefix_mode: c.prefix_mode, pinning: c.pinning, per_user, tools: c.tools.clone(), prompts: c.prompts.clone() }
    }

    /// The same rules for building one caller's own listing of the server.
    pub fn for_caller(&self) -> Self {
        Self { per_user: false, ..self.clone() }
    }

    /// The override for the item the backend calls `name`, if any.
    pub fn item(&self, kind: ItemKind, name: &str) -> Option<&ItemOverride> {
        match kind {
            ItemKind::Tool => self.tools.get(name),
            ItemKind::Prompt => self.prompts.get(name),
            ItemKind::Resource | ItemKind::ResourceTemplate => None,
        }
    }
}
