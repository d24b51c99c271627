//! The credential configuration as written in YAML: the gateway's top-level `credentials:`
//! section (how to reach Vault, the IdP's token endpoint, the gateway's own OAuth client) and
//! the per-server chains (`sources`). Owns names, defaults and doc comments; checks live in
//! `validate`. Never touches the network; reads secret files and variables only when asked
//! ([`SecretSource::load`]).

pub(crate) mod duration;
mod secret_source;
mod sources;
mod validate;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub(crate) use mcpgate_auth::config::{check_url, is_loopback};
pub use secret_source::SecretSource;
pub use sources::{
    ClientCredentialsSourceConfig, DiscoverySourceConfig, ExchangeSourceConfig, OnError, OnMissing, PassthroughSourceConfig, ServerCredentials, SourceConfig,
    StaticSourceConfig, VaultSourceConfig,
};

/// The gateway's top-level `credentials:` section. Each part is needed only when some
/// server's chain uses it (a `vault` source needs `vault`, and so on).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsConfig {
    /// Where per-user secrets are read (Vault or OpenBao, KV v2) and how the gateway logs in.
    #[serde(default)]
    pub vault: Option<VaultConfig>,
    /// The gateway's client at the IdP for RFC 8693 token exchange.
    #[serde(default)]
    pub token_exchange: Option<ExchangeClientConfig>,
    /// The gateway's own OAuth client for `client_credentials` sources (tokens the gateway
    /// owns, not per user), e.g. for catalog discovery.
    #[serde(default)]
    pub client_credentials: Option<ClientCredentialsConfig>,
}

/// How the gateway reaches Vault/OpenBao and authenticates to it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// Base URL, e.g. `https://vault.example:8200`. Plain `http` only on a loopback host or
    /// with `allow_insecure_http`.
    pub address: String,
    /// Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// How the gateway gets its own Vault token. The token is renewed (or the gateway logs in
    /// again) before it expires, and is never logged.
    pub auth: VaultAuth,
    /// How long a read secret is reused; a secret's own lease, when shorter, wins. `0s`
    /// disables the cache (concurrent reads of one path are still coalesced).
    #[serde(default = "default_cache_ttl", with = "duration")]
    pub cache_ttl: Duration,
    /// How long "no entry at this path" (HTTP 404) is remembered.
    #[serde(default = "default_negative_cache_ttl", with = "duration")]
    pub negative_cache_ttl: Duration,
    /// Time limit for one request to Vault.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// Most secrets (and misses) kept in memory.
    #[serde(default = "default_cache_size")]
    pub cache_size: u64,
    /// Allow a plain `http://` address on a non-loopback host. Logged as a warning: tokens
    /// and secrets would cross the network in clear.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// TLS towards Vault: a CA bundle trusted instead of the system's roots (e.g. Vault's own
    /// CA), and a client certificate (Vault's TLS certificate auth, or an mTLS proxy).
    #[serde(default)]
    pub tls: Option<mcpgate_tls::ClientTls>,
}

/// The gateway's Vault login, written as a one-key mapping: `token: {...}`,
/// `approle: {...}`, `jwt: {...}` or `kubernetes: {...}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "VaultAuthRepr")]
pub enum VaultAuth {
    /// A Vault token given directly (`value`, `env` or `file`); renewed when renewable.
    Token(SecretSource),
    /// AppRole login (`auth/<mount>/login` with `role_id` and `secret_id`).
    AppRole(AppRoleAuth),
    /// JWT/OIDC login with a JWT the gateway holds (`auth/<mount>/login`, `role`, `jwt`).
    Jwt(JwtAuth),
    /// Kubernetes login with the pod's service-account token.
    Kubernetes(KubernetesAuth),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VaultAuthRepr {
    #[serde(default)]
    token: Option<SecretSource>,
    #[serde(default)]
    approle: Option<AppRoleAuth>,
    #[serde(default)]
    jwt: Option<JwtAuth>,
    #[serde(default)]
    kubernetes: Option<KubernetesAuth>,
}

impl TryFrom<VaultAuthRepr> for VaultAuth {
    type Error = &'static str;

    fn try_from(r: VaultAuthRepr) -> Result<Self, Self::Error> {
        match (r.token, r.approle, r.jwt, r.kubernetes) {
            (Some(t), None, None, None) => Ok(VaultAuth::Token(t)),
            (None, Some(a), None, None) => Ok(VaultAuth::AppRole(a)),
            (None, None, Some(j), None) => Ok(VaultAuth::Jwt(j)),
            (None, None, None, Some(k)) => Ok(VaultAuth::Kubernetes(k)),
            _ => Err("vault auth is one of `token: {...}`, `approle: {...}`, `jwt: {...}` or `kubernetes: {...}`"),
        }
    }
}

/// AppRole login.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRoleAuth {
    /// The role id (not secret on its own).
    pub role_id: String,
    /// The secret id (`value`, `env` or `file`; a file is read again at each login).
    pub secret_id: SecretSource,
    /// Where the AppRole method is mounted.
    #[serde(default = "default_approle_mount")]
    pub mount: String,
}

/// JWT login.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtAuth {
    /// The Vault role to log in as.
    pub role: String,
    /// The JWT (`value`, `env` or `file`; a file is read again at each login, so rotated
    /// tokens are picked up).
    pub jwt: SecretSource,
    /// Where the JWT method is mounted.
    #[serde(default = "default_jwt_mount")]
    pub mount: String,
}

/// Kubernetes login.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesAuth {
    /// The Vault role to log in as.
    pub role: String,
    /// The service-account token file, read again at each login.
    #[serde(default = "default_sa_token_file")]
    pub jwt_file: PathBuf,
    /// Where the Kubernetes method is mounted.
    #[serde(default = "default_kubernetes_mount")]
    pub mount: String,
}

/// How the gateway authenticates itself at a token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum ClientAuthMethod {
    /// HTTP Basic with the form-encoded client id and secret (the default).
    #[default]
    #[serde(rename = "client_secret_basic", alias = "basic")]
    Basic,
    /// `client_id` and `client_secret` in the form body.
    #[serde(rename = "client_secret_post", alias = "post")]
    Post,
}

/// The gateway's client at the IdP for RFC 8693 token exchange.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeClientConfig {
    /// The IdP's token endpoint. Default: found by OIDC discovery of the caller's token
    /// issuer (`<iss>/.well-known/openid-configuration`, whose `issuer` must match).
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// The gateway's client id at the IdP (Keycloak: a confidential client allowed to exchange).
    pub client_id: String,
    /// The gateway's client secret (`value`, `env` or `file`).
    pub client_secret: SecretSource,
    /// `client_secret_basic` (default) or `client_secret_post`.
    #[serde(default)]
    pub auth_method: ClientAuthMethod,
    /// The `iss` exchanged tokens must carry. Default: the caller's issuer.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Where the exchanged tokens' signing keys are. Default: OIDC discovery of their issuer.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Least time between two fetches of the IdP's keys when a token names an unknown key
    /// (after a key rotation).
    #[serde(default = "default_jwks_refresh", with = "duration")]
    pub jwks_refresh_min_interval: Duration,
    /// Time limit for one request to the IdP.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// An exchanged token is replaced this long before it expires (at most half its lifetime).
    #[serde(default = "default_refresh_before", with = "duration")]
    pub refresh_before: Duration,
    /// Clock skew tolerated on the exchanged tokens' `exp`/`nbf`.
    #[serde(default = "default_leeway", with = "duration")]
    pub leeway: Duration,
    /// Most exchanged tokens kept in memory.
    #[serde(default = "default_cache_size")]
    pub cache_size: u64,
    /// Allow plain `http://` IdP URLs on non-loopback hosts (logged as a warning).
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// TLS towards the IdP (token endpoint, discovery, keys): a CA bundle and a client
    /// certificate.
    #[serde(default)]
    pub tls: Option<mcpgate_tls::ClientTls>,
}

/// The gateway's own OAuth client (client_credentials grant).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCredentialsConfig {
    /// The token endpoint.
    pub token_endpoint: String,
    /// The gateway's client id.
    pub client_id: String,
    /// The gateway's client secret (`value`, `env` or `file`).
    pub client_secret: SecretSource,
    /// `client_secret_basic` (default) or `client_secret_post`.
    #[serde(default)]
    pub auth_method: ClientAuthMethod,
    /// Time limit for one request to the token endpoint.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// A token is replaced this long before it expires (at most half its lifetime).
    #[serde(default = "default_refresh_before", with = "duration")]
    pub refresh_before: Duration,
    /// Allow a plain `http://` token endpoint on a non-loopback host (logged as a warning).
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// TLS towards the token endpoint: a CA bundle and a client certificate.
    #[serde(default)]
    pub tls: Option<mcpgate_tls::ClientTls>,
}

fn default_cache_ttl() -> Duration {
    Duration::from_secs(30)
}

fn default_negative_cache_ttl() -> Duration {
    Duration::from_secs(5)
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_jwks_refresh() -> Duration {
    Duration::from_secs(10)
}

fn default_refresh_before() -> Duration {
    Duration::from_secs(30)
}

fn default_leeway() -> Duration {
    Duration::from_secs(5)
}

fn default_cache_size() -> u64 {
    100_000
}

fn default_approle_mount() -> String {
    "approle".to_owned()
}

fn default_jwt_mount() -> String {
    "jwt".to_owned()
}

fn default_kubernetes_mount() -> String {
    "kubernetes".to_owned()
}

fn default_sa_token_file() -> PathBuf {
    PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount/token")
}
