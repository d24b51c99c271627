//! A development-only secret store for `mcpgate demo` that answers the Vault/OpenBao KV v2
//! read API (`GET /v1/<mount>/data/<path>` with `X-Vault-Token`), so the demo gateway uses its
//! real Vault client. In memory, loopback only; `--vault-addr` switches to a real Vault.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

struct Store {
    token: String,
    /// "secret/data/alice/github.mcp.local" → {field: value}
    entries: BTreeMap<String, BTreeMap<String, String>>,
}

/// Starts the store; returns its address. `entries` are keyed by the full API path after
/// `/v1/` (e.g. `secret/data/alice/github.mcp.local`).
pub async fn start(token: String, entries: BTreeMap<String, BTreeMap<String, String>>) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let app = Router::new().route("/v1/{*path}", get(read)).with_state(Arc::new(Store { token, entries }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

async fn read(State(store): State<Arc<Store>>, headers: HeaderMap, Path(path): Path<String>) -> Response {
    // Vault takes the token in X-Vault-Token or as a bearer token.
    let presented = headers
        .get("x-vault-token")
        .and_then(|v| v.to_str().ok())
        .or_else(|| headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")));
    if presented != Some(store.token.as_str()) {
        return (StatusCode::FORBIDDEN, axum::Json(json!({"errors": ["permission denied"]}))).into_response();
    }
    if path == "auth/token/lookup-self" {
        // The gateway checks its token at start: a root-like token that never expires.
        return axum::Json(json!({"data": {"ttl": 0, "renewable": false, "policies": ["root"]}})).into_response();
    }
    match store.entries.get(&path) {
        Some(data) => axum::Json(json!({
            "data": {"data": data, "metadata": {"version": 1}},
            "lease_duration": 0,
        }))
        .into_response(),
        None => (StatusCode::NOT_FOUND, axum::Json(json!({"errors": []}))).into_response(),
    }
}
