//! What a backend is and how to greet it.

use std::path::PathBuf;

use mcpgate_protocol::ObjectWriter;
use mcpgate_protocol::envelope::json_string;

/// A backend as the upstream layer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSpec {
    /// The configured server name, for log lines and errors.
    pub name: String,
    pub transport: TransportSpec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportSpec {
    StreamableHttp { url: url::Url },
    Sse { url: url::Url },
    Stdio(StdioSpec),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdioSpec {
    pub command: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

/// The `initialize` request the gateway sends on behalf of a client (or for itself).
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub protocol_version: String,
    /// Raw JSON object of client capabilities to declare to the backend.
    pub capabilities: String,
    /// Raw JSON `clientInfo` object.
    pub client_info: String,
}

impl InitOptions {
    /// The gateway's own identity, declaring no client capabilities (used for discovery).
    pub fn gateway(protocol_version: &str) -> Self {
        Self { protocol_version: protocol_version.to_owned(), capabilities: "{}".to_owned(), client_info: gateway_client_info() }
    }

    pub(crate) fn request(&self, id: u64) -> Vec<u8> {
        let mut params = ObjectWriter::new();
        params.raw("protocolVersion", &json_string(&self.protocol_version)).raw("capabilities", &self.capabilities).raw("clientInfo", &self.client_info);
        let params = String::from_utf8(params.finish()).unwrap_or_default();
        let mut w = ObjectWriter::jsonrpc(params.len() + 64);
        w.number("id", id).string("method", "initialize").raw("params", &params);
        w.finish()
    }
}

pub fn gateway_client_info() -> String {
    format!(r#"{{"name":"mcpgate","version":"{}"}}"#, env!("CARGO_PKG_VERSION"))
}
