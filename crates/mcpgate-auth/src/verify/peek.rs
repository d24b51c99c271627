//! Reading a JWT's header and `iss` before verification, only to choose the issuer and key.
//! Nothing read here is trusted or returned to callers; never logs what it reads.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::error::AuthError;

/// Tokens longer than this are refused before any parsing.
pub(crate) const MAX_TOKEN_BYTES: usize = 32 * 1024;

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawIssuer {
    #[serde(default)]
    iss: Option<serde_json::Value>,
}

pub(crate) struct Peeked {
    pub alg: String,
    pub kid: Option<String>,
    pub iss: String,
}

/// Takes the token out of an `Authorization` header value (`Bearer <token>`, scheme
/// case-insensitive).
pub(crate) fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let value = header.ok_or(AuthError::Missing)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed("expected \"Bearer <token>\""))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed("expected \"Bearer <token>\""));
    }
    let token = token.trim_start();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::Malformed("token too large"));
    }
    Ok(token)
}

/// Splits a compact JWS and reads `alg`, `kid` and `iss` without verifying anything.
pub(crate) fn peek(token: &str) -> Result<Peeked, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(AuthError::Malformed("not a compact JWS (three parts)"));
    };
    let header: RawHeader = decode_part(header).ok_or(AuthError::Malformed("unreadable JWT header"))?;
    if header.crit.is_some() {
        // RFC 7515 §4.1.11: unknown critical extensions must be rejected.
        return Err(AuthError::Malformed("unsupported critical header parameters"));
    }
    let body: RawIssuer = decode_part(payload).ok_or(AuthError::Malformed("unreadable JWT payload"))?;
    let iss = match body.iss {
        Some(serde_json::Value::String(s)) => s,
        Some(_) => return Err(AuthError::Malformed("iss is not a string")),
        None => return Err(AuthError::UnknownIssuer),
    };
    Ok(Peeked { alg: header.alg, kid: header.kid, iss })
}

fn decode_part<T: for<'de> Deserialize<'de>>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        assert_eq!(bearer(Some("bearer abc")).ok(), Some("abc"));
        assert_eq!(bearer(Some("Bearer  abc ")).ok(), Some("abc"));
        assert_eq!(bearer(None), Err(AuthError::Missing));
        assert!(matches!(bearer(Some("Basic dXNlcjpwYXNz")), Err(AuthError::Malformed(_))));
        assert!(matches!(bearer(Some("Bearer")), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn a_token_with_four_parts_is_malformed() {
        assert!(matches!(peek("a.b.c.d"), Err(AuthError::Malformed(_))));
    }
}
