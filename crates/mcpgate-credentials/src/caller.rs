//! Who a credential is for: the verified caller, borrowed from the gateway's identity stage.
//! Owns nothing; never prints the caller's token or claim values (`Debug` shows claim names).

use mcpgate_auth::{Secret, VerifiedIdentity};
use serde_json::{Map, Value};

/// The verified caller of one request. Build it from a [`VerifiedIdentity`] (the proof that
/// the token was checked) with [`Caller::from_identity`].
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    /// The token's `iss`.
    pub issuer: &'a str,
    /// The token's `sub`.
    pub subject: &'a str,
    /// All claims of the verified token.
    pub claims: &'a Map<String, Value>,
    /// The caller's token, for token exchange (its `subject_token`) and passthrough only.
    pub token: &'a Secret,
}

impl<'a> Caller<'a> {
    pub fn from_identity(identity: &'a VerifiedIdentity) -> Self {
        Self { issuer: &identity.issuer, subject: &identity.subject, claims: &identity.claims, token: identity.token() }
    }

    /// The token's `exp`, when present.
    pub(crate) fn expires_at(&self) -> Option<std::time::SystemTime> {
        let exp = self.claims.get("exp").and_then(Value::as_u64)?;
        Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(exp))
    }
}

impl std::fmt::Debug for Caller<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("claims", &self.claims.keys().collect::<Vec<_>>())
            .field("token", self.token)
            .finish()
    }
}
