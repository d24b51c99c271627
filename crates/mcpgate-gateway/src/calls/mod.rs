//! Backend-era adapters: how a permitted call ([`crate::core::Target`]) reaches its backend.
//!
//! | client \ backend | legacy                                   | modern                      |
//! |------------------|------------------------------------------|-----------------------------|
//! | legacy           | [`legacy`]: the client's own backend session | [`rounds`]: MRTR rounds become real server requests to the client |
//! | modern           | [`bridge`]: server requests become `input_required` | [`modern`]: passed through statelessly |

pub mod answer;
pub mod bridge;
pub mod legacy;
pub mod modern;
pub mod rounds;
pub mod subscriptions;
pub mod tasks;

use mcpgate_protocol::envelope::{Envelope, json_string};
use mcpgate_protocol::names::{ServerName, expose_uri};
use mcpgate_protocol::{ErrorCode, RpcError};
use mcpgate_upstream::UpstreamError;
use serde_json::value::RawValue;

use crate::backend::Backend;

/// The JSON-RPC error a client gets when the owning backend cannot answer: -32603 with a
/// message naming the server and `data: {"server", "reason"}`, where `reason` is `timeout`,
/// `invalid_response` (it answered, but not with one response to the request) or
/// `unavailable` (anything else: down, refused, closed).
pub fn unavailable(backend: &Backend, e: &UpstreamError) -> RpcError {
    let name = &backend.name;
    let cause = match e {
        UpstreamError::Timeout => 0,
        UpstreamError::Connect(_) => 1,
        UpstreamError::Closed => 2,
        UpstreamError::SessionExpired => 3,
        UpstreamError::Protocol(_) => 4,
        UpstreamError::Invalid(_) => 6,
        _ => 5,
    };
    crate::observe::series::bump(&backend.series.backend_errors[cause]);
    let (reason, message) = match e {
        UpstreamError::Timeout => ("timeout", format!("server '{name}' did not answer within {}", humantime::format_duration(backend.timeouts.call))),
        // The backend is up (it answered): no health re-check.
        UpstreamError::Invalid(why) => ("invalid_response", format!("invalid response from backend '{name}': {why}")),
        other => {
            backend.nudge();
            ("unavailable", format!("server '{name}' is unavailable: {other}"))
        }
    };
    tracing::warn!(server = %name, error = %e, reason, "call failed");
    let data = serde_json::json!({ "server": name.as_str(), "reason": reason }).to_string();
    RpcError::new(ErrorCode::BackendUnavailable, message).with_data(data)
}

/// `resources/read` result with each content's `uri` in the gateway's namespace.
pub fn rewrite_contents(server: &ServerName, prefix: &str, result: &RawValue) -> Option<String> {
    if prefix.is_empty() {
        return Some(result.get().to_owned());
    }
    let env = Envelope::parse_raw(result).ok()?;
    let Some(contents) = env.get("contents") else { return Some(result.get().to_owned()) };
    let items: Vec<&RawValue> = serde_json::from_str(contents.get()).ok()?;
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let c = Envelope::parse_raw(item).ok()?;
        match c.str("uri") {
            Some(uri) => out.push_str(std::str::from_utf8(&c.rewrite(&[("uri", Some(&json_string(&expose_uri(server, &uri))))])).ok()?),
            None => out.push_str(item.get()),
        }
    }
    out.push(']');
    String::from_utf8(env.rewrite(&[("contents", Some(&out))])).ok()
}
