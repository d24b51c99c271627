//! Configuration of permission sources (claims, CEL rules, wristbands), of the gateway's own
//! wristband signer, and the per-server `auth:` block. Owns names and defaults only.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::KeyConfig;
use crate::Secret;

/// Where a caller's permissions come from. An item is allowed when some source allows it and
/// no CEL `deny` rule matches it. Default: one `claims` source with the Keycloak layout.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionsConfig {
    /// Sources, in the order they are consulted (the first that allows gives the audit reason).
    #[serde(default = "default_sources")]
    pub sources: Vec<SourceConfig>,
}

impl Default for PermissionsConfig {
    fn default() -> Self {
        Self { sources: default_sources() }
    }
}

fn default_sources() -> Vec<SourceConfig> {
    vec![SourceConfig::Claims(ClaimsSourceConfig::default())]
}

/// One permission source, written as a single-key mapping: `- claims: {...}`,
/// `- cel: {...}` or `- wristband: {...}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "SourceRepr")]
pub enum SourceConfig {
    Claims(ClaimsSourceConfig),
    Cel(CelSourceConfig),
    Wristband(WristbandSourceConfig),
}

/// The YAML shape of a source (YAML libraries spell enums as tags; a one-key map reads
/// better in config files).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceRepr {
    #[serde(default)]
    claims: Option<ClaimsSourceConfig>,
    #[serde(default)]
    cel: Option<CelSourceConfig>,
    #[serde(default)]
    wristband: Option<WristbandSourceConfig>,
}

impl TryFrom<SourceRepr> for SourceConfig {
    type Error = &'static str;

    fn try_from(r: SourceRepr) -> Result<Self, Self::Error> {
        match (r.claims, r.cel, r.wristband) {
            (Some(c), None, None) => Ok(SourceConfig::Claims(c)),
            (None, Some(c), None) => Ok(SourceConfig::Cel(c)),
            (None, None, Some(w)) => Ok(SourceConfig::Wristband(w)),
            _ => Err("a permission source is one of `claims: {...}`, `cel: {...}` or `wristband: {...}`"),
        }
    }
}

/// Permissions read from the verified token's claims.
///
/// With a `{client}` segment in `path` (default `resource_access.{client}.roles`), the value
/// found for each client id of a server lists that server's permitted items. Without one
/// (e.g. `groups`), each value is `<client id><separator><item>` after `prefix`.
/// An item is written as the backend's own (unprefixed) tool name; `prompt:<name>` and
/// `resource:<uri>` name prompts and resources.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimsSourceConfig {
    /// Dotted claim path, or a list of segments when a claim name contains dots.
    #[serde(default)]
    pub path: ClaimPath,
    /// For paths without `{client}`: separator between client id and item.
    #[serde(default = "default_separator")]
    pub separator: String,
    /// For paths without `{client}`: only values starting with this count (it is removed).
    #[serde(default)]
    pub prefix: String,
    /// What a caller without a token, or whose token lacks the claim, gets.
    #[serde(default)]
    pub on_missing: OnMissing,
}

impl Default for ClaimsSourceConfig {
    fn default() -> Self {
        Self { path: ClaimPath::default(), separator: default_separator(), prefix: String::new(), on_missing: OnMissing::Deny }
    }
}

/// A claim path: `a.b.{client}.roles` or `["https://example.com/claims", "{client}"]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ClaimPath {
    Dotted(String),
    Segments(Vec<String>),
}

impl Default for ClaimPath {
    fn default() -> Self {
        ClaimPath::Dotted("resource_access.{client}.roles".to_owned())
    }
}

impl ClaimPath {
    pub fn segments(&self) -> Vec<String> {
        match self {
            ClaimPath::Dotted(s) => s.split('.').map(str::to_owned).collect(),
            ClaimPath::Segments(v) => v.clone(),
        }
    }
}

/// CEL rules over `claims`, `server`, `kind`, `name`, `annotations`; compiled at load.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CelSourceConfig {
    /// Rules, each `allow` or `deny`; names must be unique within the source.
    pub rules: Vec<CelRule>,
}

/// One rule: when `expr` is true, the item is allowed (`allow`) or refused (`deny`).
/// A deny rule always wins; a deny rule that fails to evaluate counts as matching.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CelRule {
    /// Named in audit reasons (`cel_deny:<name>`) and config errors.
    pub name: String,
    /// `allow` grants the item; `deny` refuses it whatever else allows it.
    pub effect: Effect,
    /// A CEL expression evaluating to a bool.
    pub expr: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Allow,
    Deny,
}

/// A signed permissions header from a trusted external authorizer (ES256 JWT).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WristbandSourceConfig {
    /// Header carrying the JWT. Default by format: `x-authorized-tools` (tools) or
    /// `x-mcp-authorized` (capabilities).
    #[serde(default)]
    pub header: Option<String>,
    /// Which claim layout to read.
    #[serde(default)]
    pub format: WristbandFormat,
    /// The authorizer's public key(s) (ES256 only).
    pub keys: Vec<KeyConfig>,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`, when set.
    #[serde(default)]
    pub audience: Option<String>,
    /// Clock skew tolerated on the wristband's `exp`/`nbf`.
    #[serde(default = "default_wristband_leeway", with = "super::duration")]
    pub leeway: Duration,
    /// What a request without the header gets. An invalid header is always refused.
    #[serde(default)]
    pub on_missing: OnMissing,
}

/// Claim layout of a wristband.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WristbandFormat {
    /// The seed's: claim `allowed-tools` = JSON string `{"<client id>":["tool",...]}`.
    #[default]
    Tools,
    /// The newer: claim `allowed-capabilities` = `{"tools":{...},"prompts":{...},"resources":{...}}`.
    Capabilities,
}

impl WristbandFormat {
    pub fn default_header(self) -> &'static str {
        match self {
            WristbandFormat::Tools => "x-authorized-tools",
            WristbandFormat::Capabilities => "x-mcp-authorized",
        }
    }

    pub fn claim(self) -> &'static str {
        match self {
            WristbandFormat::Tools => "allowed-tools",
            WristbandFormat::Capabilities => "allowed-capabilities",
        }
    }
}

/// What a source yields when its input is absent. `allow_all` exists for migrations only
/// and is logged as a warning when the policy is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMissing {
    #[default]
    Deny,
    AllowAll,
}

/// The gateway's own wristband signer (ES256).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WristbandIssueConfig {
    /// EC P-256 private key, PKCS#8 PEM (`BEGIN PRIVATE KEY`). Or `private_key_file`.
    #[serde(default)]
    pub private_key_pem: Option<Secret>,
    /// A file holding the private key (e.g. a mounted Kubernetes secret).
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// `kid` in the header and the published JWKS.
    pub kid: String,
    /// `iss` of issued wristbands.
    pub issuer: String,
    /// `aud` of issued wristbands, when set.
    #[serde(default)]
    pub audience: Option<String>,
    /// Claim layout of issued wristbands.
    #[serde(default)]
    pub format: WristbandFormat,
    /// Header to send it in; default by format.
    #[serde(default)]
    pub header: Option<String>,
    /// Lifetime of an issued wristband.
    #[serde(default = "default_wristband_ttl", with = "super::duration")]
    pub ttl: Duration,
}

/// Per-server `auth:` block in the gateway's server config.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerAuthConfig {
    /// Names under which the IdP and wristbands refer to this server (Keycloak client ids,
    /// wristband keys). Default: the server's name and its URL's host.
    #[serde(default)]
    pub client_ids: Option<Vec<String>>,
}

fn default_separator() -> String {
    "/".to_owned()
}

fn default_wristband_leeway() -> Duration {
    Duration::from_secs(5)
}

fn default_wristband_ttl() -> Duration {
    Duration::from_secs(60)
}
