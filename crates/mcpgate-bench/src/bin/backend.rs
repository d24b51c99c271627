//! A fast MCP backend for benchmarks: Streamable HTTP (legacy era, sessions), one `echo`
//! tool, JSON responses (or SSE with `--sse`), and `--tools N` dummy tools for list scale.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::Parser;
use mcpgate_protocol::envelope::Envelope;
use mcpgate_protocol::errors::result_response;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9901")]
    listen: String,
    /// Answer with SSE streams instead of JSON.
    #[arg(long)]
    sse: bool,
    /// Extra dummy tools to list (for catalog-size benchmarks).
    #[arg(long, default_value_t = 0)]
    tools: usize,
}

struct App {
    sse: bool,
    tools_json: String,
    sessions: RwLock<HashSet<String>>,
    next: std::sync::atomic::AtomicU64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut tools = vec![r#"{"name":"echo","description":"Echo the text back","inputSchema":{"type":"object","properties":{"text":{"type":"string"}}}}"#.to_owned()];
    for i in 0..args.tools {
        tools.push(format!(r#"{{"name":"tool_{i:05}","description":"Dummy tool {i}","inputSchema":{{"type":"object"}}}}"#));
    }
    let app = Arc::new(App { sse: args.sse, tools_json: format!(r#"{{"tools":[{}]}}"#, tools.join(",")), sessions: RwLock::default(), next: 1.into() });
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    eprintln!("bench backend listening on http://{}/mcp", listener.local_addr()?);
    axum::serve(listener, Router::new().route("/mcp", post(handle)).with_state(app)).await
}

async fn handle(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(env) = Envelope::parse(&body) else { return StatusCode::BAD_REQUEST.into_response() };
    let Some(id) = env.id() else { return StatusCode::ACCEPTED.into_response() };
    let method = env.method().unwrap_or_default();
    if method == "initialize" {
        let sid = format!("bench-{}", app.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        app.sessions.write().unwrap_or_else(|p| p.into_inner()).insert(sid.clone());
        let body = result_response(id.get(), r#"{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"bench","version":"1"}}"#);
        return ([(header::CONTENT_TYPE, "application/json".to_owned()), (header::HeaderName::from_static("mcp-session-id"), sid)], body).into_response();
    }
    let sid = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !app.sessions.read().unwrap_or_else(|p| p.into_inner()).contains(sid) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let body = match method.as_ref() {
        "tools/list" => result_response(id.get(), &app.tools_json),
        "tools/call" => {
            let text = env
                .params_object()
                .ok()
                .flatten()
                .and_then(|p| p.get("arguments").and_then(|a| Envelope::parse_raw(a).ok()).and_then(|a| a.get("text").map(|t| t.get().to_owned())))
                .unwrap_or_else(|| "\"\"".into());
            result_response(id.get(), &format!(r#"{{"content":[{{"type":"text","text":{text}}}],"isError":false}}"#))
        }
        "ping" => result_response(id.get(), "{}"),
        _ => format!(r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":-32601,"message":"Method not found"}}}}"#, id.get()).into_bytes(),
    };
    if app.sse {
        let mut framed = b"event: message\ndata: ".to_vec();
        framed.extend_from_slice(&body);
        framed.extend_from_slice(b"\n\n");
        ([(header::CONTENT_TYPE, "text/event-stream")], framed).into_response()
    } else {
        ([(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}
