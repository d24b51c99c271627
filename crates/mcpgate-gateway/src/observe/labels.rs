//! Label values: closed sets only. A value never comes from raw client input: an unknown
//! method is `other`, an unknown JSON-RPC code `_OTHER`, an unknown decision reason `other`.

/// `mcp_method_name`: the methods the gateway knows; anything else is `other`.
pub const METHODS: [&str; 22] = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "logging/setLevel",
    "server/discover",
    "subscriptions/listen",
    "tasks/get",
    "tasks/update",
    "tasks/cancel",
    // Not methods: what a POST carried when it was no request.
    "notification",
    "response",
    "other",
    // The body could not be read as a JSON-RPC message.
    "_invalid",
];

pub const METHOD_NOTIFICATION: u8 = 18;
pub const METHOD_RESPONSE: u8 = 19;
pub const METHOD_OTHER: u8 = 20;
pub const METHOD_INVALID: u8 = 21;

/// The index of `method` in [`METHODS`] (`other` when unknown).
pub fn method_index(method: &str) -> u8 {
    METHODS[..18].iter().position(|m| *m == method).map_or(METHOD_OTHER, |i| i as u8)
}

/// `mcp_protocol_era`: the client's era.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Era {
    Legacy = 0,
    Modern = 1,
    /// Refused before the era was known.
    #[default]
    Unknown = 2,
}

pub const ERAS: [&str; 3] = ["legacy", "modern", "unknown"];

/// `outcome` of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    /// A result, or a notification or response taken.
    Ok = 0,
    /// A JSON-RPC error answer.
    Error = 1,
    /// Refused at the HTTP level (4xx/5xx before the message was handled).
    Rejected = 2,
    /// No valid bearer token (401/403/503 challenge).
    Unauthenticated = 3,
    /// The client went away before the final answer.
    Cancelled = 4,
}

pub const OUTCOMES: [&str; 5] = ["ok", "error", "rejected", "unauthenticated", "cancelled"];

/// `error_type` of a routed call. `None` (no label value) when the call succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallError {
    /// The backend answered a JSON-RPC error with this code (index into [`RPC_CODES`]).
    Rpc(u8),
    /// The gateway could not get an answer from the backend (down, timeout, garbage).
    BackendUnavailable,
    /// No credential for the backend (Vault, token exchange, … refused or failed).
    CredentialRefused,
    /// A rate limit refused the call; the backend was not called.
    RateLimited,
    /// The client went away before the final answer.
    Cancelled,
    /// Any other error the gateway answered itself.
    Gateway,
}

/// JSON-RPC codes that get their own `error_type`; any other code is `_OTHER`.
pub const RPC_CODES: [&str; 13] =
    ["-32700", "-32600", "-32601", "-32602", "-32603", "-32000", "-32001", "-32002", "-32020", "-32021", "-32022", "-32029", "-32042"];

impl CallError {
    pub fn as_str(self) -> &'static str {
        match self {
            CallError::Rpc(i) => RPC_CODES.get(i as usize).copied().unwrap_or("_OTHER"),
            CallError::BackendUnavailable => "backend_unavailable",
            CallError::CredentialRefused => "credential_refused",
            CallError::RateLimited => "rate_limited",
            CallError::Cancelled => "cancelled",
            CallError::Gateway => "gateway_error",
        }
    }

    /// A backend's code, as a label value.
    pub fn rpc(code: &str) -> CallError {
        CallError::Rpc(RPC_CODES.iter().position(|c| *c == code).map_or(u8::MAX, |i| i as u8))
    }
}

/// Authorization decision reasons (`mcpgate_auth::Decision::reason`, plus `no_auth`).
pub const AUTHZ_REASONS: [&str; 15] = [
    "claim_role",
    "claims_allow_all",
    "cel_allow",
    "wristband",
    "wristband_allow_all",
    "no_auth",
    "cel_deny",
    "cel_error",
    "no_identity",
    "no_claim",
    "wristband_missing",
    "wristband_invalid",
    "not_granted",
    "no_sources",
    "other",
];

pub fn authz_reason_index(reason: &str) -> usize {
    AUTHZ_REASONS.iter().position(|r| *r == reason).unwrap_or(AUTHZ_REASONS.len() - 1)
}

/// `kind` of a permission decision.
pub const KINDS: [&str; 3] = ["tool", "prompt", "resource"];

/// Bearer-token failures (`mcpgate_auth::AuthError::reason`).
pub const AUTH_FAILURES: [&str; 12] = [
    "missing",
    "malformed",
    "unknown_issuer",
    "wrong_audience",
    "expired",
    "not_yet_valid",
    "bad_signature",
    "unknown_key",
    "algorithm_not_allowed",
    "insufficient_scope",
    "keys_unavailable",
    "other",
];

pub fn auth_failure_index(reason: &str) -> usize {
    AUTH_FAILURES.iter().position(|r| *r == reason).unwrap_or(AUTH_FAILURES.len() - 1)
}

/// Credential sources (`mcpgate_credentials::Resolved::source` and the chain kinds).
pub const SOURCES: [&str; 6] = ["vault", "token_exchange", "static", "client_credentials", "passthrough", "other"];

pub fn source_index(source: &str) -> usize {
    SOURCES.iter().position(|s| *s == source).unwrap_or(SOURCES.len() - 1)
}

/// Why a call to a backend failed on the gateway's side (`mcpgate_backend_errors_total`).
pub const BACKEND_ERRORS: [&str; 7] = ["timeout", "connect", "closed", "session_expired", "protocol", "other", "invalid_response"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_chosen_names_never_become_label_values() {
        assert_eq!(METHODS[method_index("tools/call") as usize], "tools/call");
        assert_eq!(METHODS[method_index("tools/call\u{0}evil") as usize], "other");
        assert_eq!(METHODS[method_index("notification") as usize], "other", "only the gateway sets the pseudo-methods");
        assert_eq!(CallError::rpc("-32602").as_str(), "-32602");
        assert_eq!(CallError::rpc("-31999").as_str(), "_OTHER");
        assert_eq!(AUTHZ_REASONS[authz_reason_index("made_up")], "other");
        assert_eq!(SOURCES[source_index("vault")], "vault");
    }
}
