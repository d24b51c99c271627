//! The resolver: per call, walks the server's chain of sources in order and returns the
//! first credential; per server, the discovery credential. Owns the chain semantics (a
//! missing entry goes by `on_missing`, a failure by `on_error`; a refused identity or tool
//! always ends the chain) and the counters. Never logs a credential, and never answers with
//! "no credential" when a source failed and the configuration says to fail.

mod build;

use std::sync::Arc;

pub use build::ServerInfo;

use crate::caller::Caller;
use crate::client_credentials::ClientCredentialsSource;
use crate::config::{CredentialsConfig, OnError, OnMissing};
use crate::error::CredentialError;
use crate::exchange::ExchangeSource;
use crate::resolved::{Fingerprinter, Resolved};
use crate::stats::{Counters, Stats, bump};
use crate::template::HeaderTemplate;
use crate::vault::VaultSource;

/// The server a credential is for, as sources see it.
pub(crate) struct Target {
    pub name: String,
    /// The host of the server's URL (lower case), when it has one.
    pub host: Option<String>,
}

/// One call's inputs, as sources see them.
pub(crate) struct Call<'a> {
    pub caller: &'a Caller<'a>,
    pub tool: Option<&'a str>,
    pub fingerprints: &'a Fingerprinter,
}

pub(crate) enum Source {
    Vault(VaultSource),
    Exchange(ExchangeSource),
    /// The credential is fixed at load.
    Static(Resolved),
    ClientCredentials(ClientCredentialsSource),
    Passthrough(HeaderTemplate),
}

impl Source {
    fn kind(&self) -> &'static str {
        match self {
            Source::Vault(_) => "vault",
            Source::Exchange(_) => "token_exchange",
            Source::Static(_) => "static",
            Source::ClientCredentials(_) => "client_credentials",
            Source::Passthrough(_) => "passthrough",
        }
    }

    fn on_missing(&self) -> OnMissing {
        match self {
            Source::Vault(v) => v.on_missing,
            _ => OnMissing::Fail,
        }
    }

    fn on_error(&self) -> OnError {
        match self {
            Source::Vault(v) => v.on_error,
            Source::Exchange(x) => x.on_error,
            Source::ClientCredentials(c) => c.on_error,
            Source::Static(_) | Source::Passthrough(_) => OnError::Fail,
        }
    }

    /// `Ok(None)`: this source has nothing for the caller.
    async fn resolve(&self, call: &Call<'_>, target: &Target) -> Result<Option<Resolved>, CredentialError> {
        match self {
            Source::Vault(v) => v.resolve(call, target).await,
            Source::Exchange(x) => x.resolve(call, target).await.map(Some),
            Source::Static(resolved) => Ok(Some(resolved.clone())),
            Source::ClientCredentials(c) => c.resolve(call.fingerprints, target).await.map(Some),
            Source::Passthrough(header) => {
                let resolved = call.fingerprints.resolved("passthrough", header, call.caller.token.expose(), call.caller.expires_at());
                resolved.map(Some).ok_or_else(|| CredentialError::BadHeaderValue { server: target.name.clone(), via: "passthrough" })
            }
        }
    }
}

struct Chain {
    target: Target,
    sources: Vec<Source>,
    discovery: Option<Source>,
}

/// Produces backend credentials. Built once per configuration; cheap to clone.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

struct Inner {
    /// Keyed by configured server names, so a fast hash.
    chains: foldhash::HashMap<String, Chain>,
    counters: Arc<Counters>,
    fingerprints: Fingerprinter,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut chains: Vec<(&str, Vec<&str>)> =
            self.inner.chains.iter().map(|(name, c)| (name.as_str(), c.sources.iter().map(Source::kind).collect())).collect();
        chains.sort();
        f.debug_struct("Resolver").field("chains", &chains).finish_non_exhaustive()
    }
}

impl Resolver {
    /// Builds the chains of `servers` (pass every configured server, in config order: errors
    /// name them by index as `servers[i].credentials[j]: …`). Reads the configured secrets
    /// now; contacts nothing (logins and discovery happen on first use).
    ///
    /// `http` should not follow redirects (Vault and IdP requests carry tokens; reqwest drops
    /// only `Authorization` on cross-host redirects) nor take proxies from the environment:
    /// `mcpgate_auth::default_http_client()` is such a client.
    pub fn new(cfg: &CredentialsConfig, servers: &[ServerInfo], http: reqwest::Client) -> Result<Self, Vec<String>> {
        Self::with_counters(cfg, servers, http, Arc::new(Counters::default()))
    }

    /// [`Resolver::new`], counting in `counters` (which may outlive this resolver: the
    /// gateway keeps one set across config reloads so its metrics never go backwards).
    pub fn with_counters(cfg: &CredentialsConfig, servers: &[ServerInfo], http: reqwest::Client, counters: Arc<Counters>) -> Result<Self, Vec<String>> {
        let (chains, counters, fingerprints) = build::build(cfg, servers, &http, counters)?;
        Ok(Self { inner: Arc::new(Inner { chains, counters, fingerprints }) })
    }

    /// Whether calls to `server` carry a per-call credential.
    pub fn has_chain(&self, server: &str) -> bool {
        self.inner.chains.get(server).is_some_and(|c| !c.sources.is_empty())
    }

    /// The credential for `server` on behalf of `caller` calling `tool` (`None` for
    /// non-tool calls: prompts, resources).
    pub async fn resolve(&self, server: &str, caller: &Caller<'_>, tool: Option<&str>) -> Result<Resolved, CredentialError> {
        let chain = self.inner.chains.get(server).ok_or_else(|| CredentialError::UnknownServer { server: server.to_owned() })?;
        let call = Call { caller, tool, fingerprints: &self.inner.fingerprints };
        for source in &chain.sources {
            match source.resolve(&call, &chain.target).await {
                Ok(Some(resolved)) => return Ok(resolved),
                Ok(None) if source.on_missing() == OnMissing::Next => {
                    tracing::debug!(server, source = source.kind(), subject = caller.subject, "no credential here; trying the next source");
                }
                Ok(None) => return Err(CredentialError::Missing { server: server.to_owned(), via: source.kind() }),
                Err(e) => {
                    if e.reason_code() == "invalid_identity" {
                        bump(&self.inner.counters.identities_rejected);
                    }
                    if e.is_final() || source.on_error() == OnError::Fail {
                        tracing::info!(server, source = source.kind(), subject = caller.subject, reason = e.reason_code(), error = %e, "no credential");
                        return Err(e);
                    }
                    bump(&self.inner.counters.fall_throughs);
                    tracing::warn!(server, source = source.kind(), reason = e.reason_code(), error = %e, "credential source failed; trying the next (on_error: next)");
                }
            }
        }
        Err(CredentialError::NoCredential { server: server.to_owned(), tried: chain.sources.iter().map(Source::kind).collect() })
    }

    /// The discovery credential of `server`, if one is configured.
    pub async fn discovery(&self, server: &str) -> Result<Option<Resolved>, CredentialError> {
        let chain = self.inner.chains.get(server).ok_or_else(|| CredentialError::UnknownServer { server: server.to_owned() })?;
        match &chain.discovery {
            None => Ok(None),
            Some(Source::Static(resolved)) => Ok(Some(resolved.clone())),
            Some(Source::ClientCredentials(c)) => c.resolve(&self.inner.fingerprints, &chain.target).await.map(Some),
            Some(_) => unreachable!("discovery sources are static or client_credentials (see build)"),
        }
    }

    /// Counters since the resolver was built.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }
}
