//! The gateway's own Vault token: login (token, AppRole, JWT, Kubernetes), renewal at two
//! thirds of its lease (in the background, while the current token keeps serving), re-login
//! when renewal fails or has hit the token's max TTL, and replacement after Vault refused it.
//! Owns the token; never logs it, never puts it or a login secret in an error, never sends
//! it anywhere but the configured Vault address.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use mcpgate_auth::Secret;
use serde_json::{Value, json};

use super::Endpoint;
use crate::config::{SecretSource, VaultAuth};
use crate::stats::bump;
use crate::wire::{describe, error_message, read_json, send};

/// Least time between two replacements forced by a refused token (a policy that denies a
/// path must not turn every call into a login).
const FORCED_REPLACE_INTERVAL: Duration = Duration::from_secs(10);

/// A Vault token and its lease as last learned.
pub(crate) struct TokenState {
    pub token: Secret,
    pub generation: u64,
    obtained: Instant,
    /// Zero: the token does not expire.
    lease: Duration,
    /// The lease it had when obtained by login (renewals may shorten it near max TTL).
    original: Duration,
    renewable: bool,
}

impl TokenState {
    /// Safe to send: not in the last tenth of its lease.
    fn usable(&self, now: Instant) -> bool {
        self.lease.is_zero() || now < self.obtained + self.lease.mul_f64(0.9)
    }

    /// Time to renew or log in again: two thirds of the lease are gone.
    fn refresh_due(&self, now: Instant) -> bool {
        !self.lease.is_zero() && now >= self.obtained + self.lease.mul_f64(2.0 / 3.0)
    }
}

pub(crate) struct Session {
    endpoint: Arc<Endpoint>,
    auth: VaultAuth,
    current: ArcSwapOption<TokenState>,
    lock: tokio::sync::Mutex<()>,
    background: AtomicBool,
    generations: AtomicU64,
    last_forced: std::sync::Mutex<Option<Instant>>,
}

impl Session {
    pub fn new(endpoint: Arc<Endpoint>, auth: VaultAuth) -> Self {
        Self {
            endpoint,
            auth,
            current: ArcSwapOption::empty(),
            lock: tokio::sync::Mutex::new(()),
            background: AtomicBool::new(false),
            generations: AtomicU64::new(0),
            last_forced: std::sync::Mutex::new(None),
        }
    }

    /// A token to send now. Logs in first when there is none (or it is about to expire);
    /// starts a background renewal when it is due.
    pub async fn token(self: &Arc<Self>) -> Result<Arc<TokenState>, String> {
        let now = Instant::now();
        let current = self.current.load_full();
        if let Some(cur) = &current
            && cur.usable(now)
        {
            if cur.refresh_due(now) {
                self.refresh_in_background(cur.generation);
            }
            return Ok(cur.clone());
        }
        self.refresh(current.map(|c| c.generation), false).await
    }

    /// Vault refused token `generation` (403): log in again, at most once per
    /// [`FORCED_REPLACE_INTERVAL`]. `None` when no new token was obtained.
    pub async fn replace(&self, generation: u64) -> Option<Arc<TokenState>> {
        {
            let mut last = self.last_forced.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < FORCED_REPLACE_INTERVAL) {
                return None;
            }
            *last = Some(Instant::now());
        }
        match self.refresh(Some(generation), true).await {
            Ok(state) if state.generation != generation => Some(state),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "replacing the gateway's refused Vault token failed");
                None
            }
        }
    }

    fn refresh_in_background(self: &Arc<Self>, seen: u64) {
        if self.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let session = self.clone();
        tokio::spawn(async move {
            if let Err(e) = session.refresh(Some(seen), false).await {
                tracing::warn!(error = %e, "refreshing the gateway's Vault token failed; the current one is used until it expires");
            }
            session.background.store(false, Ordering::Release);
        });
    }

    /// Renews or replaces the token unless another task already did since `seen`.
    async fn refresh(&self, seen: Option<u64>, force_login: bool) -> Result<Arc<TokenState>, String> {
        let _guard = self.lock.lock().await;
        let now = Instant::now();
        let current = self.current.load_full();
        if let Some(cur) = &current
            && Some(cur.generation) != seen
            && cur.usable(now)
        {
            return Ok(cur.clone());
        }
        let renewable = current.as_ref().filter(|c| !force_login && c.renewable && c.usable(now) && c.lease.as_secs_f64() * 2.0 >= c.original.as_secs_f64());
        let next = match renewable {
            Some(cur) => match self.renew(cur).await {
                Ok(state) => state,
                Err(e) => {
                    tracing::warn!(error = %e, "renewing the gateway's Vault token failed; logging in again");
                    self.login().await?
                }
            },
            None => self.login().await?,
        };
        let next = Arc::new(next);
        self.current.store(Some(next.clone()));
        Ok(next)
    }

    async fn login(&self) -> Result<TokenState, String> {
        let counters = &self.endpoint.counters;
        bump(&counters.vault_logins);
        bump(&counters.vault_requests);
        let (mount, body) = match &self.auth {
            VaultAuth::Token(source) => return self.lookup(source).await,
            VaultAuth::AppRole(a) => {
                let secret_id = load(&a.secret_id, "approle secret_id")?;
                (&a.mount, json!({ "role_id": a.role_id, "secret_id": secret_id.expose() }))
            }
            VaultAuth::Jwt(j) => {
                let jwt = load(&j.jwt, "jwt")?;
                (&j.mount, json!({ "role": j.role, "jwt": jwt.expose() }))
            }
            VaultAuth::Kubernetes(k) => {
                let jwt = load(&SecretSource::file(&k.jwt_file), "kubernetes service-account token")?;
                (&k.mount, json!({ "role": k.role, "jwt": jwt.expose() }))
            }
        };
        let mut segments: Vec<&str> = vec!["auth"];
        segments.extend(mount.split('/'));
        segments.push("login");
        let at = segments.join("/");
        let resp = send(self.endpoint.request(reqwest::Method::POST, &segments).json(&body), &counters.vault).await;
        let auth = auth_section(resp, &format!("login at {at}")).await?;
        let token = auth.get("client_token").and_then(Value::as_str).filter(|t| !t.is_empty());
        let token = token.ok_or_else(|| format!("login at {at}: the answer has no client_token"))?;
        let lease = Duration::from_secs(auth.get("lease_duration").and_then(Value::as_u64).unwrap_or(0));
        let renewable = auth.get("renewable").and_then(Value::as_bool).unwrap_or(false);
        tracing::info!(method = %at, lease_secs = lease.as_secs(), renewable, "logged in to Vault");
        Ok(self.state(Secret::new(token), lease, lease, renewable))
    }

    /// Token auth: the token as configured (read again, so a rotated file is picked up) and
    /// its remaining TTL from `lookup-self`.
    async fn lookup(&self, source: &SecretSource) -> Result<TokenState, String> {
        let token = load(source, "vault token")?;
        let resp = send(self.endpoint.authed(reqwest::Method::GET, &["auth", "token", "lookup-self"], &token), &self.endpoint.counters.vault).await;
        let resp = resp.map_err(|e| format!("looking up the gateway's token: {}", describe(&e)))?;
        let status = resp.status();
        let body = read_json(resp).await.unwrap_or(Value::Null);
        if !status.is_success() {
            let why = error_message(&body).map(|m| format!(": {m}")).unwrap_or_default();
            return Err(format!("the gateway's Vault token was refused (lookup-self: HTTP {}{why})", status.as_u16()));
        }
        let data = body.get("data").unwrap_or(&Value::Null);
        let lease = Duration::from_secs(data.get("ttl").and_then(Value::as_u64).unwrap_or(0));
        let original = Duration::from_secs(data.get("creation_ttl").and_then(Value::as_u64).unwrap_or(0)).max(lease);
        let renewable = data.get("renewable").and_then(Value::as_bool).unwrap_or(false);
        Ok(self.state(token, lease, original, renewable))
    }

    async fn renew(&self, cur: &TokenState) -> Result<TokenState, String> {
        let counters = &self.endpoint.counters;
        bump(&counters.vault_renewals);
        bump(&counters.vault_requests);
        let req = self.endpoint.authed(reqwest::Method::POST, &["auth", "token", "renew-self"], &cur.token);
        let resp = send(req.json(&json!({ "increment": format!("{}s", cur.original.as_secs()) })), &counters.vault).await;
        let auth = auth_section(resp, "renew-self").await?;
        let lease = Duration::from_secs(auth.get("lease_duration").and_then(Value::as_u64).unwrap_or(0));
        let renewable = auth.get("renewable").and_then(Value::as_bool).unwrap_or(false);
        tracing::debug!(lease_secs = lease.as_secs(), "renewed the gateway's Vault token");
        Ok(self.state(cur.token.clone(), lease, cur.original, renewable))
    }

    fn state(&self, token: Secret, lease: Duration, original: Duration, renewable: bool) -> TokenState {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        TokenState { token, generation, obtained: Instant::now(), lease, original, renewable }
    }
}

fn load(source: &SecretSource, what: &str) -> Result<Secret, String> {
    source.load().map_err(|e| format!("cannot read the {what}: {e}"))
}

/// The `auth` object of a login or renewal answer (which holds the token: the body is
/// never logged, only Vault's error messages).
async fn auth_section(resp: Result<reqwest::Response, reqwest::Error>, what: &str) -> Result<Value, String> {
    let resp = resp.map_err(|e| format!("{what}: {}", describe(&e)))?;
    let status = resp.status();
    let body = read_json(resp).await.map_err(|e| format!("{what}: {e}"))?;
    if !status.is_success() {
        let why = error_message(&body).map(|m| format!(": {m}")).unwrap_or_default();
        return Err(format!("{what} refused (HTTP {}{why})", status.as_u16()));
    }
    match body.get("auth") {
        Some(auth @ Value::Object(_)) => Ok(auth.clone()),
        _ => Err(format!("{what}: the answer has no auth section")),
    }
}
