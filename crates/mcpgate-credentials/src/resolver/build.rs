//! Building the resolver from configuration: the shared clients (Vault, token exchange,
//! client credentials) for the sections some server uses, and each server's chain, with
//! every problem reported as `servers[i].credentials[j]: …` or `credentials.…: …`.
//! Reads configured secrets; never contacts Vault or an IdP (that happens on first use).

use std::sync::Arc;

use super::{Chain, Source, Target};
use crate::client_credentials::{ClientCredentialsSource, GatewayTokens};
use crate::config::{CredentialsConfig, DiscoverySourceConfig, ServerCredentials, SourceConfig, StaticSourceConfig};
use crate::exchange::{ExchangeSource, Exchanger};
use crate::resolved::{Fingerprinter, Resolved};
use crate::stats::Counters;
use crate::template::HeaderTemplate;
use crate::vault::{VaultClient, VaultSource};

/// A server as the resolver needs it.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// The server's name in the gateway's configuration.
    pub name: String,
    /// The host of its URL (`{host}` in templates), when it has one.
    pub host: Option<String>,
    pub credentials: ServerCredentials,
}

impl ServerInfo {
    /// `url`: the backend's URL (stdio servers have none).
    pub fn new(name: impl Into<String>, url: Option<&str>, credentials: ServerCredentials) -> Self {
        let host = url.and_then(|u| url::Url::parse(u).ok()).and_then(|u| u.host_str().map(str::to_ascii_lowercase));
        Self { name: name.into(), host, credentials }
    }
}

struct Clients {
    vault: Option<Arc<VaultClient>>,
    exchange: Option<Arc<Exchanger>>,
    gateway_tokens: Option<Arc<GatewayTokens>>,
}

type Built = (foldhash::HashMap<String, Chain>, Arc<Counters>, Fingerprinter);

pub(super) fn build(cfg: &CredentialsConfig, servers: &[ServerInfo], http: &reqwest::Client, counters: Arc<Counters>) -> Result<Built, Vec<String>> {
    cfg.validate()?;
    let fingerprints = Fingerprinter::new().map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let clients = clients(cfg, servers, http, &counters, &mut errors);
    let mut chains = foldhash::HashMap::default();
    for (i, server) in servers.iter().enumerate() {
        let target = Target { name: server.name.clone(), host: server.host.clone() };
        let mut sources = Vec::new();
        for (j, source) in server.credentials.credentials.iter().enumerate() {
            let at = format!("servers[{i}].credentials[{j}]");
            if let Some(last) = sources.last()
                && matches!(last, Source::Static(_) | Source::Passthrough(_))
            {
                errors.push(format!("{at}: never reached: the {} source before it always yields a credential", kind(last)));
            }
            match build_source(source, &clients, &target, &fingerprints) {
                Ok(built) => sources.push(built),
                Err(e) => errors.push(format!("{at}: {e}")),
            }
        }
        let discovery = match &server.credentials.discovery {
            None => None,
            Some(d) => match build_discovery(d, &clients, &target, &fingerprints) {
                Ok(built) => Some(built),
                Err(e) => {
                    errors.push(format!("servers[{i}].discovery_credentials: {e}"));
                    None
                }
            },
        };
        if chains.insert(server.name.clone(), Chain { target, sources, discovery }).is_some() {
            errors.push(format!("servers[{i}].name: {:?} is listed twice", server.name));
        }
    }
    if errors.is_empty() { Ok((chains, counters, fingerprints)) } else { Err(errors) }
}

/// The shared clients for the sections that some server uses (an unused section's secrets
/// are not read).
fn clients(cfg: &CredentialsConfig, servers: &[ServerInfo], http: &reqwest::Client, counters: &Arc<Counters>, errors: &mut Vec<String>) -> Clients {
    let used = |kind: &str| {
        servers.iter().any(|s| {
            s.credentials.credentials.iter().any(|c| c.kind() == kind)
                || (kind == "client_credentials" && matches!(s.credentials.discovery, Some(DiscoverySourceConfig::ClientCredentials(_))))
        })
    };
    let vault = match cfg.vault.as_ref().filter(|_| used("vault")) {
        Some(v) => with_tls("vault", v.tls.as_ref(), http, errors).and_then(|h| keep(VaultClient::new(v, h, counters.clone()), errors)),
        None => None,
    };
    let exchange = match cfg.token_exchange.as_ref().filter(|_| used("token_exchange")) {
        Some(x) => with_tls("token_exchange", x.tls.as_ref(), http, errors).and_then(|h| keep(Exchanger::new(x, h, counters.clone()), errors)),
        None => None,
    };
    let gateway_tokens = match cfg.client_credentials.as_ref().filter(|_| used("client_credentials")) {
        Some(c) => with_tls("client_credentials", c.tls.as_ref(), http, errors).and_then(|h| keep(GatewayTokens::new(c, h, counters.clone()), errors)),
        None => None,
    };
    Clients { vault, exchange, gateway_tokens }
}

/// The client for one section: the shared one, or one with the section's own CA bundle and
/// client certificate (`credentials.<section>.tls`). A broken TLS file is an error naming its
/// key, never a silent fall back to the system's roots.
fn with_tls(section: &str, tls: Option<&mcpgate_tls::ClientTls>, http: &reqwest::Client, errors: &mut Vec<String>) -> Option<reqwest::Client> {
    let Some(tls) = tls else { return Some(http.clone()) };
    if let Err(problems) = tls.check() {
        errors.extend(problems.into_iter().map(|p| format!("credentials.{section}.tls.{}: {} (fix: {})", p.key, p.problem, p.fix)));
        return None;
    }
    mcpgate_tls::http_client(Some(tls), Default::default()).map_err(|e| errors.push(format!("credentials.{section}.tls: {e}"))).ok()
}

fn keep<T>(built: Result<T, String>, errors: &mut Vec<String>) -> Option<Arc<T>> {
    built.map_err(|e| errors.push(e)).ok().map(Arc::new)
}

fn build_source(source: &SourceConfig, clients: &Clients, target: &Target, fingerprints: &Fingerprinter) -> Result<Source, String> {
    let missing = |section: &str| format!("a {} source needs the top-level credentials.{section} section", source.kind());
    Ok(match source {
        SourceConfig::Vault(c) => {
            let vault = clients.vault.clone().ok_or_else(|| missing("vault"))?;
            Source::Vault(VaultSource::build(c, vault, target)?)
        }
        SourceConfig::TokenExchange(c) => {
            let exchange = clients.exchange.clone().ok_or_else(|| missing("token_exchange"))?;
            Source::Exchange(ExchangeSource::build(c, exchange, target)?)
        }
        SourceConfig::Static(c) => Source::Static(static_credential(c, fingerprints)?),
        SourceConfig::ClientCredentials(c) => {
            let tokens = clients.gateway_tokens.clone().ok_or_else(|| missing("client_credentials"))?;
            Source::ClientCredentials(ClientCredentialsSource::build(c, tokens, target)?)
        }
        SourceConfig::Passthrough(_) => {
            tracing::warn!(server = %target.name, "passthrough: the caller's own token is forwarded to this backend");
            Source::Passthrough(HeaderTemplate::parse("Authorization", None)?)
        }
    })
}

fn build_discovery(d: &DiscoverySourceConfig, clients: &Clients, target: &Target, fingerprints: &Fingerprinter) -> Result<Source, String> {
    match d {
        DiscoverySourceConfig::Static(c) => Ok(Source::Static(static_credential(c, fingerprints)?)),
        DiscoverySourceConfig::ClientCredentials(c) => {
            if c.on_error != crate::config::OnError::Fail {
                return Err("on_error does not apply to discovery credentials (discovery fails without one)".to_owned());
            }
            let tokens = clients.gateway_tokens.clone().ok_or("a client_credentials source needs the top-level credentials.client_credentials section")?;
            Ok(Source::ClientCredentials(ClientCredentialsSource::build(c, tokens, target)?))
        }
    }
}

fn static_credential(c: &StaticSourceConfig, fingerprints: &Fingerprinter) -> Result<Resolved, String> {
    let header = HeaderTemplate::parse(&c.header, c.format.as_deref())?;
    let secret = c.secret.load().map_err(|e| format!("secret: {e}"))?;
    fingerprints
        .resolved("static", &header, secret.expose(), None)
        .ok_or_else(|| format!("secret: {} holds characters a header cannot carry", c.secret.describe()))
}

fn kind(source: &Source) -> &'static str {
    source.kind()
}
