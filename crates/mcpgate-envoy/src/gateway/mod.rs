//! The adapter: the only place in this crate that names the gateway's internals (front-door
//! checks, identity, dispatch routing, sessions, the credential chain, the wristband issuer).
//! Everything the Envoy services decide is decided by that code, called from here, so a
//! request gets the same answer through Envoy as from mcpgate standalone.
//!
//! `plan` is the ext_proc router's decision for one request, `reply` rewrites what comes
//! back, `authz` is the ext_authz decision. Never logs a token or a credential.

mod authz;
mod plan;
mod reply;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use mcpgate_gateway::config::GatewayConfig;
use mcpgate_gateway::front::checks;
use mcpgate_gateway::reject::Reject;
use mcpgate_protocol::{ErrorCode, RpcError};

pub use authz::{Destination, destination, verdict_headers};
pub use mcpgate_gateway::Shared;
pub use mcpgate_gateway::config::{EnvoyConfig, FailureMode};
pub use mcpgate_gateway::identity::Access;
pub use plan::{InFlight, Plan, Route, plan};

/// An HTTP answer exactly as standalone mcpgate would give it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Answer {
    pub fn json(status: StatusCode, body: Vec<u8>) -> Self {
        Self { status, headers: vec![(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body: Bytes::from(body) }
    }

    /// A JSON-RPC error in an HTTP 200, as standalone answers refused calls.
    pub fn rpc_error(id: Option<&str>, e: &RpcError) -> Self {
        Self::json(StatusCode::OK, e.response(id))
    }

    /// An answer of the ext_proc / ext_authz service itself (not of the gateway).
    pub fn service_error(status: StatusCode, message: impl Into<String>) -> Self {
        Self::json(status, RpcError::new(ErrorCode::Internal, message).response(None))
    }

    fn reject(r: &Reject) -> Self {
        Self::json(r.status(), r.rpc().response(None))
    }

    async fn from_response(resp: axum::response::Response, limit: usize, wait: Duration) -> Self {
        let (parts, body) = resp.into_parts();
        let headers = parts.headers.iter().filter(|(n, _)| *n != http::header::CONTENT_LENGTH).map(|(n, v)| (n.clone(), v.clone())).collect();
        // A stream (an SSE answer) is read to its end: Envoy's immediate response is one body.
        match tokio::time::timeout(wait, axum::body::to_bytes(body, limit)).await {
            Ok(Ok(body)) => Self { status: parts.status, headers, body },
            Ok(Err(_)) => Self::service_error(StatusCode::BAD_GATEWAY, format!("the answer is larger than envoy.max_response_body_bytes ({limit})")),
            Err(_) => Self::service_error(StatusCode::GATEWAY_TIMEOUT, "the answer did not complete in time"),
        }
    }
}

/// The running config's Envoy section (present whenever the services run).
pub fn envoy_config(shared: &Shared) -> Option<EnvoyConfig> {
    shared.config.load().envoy.clone()
}

pub fn gateway_config(shared: &Shared) -> Arc<GatewayConfig> {
    shared.config.load_full()
}

/// Header names a client must never set itself: the router's, the wristband headers the
/// gateway reads or issues, and the shared secret.
pub fn internal_headers(shared: &Shared) -> Vec<String> {
    let config = shared.config.load();
    let mut out = vec!["x-authorized-tools".to_owned(), "x-mcp-authorized".to_owned(), crate::SECRET_HEADER.to_owned()];
    if let Some(e) = &config.envoy {
        out.extend([e.headers.method.clone(), e.headers.tool.clone(), e.headers.server.clone()]);
        if e.headers.route != ":authority" {
            out.push(e.headers.route.clone());
        }
    }
    if let Some(w) = config.auth.as_ref().and_then(|a| a.wristband_issue.as_ref()) {
        out.push(w.header.clone().unwrap_or_else(|| w.format.default_header().to_owned()).to_ascii_lowercase());
    }
    out.sort();
    out.dedup();
    out
}

/// Wristband headers the gateway's own permission policy reads (verified there): a request
/// for the gateway keeps them.
pub fn wristband_inputs(shared: &Shared) -> Vec<String> {
    let config = shared.config.load();
    let sources = config.auth.as_ref().map_or(&[][..], |a| a.permissions.sources.as_slice());
    sources
        .iter()
        .filter_map(|s| match s {
            mcpgate_auth::SourceConfig::Wristband(w) => Some(w.header.clone().unwrap_or_else(|| w.format.default_header().to_owned()).to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// The first two stages standalone runs on every request: the Origin check and identity.
/// `Err` is the answer standalone gives (403, or the 401/403/503 challenge).
pub async fn admit(shared: &Shared, headers: &HeaderMap) -> Result<Access, Answer> {
    checks::origin(&shared.config.load(), headers).map_err(|r| Answer::reject(&r))?;
    let security = shared.security.load();
    match security.access(headers).await {
        Ok(a) => Ok(a),
        Err(e) => Err(to_answer(security.challenge(&e)).await),
    }
}

/// A signed wristband for the caller, as `POST /authorize` issues it: (header, token).
pub fn wristband(shared: &Shared, access: &Access) -> Option<(String, String)> {
    mcpgate_gateway::front::wristband_for(shared, access)?.ok()
}

/// How long an in-process answer may take: the slowest backend's connect plus call timeout.
fn answer_wait(shared: &Shared) -> Duration {
    let slowest = shared.backends.load().iter().map(|b| b.timeouts.call + b.timeouts.connect).max().unwrap_or(Duration::from_secs(30));
    slowest + Duration::from_secs(5)
}

async fn to_answer(resp: axum::response::Response) -> Answer {
    Answer::from_response(resp, 1024 * 1024, Duration::from_secs(5)).await
}

/// The gateway's own front door, called in process: what standalone mcpgate answers to this
/// request, as one body. Used for everything Envoy cannot forward to a single backend
/// (initialize, lists, discovery, DELETE, metadata, calls it must bridge).
#[derive(Clone)]
pub struct FrontDoor {
    router: axum::Router,
}

impl FrontDoor {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { router: mcpgate_gateway::front::router(shared) }
    }

    pub async fn answer(&self, shared: &Shared, method: &http::Method, path: &str, headers: &HeaderMap, body: Bytes) -> Answer {
        use tower::ServiceExt;
        let mut req = http::Request::new(axum::body::Body::from(body));
        *req.method_mut() = method.clone();
        *req.uri_mut() = match path.parse() {
            Ok(u) => u,
            Err(_) => return Answer::json(StatusCode::BAD_REQUEST, RpcError::new(ErrorCode::InvalidRequest, "invalid request path").response(None)),
        };
        *req.headers_mut() = headers.clone();
        let limit = envoy_config(shared).map_or(16 * 1024 * 1024, |e| e.max_response_body_bytes);
        match self.router.clone().oneshot(req).await {
            Ok(resp) => Answer::from_response(resp, limit, answer_wait(shared)).await,
            Err(never) => match never {},
        }
    }
}

/// The answer standalone gives to a request refused before dispatch.
pub fn refusal(r: &Reject) -> Answer {
    Answer::reject(r)
}

/// The answer for an oversize body, as standalone gives it.
pub fn too_large(max: usize) -> Answer {
    Answer::reject(&Reject::TooLarge(max))
}
