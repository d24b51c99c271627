//! Why a store operation failed. Messages name the cause, never the store's password.

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// The store cannot be reached (connection refused, reset, DNS).
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// The store did not answer within the configured timeout.
    #[error("session store did not answer within {0} ms")]
    Timeout(u64),
    /// The store answered something this gateway did not expect (a bug, or another program
    /// writing under our key prefix).
    #[error("session store answered unexpectedly: {0}")]
    Protocol(String),
}

impl StoreError {
    pub(crate) fn from_redis(e: &redis::RedisError) -> Self {
        if e.is_timeout() {
            return StoreError::Timeout(0);
        }
        if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_unrecoverable_error() {
            return StoreError::Unavailable(e.kind_str());
        }
        StoreError::Protocol(e.kind_str())
    }
}

trait KindStr {
    fn kind_str(&self) -> String;
}

impl KindStr for redis::RedisError {
    /// The category and the server's own error text, never the connection details (the URL,
    /// which may carry a password, is not part of it).
    fn kind_str(&self) -> String {
        let detail = self.detail().unwrap_or("");
        let kind = format!("{:?}", self.kind());
        if detail.is_empty() { kind } else { format!("{kind}: {detail}") }
    }
}
