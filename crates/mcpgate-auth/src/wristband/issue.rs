//! The gateway's own wristband signer: ES256 JWTs with `kid`, `iss`, `sub`, `aud`, `iat`,
//! `exp` (short ttl) and the permissions claim, and the public key as JWKS for a well-known
//! endpoint. Never prints the private key (`Debug` is redacted), never signs without `exp`.

use jsonwebtoken::jwk::{Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Map, Value};

use super::WristbandError;
use super::format;
use crate::VerifiedIdentity;
use crate::config::{WristbandFormat, WristbandIssueConfig};
use crate::policy::Grants;

/// Signs wristbands for backends or downstream proxies.
pub struct WristbandIssuer {
    key: EncodingKey,
    jwk: Value,
    kid: String,
    issuer: String,
    audience: Option<String>,
    format: WristbandFormat,
    header: String,
    ttl: u64,
}

impl std::fmt::Debug for WristbandIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WristbandIssuer").field("kid", &self.kid).field("issuer", &self.issuer).field("key", &"***").finish_non_exhaustive()
    }
}

impl WristbandIssuer {
    /// Loads the EC P-256 PKCS#8 private key and derives the public JWK. Errors name the
    /// config key; they never contain key material.
    pub fn new(cfg: &WristbandIssueConfig) -> Result<Self, String> {
        let pem = match (&cfg.private_key_pem, &cfg.private_key_file) {
            (Some(pem), None) => pem.expose().to_owned(),
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| format!("auth.wristband_issue.private_key_file {}: {e}", path.display()))?,
            _ => return Err("auth.wristband_issue: give exactly one of private_key_pem, private_key_file".to_owned()),
        };
        let key = EncodingKey::from_ec_pem(pem.as_bytes())
            .map_err(|_| "auth.wristband_issue: the private key is not an EC PKCS#8 PEM (BEGIN PRIVATE KEY)".to_owned())?;
        let mut jwk = Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::ES256)
            .map_err(|_| "auth.wristband_issue: the private key is not on curve P-256 (ES256)".to_owned())?;
        jwk.common.key_id = Some(cfg.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_operations = Some(vec![KeyOperations::Verify]);
        let jwk = serde_json::to_value(&jwk).map_err(|e| format!("auth.wristband_issue: {e}"))?;
        if cfg.kid.is_empty() {
            return Err("auth.wristband_issue.kid: must not be empty".to_owned());
        }
        Ok(Self {
            key,
            jwk,
            kid: cfg.kid.clone(),
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            format: cfg.format,
            header: cfg.header.clone().unwrap_or_else(|| cfg.format.default_header().to_owned()),
            ttl: cfg.ttl.as_secs().max(1),
        })
    }

    /// Header to send the wristband in.
    pub fn header_name(&self) -> &str {
        &self.header
    }

    /// Signs a wristband for `identity` granting `grants` (keyed by the client id the
    /// receiver knows each server by).
    pub fn issue(&self, identity: &VerifiedIdentity, grants: &Grants) -> Result<String, WristbandError> {
        let now = crate::verify::now();
        let mut claims = Map::new();
        claims.insert("iss".into(), Value::from(self.issuer.as_str()));
        claims.insert("sub".into(), Value::from(identity.subject.as_str()));
        if let Some(aud) = &self.audience {
            claims.insert("aud".into(), Value::from(aud.as_str()));
        }
        claims.insert("iat".into(), Value::from(now));
        claims.insert("exp".into(), Value::from(now + self.ttl));
        let (name, value) = format::write(self.format, grants);
        claims.insert(name.into(), value);
        let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|_| WristbandError::Signing)
    }

    /// The public key as a JWKS document (`{"keys":[...]}`).
    pub fn jwks(&self) -> Value {
        serde_json::json!({ "keys": [self.jwk.clone()] })
    }
}
