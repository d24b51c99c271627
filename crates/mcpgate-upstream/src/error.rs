//! Why a backend exchange failed. Messages never include credentials or request headers, nor
//! the backend's bytes (a backend's answer may echo anything; the kind of fault is enough).

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("backend answered HTTP {status}")]
    Status { status: u16 },
    #[error("backend session expired")]
    SessionExpired,
    #[error("backend sent an invalid message: {0}")]
    Protocol(String),
    /// The backend answered, but its answer to the request cannot be read as one.
    #[error("{0}")]
    Invalid(InvalidResponse),
    #[error("backend refused initialize: {0}")]
    Rejected(String),
    #[error("backend connection closed")]
    Closed,
    #[error("backend did not answer in time")]
    Timeout,
}

/// What was wrong with a backend's answer to a request. Strict on purpose: an answer is one
/// JSON-RPC response to the request sent, nothing more and nothing less (docs/protocol.md,
/// "Backend answers").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidResponse {
    #[error("the JSON body is not valid JSON")]
    NotJson,
    /// Two or more JSON values one after the other (e.g. a notification and the response).
    #[error("the JSON body holds {0} JSON-RPC messages; one response was expected")]
    SeveralMessages(usize),
    #[error("the JSON body is not a JSON-RPC object")]
    NotAnObject,
    /// A request or notification where the response belongs.
    #[error("the JSON body is not a JSON-RPC response")]
    NotAResponse,
    #[error("the JSON body answers another request id")]
    WrongId,
    #[error("the body ended before it was complete")]
    Truncated,
    #[error("the answer has content type {0}, neither JSON nor an event stream")]
    ContentType(String),
    #[error("the backend accepted the request (202) without answering it")]
    AcceptedWithoutAnswer,
    #[error("an event-stream line is longer than the limit")]
    LineTooLong,
}

/// A content type as it may be shown: its media type only, when it is a plain token pair
/// (never the backend's raw header).
pub(crate) fn shown_content_type(content_type: &str) -> String {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let plain = essence.len() <= 64 && essence.bytes().all(|b| b.is_ascii_alphanumeric() || b"/+.-_".contains(&b));
    match essence.as_str() {
        "" => "(none)".to_owned(),
        _ if plain => essence,
        _ => "(unreadable)".to_owned(),
    }
}

impl UpstreamError {
    pub(crate) fn from_reqwest(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            UpstreamError::Timeout
        } else if e.is_connect() {
            UpstreamError::Connect(connect_cause(e))
        } else if e.is_body() || e.is_decode() {
            // The status and headers arrived; the body did not, whole.
            UpstreamError::Invalid(InvalidResponse::Truncated)
        } else {
            // The URL is left out: configured URLs may carry secrets in their query.
            let cause = std::error::Error::source(e).map(ToString::to_string).unwrap_or_default();
            UpstreamError::Connect(format!("request failed {cause}").trim_end().to_owned())
        }
    }
}

/// Why a connection could not be made, from the innermost error (which names no URL): a TLS
/// failure says so (an untrusted or mismatched certificate, a refused client certificate), so
/// it is not mistaken for a backend that is down.
fn connect_cause(e: &reqwest::Error) -> String {
    let mut innermost: &dyn std::error::Error = e;
    let mut depth = 0;
    while let Some(next) = innermost.source() {
        innermost = next;
        depth += 1;
    }
    if depth == 0 {
        return "connection refused or unreachable".to_owned();
    }
    let text = innermost.to_string();
    let lower = text.to_ascii_lowercase();
    if ["certificate", "handshake", "tls", "alert"].iter().any(|w| lower.contains(w)) { format!("TLS handshake failed: {text}") } else { text }
}

/// Whether the `Content-Type` of an answer starts with `prefix` (lowercase; ASCII case ignored),
/// read without allocating: every answer is classified by it.
pub(crate) fn content_type_starts(headers: &http::HeaderMap, prefix: &str) -> bool {
    // Bytes compared as they are: an ASCII prefix matches only ASCII, so the value need not be
    // checked as text first (that would read all of it, on every call).
    headers.get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes())))
}

/// The `Content-Type` of an answer as shown in an error (lowercased).
pub(crate) fn content_type_of(headers: &http::HeaderMap) -> String {
    headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase()
}
