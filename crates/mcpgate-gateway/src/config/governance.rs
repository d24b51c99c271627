//! The tool-governance part of the configuration tree: definition pinning, virtual servers,
//! and per-server naming rules (prefix modes, renames, overrides, hiding). The admin listener
//! that serves pin approvals is `admin:` (config `observe`). Defaults live here; checks live in
//! `validate_governance`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Where approved tool and prompt definitions are kept (`pins:`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinsConfig {
    /// The pin file (YAML). Written atomically by the gateway and by `mcpgate pins`; a
    /// missing file is an empty pin set.
    pub file: PathBuf,
}

/// How a server's tools and prompts are checked against their approved definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PinMode {
    /// No pinning.
    #[default]
    Off,
    /// Trust on first use: the first definition seen is pinned; a change is logged, counted
    /// and audited, and still served.
    Record,
    /// Only approved definitions are served: an unpinned or changed item is quarantined
    /// (absent from lists, unknown to calls) until approved.
    Enforce,
}

/// When a server's prefix is put before its tool and prompt names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PrefixMode {
    /// Every name is prefixed (`<prefix><name>`).
    #[default]
    Always,
    /// Names are exposed as the backend lists them; a name another server also exposes is
    /// withheld (never overwritten).
    Never,
    /// A name is prefixed only when another server exposes the same name unprefixed.
    OnCollision,
}

/// Whether a server's catalog is the same for every caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CatalogMode {
    /// Listed once by discovery with the gateway's own credential.
    #[default]
    Shared,
    /// Listed per caller on the caller's own backend session (keyed by credential), cached
    /// per credential for `catalog_ttl`.
    PerUser,
}

/// Operator overrides for one tool or prompt (keyed by the backend's own name).
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ItemOverride {
    /// The exact name clients see instead of `<prefix><name>` (no prefix is added).
    #[serde(default)]
    pub expose_as: Option<String>,
    /// Replaces the backend's description.
    #[serde(default)]
    pub description: Option<String>,
    /// Merged over the backend's annotations (tools only), e.g. `{destructiveHint: true}`.
    /// Permission rules see the merged annotations.
    #[serde(default)]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
    /// Never exposed: absent from lists and unknown to calls.
    #[serde(default)]
    pub hide: bool,
}

/// A virtual server: its own MCP path exposing a chosen subset of the catalog.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualServerConfig {
    /// 1-32 of a-z 0-9 -.
    pub name: String,
    /// The MCP path; default `/mcp/<name>`.
    #[serde(default)]
    pub path: Option<String>,
    /// Items shown: those matching at least one selector (none: nothing is shown).
    #[serde(default)]
    pub include: Vec<Selector>,
    /// Items hidden although included.
    #[serde(default)]
    pub exclude: Vec<Selector>,
    /// Extra requirements on callers of this path (on top of the gateway's `auth`).
    #[serde(default)]
    pub auth: Option<VirtualAuthConfig>,
    /// The URL clients use for this virtual server, published in its OAuth metadata. Default:
    /// the origin of `public_url` (or `http://<listen>`) plus `path`.
    #[serde(default)]
    pub public_url: Option<String>,
}

impl VirtualServerConfig {
    pub fn effective_path(&self) -> String {
        self.path.clone().unwrap_or_else(|| format!("/mcp/{}", self.name))
    }
}

/// Which items a selector matches; every given field must match.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// `tool`, `prompt` or `resource` (resources and resource templates); absent: any kind.
    #[serde(default)]
    pub kind: Option<SelectorKind>,
    /// The owning server's name.
    #[serde(default)]
    pub server: Option<String>,
    /// A glob (`*` any run, `?` one character) over the exposed name (or exposed URI).
    #[serde(default)]
    pub name: Option<String>,
    /// A regular expression over the exposed name (or exposed URI), anchored at neither end.
    #[serde(default)]
    pub regex: Option<String>,
    /// Tool annotations that must have these values (after overrides), e.g.
    /// `{readOnlyHint: true}`.
    #[serde(default)]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectorKind {
    Tool,
    Prompt,
    Resource,
}

/// Requirements a virtual server adds to the gateway's authentication.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct VirtualAuthConfig {
    /// Scopes a token must carry to use this virtual server (403 `insufficient_scope` else).
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// The token's `aud` must name at least one of these (401 `invalid_token` else). Each must
    /// also be accepted by the gateway (`auth.audiences` or an issuer's `audiences`).
    #[serde(default)]
    pub audiences: Vec<String>,
}

pub(crate) fn default_catalog_ttl() -> Duration {
    Duration::from_secs(60)
}
