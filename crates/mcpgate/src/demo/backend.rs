//! A small in-process MCP server (Streamable HTTP, JSON responses, sessions) for the demo.
//! Its tools are plain functions over the call's arguments.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub struct DemoTool {
    pub name: &'static str,
    pub description: &'static str,
    pub schema: Value,
    /// The tool's text result from its arguments and the request's headers (the demo
    /// backends report which credential they received).
    pub run: fn(&Value, &HeaderMap) -> String,
}

pub struct DemoServer {
    pub name: &'static str,
    pub instructions: &'static str,
    pub tools: Vec<DemoTool>,
    sessions: Mutex<HashSet<String>>,
}

impl DemoServer {
    pub fn new(name: &'static str, instructions: &'static str, tools: Vec<DemoTool>) -> Arc<Self> {
        Arc::new(Self { name, instructions, tools, sessions: Mutex::default() })
    }
}

/// Starts the server on an ephemeral loopback port; returns its MCP URL.
pub async fn start(server: Arc<DemoServer>) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let app = Router::new().route("/mcp", post(handle).delete(end)).with_state(server);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/mcp"))
}

async fn end(State(s): State<Arc<DemoServer>>, headers: HeaderMap) -> StatusCode {
    let id = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).unwrap_or("");
    if s.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(id) { StatusCode::NO_CONTENT } else { StatusCode::NOT_FOUND }
}

async fn handle(State(s): State<Arc<DemoServer>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "invalid JSON").into_response();
    };
    let method = msg["method"].as_str().unwrap_or("");
    let Some(id) = msg.get("id").cloned() else { return StatusCode::ACCEPTED.into_response() };
    if method == "initialize" {
        let sid = format!("{:032x}", rand_id());
        s.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(sid.clone());
        let result = json!({
            "protocolVersion": msg["params"]["protocolVersion"].as_str().unwrap_or("2025-11-25"),
            "capabilities": {"tools": {"listChanged": false}},
            "serverInfo": {"name": s.name, "version": "1.0.0"},
            "instructions": s.instructions,
        });
        let mut resp = axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response();
        if let Ok(v) = sid.parse() {
            resp.headers_mut().insert("mcp-session-id", v);
        }
        return resp;
    }
    let known =
        headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).is_some_and(|sid| s.sessions.lock().unwrap_or_else(|p| p.into_inner()).contains(sid));
    if !known {
        return (StatusCode::NOT_FOUND, "unknown session").into_response();
    }
    let reply = match method {
        "ping" => json!({"result": {}}),
        "tools/list" => json!({"result": {"tools": s.tools.iter().map(|t| json!({
            "name": t.name, "description": t.description, "inputSchema": t.schema,
        })).collect::<Vec<_>>()}}),
        "tools/call" => {
            let name = msg["params"]["name"].as_str().unwrap_or("");
            match s.tools.iter().find(|t| t.name == name) {
                Some(t) => json!({"result": {"content": [{"type": "text", "text": (t.run)(&msg["params"]["arguments"], &headers)}], "isError": false}}),
                None => json!({"error": {"code": -32602, "message": format!("Unknown tool: {name}")}}),
            }
        }
        other => json!({"error": {"code": -32601, "message": format!("Method not found: {other}")}}),
    };
    let mut out = json!({"jsonrpc": "2.0", "id": id});
    if let (Some(o), Some(r)) = (out.as_object_mut(), reply.as_object()) {
        o.extend(r.clone());
    }
    axum::Json(out).into_response()
}

fn rand_id() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    (u128::from(h.finish()) << 64) | u128::from(std::collections::hash_map::RandomState::new().build_hasher().finish())
}
