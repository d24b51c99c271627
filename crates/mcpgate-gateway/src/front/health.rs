//! `/healthz`, `/readyz` and `/status`. Status shows state and counts, never configuration
//! values such as headers or URLs with credentials.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::backend::State as BackendState;
use crate::catalog::ItemKind;
use crate::config::Transport;
use crate::state::Shared;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let ready = shared.backends.load().iter().any(|b| b.health().state == BackendState::Ready);
    if ready {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: no backend is reachable").into_response()
    }
}

pub async fn status(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let catalog = shared.catalog.load();
    let backends = shared.backends.load();
    let config = shared.config.load();
    let servers: Vec<_> = config
        .servers
        .iter()
        .map(|sc| {
            let transport = match sc.transport {
                Transport::StreamableHttp => "streamable_http",
                Transport::Sse => "sse",
                Transport::Stdio => "stdio",
            };
            let Some(b) = backends.iter().find(|b| b.config.name == sc.name) else {
                return json!({"name": sc.name, "transport": transport, "enabled": false, "state": "disabled",
                    "tools": 0, "prompts": 0, "resources": 0, "resource_templates": 0, "last_error": null, "withheld": []});
            };
            let h = b.health();
            json!({
                "name": sc.name,
                "transport": transport,
                "enabled": true,
                "state": h.state,
                "tools": catalog.count(&b.name, ItemKind::Tool),
                "prompts": catalog.count(&b.name, ItemKind::Prompt),
                "resources": catalog.count(&b.name, ItemKind::Resource),
                "resource_templates": catalog.count(&b.name, ItemKind::ResourceTemplate),
                "last_error": h.last_error,
                "withheld": catalog.withheld.get(&b.name).cloned().unwrap_or_default(),
            })
        })
        .collect();
    Json(json!({"servers": servers, "sessions": shared.sessions.len()}))
}
