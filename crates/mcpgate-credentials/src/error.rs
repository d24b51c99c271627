//! Why no credential could be produced for a call. Owns the wording (always naming the server
//! and the source), the audit reason codes, which failures may fall through to the next
//! source, and who is at fault. Never holds or prints a secret: reasons are built from status
//! codes, fixed phrases, OAuth error codes and Vault error messages, never from bodies that
//! could echo a token.

/// Where a failure comes from, for the gateway's mapping to HTTP/JSON-RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorOrigin {
    /// The caller: an identity that cannot address a credential, a tool outside the
    /// exchanged token's roles, no credential stored for them.
    Caller,
    /// A dependency: Vault, the IdP or a token endpoint is down, refuses, or answers wrongly.
    Dependency,
    /// The gateway's own configuration (unknown server, a credential that is no header value).
    Gateway,
}

/// A credential failure. `Display` names the server and the source and is safe for logs;
/// `reason_code` is the audit/metrics label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("server {server:?}: no credential chain is configured for this server")]
    UnknownServer { server: String },
    /// Every source was tried (or fell through) without a credential; `tried` names them.
    #[error("server {server:?}: no credential for this caller from {}", tried.join(", then "))]
    NoCredential { server: String, tried: Vec<&'static str> },
    /// The source has no credential for this caller and is configured `on_missing: fail`.
    #[error("server {server:?}: {via}: no credential is stored for this caller")]
    Missing { server: String, via: &'static str },
    /// The caller's identity cannot safely address a credential (e.g. a username with `/`).
    /// Never falls through: no request is made on behalf of such an identity.
    #[error("server {server:?}: {via}: caller identity refused: {reason}")]
    InvalidIdentity { server: String, via: &'static str, reason: String },
    #[error("server {server:?}: vault: {reason}")]
    Vault { server: String, reason: String },
    #[error("server {server:?}: token_exchange: {reason}")]
    Exchange { server: String, reason: String },
    /// The IdP answered with a token that failed validation (signature, `aud`, `exp`, `sub`).
    #[error("server {server:?}: token_exchange: the exchanged token was rejected: {reason}")]
    ExchangedTokenRejected { server: String, reason: String },
    /// `require_tool_role`: the exchanged token does not list the tool. Never falls through.
    #[error("server {server:?}: token_exchange: the exchanged token does not grant tool {tool:?}")]
    ToolNotPermitted { server: String, tool: String },
    #[error("server {server:?}: client_credentials: {reason}")]
    ClientCredentials { server: String, reason: String },
    /// The credential holds bytes no header may carry (the value is not shown).
    #[error("server {server:?}: {via}: the credential is not a valid header value")]
    BadHeaderValue { server: String, via: &'static str },
}

impl CredentialError {
    /// The server the call was for.
    pub fn server(&self) -> &str {
        match self {
            CredentialError::UnknownServer { server }
            | CredentialError::NoCredential { server, .. }
            | CredentialError::Missing { server, .. }
            | CredentialError::InvalidIdentity { server, .. }
            | CredentialError::Vault { server, .. }
            | CredentialError::Exchange { server, .. }
            | CredentialError::ExchangedTokenRejected { server, .. }
            | CredentialError::ToolNotPermitted { server, .. }
            | CredentialError::ClientCredentials { server, .. }
            | CredentialError::BadHeaderValue { server, .. } => server,
        }
    }

    /// The source that failed (`vault`, `token_exchange`, …), when one did.
    pub fn source_name(&self) -> Option<&'static str> {
        match self {
            CredentialError::UnknownServer { .. } | CredentialError::NoCredential { .. } => None,
            CredentialError::Missing { via, .. } | CredentialError::InvalidIdentity { via, .. } | CredentialError::BadHeaderValue { via, .. } => Some(via),
            CredentialError::Vault { .. } => Some("vault"),
            CredentialError::Exchange { .. } | CredentialError::ExchangedTokenRejected { .. } | CredentialError::ToolNotPermitted { .. } => {
                Some("token_exchange")
            }
            CredentialError::ClientCredentials { .. } => Some("client_credentials"),
        }
    }

    /// Stable code for audit logs and metric labels.
    pub fn reason_code(&self) -> &'static str {
        match self {
            CredentialError::UnknownServer { .. } => "unknown_server",
            CredentialError::NoCredential { .. } => "no_credential",
            CredentialError::Missing { .. } => "credential_missing",
            CredentialError::InvalidIdentity { .. } => "invalid_identity",
            CredentialError::Vault { .. } => "vault_error",
            CredentialError::Exchange { .. } => "exchange_failed",
            CredentialError::ExchangedTokenRejected { .. } => "exchanged_token_rejected",
            CredentialError::ToolNotPermitted { .. } => "tool_not_permitted",
            CredentialError::ClientCredentials { .. } => "client_credentials_failed",
            CredentialError::BadHeaderValue { .. } => "bad_header_value",
        }
    }

    /// Who is at fault.
    pub fn origin(&self) -> ErrorOrigin {
        match self {
            CredentialError::NoCredential { .. }
            | CredentialError::Missing { .. }
            | CredentialError::InvalidIdentity { .. }
            | CredentialError::ToolNotPermitted { .. } => ErrorOrigin::Caller,
            CredentialError::Vault { .. }
            | CredentialError::Exchange { .. }
            | CredentialError::ExchangedTokenRejected { .. }
            | CredentialError::ClientCredentials { .. } => ErrorOrigin::Dependency,
            CredentialError::UnknownServer { .. } | CredentialError::BadHeaderValue { .. } => ErrorOrigin::Gateway,
        }
    }

    /// Failures that end the chain whatever `on_error` says: a refused identity or tool must
    /// not be retried with a weaker source.
    pub(crate) fn is_final(&self) -> bool {
        matches!(self, CredentialError::InvalidIdentity { .. } | CredentialError::ToolNotPermitted { .. })
    }
}

/// Makes text from a remote party safe for an error message: at most `max` characters,
/// control characters escaped.
pub(crate) fn sanitize(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] }).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_server_and_the_source() {
        let e = CredentialError::Vault { server: "github".into(), reason: "permission denied (HTTP 403)".into() };
        assert_eq!(e.to_string(), "server \"github\": vault: permission denied (HTTP 403)");
        assert_eq!(e.source_name(), Some("vault"));
        assert_eq!(e.reason_code(), "vault_error");
        assert_eq!(e.origin(), ErrorOrigin::Dependency);
    }

    #[test]
    fn refused_identity_and_tool_never_fall_through() {
        let id = CredentialError::InvalidIdentity { server: "s".into(), via: "vault", reason: "x".into() };
        let tool = CredentialError::ToolNotPermitted { server: "s".into(), tool: "t".into() };
        assert!(id.is_final() && tool.is_final());
        assert!(!CredentialError::Vault { server: "s".into(), reason: "x".into() }.is_final());
    }

    #[test]
    fn sanitize_escapes_control_characters_and_truncates() {
        assert_eq!(sanitize("a\nb", 10), "a\\nb");
        assert_eq!(sanitize("abcdef", 3), "abc…");
    }
}
