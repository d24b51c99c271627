//! Wristbands: short-lived ES256 JWTs carrying a caller's permitted items, verified when an
//! external authorizer sends one and signed when the gateway issues its own. Never trusts
//! a wristband it could not verify, never logs one.

mod format;
mod issue;
mod verify;

pub use issue::WristbandIssuer;
pub use verify::{WristbandGrants, WristbandVerifier};

/// Why a wristband was refused (or could not be signed). Never contains the wristband.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WristbandError {
    #[error("malformed wristband: {0}")]
    Malformed(&'static str),
    #[error("wristband algorithm is not ES256")]
    AlgorithmNotAllowed,
    #[error("wristband signing key is unknown")]
    UnknownKey,
    #[error("wristband signature is invalid")]
    BadSignature,
    #[error("wristband has expired")]
    Expired,
    #[error("wristband is not yet valid")]
    NotYetValid,
    #[error("wristband issuer is not trusted")]
    WrongIssuer,
    #[error("wristband audience does not match")]
    WrongAudience,
    #[error("wristband subject does not match the caller")]
    SubjectMismatch,
    #[error("signing the wristband failed")]
    Signing,
}

impl WristbandError {
    /// Stable code for audit logs.
    pub fn reason(&self) -> &'static str {
        match self {
            WristbandError::Malformed(_) => "wristband_malformed",
            WristbandError::AlgorithmNotAllowed => "wristband_algorithm",
            WristbandError::UnknownKey => "wristband_unknown_key",
            WristbandError::BadSignature => "wristband_bad_signature",
            WristbandError::Expired => "wristband_expired",
            WristbandError::NotYetValid => "wristband_not_yet_valid",
            WristbandError::WrongIssuer => "wristband_wrong_issuer",
            WristbandError::WrongAudience => "wristband_wrong_audience",
            WristbandError::SubjectMismatch => "wristband_subject_mismatch",
            WristbandError::Signing => "wristband_signing_failed",
        }
    }
}
