//! The ext_authz HTTP mode (Envoy's `http_service`): Envoy sends the client's method, path
//! (after `path_prefix`), allowed headers and body; a 200 lets the request on with the
//! returned headers (those matching `allowed_upstream_headers`) and without the ones named
//! in `x-envoy-auth-headers-to-remove`. Any other status is the client's answer, so a
//! denied call gets 403 here where the gRPC mode can answer 200 with the JSON-RPC error.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

use super::{Check, Verdict, check};
use crate::gateway::{self, Shared};

const HEADERS_TO_REMOVE: &str = "x-envoy-auth-headers-to-remove";

pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(shared)
}

async fn handle(State(shared): State<Arc<Shared>>, request: axum::extract::Request) -> Response {
    let config = gateway::envoy_config(&shared);
    let max = config.as_ref().map_or(4 * 1024 * 1024, |c| c.max_body(&gateway::gateway_config(&shared)));
    if !crate::secret_ok(config.as_ref(), request.headers().get(crate::SECRET_HEADER).map(HeaderValue::as_bytes)) {
        return (StatusCode::UNAUTHORIZED, "x-mcpgate-envoy-secret is missing or wrong").into_response();
    }
    let prefix = config.as_ref().map_or("", |c| c.http_authz_path_prefix.as_str());
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let path = path.strip_prefix(prefix).filter(|p| p.starts_with('/')).unwrap_or(path).to_owned();
    let body = match axum::body::to_bytes(body, max).await {
        Ok(b) => b,
        Err(_) => return gateway::too_large(max).into_http(),
    };
    let body = (!body.is_empty()).then(|| body.to_vec());
    match check(&shared, Check { method: parts.method, path, headers: parts.headers, body, partial: false }).await {
        Verdict::Allow { set, remove } => {
            let mut resp = StatusCode::OK.into_response();
            for (name, value) in set {
                resp.headers_mut().insert(name, value);
            }
            if !remove.is_empty()
                && let Ok(v) = HeaderValue::from_str(&remove.join(", "))
            {
                resp.headers_mut().insert(HEADERS_TO_REMOVE, v);
            }
            resp
        }
        Verdict::Deny(mut answer) => {
            // 200 means "allowed" in this mode: a refused call is a 403 with the same body.
            if answer.status.is_success() {
                answer.status = StatusCode::FORBIDDEN;
            }
            answer.into_http()
        }
    }
}

impl gateway::Answer {
    fn into_http(self) -> Response {
        let mut resp = (self.status, Body::from(self.body)).into_response();
        for (name, value) in self.headers {
            resp.headers_mut().insert(name, value);
        }
        resp
    }
}
