//! Envoy's external authorization, in both transports (`grpc`: `envoy.service.auth.v3.
//! Authorization`; `http`: the `http_service` mode). Both turn Envoy's check into a
//! [`Check`], ask [`check`] and write the [`Verdict`] in their own format.
//!
//! OK carries the verified `x-mcp-*` headers, the backend credential for a request routed
//! to a backend (the caller's token removed), and the signed wristband; Denied carries the
//! status, headers and JSON-RPC body standalone mcpgate answers with. Never logs a header
//! value.

pub mod grpc;
pub mod http;

use std::sync::Arc;

use ::http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::gateway::{self, Answer, Destination, Shared};

/// The request Envoy asks about.
pub struct Check {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    /// The buffered body (`with_request_body`), when Envoy sent one.
    pub body: Option<Vec<u8>>,
    /// Envoy cut the body short (`allow_partial_message`).
    pub partial: bool,
}

pub enum Verdict {
    Allow { set: Vec<(HeaderName, HeaderValue)>, remove: Vec<String> },
    Deny(Answer),
}

/// Envoy's marker on a check whose body was truncated.
const PARTIAL_BODY: &str = "x-envoy-auth-partial-body";

pub async fn check(shared: &Arc<Shared>, mut c: Check) -> Verdict {
    let Some(config) = gateway::envoy_config(shared) else {
        return Verdict::Deny(Answer::service_error(::http::StatusCode::SERVICE_UNAVAILABLE, "the envoy section was removed from mcpgate's config"));
    };
    c.partial |= c.headers.get(PARTIAL_BODY).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    c.headers.remove(PARTIAL_BODY);
    c.headers.remove(crate::SECRET_HEADER);
    let max = config.max_body(&gateway::gateway_config(shared));
    if c.partial || c.body.as_ref().is_some_and(|b| b.len() > max) {
        return Verdict::Deny(gateway::too_large(max));
    }
    // The discovery documents are public, as standalone serves them.
    if c.path.starts_with("/.well-known/") && matches!(c.method, Method::GET | Method::HEAD) {
        return Verdict::Allow { set: vec![], remove: present(&c.headers, gateway::internal_headers(shared)) };
    }
    let route_value = if config.headers.route == ":authority" { c.headers.get(::http::header::HOST) } else { c.headers.get(config.headers.route.as_str()) };
    let dest = gateway::destination(shared, route_value.and_then(|v| v.to_str().ok()));
    let body = c.body.as_deref().filter(|b| !b.is_empty());
    let granted = match gateway::verdict_headers(shared, &c.method, &c.headers, body, &dest, config.ext_authz.credentials, config.ext_authz.wristband).await {
        Ok(g) => g,
        Err(answer) => return Verdict::Deny(answer),
    };
    let h = &config.headers;
    let mut set: Vec<(HeaderName, HeaderValue)> = Vec::new();
    let mut put = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            set.push((n, v));
        }
    };
    if let Some(m) = &granted.method {
        put(&h.method, m);
    }
    if let Some(t) = &granted.tool {
        put(&h.tool, t);
    }
    if let Some(s) = &granted.server {
        put(&h.server, s);
    }
    if let Some((header, token)) = &granted.wristband {
        put(header, token);
    }
    set.extend(granted.credential.iter().cloned());
    let mut candidates = gateway::internal_headers(shared);
    match dest {
        // A backend never gets the caller's token (the credential replaces it).
        Destination::Backend(_) => candidates.push("authorization".to_owned()),
        // The gateway behind reads (and verifies) its own wristband inputs.
        Destination::Gateway => {
            let inputs = gateway::wristband_inputs(shared);
            candidates.retain(|c| !inputs.contains(c));
        }
    }
    candidates.retain(|name| !set.iter().any(|(n, _)| n.as_str() == name));
    Verdict::Allow { set, remove: present(&c.headers, candidates) }
}

/// The names in `candidates` the request carries.
fn present(headers: &HeaderMap, candidates: Vec<String>) -> Vec<String> {
    candidates.into_iter().filter(|n| headers.contains_key(n.as_str())).collect()
}
