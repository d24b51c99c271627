//! Why a backend exchange failed. Messages never include credentials or request headers.

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
    #[error("backend refused initialize: {0}")]
    Rejected(String),
    #[error("backend connection closed")]
    Closed,
    #[error("backend did not answer in time")]
    Timeout,
}

impl UpstreamError {
    pub(crate) fn from_reqwest(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            UpstreamError::Timeout
        } else if e.is_connect() {
            UpstreamError::Connect(connect_cause(e))
        } else if e.is_body() || e.is_decode() {
            UpstreamError::Protocol("response body could not be read".into())
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
