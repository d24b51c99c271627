//! The aggregated catalog: every backend's tools, prompts, resources and templates under the
//! names the gateway exposes, plus the route back to each owner.
//!
//! A [`Catalog`] is immutable and rebuilt whole from the backends' [`Listing`]s whenever one
//! changes, so a list request never waits on a backend and never sees half an update. Names
//! that would be invalid or ambiguous are withheld (never overwritten, never resolved by
//! order) and reported per server.

mod build;
mod expose;
#[cfg(test)]
mod governance_tests;
mod names;
mod page;
mod personal;
mod rules;

pub use crate::kind::ItemKind;
pub use crate::pins::{ChangedServed, PinReport, Quarantined};
pub use build::{ServerEntry, build};
pub use page::{Cursor, CursorError, page};
pub use personal::Personal;
pub use rules::ServerRules;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use mcpgate_protocol::envelope::Envelope;
use mcpgate_protocol::names::ServerName;
use serde_json::value::RawValue;

/// What one backend offers, as discovered (raw items, backend names).
#[derive(Debug, Default, Clone)]
pub struct Listing {
    pub tools: Vec<Box<RawValue>>,
    pub prompts: Vec<Box<RawValue>>,
    pub resources: Vec<Box<RawValue>>,
    pub templates: Vec<Box<RawValue>>,
    pub instructions: Option<String>,
    pub caps: BackendCaps,
    /// The smallest `ttlMs` a modern backend gave its lists (legacy backends give none).
    pub ttl_ms: Option<u64>,
    /// A modern backend marked one of its lists `cacheScope: "private"`.
    pub private: bool,
    /// The pinned definitions of `tools` and `prompts`, hashed once per listing.
    pub(crate) definitions: OnceLock<Arc<Definitions>>,
}

/// Each listed tool's and prompt's definition (`None` when it cannot be read), by position.
#[derive(Debug, Default)]
pub struct Definitions {
    pub tools: Vec<Option<crate::pins::Definition>>,
    pub prompts: Vec<Option<crate::pins::Definition>>,
}

impl Definitions {
    pub fn get(&self, kind: ItemKind, index: usize) -> Option<&crate::pins::Definition> {
        match kind {
            ItemKind::Tool => self.tools.get(index)?.as_ref(),
            ItemKind::Prompt => self.prompts.get(index)?.as_ref(),
            _ => None,
        }
    }
}

impl Listing {
    /// The definitions of this listing's tools and prompts as server `server` lists them;
    /// computed on first use, then reused by every catalog rebuild.
    pub fn definitions(&self, server: &str) -> Arc<Definitions> {
        self.definitions
            .get_or_init(|| {
                let of = |kind: ItemKind| {
                    self.items(kind)
                        .iter()
                        .map(|item| {
                            let env = Envelope::parse_raw(item).ok()?;
                            let name = env.str(kind.name_key())?;
                            crate::pins::Definition::of(kind, server, &name, &env).ok()
                        })
                        .collect()
                };
                Arc::new(Definitions { tools: of(ItemKind::Tool), prompts: of(ItemKind::Prompt) })
            })
            .clone()
    }

    pub fn items(&self, kind: ItemKind) -> &[Box<RawValue>] {
        match kind {
            ItemKind::Tool => &self.tools,
            ItemKind::Prompt => &self.prompts,
            ItemKind::Resource => &self.resources,
            ItemKind::ResourceTemplate => &self.templates,
        }
    }
}

/// The server capabilities of a backend that shape the merged capabilities.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BackendCaps {
    pub tools: bool,
    pub prompts: bool,
    pub resources: bool,
    pub subscribe: bool,
    pub logging: bool,
    pub completions: bool,
    /// A modern backend offering the Tasks extension.
    pub tasks: bool,
}

/// One exposed item.
#[derive(Debug)]
pub struct Entry {
    pub exposed: String,
    pub server: ServerName,
    pub backend_name: String,
    /// The item's JSON with its name/uri rewritten to `exposed`.
    pub json: Box<RawValue>,
    /// A tool's `annotations` (readOnlyHint, …), for permission rules.
    pub annotations: Option<serde_json::Value>,
    /// A tool's `x-mcp-header` declarations (SEP-2243), checked and re-sent per call.
    pub param_headers: Vec<mcpgate_protocol::modern::ParamHeader>,
    /// This item's call series, found on its first call (kept across catalog rebuilds by
    /// `observe::Series`).
    pub series: std::sync::OnceLock<Arc<crate::observe::series::ItemSeries>>,
}

/// An item kept out of the catalog, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Withheld {
    pub kind: &'static str,
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Catalog {
    /// Distinguishes catalog versions (keys per-caller list caches).
    pub generation: u64,
    pub tools: Vec<Entry>,
    pub prompts: Vec<Entry>,
    pub resources: Vec<Entry>,
    pub templates: Vec<Entry>,
    pub caps: BackendCaps,
    pub instructions: Option<String>,
    /// The smallest list `ttlMs` among modern backends; the aggregate's never exceeds it.
    pub backend_ttl_ms: Option<u64>,
    /// Some modern backend's lists are per caller: the aggregate is too.
    pub backend_private: bool,
    pub withheld: HashMap<ServerName, Vec<Withheld>>,
    /// Items held back by pinning, per server (shown in `/status`).
    pub quarantined: HashMap<ServerName, Vec<Quarantined>>,
    pub pin_report: PinReport,
    /// Each reachable server's instructions (virtual servers combine only their servers').
    pub server_instructions: Vec<(ServerName, String)>,
    /// Exposed names, which the operator's servers and configuration chose: a fast hash.
    tool_index: foldhash::HashMap<String, usize>,
    prompt_index: foldhash::HashMap<String, usize>,
}

impl Catalog {
    /// Whether `uri` (as exposed) is a listed resource or matches a listed template.
    pub fn has_resource(&self, uri: &str) -> bool {
        self.resources.iter().any(|e| e.exposed == uri) || self.templates.iter().any(|e| template_matches(&e.exposed, uri))
    }

    pub fn items(&self, kind: ItemKind) -> &[Entry] {
        match kind {
            ItemKind::Tool => &self.tools,
            ItemKind::Prompt => &self.prompts,
            ItemKind::Resource => &self.resources,
            ItemKind::ResourceTemplate => &self.templates,
        }
    }

    fn items_mut(&mut self, kind: ItemKind) -> &mut Vec<Entry> {
        match kind {
            ItemKind::Tool => &mut self.tools,
            ItemKind::Prompt => &mut self.prompts,
            ItemKind::Resource => &mut self.resources,
            ItemKind::ResourceTemplate => &mut self.templates,
        }
    }

    /// The combined instructions of the servers `shows` admits something of (a virtual
    /// server's selection; the main endpoint shows [`Catalog::instructions`] whole).
    pub fn instructions_where(&self, shows: impl Fn(ItemKind, &Entry) -> bool) -> Option<String> {
        let shown = |server: &ServerName| ItemKind::ALL.iter().any(|k| self.items(*k).iter().any(|e| &e.server == server && shows(*k, e)));
        let parts: Vec<String> = self.server_instructions.iter().filter(|(s, _)| shown(s)).map(|(s, t)| format!("## {s}\n{t}")).collect();
        (!parts.is_empty()).then(|| parts.join("\n\n"))
    }

    pub fn tool(&self, exposed: &str) -> Option<&Entry> {
        self.tool_index.get(exposed).map(|i| &self.tools[*i])
    }

    pub fn prompt(&self, exposed: &str) -> Option<&Entry> {
        self.prompt_index.get(exposed).map(|i| &self.prompts[*i])
    }

    /// Counts per kind for one server (for /status).
    pub fn count(&self, server: &ServerName, kind: ItemKind) -> usize {
        self.items(kind).iter().filter(|e| &e.server == server).count()
    }

    fn index(mut self) -> Self {
        self.tool_index = self.tools.iter().enumerate().map(|(i, e)| (e.exposed.clone(), i)).collect();
        self.prompt_index = self.prompts.iter().enumerate().map(|(i, e)| (e.exposed.clone(), i)).collect();
        self
    }
}

/// Shared handle to the current catalog.
pub type SharedCatalog = Arc<Catalog>;

/// Whether `uri` is an expansion of the RFC 6570 `template`: literal parts must appear in
/// order; each `{…}` expression stands for one or more characters.
pub fn template_matches(template: &str, uri: &str) -> bool {
    let mut parts: Vec<&str> = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else { return false };
        parts.push(&rest[..open]);
        rest = &rest[open + close + 1..];
    }
    parts.push(rest);
    fn go(parts: &[&str], uri: &str, first: bool) -> bool {
        let Some((lit, more)) = parts.split_first() else { return uri.is_empty() };
        if first {
            return uri.strip_prefix(lit).is_some_and(|u| go(more, u, false));
        }
        // An expression ate at least one character before this literal.
        if more.is_empty() && lit.is_empty() {
            return !uri.is_empty();
        }
        (1..=uri.len()).filter(|i| uri.is_char_boundary(*i)).any(|i| uri[i..].starts_with(lit) && go(more, &uri[i + lit.len()..], false))
    }
    go(&parts, uri, true)
}

#[cfg(test)]
mod template_tests {
    use super::template_matches;

    #[test]
    fn templates_match_their_expansions_only() {
        assert!(template_matches("a+fixture://a/items/{id}", "a+fixture://a/items/5"));
        assert!(template_matches("test://t/{x}/data", "test://t/abc/data"));
        assert!(template_matches("file:///{path}", "file:///a/b/c"));
        assert!(!template_matches("a+fixture://a/items/{id}", "a+fixture://a/items/"));
        assert!(!template_matches("test://t/{x}/data", "test://t/abc/other"));
        assert!(!template_matches("test://t/{x}/data", "test://u/abc/data"));
        assert!(template_matches("test://static", "test://static"));
        assert!(!template_matches("test://static", "test://static2"));
    }
}

/// How the result must be changed on its way back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultRewrite {
    None,
    /// `resources/read`: content URIs are shown in the gateway's namespace.
    ResourceContents,
}
