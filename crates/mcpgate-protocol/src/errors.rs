//! JSON-RPC error objects and the codes MCP gives them.

use crate::envelope::{ObjectWriter, json_string};

/// The JSON-RPC / MCP error codes the gateway answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    ParseError,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    Internal,
    /// A modern-era request whose headers disagree with its body (SEP-2243).
    HeaderMismatch,
    /// A modern-era request that lacks a client capability the server needs.
    MissingCapability,
    /// A protocol version the gateway does not speak.
    UnsupportedVersion,
    /// The backend that owns the item could not answer (down, slow, garbage).
    BackendUnavailable,
    ResourceNotFound,
    /// A per-caller limit is reached: a quota (sessions, open streams) or a rate limit (then
    /// `error.data` names the limit and when to retry). The gateway's own code.
    LimitReached,
}

impl ErrorCode {
    pub fn code(self) -> i32 {
        match self {
            ErrorCode::ParseError => -32700,
            ErrorCode::InvalidRequest => -32600,
            ErrorCode::MethodNotFound => -32601,
            ErrorCode::InvalidParams => -32602,
            ErrorCode::Internal | ErrorCode::BackendUnavailable => -32603,
            ErrorCode::ResourceNotFound => -32002,
            ErrorCode::HeaderMismatch => -32020,
            ErrorCode::MissingCapability => -32021,
            ErrorCode::UnsupportedVersion => -32022,
            ErrorCode::LimitReached => -32029,
        }
    }
}

/// A JSON-RPC error as sent to a peer. `data` is raw JSON when present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub code: ErrorCode,
    pub message: String,
    pub data: Option<String>,
}

impl RpcError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), data: None }
    }

    pub fn with_data(mut self, raw_json: String) -> Self {
        self.data = Some(raw_json);
        self
    }

    /// The error object: `{"code":…,"message":…,"data":…}`.
    pub fn object(&self) -> String {
        let mut w = ObjectWriter::new();
        w.raw("code", &self.code.code().to_string()).string("message", &self.message);
        if let Some(data) = &self.data {
            w.raw("data", data);
        }
        String::from_utf8(w.finish()).unwrap_or_default()
    }

    /// A whole error response for request `id` (raw JSON, `null` when unknown).
    pub fn response(&self, id: Option<&str>) -> Vec<u8> {
        let mut w = ObjectWriter::jsonrpc(128);
        w.raw("id", id.unwrap_or("null")).raw("error", &self.object());
        w.finish()
    }
}

/// A success response for request `id` with a raw `result`.
pub fn result_response(id: &str, result: &str) -> Vec<u8> {
    let mut w = ObjectWriter::jsonrpc(result.len() + id.len() + 32);
    w.raw("id", id).raw("result", result);
    w.finish()
}

/// A notification with raw `params`.
pub fn notification(method: &str, params: Option<&str>) -> Vec<u8> {
    let mut w = ObjectWriter::jsonrpc(128);
    w.raw("method", &json_string(method));
    if let Some(p) = params {
        w.raw("params", p);
    }
    w.finish()
}

/// A list-changed notification about the catalog (tools, prompts, resources; not the client's
/// roots): the gateway re-lists and announces it itself, after its catalog has caught up.
pub fn is_list_changed(env: &crate::envelope::Envelope<'_>) -> bool {
    env.method().is_some_and(|m| m.ends_with("/list_changed") && m != "notifications/roots/list_changed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_response_shape() {
        let e = RpcError::new(ErrorCode::InvalidParams, "unknown tool: x");
        assert_eq!(String::from_utf8(e.response(Some("3"))).expect("utf8"), r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"unknown tool: x"}}"#);
        assert_eq!(String::from_utf8(e.response(None)).expect("utf8"), r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32602,"message":"unknown tool: x"}}"#);
    }
}
