//! Bearer-token verification: the `Authenticator` turns an `Authorization` header into a
//! [`VerifiedIdentity`] or an [`AuthError`]. The issuer is chosen by exact `iss`, the key by
//! `kid`, the algorithm by the key (the token's `alg` must equal it and be allowed). A token
//! that fails on an issuer's fetched keys for a reason a key rotation explains (unknown
//! `kid`, bad signature or wrong algorithm on a known one) is checked once more against a
//! refreshed set; remembered verifications are redone once the issuer retired a key.
//! Never logs or caches a token in clear (cache keys and log fields are hashes), never
//! trusts anything from the token before its signature is checked.

mod identity;
mod jwks;
mod keys;
mod peek;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::Validation;
use jsonwebtoken::errors::ErrorKind;
use serde_json::{Map, Value};

pub use identity::VerifiedIdentity;
pub use jwks::default_http_client;
pub(crate) use keys::{KeySet, Lookup};

use crate::config::{Alg, AuthConfig};
use crate::error::AuthError;
use crate::secret::{token_hash, token_id};
use jwks::RemoteKeys;

/// Longest time a verified token is remembered, whatever its `exp`.
const CACHE_TTL_CAP: Duration = Duration::from_secs(300);

/// Verifies bearer tokens. Cheap to clone; share one per configuration.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    issuers: HashMap<String, Issuer>,
    allowed: Vec<Alg>,
    leeway: u64,
    required_scopes: Vec<String>,
    cache: Option<moka::sync::Cache<[u8; 32], Remembered>>,
}

/// A verification remembered by token hash, with the epoch of the issuer's keys it was made
/// under: once the issuer retires a key, the token is verified again.
#[derive(Clone)]
struct Remembered {
    identity: VerifiedIdentity,
    epoch: u64,
}

struct Issuer {
    name: String,
    audiences: Vec<String>,
    username_claim: String,
    keys: Keys,
}

enum Keys {
    Static(KeySet),
    Remote(RemoteKeys),
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut issuers: Vec<&str> = self.inner.issuers.keys().map(String::as_str).collect();
        issuers.sort();
        f.debug_struct("Authenticator").field("issuers", &issuers).field("algorithms", &self.inner.allowed).finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Builds from validated config; static keys are parsed now, remote keys on first use.
    /// `http` should not use proxies from the environment (see [`default_http_client`]).
    pub fn new(cfg: &AuthConfig, http: reqwest::Client) -> Result<Self, Vec<String>> {
        cfg.validate()?;
        let mut errors = Vec::new();
        let mut issuers = HashMap::new();
        for (i, ic) in cfg.issuers.iter().enumerate() {
            let keys = if !ic.static_keys.is_empty() {
                match KeySet::from_configs(&ic.static_keys, &cfg.algorithms) {
                    Ok(set) => Keys::Static(set),
                    Err(e) => {
                        errors.push(format!("auth.issuers[{i}].static_keys{e}"));
                        continue;
                    }
                }
            } else {
                if ic.allow_insecure_http {
                    tracing::warn!(issuer = %ic.issuer, "issuer keys may be fetched over plain http (allow_insecure_http)");
                }
                let client = match &ic.tls {
                    None => http.clone(),
                    Some(tls) => match mcpgate_tls::http_client(Some(tls), Default::default()) {
                        Ok(c) => c,
                        Err(e) => {
                            errors.push(format!("auth.issuers[{i}].tls: {e}"));
                            continue;
                        }
                    },
                };
                Keys::Remote(RemoteKeys::new(ic, client, cfg.algorithms.clone(), cfg.jwks.clone()))
            };
            let issuer =
                Issuer { name: ic.issuer.clone(), audiences: ic.effective_audiences(&cfg.audiences).to_vec(), username_claim: ic.username_claim.clone(), keys };
            issuers.insert(ic.issuer.clone(), issuer);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let leeway = cfg.leeway.as_secs();
        let cache =
            (cfg.token_cache_size > 0).then(|| moka::sync::Cache::builder().max_capacity(cfg.token_cache_size).expire_after(UntilExpiry { leeway }).build());
        let inner = Inner { issuers, allowed: cfg.algorithms.clone(), leeway, required_scopes: cfg.required_scopes.clone(), cache };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Scopes every token must carry, for `WWW-Authenticate: Bearer scope="…"`.
    pub fn required_scopes(&self) -> &[String] {
        &self.inner.required_scopes
    }

    /// Verifies the `Authorization` header value (`Bearer <jwt>`).
    pub async fn verify_bearer(&self, authorization_header: Option<&str>) -> Result<VerifiedIdentity, AuthError> {
        let token = peek::bearer(authorization_header)?;
        let key = token_hash(&[token.as_bytes()]);
        if let Some(cache) = &self.inner.cache
            && let Some(hit) = cache.get(&key)
            && hit.identity.expires_at.saturating_add(self.inner.leeway) >= now()
            && self.key_epoch(&hit.identity.issuer) == hit.epoch
        {
            return Ok(hit.identity);
        }
        match self.verify_token(token).await {
            Ok((identity, epoch)) => {
                if let Some(cache) = &self.inner.cache {
                    cache.insert(key, Remembered { identity: identity.clone(), epoch });
                }
                Ok(identity)
            }
            Err(e) => {
                tracing::debug!(token_id = %token_id(token), reason = e.reason(), "bearer token refused");
                Err(e)
            }
        }
    }

    /// The current epoch of an issuer's keys (0 for static keys, which never change).
    fn key_epoch(&self, issuer: &str) -> u64 {
        match self.inner.issuers.get(issuer).map(|i| &i.keys) {
            Some(Keys::Remote(remote)) => remote.epoch(),
            _ => 0,
        }
    }

    /// The verified identity and the epoch of the keys that verified it.
    async fn verify_token(&self, token: &str) -> Result<(VerifiedIdentity, u64), AuthError> {
        let peeked = peek::peek(token)?;
        let issuer = self.inner.issuers.get(&peeked.iss).ok_or(AuthError::UnknownIssuer)?;
        let alg = Alg::from_name(&peeked.alg).filter(|a| self.inner.allowed.contains(a)).ok_or(AuthError::AlgorithmNotAllowed)?;
        let kid = peeked.kid.as_deref();
        let (claims, epoch) = match &issuer.keys {
            Keys::Static(set) => (self.check(set, kid, alg, token, issuer)?, 0),
            Keys::Remote(remote) => {
                let fetched = remote.current().await;
                if fetched.fetched_at.is_none() {
                    return Err(AuthError::Unavailable);
                }
                match self.check(&fetched.keys, kid, alg, token, issuer) {
                    Err(e) if may_be_rotation(&e) => {
                        // A new key (new kid), or one replaced under its old kid: refetch
                        // (coalesced, rate-limited) and check once more. Without a new set the
                        // first answer stands.
                        let _ = remote.refresh(fetched.generation).await;
                        let again = remote.current().await;
                        if again.generation == fetched.generation {
                            return Err(e);
                        }
                        (self.check(&again.keys, kid, alg, token, issuer)?, again.epoch)
                    }
                    other => (other?, fetched.epoch),
                }
            }
        };
        let identity =
            VerifiedIdentity::from_verified(issuer.name.clone(), claims, &issuer.username_claim, token).ok_or(AuthError::Malformed("sub or exp missing"))?;
        let needed: Vec<String> = self.inner.required_scopes.iter().filter(|s| !identity.scopes.contains(s)).cloned().collect();
        if !needed.is_empty() {
            return Err(AuthError::InsufficientScope { needed: self.inner.required_scopes.clone() });
        }
        Ok((identity, epoch))
    }

    /// Checks signature and claims with the keys of `set` that fit `kid` and `alg`.
    fn check(&self, set: &KeySet, kid: Option<&str>, alg: Alg, token: &str, issuer: &Issuer) -> Result<Map<String, Value>, AuthError> {
        let candidates = match set.lookup(kid, alg) {
            Lookup::Found(keys) => keys,
            Lookup::AlgorithmMismatch => return Err(AuthError::AlgorithmNotAllowed),
            Lookup::NoSuchKey => return Err(AuthError::UnknownKey),
        };
        let mut validation = Validation::new(alg.to_jwt());
        validation.leeway = self.inner.leeway;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_audience(&issuer.audiences);
        validation.set_issuer(&[&issuer.name]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let mut last = AuthError::BadSignature;
        for key in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => {
                    let mapped = map_jwt_error(e.kind());
                    // Claim errors come after a good signature: they are the real answer.
                    if mapped != AuthError::BadSignature {
                        return Err(mapped);
                    }
                    last = mapped;
                }
            }
        }
        Err(last)
    }
}

/// Failures a key rotation explains: no key has the token's `kid`, or the key under that
/// `kid` does not verify it (the issuer replaced it, possibly with another key type). Claim
/// failures (expiry, audience, issuer) come after a good signature and never refetch.
fn may_be_rotation(e: &AuthError) -> bool {
    matches!(e, AuthError::UnknownKey | AuthError::BadSignature | AuthError::AlgorithmNotAllowed)
}

fn map_jwt_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidEddsaKey | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            AuthError::BadSignature
        }
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => AuthError::UnknownIssuer,
        ErrorKind::MissingRequiredClaim(_) => AuthError::Malformed("a required claim (exp, sub) is missing"),
        ErrorKind::InvalidIssuer => AuthError::UnknownIssuer,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm | ErrorKind::InvalidAlgorithmName => AuthError::AlgorithmNotAllowed,
        ErrorKind::InvalidClaimFormat(_) => AuthError::Malformed("a time claim is not a number"),
        _ => AuthError::Malformed("invalid JWT"),
    }
}

pub(crate) fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Cache entries live until the token expires (plus leeway), at most [`CACHE_TTL_CAP`].
struct UntilExpiry {
    leeway: u64,
}

impl moka::Expiry<[u8; 32], Remembered> for UntilExpiry {
    fn expire_after_create(&self, _key: &[u8; 32], value: &Remembered, _created_at: Instant) -> Option<Duration> {
        let left = value.identity.expires_at.saturating_add(self.leeway).saturating_sub(now());
        Some(Duration::from_secs(left).min(CACHE_TTL_CAP))
    }
}
