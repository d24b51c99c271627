//! Per-server credential chains: the ordered sources a server's calls try, and the separate
//! credential its catalog discovery uses. Owns names and defaults only.

use serde::Deserialize;

use super::SecretSource;

/// A server's credentials. Under each server of the gateway's configuration they are written
/// `credentials: [ {vault: {...}}, {token_exchange: {...}} ]` and an optional
/// `discovery_credentials: {static: {...}}`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerCredentials {
    /// Sources tried in order for each call; the first that yields a credential wins.
    /// Empty: calls carry no per-user credential.
    #[serde(default)]
    pub credentials: Vec<SourceConfig>,
    /// The gateway-owned credential for catalog discovery (listing tools, prompts and
    /// resources). Never a per-user credential.
    #[serde(default, alias = "discovery_credentials")]
    pub discovery: Option<DiscoverySourceConfig>,
}

/// One source, written as a one-key mapping: `- vault: {...}`, `- token_exchange: {...}`,
/// `- static: {...}`, `- client_credentials: {...}` or `- passthrough: {}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "SourceRepr")]
pub enum SourceConfig {
    Vault(VaultSourceConfig),
    TokenExchange(ExchangeSourceConfig),
    Static(StaticSourceConfig),
    ClientCredentials(ClientCredentialsSourceConfig),
    Passthrough(PassthroughSourceConfig),
}

/// The YAML shape of a source (YAML libraries spell enums as tags; a one-key map reads
/// better in config files).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceRepr {
    #[serde(default)]
    vault: Option<VaultSourceConfig>,
    #[serde(default)]
    token_exchange: Option<ExchangeSourceConfig>,
    #[serde(default, rename = "static")]
    static_: Option<StaticSourceConfig>,
    #[serde(default)]
    client_credentials: Option<ClientCredentialsSourceConfig>,
    #[serde(default)]
    passthrough: Option<PassthroughSourceConfig>,
}

impl TryFrom<SourceRepr> for SourceConfig {
    type Error = &'static str;

    fn try_from(r: SourceRepr) -> Result<Self, Self::Error> {
        let mut found = Vec::new();
        if let Some(c) = r.vault {
            found.push(SourceConfig::Vault(c));
        }
        if let Some(c) = r.token_exchange {
            found.push(SourceConfig::TokenExchange(c));
        }
        if let Some(c) = r.static_ {
            found.push(SourceConfig::Static(c));
        }
        if let Some(c) = r.client_credentials {
            found.push(SourceConfig::ClientCredentials(c));
        }
        if let Some(c) = r.passthrough {
            found.push(SourceConfig::Passthrough(c));
        }
        match (found.pop(), found.is_empty()) {
            (Some(source), true) => Ok(source),
            _ => Err("a credential source is one of `vault: {...}`, `token_exchange: {...}`, `static: {...}`, \
                      `client_credentials: {...}` or `passthrough: {}`"),
        }
    }
}

impl SourceConfig {
    /// The source's name in errors, logs and [`crate::Resolved::source`].
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Vault(_) => "vault",
            SourceConfig::TokenExchange(_) => "token_exchange",
            SourceConfig::Static(_) => "static",
            SourceConfig::ClientCredentials(_) => "client_credentials",
            SourceConfig::Passthrough(_) => "passthrough",
        }
    }
}

/// The discovery credential: gateway-owned, `static: {...}` or `client_credentials: {...}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "DiscoveryRepr")]
pub enum DiscoverySourceConfig {
    Static(StaticSourceConfig),
    ClientCredentials(ClientCredentialsSourceConfig),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscoveryRepr {
    #[serde(default, rename = "static")]
    static_: Option<StaticSourceConfig>,
    #[serde(default)]
    client_credentials: Option<ClientCredentialsSourceConfig>,
}

impl TryFrom<DiscoveryRepr> for DiscoverySourceConfig {
    type Error = &'static str;

    fn try_from(r: DiscoveryRepr) -> Result<Self, Self::Error> {
        match (r.static_, r.client_credentials) {
            (Some(s), None) => Ok(DiscoverySourceConfig::Static(s)),
            (None, Some(c)) => Ok(DiscoverySourceConfig::ClientCredentials(c)),
            _ => Err("a discovery credential is one of `static: {...}` or `client_credentials: {...}` \
                      (gateway-owned; per-user sources cannot list a catalog)"),
        }
    }
}

/// What an absent entry (Vault 404) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMissing {
    /// Try the next source (the seed's "Vault first, else token exchange").
    #[default]
    Next,
    /// Fail the call: this server needs a stored credential.
    Fail,
}

/// What a failure of the source (unreachable, refused, invalid answer) does.
/// An invalid caller identity and a tool outside the exchanged token's roles always fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Fail the call with an error naming the server and the source (fail closed).
    #[default]
    Fail,
    /// Log a warning and try the next source.
    Next,
}

/// A per-user secret read from Vault KV v2.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSourceConfig {
    /// The KV v2 mount (the read goes to `<mount>/data/<path>`).
    #[serde(default = "default_mount")]
    pub mount: String,
    /// Path under the mount, `/`-separated; placeholders `{username}`, `{subject}`,
    /// `{host}` (the server URL's host), `{server}` (its name). Each placeholder fills one
    /// path segment; caller values with `/`, `..`, `%`, control or non-ASCII characters are
    /// refused before any request.
    #[serde(default = "default_path")]
    pub path: String,
    /// The field of the secret holding the credential.
    #[serde(default = "default_field")]
    pub field: String,
    /// Header the credential is sent in.
    #[serde(default = "default_header")]
    pub header: String,
    /// Header value with `{value}` for the credential. Default: `Bearer {value}` for
    /// `Authorization`, else `{value}`.
    #[serde(default)]
    pub format: Option<String>,
    /// Claim of the caller's verified token that gives `{username}`.
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// What an absent entry does (default: try the next source).
    #[serde(default)]
    pub on_missing: OnMissing,
    /// What a Vault failure (down, 403, no such field) does (default: fail the call).
    #[serde(default)]
    pub on_error: OnError,
}

impl Default for VaultSourceConfig {
    fn default() -> Self {
        Self {
            mount: default_mount(),
            path: default_path(),
            field: default_field(),
            header: default_header(),
            format: None,
            username_claim: default_username_claim(),
            on_missing: OnMissing::Next,
            on_error: OnError::Fail,
        }
    }
}

/// RFC 8693 token exchange of the caller's token for one scoped to this backend.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeSourceConfig {
    /// The `audience` requested; the exchanged token's `aud` must be exactly this.
    /// Placeholders `{host}`, `{server}`.
    #[serde(default = "default_audience")]
    pub audience: String,
    /// `scope` requested, when set.
    #[serde(default)]
    pub scope: Option<String>,
    /// `resource` requested (RFC 8707), when set.
    #[serde(default)]
    pub resource: Option<String>,
    /// `requested_token_type`, when set (e.g. `urn:ietf:params:oauth:token-type:jwt`).
    #[serde(default)]
    pub requested_token_type: Option<String>,
    /// Refuse a tool call unless the exchanged token's roles (`roles_claim`) name the tool
    /// (the seed's per-tool check, done again on the backend's own token).
    #[serde(default)]
    pub require_tool_role: bool,
    /// Dotted path of the roles list in the exchanged token; placeholders `{audience}`,
    /// `{host}`, `{server}` fill whole segments.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Header the exchanged token is sent in.
    #[serde(default = "default_header")]
    pub header: String,
    /// Header value with `{value}`. Default: `Bearer {value}` for `Authorization`.
    #[serde(default)]
    pub format: Option<String>,
    /// What an IdP failure or a rejected exchanged token does (default: fail the call).
    #[serde(default)]
    pub on_error: OnError,
}

impl Default for ExchangeSourceConfig {
    fn default() -> Self {
        Self {
            audience: default_audience(),
            scope: None,
            resource: None,
            requested_token_type: None,
            require_tool_role: false,
            roles_claim: default_roles_claim(),
            header: default_header(),
            format: None,
            on_error: OnError::Fail,
        }
    }
}

/// A gateway-owned secret for this server (e.g. an API key), the same for every caller.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticSourceConfig {
    /// The secret (`value`, `env` or `file`), read when the configuration is loaded.
    pub secret: SecretSource,
    /// Header the secret is sent in.
    #[serde(default = "default_header")]
    pub header: String,
    /// Header value with `{value}`. Default: `Bearer {value}` for `Authorization`.
    #[serde(default)]
    pub format: Option<String>,
}

/// A gateway-owned OAuth token (client_credentials grant with `credentials.client_credentials`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCredentialsSourceConfig {
    /// `scope` requested, when set.
    #[serde(default)]
    pub scope: Option<String>,
    /// `audience` requested, when set; placeholders `{host}`, `{server}`.
    #[serde(default)]
    pub audience: Option<String>,
    /// `resource` requested (RFC 8707), when set.
    #[serde(default)]
    pub resource: Option<String>,
    /// Header the token is sent in.
    #[serde(default = "default_header")]
    pub header: String,
    /// Header value with `{value}`. Default: `Bearer {value}` for `Authorization`.
    #[serde(default)]
    pub format: Option<String>,
    /// What a token-endpoint failure does (default: fail the call).
    #[serde(default)]
    pub on_error: OnError,
}

/// Forwards the caller's own token unchanged. Only for backends that must see it; logged as
/// a warning when the configuration is loaded. Never a default.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassthroughSourceConfig {}

fn default_mount() -> String {
    "secret".to_owned()
}

fn default_path() -> String {
    "{username}/{host}".to_owned()
}

fn default_field() -> String {
    "token".to_owned()
}

pub(crate) fn default_header() -> String {
    "Authorization".to_owned()
}

fn default_username_claim() -> String {
    "preferred_username".to_owned()
}

fn default_audience() -> String {
    "{host}".to_owned()
}

fn default_roles_claim() -> String {
    "resource_access.{audience}.roles".to_owned()
}
