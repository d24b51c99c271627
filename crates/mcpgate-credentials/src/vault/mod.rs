//! Vault/OpenBao KV v2: reading one field of a secret with the gateway's token, cached
//! briefly (hits and misses), concurrent reads of one path coalesced into one request.
//! A 404 is "no entry"; anything else that is not a secret is an error. Owns the read cache;
//! never logs a secret or the gateway's token, never reads a path that was not built from
//! checked segments (see `template`).

mod session;
mod source;

use std::sync::Arc;
use std::time::Duration;

use mcpgate_auth::Secret;
use serde_json::Value;

pub(crate) use source::VaultSource;

use crate::config::{VaultAuth, VaultConfig, check_url, is_loopback};
use crate::memo::{Memo, count_shared};
use crate::resolved::CachedSecret;
use crate::stats::{Counters, bump};
use crate::wire::{describe, error_message, read_json, send};
use session::Session;

/// Vault's address and the request basics every call shares.
pub(crate) struct Endpoint {
    http: reqwest::Client,
    base: url::Url,
    namespace: Option<String>,
    timeout: Duration,
    counters: Arc<Counters>,
}

impl Endpoint {
    /// A request to `<address>/v1/<segments…>`; each segment is percent-encoded as one.
    fn request(&self, method: reqwest::Method, segments: &[&str]) -> reqwest::RequestBuilder {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("v1").extend(segments);
        }
        let mut req = self.http.request(method, url).timeout(self.timeout);
        if let Some(ns) = &self.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        req
    }

    /// Like [`Endpoint::request`], authenticated with `token`. Sent as `Authorization: Bearer`
    /// (which Vault accepts like `X-Vault-Token`) so that an HTTP client following a
    /// cross-host redirect drops it; marked sensitive.
    fn authed(&self, method: reqwest::Method, segments: &[&str], token: &Secret) -> reqwest::RequestBuilder {
        let req = self.request(method, segments);
        match http::HeaderValue::from_str(&format!("Bearer {}", token.expose())) {
            Ok(mut value) => {
                value.set_sensitive(true);
                req.header(http::header::AUTHORIZATION, value)
            }
            // A token with bytes no header can carry: sent without one, Vault answers 403.
            Err(_) => req,
        }
    }
}

/// One secret field as cached: `None` for "no entry".
type Entry = Option<Arc<CachedSecret>>;

pub(crate) struct VaultClient {
    endpoint: Arc<Endpoint>,
    session: Arc<Session>,
    cache: Memo<String, Entry, String>,
    cache_ttl: Duration,
    negative_cache_ttl: Duration,
}

impl VaultClient {
    pub fn new(cfg: &VaultConfig, http: reqwest::Client, counters: Arc<Counters>) -> Result<Self, String> {
        let base = check_url(&cfg.address, cfg.allow_insecure_http).map_err(|e| format!("credentials.vault.address: {e}"))?;
        if base.scheme() == "http" && !is_loopback(&base) {
            tracing::warn!(address = %cfg.address, "Vault is reached over plain http (allow_insecure_http)");
        }
        check_auth_secrets(&cfg.auth)?;
        let endpoint = Arc::new(Endpoint { http, base, namespace: cfg.namespace.clone(), timeout: cfg.timeout, counters });
        Ok(Self {
            session: Arc::new(Session::new(endpoint.clone(), cfg.auth.clone())),
            endpoint,
            cache: Memo::new(cfg.cache_size),
            cache_ttl: cfg.cache_ttl,
            negative_cache_ttl: cfg.negative_cache_ttl,
        })
    }

    /// Field `field` of the secret at `<mount>/data/<path>`; `None` when there is no entry.
    /// Errors are phrased for [`crate::CredentialError::Vault`].
    pub async fn read(&self, mount: &[String], path: &[String], field: &str) -> Result<Entry, String> {
        let segments = || mount.iter().map(String::as_str).chain(["data"]).chain(path.iter().map(String::as_str));
        // The key is the exact request (segments can hold no '/', see `template`) and field.
        let mut key = String::with_capacity(64);
        for segment in segments() {
            if !key.is_empty() {
                key.push('/');
            }
            key.push_str(segment);
        }
        key.push('#');
        key.push_str(field);
        let counters = &self.endpoint.counters;
        let fetch = || async move { self.fetch(&segments().collect::<Vec<_>>(), field).await };
        let (result, answer) = self.cache.get_or_fetch(&key, fetch).await;
        count_shared(counters, answer, &counters.vault_cache_hits);
        result
    }

    async fn fetch(&self, segments: &[&str], field: &str) -> Result<(Entry, Duration), String> {
        let mut state = self.session.token().await?;
        let mut replaced = false;
        loop {
            bump(&self.endpoint.counters.vault_reads);
            bump(&self.endpoint.counters.vault_requests);
            let req = self.endpoint.authed(reqwest::Method::GET, segments, &state.token);
            let resp = send(req, &self.endpoint.counters.vault).await.map_err(|e| format!("Vault is unreachable: {}", describe(&e)))?;
            let status = resp.status();
            let at = segments.join("/");
            let body = read_json(resp).await.map_err(|e| format!("reading {at}: {e}"))?;
            match status.as_u16() {
                200 => return self.field_of(&body, field, &at),
                404 => return Ok((None, self.negative_cache_ttl)),
                403 if !replaced => {
                    // Possibly a token revoked or expired early: one new login, then decide.
                    replaced = true;
                    match self.session.replace(state.generation).await {
                        Some(next) => state = next,
                        None => return Err(format!("permission denied reading {at} (HTTP 403)")),
                    }
                }
                403 => return Err(format!("permission denied reading {at} (HTTP 403)")),
                code => {
                    let why = error_message(&body).map(|m| format!(": {m}")).unwrap_or_default();
                    return Err(format!("reading {at} failed (HTTP {code}{why})"));
                }
            }
        }
    }

    fn field_of(&self, body: &Value, field: &str, at: &str) -> Result<(Entry, Duration), String> {
        let data = body.pointer("/data/data").and_then(Value::as_object);
        let data = data.ok_or_else(|| format!("{at} is not a KV v2 secret (no data.data)"))?;
        let value = match data.get(field) {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(Value::String(_)) => return Err(format!("field {field:?} of {at} is empty")),
            Some(_) => return Err(format!("field {field:?} of {at} is not a string")),
            None => return Err(format!("the secret at {at} has no field {field:?}")),
        };
        // A lease on the secret (KV v1 style `ttl`, or a dynamic lease) shortens the cache.
        let lease = body.get("lease_duration").and_then(Value::as_u64).filter(|s| *s > 0).map(Duration::from_secs);
        let ttl = lease.map_or(self.cache_ttl, |l| l.min(self.cache_ttl));
        Ok((Some(Arc::new(CachedSecret::new(Secret::new(value.as_str())))), ttl))
    }
}

/// Reads the login secrets once at load so a missing variable or file is a config error.
fn check_auth_secrets(auth: &VaultAuth) -> Result<(), String> {
    let (source, key) = match auth {
        VaultAuth::Token(s) => (s.clone(), "credentials.vault.auth.token"),
        VaultAuth::AppRole(a) => (a.secret_id.clone(), "credentials.vault.auth.approle.secret_id"),
        VaultAuth::Jwt(j) => (j.jwt.clone(), "credentials.vault.auth.jwt.jwt"),
        VaultAuth::Kubernetes(k) => (crate::config::SecretSource::file(&k.jwt_file), "credentials.vault.auth.kubernetes.jwt_file"),
    };
    source.load().map(|_| ()).map_err(|e| format!("{key}: {e}"))
}
