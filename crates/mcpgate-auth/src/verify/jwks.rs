//! An issuer's remote keys: OIDC discovery, JWKS fetch, the cached key set, refresh on an
//! unknown `kid` or a signature that fails on a known one (a key replaced under the same
//! `kid`) — coalesced: concurrent misses share one request; rate-limited per issuer — and
//! refresh of a set older than `max_age`. Counts the refreshes that retired a key (the
//! `epoch`) so verifications remembered under an older set are redone. Never fetches from a URL named in a token,
//! never follows plain-http URLs the config does not allow, never drops working keys
//! because a refresh failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::Mutex;

use super::keys::KeySet;
use crate::config::{Alg, IssuerConfig, JwksConfig, check_url};

/// Largest discovery or JWKS document accepted.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// A key set as fetched, numbered so concurrent refreshers can tell whether one landed.
pub(crate) struct Fetched {
    pub keys: KeySet,
    pub generation: u64,
    /// Bumped by every refresh that removed or replaced a key: a token verified under an
    /// older epoch may have been signed by a key the issuer has since retired.
    pub epoch: u64,
    pub fetched_at: Option<Instant>,
}

pub(crate) struct RemoteKeys {
    issuer: String,
    /// Set from config, or learned from discovery on first fetch.
    jwks_uri: std::sync::Mutex<Option<String>>,
    allow_insecure_http: bool,
    http: reqwest::Client,
    allowed: Vec<Alg>,
    timing: JwksConfig,
    current: ArcSwap<Fetched>,
    /// Held while refreshing; holds the times of the last attempts (success or not).
    refresh: Mutex<Attempts>,
}

/// Refetches are rate-limited per cause: a scheduled one (first use, `max_age`) does not
/// delay the refetch for a key that appears just after it (an IdP's rotation right after the
/// gateway loaded its keys would otherwise refuse every new token for `refresh_min_interval`).
#[derive(Default)]
struct Attempts {
    scheduled: Option<Instant>,
    on_demand: Option<Instant>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("refresh skipped (rate limit)")]
    RateLimited,
    #[error("{0}")]
    Failed(String),
}

impl RemoteKeys {
    pub fn new(cfg: &IssuerConfig, http: reqwest::Client, allowed: Vec<Alg>, timing: JwksConfig) -> Self {
        Self {
            issuer: cfg.issuer.clone(),
            jwks_uri: std::sync::Mutex::new(cfg.jwks_uri.clone()),
            allow_insecure_http: cfg.allow_insecure_http,
            http,
            allowed,
            timing,
            current: ArcSwap::from_pointee(Fetched { keys: KeySet::default(), generation: 0, epoch: 0, fetched_at: None }),
            refresh: Mutex::new(Attempts::default()),
        }
    }

    /// The cached keys, fetching first when none were ever fetched or they are older than
    /// `max_age`. A failed fetch keeps the old keys.
    pub async fn current(&self) -> Arc<Fetched> {
        let cur = self.current.load_full();
        let stale = cur.fetched_at.is_none_or(|t| t.elapsed() >= self.timing.max_age);
        if stale {
            // Errors are logged inside; the caller works with whatever is cached.
            let _ = self.refresh_for(cur.generation, false).await;
            return self.current.load_full();
        }
        cur
    }

    /// The epoch of the cached set, without fetching.
    pub fn epoch(&self) -> u64 {
        self.current.load().epoch
    }

    /// Fetches the keys again unless another task did so since `seen_generation` (then its
    /// result is used) or the last attempt was less than `refresh_min_interval` ago.
    pub async fn refresh(&self, seen_generation: u64) -> Result<(), FetchError> {
        self.refresh_for(seen_generation, true).await
    }

    /// `on_demand`: for a key the cached set lacks (else: scheduled). Each cause has its own
    /// rate limit.
    async fn refresh_for(&self, seen_generation: u64, on_demand: bool) -> Result<(), FetchError> {
        let mut attempts = self.refresh.lock().await;
        if self.current.load().generation != seen_generation {
            return Ok(());
        }
        let last_attempt = if on_demand { &mut attempts.on_demand } else { &mut attempts.scheduled };
        if last_attempt.is_some_and(|t| t.elapsed() < self.timing.refresh_min_interval) {
            return Err(FetchError::RateLimited);
        }
        *last_attempt = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                let old = self.current.load();
                let retired = old.keys.retired_in(&keys);
                let epoch = if retired > 0 {
                    tracing::info!(issuer = %self.issuer, retired, keys = keys.len(), "issuer keys rotated: tokens signed by retired keys are no longer accepted");
                    old.epoch + 1
                } else {
                    tracing::debug!(issuer = %self.issuer, keys = keys.len(), "fetched issuer keys");
                    old.epoch
                };
                self.current.store(Arc::new(Fetched { keys, generation: seen_generation + 1, epoch, fetched_at: Some(Instant::now()) }));
                Ok(())
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e, "fetching issuer keys failed");
                Err(FetchError::Failed(e))
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let known = self.jwks_uri.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let jwks_uri = match known {
            Some(uri) => uri,
            None => {
                let uri = self.discover().await?;
                *self.jwks_uri.lock().unwrap_or_else(|e| e.into_inner()) = Some(uri.clone());
                uri
            }
        };
        let doc = self.get_json(&jwks_uri).await?;
        KeySet::from_jwks(&doc, &self.allowed).map_err(|e| format!("{jwks_uri}: {e}"))
    }

    /// OIDC discovery: the document's `issuer` must equal the configured issuer exactly.
    async fn discover(&self) -> Result<String, String> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer.trim_end_matches('/'));
        let doc = self.get_json(&url).await?;
        if doc.get("issuer").and_then(|v| v.as_str()) != Some(self.issuer.as_str()) {
            return Err(format!("{url}: the document's issuer does not match {:?}", self.issuer));
        }
        let uri = doc.get("jwks_uri").and_then(|v| v.as_str()).ok_or_else(|| format!("{url}: no jwks_uri"))?;
        check_url(uri, self.allow_insecure_http).map_err(|e| format!("{url}: jwks_uri {e}"))?;
        Ok(uri.to_owned())
    }

    async fn get_json(&self, url: &str) -> Result<serde_json::Value, String> {
        let mut resp = self
            .http
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .timeout(self.timing.fetch_timeout)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{url}: HTTP {}", resp.status()));
        }
        if resp.content_length().is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64) {
            return Err(format!("{url}: document larger than {MAX_DOCUMENT_BYTES} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("{url}: document larger than {MAX_DOCUMENT_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON ({e})"))
    }
}

/// A reqwest client suited to fetching keys: no proxy from the environment, bounded
/// connect time. The gateway may pass its own instead.
pub fn default_http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("building the HTTP client for issuer keys: {e}"))
}
