//! The `auth:` configuration as written in YAML (and embedded by the gateway), with its
//! defaults. Owns names, defaults and doc comments; checks live in `validate`. Never reads
//! the network; reads key files only when asked (`KeyConfig::load`).

mod duration;
pub(crate) mod keys;
mod permissions;
mod validate;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use keys::KeyConfig;
pub use permissions::{
    CelRule, CelSourceConfig, ClaimPath, ClaimsSourceConfig, Effect, OnMissing, PermissionsConfig, ServerAuthConfig, SourceConfig, WristbandFormat,
    WristbandIssueConfig, WristbandSourceConfig,
};
pub use validate::{check_url, is_loopback};

/// Who may call the gateway: trusted token issuers, the audience tokens must carry, and how
/// permissions are computed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Require a bearer token on every request (the default). `false` is for a gateway behind
    /// an external authorizer that only trusts its signed wristband: no token is read, and
    /// the gateway must then listen on loopback or set `allow_unauthenticated`.
    #[serde(default = "yes")]
    pub require_token: bool,
    /// Trusted token issuers. A token whose `iss` is not exactly one of these is refused.
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
    /// Audiences this gateway answers to (RFC 8707 resource indicators, e.g. the gateway's
    /// public MCP URL). A token must name at least one in `aud`. Required (fail closed).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[serde(default = "default_leeway", with = "duration")]
    pub leeway: Duration,
    /// Signature algorithms accepted. HMAC and `none` are never accepted.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<Alg>,
    /// Scopes every token must carry (in `scope` or `scp`); missing ones give 403
    /// `insufficient_scope` naming them.
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// How a caller's permitted tools, prompts and resources are computed.
    #[serde(default)]
    pub permissions: PermissionsConfig,
    /// When set, the gateway can sign its own wristband (ES256) and publish the public key.
    #[serde(default)]
    pub wristband_issue: Option<WristbandIssueConfig>,
    /// Fetching and caching of issuers' keys.
    #[serde(default)]
    pub jwks: JwksConfig,
    /// Verified tokens remembered (by SHA-256 of the token) until they expire; 0 disables.
    #[serde(default = "default_token_cache_size")]
    pub token_cache_size: u64,
}

/// One trusted issuer and where its keys come from: `static_keys` if given, else
/// `jwks_uri` if given, else OIDC discovery at `<issuer>/.well-known/openid-configuration`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The exact `iss` value, e.g. `https://keycloak.example/realms/mcp`.
    pub issuer: String,
    /// Find `jwks_uri` through OIDC discovery (used only without `jwks_uri`/`static_keys`).
    #[serde(default = "yes")]
    pub discovery: bool,
    /// The issuer's JWKS URL, skipping discovery.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Keys given inline or as files instead of fetched; never refreshed.
    #[serde(default)]
    pub static_keys: Vec<KeyConfig>,
    /// Replaces the top-level `audiences` for tokens of this issuer.
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
    /// Claim holding the user name (used e.g. for per-user credential paths).
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// Allow plain `http://` discovery/JWKS URLs on non-loopback hosts (in-cluster IdPs).
    /// Logged as a warning: keys fetched over plain HTTP can be forged on the path.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// TLS towards this issuer's discovery and JWKS URLs: a CA bundle trusted instead of the
    /// system's roots (an in-house IdP), and a client certificate.
    #[serde(default)]
    pub tls: Option<mcpgate_tls::ClientTls>,
}

/// Key fetching: refresh on an unknown `kid` at most once per `refresh_min_interval` per
/// issuer; refetch when the cached set is older than `max_age` (keeping the old set if that
/// fails).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwksConfig {
    /// Least time between two fetches of one issuer's keys.
    #[serde(with = "duration")]
    pub refresh_min_interval: Duration,
    /// Age after which cached keys are fetched again on next use.
    #[serde(with = "duration")]
    pub max_age: Duration,
    /// Time limit for one discovery or JWKS request.
    #[serde(with = "duration")]
    pub fetch_timeout: Duration,
}

impl Default for JwksConfig {
    fn default() -> Self {
        Self { refresh_min_interval: Duration::from_secs(10), max_age: Duration::from_secs(15 * 60), fetch_timeout: Duration::from_secs(5) }
    }
}

/// An asymmetric JWS algorithm. HMAC (`HS*`) and `none` are deliberately absent.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Alg {
    pub fn to_jwt(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            Alg::RS256 => A::RS256,
            Alg::RS384 => A::RS384,
            Alg::RS512 => A::RS512,
            Alg::PS256 => A::PS256,
            Alg::PS384 => A::PS384,
            Alg::PS512 => A::PS512,
            Alg::ES256 => A::ES256,
            Alg::ES384 => A::ES384,
            Alg::EdDSA => A::EdDSA,
        }
    }

    /// Parses a JOSE `alg` name; `None` for anything not in this enum (HS*, `none`, …).
    pub fn from_name(name: &str) -> Option<Alg> {
        Some(match name {
            "RS256" => Alg::RS256,
            "RS384" => Alg::RS384,
            "RS512" => Alg::RS512,
            "PS256" => Alg::PS256,
            "PS384" => Alg::PS384,
            "PS512" => Alg::PS512,
            "ES256" => Alg::ES256,
            "ES384" => Alg::ES384,
            "EdDSA" => Alg::EdDSA,
            _ => return None,
        })
    }
}

impl IssuerConfig {
    /// Audiences accepted for this issuer's tokens.
    pub fn effective_audiences<'a>(&'a self, global: &'a [String]) -> &'a [String] {
        self.audiences.as_deref().unwrap_or(global)
    }
}

fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

fn default_algorithms() -> Vec<Alg> {
    vec![Alg::RS256, Alg::PS256, Alg::ES256, Alg::EdDSA]
}

fn default_token_cache_size() -> u64 {
    10_000
}

fn default_username_claim() -> String {
    "preferred_username".to_owned()
}

fn yes() -> bool {
    true
}
