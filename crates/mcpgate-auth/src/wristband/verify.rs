//! Verifying a wristband from a trusted external authorizer: ES256 only, configured keys
//! only, `exp` and the configured `iss` (and `aud` when set) required, `sub` bound to the
//! verified caller when both exist. Never accepts a wristband whose claim is missing or
//! mistyped, never logs the wristband.

use jsonwebtoken::Validation;
use jsonwebtoken::errors::ErrorKind;
use serde_json::{Map, Value};

use super::WristbandError;
use crate::VerifiedIdentity;
use crate::config::{Alg, WristbandFormat, WristbandSourceConfig};
use crate::policy::Grants;
use crate::verify::{KeySet, Lookup};

/// What a verified wristband grants, keyed by client id as written in it.
#[derive(Debug, Clone)]
pub struct WristbandGrants {
    pub subject: Option<String>,
    pub expires_at: u64,
    pub grants: Grants,
}

/// Verifies wristbands signed by one trusted authorizer.
pub struct WristbandVerifier {
    keys: KeySet,
    issuer: String,
    audience: Option<String>,
    leeway: u64,
    format: WristbandFormat,
}

impl std::fmt::Debug for WristbandVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WristbandVerifier").field("issuer", &self.issuer).field("format", &self.format).finish_non_exhaustive()
    }
}

impl WristbandVerifier {
    pub fn new(cfg: &WristbandSourceConfig) -> Result<Self, String> {
        if cfg.keys.is_empty() {
            return Err("keys: at least one ES256 public key is required".to_owned());
        }
        if cfg.issuer.is_empty() {
            return Err("issuer: required".to_owned());
        }
        let keys = KeySet::from_configs(&cfg.keys, &[Alg::ES256]).map_err(|e| format!("keys{e}"))?;
        Ok(Self { keys, issuer: cfg.issuer.clone(), audience: cfg.audience.clone(), leeway: cfg.leeway.as_secs(), format: cfg.format })
    }

    /// Verifies `jwt` and reads its grants. With both a wristband `sub` and a verified
    /// caller, they must be equal.
    pub fn verify(&self, jwt: &str, identity: Option<&VerifiedIdentity>) -> Result<WristbandGrants, WristbandError> {
        let header = jsonwebtoken::decode_header(jwt).map_err(|_| WristbandError::Malformed("unreadable header"))?;
        if header.alg != jsonwebtoken::Algorithm::ES256 {
            return Err(WristbandError::AlgorithmNotAllowed);
        }
        let candidates = match self.keys.lookup(header.kid.as_deref(), Alg::ES256) {
            Lookup::Found(keys) => keys,
            Lookup::AlgorithmMismatch => return Err(WristbandError::AlgorithmNotAllowed),
            Lookup::NoSuchKey => return Err(WristbandError::UnknownKey),
        };
        let mut validation = Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.leeway = self.leeway;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        match &self.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.set_required_spec_claims(&["exp", "iss", "aud"]);
            }
            None => {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp", "iss"]);
            }
        }
        let mut result = Err(WristbandError::BadSignature);
        for key in candidates {
            result = jsonwebtoken::decode::<Map<String, Value>>(jwt, &key.key, &validation).map_err(|e| map_error(e.kind()));
            if !matches!(result, Err(WristbandError::BadSignature)) {
                break;
            }
        }
        let claims = result?.claims;
        let subject = match claims.get("sub") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(WristbandError::Malformed("sub is not a string")),
        };
        if let (Some(sub), Some(identity)) = (&subject, identity)
            && *sub != identity.subject
        {
            return Err(WristbandError::SubjectMismatch);
        }
        let expires_at = claims.get("exp").and_then(Value::as_u64).ok_or(WristbandError::Malformed("exp"))?;
        let grants = super::format::read(self.format, &claims).map_err(WristbandError::Malformed)?;
        Ok(WristbandGrants { subject, expires_at, grants })
    }
}

fn map_error(kind: &ErrorKind) -> WristbandError {
    match kind {
        ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidKeyFormat => WristbandError::BadSignature,
        ErrorKind::ExpiredSignature => WristbandError::Expired,
        ErrorKind::ImmatureSignature => WristbandError::NotYetValid,
        ErrorKind::InvalidIssuer => WristbandError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => WristbandError::WrongIssuer,
        ErrorKind::InvalidAudience => WristbandError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => WristbandError::WrongAudience,
        ErrorKind::MissingRequiredClaim(_) => WristbandError::Malformed("a required claim (exp) is missing"),
        ErrorKind::InvalidAlgorithm => WristbandError::AlgorithmNotAllowed,
        _ => WristbandError::Malformed("invalid JWT"),
    }
}
