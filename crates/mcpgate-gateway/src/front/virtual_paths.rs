//! The virtual servers' paths: each one's MCP endpoint (POST/GET/DELETE, handled like the main
//! endpoint but narrowed to the virtual server) and its RFC 9728 metadata at the
//! path-inserted well-known URL. Looked up per request in the current config, so virtual
//! servers added or removed by a reload take effect at once. Anything else is 404.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{post, stream};
use crate::state::Shared;

pub async fn dispatch(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let governance = shared.governance.load();
    if let Some(v) = governance.virtual_at(&path).cloned() {
        drop(governance);
        return match *request.method() {
            Method::POST => post::serve(shared, Some(v), request).await,
            Method::GET => stream::open(shared, Some(v), request.headers().clone()).await,
            Method::DELETE => stream::end(shared, Some(v), request.headers().clone()).await,
            _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        };
    }
    if let Some(v) = governance.virtual_metadata_at(&path) {
        if request.method() != Method::GET {
            return StatusCode::METHOD_NOT_ALLOWED.into_response();
        }
        // 404 when the gateway requires no token, as for the main endpoint.
        return match shared.security.load().resource_metadata() {
            Some(m) => Json(v.resource_metadata(&m)).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
    }
    StatusCode::NOT_FOUND.into_response()
}
