//! What a validated modern-era (2026-07-28) request carries from the client-era adapter
//! (`clients::modern`, which checks it) into the backend-era adapters (`calls`).

use mcpgate_protocol::envelope::Envelope;

use crate::session::ClientCaps;

/// A checked modern request. Its raw params are kept; `params()` re-reads them.
pub struct ModernRequest {
    /// Raw JSON id.
    pub id: String,
    pub method: String,
    /// The raw `params` object.
    pub(crate) params: Vec<u8>,
    /// Raw JSON object of the client's declared capabilities.
    pub capabilities: String,
    pub caps: ClientCaps,
    /// Raw JSON `clientInfo` (a placeholder when the client sent none).
    pub client_info: String,
    /// The minimum log level the client wants, as a severity rank (`None`: no log messages).
    pub log_level: Option<u8>,
}

impl ModernRequest {
    pub fn params(&self) -> Envelope<'_> {
        Envelope::parse(&self.params).unwrap_or_default()
    }

    /// The params as a JSON value (for digests and argument checks).
    pub fn params_value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.params).unwrap_or(serde_json::Value::Null)
    }
}
