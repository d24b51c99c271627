//! Why a bearer token was refused. Owns the mapping from a failure to what the front door
//! needs (HTTP status, the RFC 6750 `error` attribute, needed scopes, an audit code); never
//! holds or prints the token or any part of it.

/// A bearer-token failure. `Display` is safe for logs and client bodies: it names the
/// problem, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    /// A credential header was sent more than once (two `Authorization` headers, two
    /// wristbands): which one counts would be a guess, so neither does. Names the header.
    #[error("ambiguous credential: more than one {0} header")]
    Ambiguous(String),
    /// The header or token is not a well-formed bearer JWT; the detail is a fixed phrase.
    #[error("malformed bearer token: {0}")]
    Malformed(&'static str),
    #[error("token issuer is not trusted")]
    UnknownIssuer,
    #[error("token audience does not include this gateway")]
    WrongAudience,
    #[error("token has expired")]
    Expired,
    #[error("token is not yet valid")]
    NotYetValid,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token signing key is unknown")]
    UnknownKey,
    #[error("token algorithm is not allowed")]
    AlgorithmNotAllowed,
    #[error("token lacks required scopes")]
    InsufficientScope { needed: Vec<String> },
    /// The issuer's keys could not be fetched (and none are cached): the token cannot be
    /// checked. Fails closed.
    #[error("issuer keys are unavailable")]
    Unavailable,
}

impl AuthError {
    /// HTTP status: 401 for a missing or invalid token, 403 for insufficient scope, 400 for
    /// an ambiguous credential (RFC 6750 `invalid_request`), 503 when the issuer's keys cannot
    /// be fetched (the caller's token may be fine; retry later).
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Ambiguous(_) => 400,
            AuthError::InsufficientScope { .. } => 403,
            AuthError::Unavailable => 503,
            _ => 401,
        }
    }

    /// The `error` attribute of `WWW-Authenticate: Bearer` (RFC 6750 §3.1). `None` when no
    /// token was sent: the RFC says not to include an error code then.
    pub fn www_authenticate_error(&self) -> Option<&'static str> {
        match self {
            AuthError::Missing => None,
            AuthError::Ambiguous(_) => Some("invalid_request"),
            AuthError::InsufficientScope { .. } => Some("insufficient_scope"),
            _ => Some("invalid_token"),
        }
    }

    /// Scopes to put in `WWW-Authenticate: ... scope="…"` for a 403.
    pub fn needed_scopes(&self) -> &[String] {
        match self {
            AuthError::InsufficientScope { needed } => needed,
            _ => &[],
        }
    }

    /// Stable code for audit logs and metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Ambiguous(_) => "ambiguous",
            AuthError::Malformed(_) => "malformed",
            AuthError::UnknownIssuer => "unknown_issuer",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::BadSignature => "bad_signature",
            AuthError::UnknownKey => "unknown_key",
            AuthError::AlgorithmNotAllowed => "algorithm_not_allowed",
            AuthError::InsufficientScope { .. } => "insufficient_scope",
            AuthError::Unavailable => "keys_unavailable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AuthError;

    #[test]
    fn insufficient_scope_is_403_with_the_needed_scopes() {
        let e = AuthError::InsufficientScope { needed: vec!["mcp:tools".into()] };
        assert_eq!(e.status(), 403);
        assert_eq!(e.www_authenticate_error(), Some("insufficient_scope"));
        assert_eq!(e.needed_scopes(), ["mcp:tools".to_owned()]);
    }

    #[test]
    fn two_credentials_are_a_400_invalid_request_naming_the_header() {
        let e = AuthError::Ambiguous("Authorization".into());
        assert_eq!(e.status(), 400);
        assert_eq!(e.www_authenticate_error(), Some("invalid_request"));
        assert_eq!(e.to_string(), "ambiguous credential: more than one Authorization header");
    }

    #[test]
    fn missing_token_is_401_without_error_code() {
        assert_eq!(AuthError::Missing.status(), 401);
        assert_eq!(AuthError::Missing.www_authenticate_error(), None);
        assert_eq!(AuthError::Expired.www_authenticate_error(), Some("invalid_token"));
    }
}
