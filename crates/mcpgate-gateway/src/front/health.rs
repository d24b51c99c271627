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
    if shared.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: shutting down").into_response();
    }
    let ready = shared.backends.load().iter().any(|b| b.health().state == BackendState::Ready);
    if ready { (StatusCode::OK, "ready").into_response() } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready: no backend is reachable").into_response() }
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
                    "tools": 0, "prompts": 0, "resources": 0, "resource_templates": 0, "last_error": null, "withheld": [],
                    "pinning": sc.pinning, "quarantined": []});
            };
            let h = b.health();
            json!({
                "name": sc.name,
                "transport": transport,
                "enabled": true,
                "state": h.state,
                "era": b.era(),
                "eras": b.era().names(),
                "tools": catalog.count(&b.name, ItemKind::Tool),
                "prompts": catalog.count(&b.name, ItemKind::Prompt),
                "resources": catalog.count(&b.name, ItemKind::Resource),
                "resource_templates": catalog.count(&b.name, ItemKind::ResourceTemplate),
                "last_error": h.last_error,
                "withheld": catalog.withheld.get(&b.name).cloned().unwrap_or_default(),
                "pinning": sc.pinning,
                "quarantined": catalog.quarantined.get(&b.name).cloned().unwrap_or_default(),
            })
        })
        .collect();
    let cluster = match &shared.cluster {
        Some(c) => {
            let limits = shared.config.load().limits.sessions();
            let count = c.store.session_count(limits.idle_timeout.as_millis() as u64, crate::session::now_ms()).await;
            json!({
                "replica": c.replica,
                "store": if count.is_ok() { "up" } else { "down" },
                "sessions": count.ok(),
            })
        }
        None => serde_json::Value::Null,
    };
    Json(json!({
        "servers": servers,
        "cluster": cluster,
        "sessions": shared.sessions.len(),
        "stateless_backend_sessions": shared.stateless.len(),
        "parked_calls": shared.bridges.len(),
        "pins": shared.pins.store().map(|s| json!({
            "store": s.describe(),
            "quarantined": catalog.quarantined.values().map(Vec::len).sum::<usize>(),
            "changes_served": shared.pins.changes_served(),
            "quarantines": shared.pins.quarantines(),
        })),
        "virtual_servers": shared.governance.load().virtual_servers.iter().map(|v| json!({"name": &*v.name, "path": v.path})).collect::<Vec<_>>(),
        // Tasks alive in the runtimes (cheap: an atomic read each); bench/soak.sh watches it for leaks.
        "runtime": {"tasks": crate::listener::alive_tasks(), "lanes": crate::listener::lanes_running()},
        "connections": shared.front_door.to_json(&(&config.limits).into()),
    }))
}

/// RFC 9728 metadata (404 when the gateway requires no token).
pub async fn resource_metadata(State(shared): State<Arc<Shared>>) -> Response {
    match shared.security.load().resource_metadata() {
        Some(m) => Json(m).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The public key(s) of the gateway's own wristband signer (404 when it signs none).
pub async fn wristband_jwks(State(shared): State<Arc<Shared>>) -> Response {
    match &shared.security.load().wristband {
        Some(w) => Json(w.jwks()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
