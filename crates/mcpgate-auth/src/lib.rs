//! Identity and permissions for mcpgate.
//!
//! A request's path through this crate: [`Authenticator::verify_bearer`] turns the
//! `Authorization` header into a [`VerifiedIdentity`] (or an [`AuthError`] carrying status,
//! `WWW-Authenticate` error and needed scopes); [`Policy::caller`] turns that identity and
//! the request headers (a signed wristband, if configured) into a [`Caller`], computed once
//! per token; [`Caller::decide`] answers per item with an audit reason. [`WristbandIssuer`]
//! signs the gateway's own wristbands and publishes their key.
//!
//! Module map: `config` (the `auth:` YAML), `verify` (tokens, JWKS), `policy` (claims, CEL,
//! grants, callers), `wristband` (signed permission headers), `secret` (redaction).
//! Nothing here logs a token, a wristband or a key.

pub mod config;
mod error;
pub mod policy;
mod secret;
mod verify;
pub mod wristband;

#[cfg(test)]
mod tests;

pub use config::{
    Alg, AuthConfig, CelRule, CelSourceConfig, ClaimPath, ClaimsSourceConfig, Effect, IssuerConfig, JwksConfig, KeyConfig, OnMissing, PermissionsConfig,
    ServerAuthConfig, SourceConfig, WristbandFormat, WristbandIssueConfig, WristbandSourceConfig,
};
pub use error::AuthError;
pub use policy::{Caller, Decision, Grants, ItemRef, Kind, Policy, ServerAuthInfo};
pub use secret::{Secret, token_id};
pub use verify::{Authenticator, VerifiedIdentity, default_http_client};
pub use wristband::{WristbandError, WristbandGrants, WristbandIssuer, WristbandVerifier};
