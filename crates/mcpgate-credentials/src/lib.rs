//! Per-backend credentials for mcpgate: which credential a call to a backend carries, on
//! whose behalf, and where it comes from.
//!
//! A call's path through this crate: the gateway hands [`Resolver::resolve`] the server, the
//! verified [`Caller`] (from `mcpgate_auth::VerifiedIdentity`) and the tool. The server's
//! chain of sources is tried in order: `vault` (a per-user secret from Vault KV v2),
//! `token_exchange` (RFC 8693, the caller's token exchanged for one whose `aud` is the
//! backend), `static` (a gateway-owned secret), `client_credentials` (a gateway-owned OAuth
//! token) or `passthrough` (the caller's token, only when configured). The first credential
//! wins and comes back as [`Resolved`] headers; failures are a [`CredentialError`] naming the
//! server and the source. [`Resolver::discovery`] gives the separate, gateway-owned
//! credential for catalog discovery.
//!
//! Module map: `config` (the YAML), `resolver` (chains), `vault`, `exchange`,
//! `client_credentials`, `oauth` (token endpoint requests), `template` (paths and headers,
//! identity checks), `memo` (TTL cache with single flight), `resolved`, `error`, `stats` (counters and latency
//! histograms), `wire` (every request to Vault and the IdP: trace context, counting).
//! Nothing here logs a credential, a Vault token, a client secret or a caller's token.

mod caller;
mod client_credentials;
pub mod config;
mod error;
mod exchange;
mod memo;
mod oauth;
mod resolved;
mod resolver;
mod stats;
mod template;
mod vault;
mod wire;

pub use caller::Caller;
pub use config::{
    AppRoleAuth, ClientAuthMethod, ClientCredentialsConfig, ClientCredentialsSourceConfig, CredentialsConfig, DiscoverySourceConfig, ExchangeClientConfig,
    ExchangeSourceConfig, JwtAuth, KubernetesAuth, OnError, OnMissing, PassthroughSourceConfig, SecretSource, ServerCredentials, SourceConfig,
    StaticSourceConfig, VaultAuth, VaultConfig, VaultSourceConfig,
};
pub use error::{CredentialError, ErrorOrigin};
pub use resolved::Resolved;
pub use resolver::{Resolver, ServerInfo};
pub use stats::{Counters, Histogram, HistogramSnapshot, RequestResult, Stats, UpstreamCounters};
pub use wire::inject_trace_context;
