//! Per-server naming and override rules as the catalog applies them: the prefix mode, each
//! item's override (`expose_as`, description, annotations, hide) and the pinning mode.

use indexmap::IndexMap;

use crate::catalog::ItemKind;
use crate::config::{ItemOverride, PinMode, PrefixMode, ServerConfig};

/// How one server's items are named, overridden and pinned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerRules {
    pub prefix_mode: PrefixMode,
    pub pinning: PinMode,
    tools: IndexMap<String, ItemOverride>,
    prompts: IndexMap<String, ItemOverride>,
}

impl ServerRules {
    pub fn from_config(c: &ServerConfig) -> Self {
        Self { prefix_mode: c.prefix_mode, pinning: c.pinning, tools: c.tools.clone(), prompts: c.prompts.clone() }
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
