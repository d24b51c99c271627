//! The proof that a bearer token was verified: who the caller is, their claims and scopes,
//! and the raw token kept for token exchange later. Never prints the token (`Debug` shows
//! `***` for it and only the names of the claims).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::Secret;

/// A caller whose bearer token passed every check. Only [`crate::Authenticator`] makes one.
#[derive(Clone)]
pub struct VerifiedIdentity {
    /// The token's `iss` (one of the configured issuers).
    pub issuer: String,
    /// The token's `sub`.
    pub subject: String,
    /// The configured username claim (default `preferred_username`), when present.
    pub username: Option<String>,
    /// All claims of the token.
    pub claims: Arc<Map<String, Value>>,
    /// From `scope` (space-separated) and `scp` (string or list).
    pub scopes: Vec<String>,
    /// The token's `exp` (seconds since the epoch).
    pub expires_at: u64,
    token: Secret,
    /// The SHA-256 of the token: the key callers are remembered by, computed once.
    token_key: [u8; 32],
}

impl VerifiedIdentity {
    pub(crate) fn from_verified(issuer: String, claims: Map<String, Value>, username_claim: &str, token: &str) -> Option<Self> {
        let subject = claims.get("sub")?.as_str()?.to_owned();
        let expires_at = claims.get("exp")?.as_u64()?;
        let username = claims.get(username_claim).and_then(Value::as_str).map(str::to_owned);
        let scopes = scopes_of(&claims);
        let token_key = crate::secret::token_hash(&[token.as_bytes()]);
        Some(Self { issuer, subject, username, claims: Arc::new(claims), scopes, expires_at, token: Secret::new(token), token_key })
    }

    /// The SHA-256 of the token (never the token itself): equal for equal tokens.
    pub(crate) fn token_key(&self) -> &[u8; 32] {
        &self.token_key
    }

    /// The caller's original token, for the one place that exchanges it (RFC 8693).
    pub fn token(&self) -> &Secret {
        &self.token
    }

    /// A claim by name.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }

    #[cfg(test)]
    pub(crate) fn for_tests(subject: &str, claims: Value) -> Self {
        let Value::Object(mut claims) = claims else { panic!("claims must be an object") };
        claims.insert("sub".into(), subject.into());
        claims.entry("exp").or_insert(Value::from(u64::MAX / 2));
        Self::from_verified("https://idp.test".into(), claims, "preferred_username", &format!("token-of-{subject}")).expect("test identity")
    }
}

fn scopes_of(claims: &Map<String, Value>) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for key in ["scope", "scp"] {
        match claims.get(key) {
            Some(Value::String(s)) => scopes.extend(s.split_whitespace().map(str::to_owned)),
            Some(Value::Array(items)) => scopes.extend(items.iter().filter_map(Value::as_str).map(str::to_owned)),
            _ => {}
        }
    }
    scopes.sort();
    scopes.dedup();
    scopes
}

impl std::fmt::Debug for VerifiedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedIdentity")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("username", &self.username)
            .field("claims", &self.claims.keys().collect::<Vec<_>>())
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .field("token", &self.token)
            .finish()
    }
}
