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

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use authorize::wristband_for;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method};
use axum::response::Response;
use axum::routing::get;

pub use admin::admin_router;

use crate::listener::{App, Shortcut};
use crate::state::Shared;

/// The main listener's app: the router, and the MCP endpoint's POST taken before it.
pub fn app(shared: Arc<Shared>) -> App {
    let path: Arc<str> = shared.config.load().mcp_path.as_str().into();
    let replica = shared.cluster.as_ref().filter(|c| c.expose).map(|c| replica_header(&c.replica));
    let main = shared.clone();
    let handler = Arc::new(move |request: axum::extract::Request| -> Pin<Box<dyn Future<Output = Response> + Send>> {
        let (shared, replica) = (main.clone(), replica.clone());
        Box::pin(async move {
            let mut resp = post::post(State(shared), request).await;
            if let Some(name) = replica {
                resp.headers_mut().insert(REPLICA_HEADER, name);
            }
            resp
        })
    });
    App { router: router(shared), shortcut: Some(Shortcut { method: Method::POST, path, handler }) }
}

const REPLICA_HEADER: &str = "x-mcpgate-replica";

fn replica_header(replica: &str) -> HeaderValue {
    HeaderValue::from_str(replica).unwrap_or_else(|_| HeaderValue::from_static("unnamed"))
}

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
            let name = replica_header(&c.replica);
            router.layer(axum::middleware::map_response(move |mut resp: Response| {
                let name = name.clone();
                async move {
                    resp.headers_mut().insert(REPLICA_HEADER, name);
                    resp
                }
            }))
        }
        None => router,
    };
    router.with_state(shared)
}
