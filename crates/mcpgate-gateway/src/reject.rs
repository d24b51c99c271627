//! Requests refused before (or instead of) any JSON-RPC handling, and the one place that maps
//! each to an HTTP status and a JSON-RPC error. Messages say what was wrong with the input;
//! they never echo headers or credentials.

use http::StatusCode;
use mcpgate_protocol::{ErrorCode, RpcError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    BadOrigin,
    UnsupportedMediaType,
    NotAcceptable(&'static str),
    TooLarge(usize),
    /// The request body did not arrive within `limits.body_read_timeout`.
    BodyTimeout(std::time::Duration),
    Parse(String),
    DuplicateKey(String),
    Batch,
    Invalid(String),
    MissingSession,
    UnknownSession,
    UnsupportedVersion(String),
    /// A 2026-07-28 (stateless) request: this gateway build answers so that clients fall back.
    ModernEra,
    TooManySessions,
    /// The caller's principal holds its quota of sessions (the number).
    PrincipalSessions(usize),
    /// The caller may see nothing at all (`limits.refuse_sessions_without_access`).
    NoAccess,
    /// A legacy session used by another identity than the one that created it.
    SessionIdentity,
    /// The request needs the shared session store, which does not answer (the reason).
    StoreUnavailable(String),
}

impl Reject {
    pub fn status(&self) -> StatusCode {
        match self {
            Reject::BadOrigin | Reject::SessionIdentity | Reject::NoAccess => StatusCode::FORBIDDEN,
            Reject::PrincipalSessions(_) => StatusCode::TOO_MANY_REQUESTS,
            Reject::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Reject::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Reject::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Reject::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Reject::UnknownSession => StatusCode::NOT_FOUND,
            Reject::TooManySessions | Reject::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Reject::Parse(_)
            | Reject::DuplicateKey(_)
            | Reject::Batch
            | Reject::Invalid(_)
            | Reject::MissingSession
            | Reject::UnsupportedVersion(_)
            | Reject::ModernEra => StatusCode::BAD_REQUEST,
        }
    }

    pub fn rpc(&self) -> RpcError {
        let (code, msg) = match self {
            Reject::BadOrigin => (ErrorCode::InvalidRequest, "Origin not allowed".to_owned()),
            Reject::UnsupportedMediaType => (ErrorCode::InvalidRequest, "Content-Type must be application/json".to_owned()),
            Reject::NotAcceptable(what) => (ErrorCode::InvalidRequest, format!("Accept must include {what}")),
            Reject::TooLarge(max) => (ErrorCode::InvalidRequest, format!("request body larger than {max} bytes")),
            Reject::BodyTimeout(d) => (ErrorCode::InvalidRequest, format!("request body not received within {}", humantime::format_duration(*d))),
            Reject::Parse(e) => (ErrorCode::ParseError, format!("Parse error: {e}")),
            Reject::DuplicateKey(k) => (ErrorCode::InvalidRequest, format!("duplicate key \"{k}\" in JSON object")),
            Reject::Batch => (ErrorCode::InvalidRequest, "JSON-RPC batches are not supported; send one message per request".to_owned()),
            Reject::Invalid(e) => (ErrorCode::InvalidRequest, format!("Invalid request: {e}")),
            Reject::MissingSession => (ErrorCode::InvalidRequest, "Bad Request: Mcp-Session-Id header is required".to_owned()),
            Reject::UnknownSession => (ErrorCode::InvalidRequest, "Session not found".to_owned()),
            Reject::UnsupportedVersion(v) => (ErrorCode::InvalidRequest, format!("Bad Request: unsupported MCP-Protocol-Version {v:?}")),
            Reject::ModernEra => (ErrorCode::InvalidRequest, "Bad Request: this endpoint needs initialize (session-based protocol)".to_owned()),
            Reject::TooManySessions => (ErrorCode::Internal, "too many sessions; try again later".to_owned()),
            Reject::PrincipalSessions(n) => {
                (ErrorCode::LimitReached, format!("this caller already holds {n} sessions; end one (DELETE) or let one go idle, then try again"))
            }
            Reject::NoAccess => (ErrorCode::InvalidRequest, "Forbidden: this caller may use no tool, prompt or resource".to_owned()),
            Reject::StoreUnavailable(why) => (ErrorCode::Internal, why.clone()),
            Reject::SessionIdentity => (ErrorCode::InvalidRequest, "Forbidden: this session belongs to another identity".to_owned()),
        };
        RpcError::new(code, msg)
    }
}
