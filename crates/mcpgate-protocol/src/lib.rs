//! The MCP wire format as the gateway needs it: lossless JSON-RPC envelopes, SSE framing,
//! protocol versions and the names the gateway exposes.
//!
//! Everything here is pure (no I/O) so each piece is testable on its own. Nothing in this crate
//! ever turns a JSON value into `serde_json::Value`: bodies are kept as raw bytes and only the
//! fields the gateway must read or rewrite are touched, so unknown fields, key order and large
//! integers pass through byte for byte.

pub mod dupkeys;
pub mod envelope;
pub mod errors;
pub mod modern;
pub mod names;
pub mod sse;
pub mod versions;

pub use envelope::{Envelope, Kind, ObjectWriter};
pub use errors::{ErrorCode, RpcError};
