//! RFC 8693 token exchange: the caller's verified token is exchanged at the IdP's token
//! endpoint (configured, or found by OIDC discovery of the caller's issuer) for a token
//! whose `aud` is exactly the backend's audience. Validated tokens are cached per (issuer,
//! subject, audience, scope, resource, token type) until shortly before they expire;
//! concurrent first calls share one IdP request. Never sends the caller's token anywhere but
//! the token endpoint, never uses or caches a token that failed validation, never logs one.

mod check;
mod source;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

pub(crate) use source::ExchangeSource;

use crate::caller::Caller;
use crate::config::{ExchangeClientConfig, check_url};
use crate::memo::Memo;
use crate::oauth::TokenClient;
use crate::resolved::CachedSecret;
use crate::stats::{Counters, bump};
use crate::wire::{describe, read_json};
use check::Checker;

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// How long a discovered token endpoint is reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// What one source asks for.
pub(crate) struct Request<'a> {
    pub audience: &'a str,
    pub scope: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub requested_token_type: Option<&'a str>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    issuer: String,
    subject: String,
    audience: String,
    scope: Option<String>,
    resource: Option<String>,
    requested_token_type: Option<String>,
}

/// A validated exchanged token.
pub(crate) struct Exchanged {
    pub token: CachedSecret,
    pub expires_at: SystemTime,
    pub claims: Arc<Map<String, Value>>,
}

/// Why an exchange produced no usable token.
#[derive(Clone)]
pub(crate) enum Failure {
    /// The IdP could not be reached, refused, or answered without a token.
    Exchange(String),
    /// The IdP answered with a token that failed validation.
    Rejected(String),
}

pub(crate) struct Exchanger {
    client: TokenClient,
    http: reqwest::Client,
    token_endpoint: Option<url::Url>,
    timeout: Duration,
    allow_insecure_http: bool,
    refresh_before: Duration,
    endpoints: Memo<String, url::Url, String>,
    tokens: Memo<Key, Arc<Exchanged>, Failure>,
    checker: Checker,
    counters: Arc<Counters>,
}

impl Exchanger {
    pub fn new(cfg: &ExchangeClientConfig, http: reqwest::Client, counters: Arc<Counters>) -> Result<Self, String> {
        let at = "credentials.token_exchange";
        let secret = cfg.client_secret.load().map_err(|e| format!("{at}.client_secret: {e}"))?;
        let token_endpoint = match &cfg.token_endpoint {
            Some(url) => Some(check_url(url, cfg.allow_insecure_http).map_err(|e| format!("{at}.token_endpoint: {e}"))?),
            None => None,
        };
        if cfg.allow_insecure_http {
            tracing::warn!("token exchange may use plain http IdP URLs (allow_insecure_http)");
        }
        Ok(Self {
            client: TokenClient::new(http.clone(), cfg.client_id.clone(), secret, cfg.auth_method, cfg.timeout).counted(counters.clone()),
            checker: Checker::new(cfg, http.clone()),
            http,
            token_endpoint,
            timeout: cfg.timeout,
            allow_insecure_http: cfg.allow_insecure_http,
            refresh_before: cfg.refresh_before,
            endpoints: Memo::new(64),
            tokens: Memo::new(cfg.cache_size),
            counters,
        })
    }

    /// Registers an audience some server exchanges for (exchanged tokens must name one).
    pub fn add_audience(&self, audience: &str) {
        self.checker.add_audience(audience);
    }

    /// A validated token for `caller` and `req`, cached or freshly exchanged.
    pub async fn token(&self, caller: &Caller<'_>, req: &Request<'_>) -> Result<Arc<Exchanged>, Failure> {
        let key = Key {
            issuer: caller.issuer.to_owned(),
            subject: caller.subject.to_owned(),
            audience: req.audience.to_owned(),
            scope: req.scope.map(str::to_owned),
            resource: req.resource.map(str::to_owned),
            requested_token_type: req.requested_token_type.map(str::to_owned),
        };
        let (result, answer) = self.tokens.get_or_fetch(&key, || self.exchange(caller, req)).await;
        crate::memo::count_shared(&self.counters, answer, &self.counters.exchange_cache_hits);
        result
    }

    async fn exchange(&self, caller: &Caller<'_>, req: &Request<'_>) -> Result<(Arc<Exchanged>, Duration), Failure> {
        let endpoint = self.endpoint_for(caller.issuer).await.map_err(Failure::Exchange)?;
        let mut params =
            vec![("grant_type", GRANT_TYPE), ("subject_token", caller.token.expose()), ("subject_token_type", ACCESS_TOKEN_TYPE), ("audience", req.audience)];
        for (name, value) in [("scope", req.scope), ("resource", req.resource), ("requested_token_type", req.requested_token_type)] {
            if let Some(value) = value {
                params.push((name, value));
            }
        }
        bump(&self.counters.exchanges);
        let issued = self.client.request(&endpoint, &params).await.map_err(Failure::Exchange)?;
        let identity = self.checker.check(&issued.token, caller, req.audience).await.map_err(Failure::Rejected)?;
        let now = SystemTime::now();
        let mut expires_at = UNIX_EPOCH + Duration::from_secs(identity.expires_at);
        if let Some(expires_in) = issued.expires_in {
            expires_at = expires_at.min(now + expires_in);
        }
        let lifetime = expires_at.duration_since(now).unwrap_or_default();
        let keep = lifetime.saturating_sub(self.refresh_before.min(lifetime / 2));
        tracing::debug!(subject = %caller.subject, audience = %req.audience, keep_secs = keep.as_secs(), "exchanged the caller's token");
        Ok((Arc::new(Exchanged { token: CachedSecret::new(issued.token), expires_at, claims: identity.claims.clone() }), keep))
    }

    async fn endpoint_for(&self, issuer: &str) -> Result<url::Url, String> {
        if let Some(endpoint) = &self.token_endpoint {
            return Ok(endpoint.clone());
        }
        let key = issuer.to_owned();
        self.endpoints.get_or_fetch(&key, || self.discover(issuer)).await.0
    }

    /// OIDC discovery of the caller's issuer: its document's `issuer` must match exactly.
    async fn discover(&self, issuer: &str) -> Result<(url::Url, Duration), String> {
        check_url(issuer, self.allow_insecure_http).map_err(|e| format!("issuer {e}"))?;
        let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let req = self.http.get(&url).header(http::header::ACCEPT, "application/json").timeout(self.timeout);
        let resp = crate::wire::send(req, &self.counters.idp).await.map_err(|e| format!("discovery at {url}: {}", describe(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("discovery at {url}: HTTP {}", status.as_u16()));
        }
        let doc = read_json(resp).await.map_err(|e| format!("discovery at {url}: {e}"))?;
        if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
            return Err(format!("discovery at {url}: the document's issuer is not {issuer:?}"));
        }
        let endpoint = doc.get("token_endpoint").and_then(Value::as_str);
        let endpoint = endpoint.ok_or_else(|| format!("discovery at {url}: no token_endpoint"))?;
        let endpoint = check_url(endpoint, self.allow_insecure_http).map_err(|e| format!("discovery at {url}: token_endpoint {e}"))?;
        Ok((endpoint, DISCOVERY_TTL))
    }
}
