//! The HTTP front door: the MCP endpoint (POST/GET/DELETE) and the operational endpoints.
//!
//! Handlers here only do HTTP: header checks, body limits, status codes and framing. What a
//! message means is decided in `clients`; refusals map to statuses in `reject`. Virtual
//! servers' paths are found per request (`virtual_paths`); the admin listener has its own
//! router (`admin`).

pub mod admin;
mod authorize;
pub mod checks;
mod health;
pub mod post;
mod stream;
mod virtual_paths;

use std::sync::Arc;

pub use authorize::wristband_for;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

pub use admin::admin_router;

use crate::state::Shared;

pub fn router(shared: Arc<Shared>) -> Router {
    let mcp_path = shared.config.load().mcp_path.clone();
    let on_main = shared.config.load().metrics.on_main_listener;
    let router = Router::new();
    let router = if on_main { router.route("/metrics", get(admin::metrics)) } else { router };
    let router = router
        .route(&mcp_path, get(stream::get).post(post::post).delete(stream::delete))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/status", get(health::status))
        .route(&format!("/.well-known/oauth-protected-resource{mcp_path}"), get(health::resource_metadata))
        .route("/.well-known/oauth-protected-resource", get(health::resource_metadata))
        .route("/.well-known/mcpgate/wristband-jwks.json", get(health::wristband_jwks))
        .route("/authorize", axum::routing::post(authorize::authorize))
        .fallback(virtual_paths::dispatch)
        .layer(DefaultBodyLimit::disable());
    let router = match shared.cluster.as_ref().filter(|c| c.expose) {
        // Which replica answered (for operators and tests behind a load balancer).
        Some(c) => {
            let name = axum::http::HeaderValue::from_str(&c.replica).unwrap_or_else(|_| axum::http::HeaderValue::from_static("unnamed"));
            router.layer(axum::middleware::map_response(move |mut resp: axum::response::Response| {
                let name = name.clone();
                async move {
                    resp.headers_mut().insert("x-mcpgate-replica", name);
                    resp
                }
            }))
        }
        None => router,
    };
    router.with_state(shared)
}
