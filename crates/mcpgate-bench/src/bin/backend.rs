//! A fast MCP backend for benchmarks, Streamable HTTP, serving both protocol eras:
//!
//! - legacy (session-based): `initialize` returns an `Mcp-Session-Id`; `tools/list`,
//!   `tools/call` and `ping` need it;
//! - modern (2026-07-28, stateless): any request whose `params._meta` carries
//!   `io.modelcontextprotocol/protocolVersion` is answered on its own (`server/discover`,
//!   `tools/list`, `tools/call`), after checking the `MCP-Protocol-Version`, `Mcp-Method` and
//!   (for `tools/call`) `Mcp-Name` headers against the body.
//!
//! `--legacy-only` makes a modern request get HTTP 400 with an empty body, as a server that
//! predates 2026-07-28 would, so a gateway falls back to `initialize`. One `echo` tool, JSON
//! responses (or SSE with `--sse`), `--tools N` dummy tools for list scale. `GET /stats`
//! counts the requests served by kind (the harness uses it to show that the gateway answers
//! lists from its catalog).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Parser;
use mcpgate_protocol::envelope::{Envelope, raw_str};
use mcpgate_protocol::errors::result_response;
use mcpgate_protocol::modern::{HEADER_METHOD, HEADER_NAME, META_SERVER_INFO};
use mcpgate_protocol::versions::{META_PROTOCOL_VERSION, MODERN_VERSION};

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
    /// Legacy era only: a 2026-07-28 request (server/discover included) gets HTTP 400 with an
    /// empty body, so a gateway falls back to initialize and backend sessions.
    #[arg(long)]
    legacy_only: bool,
}

/// Requests served, by kind.
#[derive(Default)]
struct Counters {
    initialize: AtomicU64,
    discover: AtomicU64,
    list: AtomicU64,
    call: AtomicU64,
    other: AtomicU64,
    refused: AtomicU64,
}

struct App {
    sse: bool,
    legacy_only: bool,
    /// The legacy `tools/list` result.
    tools_json: String,
    /// The modern `tools/list` result (with `resultType` and cache hints).
    modern_tools_json: String,
    discover_json: String,
    sessions: RwLock<HashSet<String>>,
    next: AtomicU64,
    counts: Counters,
}

/// How long a modern client or gateway may reuse our lists and discovery result.
const TTL_MS: u64 = 300_000;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut tools =
        vec![r#"{"name":"echo","description":"Echo the text back","inputSchema":{"type":"object","properties":{"text":{"type":"string"}}}}"#.to_owned()];
    for i in 0..args.tools {
        tools.push(format!(r#"{{"name":"tool_{i:05}","description":"Dummy tool {i}","inputSchema":{{"type":"object"}}}}"#));
    }
    let tools = tools.join(",");
    let app = Arc::new(App {
        sse: args.sse,
        legacy_only: args.legacy_only,
        tools_json: format!(r#"{{"tools":[{tools}]}}"#),
        modern_tools_json: format!(r#"{{"resultType":"complete","tools":[{tools}],"ttlMs":{TTL_MS},"cacheScope":"public"}}"#),
        discover_json: format!(
            r#"{{"resultType":"complete","supportedVersions":["{MODERN_VERSION}"],"capabilities":{{"tools":{{"listChanged":false}}}},"ttlMs":{TTL_MS},"cacheScope":"public","_meta":{{"{META_SERVER_INFO}":{{"name":"mcpgate-bench-backend","version":"1"}}}}}}"#
        ),
        sessions: RwLock::default(),
        next: 1.into(),
        counts: Counters::default(),
    });
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let era = if args.legacy_only { "legacy only" } else { "legacy and 2026-07-28" };
    eprintln!("bench backend ({era}) listening on http://{}/mcp", listener.local_addr()?);
    let router = Router::new().route("/mcp", post(handle)).route("/stats", get(stats)).with_state(app);
    axum::serve(listener, router).await
}

async fn stats(State(app): State<Arc<App>>) -> Response {
    let c = &app.counts;
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let body = format!(
        r#"{{"initialize":{},"server/discover":{},"tools/list":{},"tools/call":{},"other":{},"refused":{}}}"#,
        n(&c.initialize),
        n(&c.discover),
        n(&c.list),
        n(&c.call),
        n(&c.other),
        n(&c.refused)
    );
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn handle(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(env) = Envelope::parse(&body) else { return StatusCode::BAD_REQUEST.into_response() };
    let Some(id) = env.id() else { return StatusCode::ACCEPTED.into_response() };
    let method = env.method().unwrap_or_default();
    let params = env.params_object().ok().flatten();
    let modern_version = params.as_ref().and_then(|p| p.get("_meta")).and_then(|m| Envelope::parse_raw(m).ok()).and_then(|m| m.get(META_PROTOCOL_VERSION));
    let counts = &app.counts;
    if let Some(version) = modern_version {
        if app.legacy_only {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            return StatusCode::BAD_REQUEST.into_response();
        }
        return modern(&app, &headers, id.get(), &method, params.as_ref(), version);
    }
    if method == "initialize" {
        counts.initialize.fetch_add(1, Ordering::Relaxed);
        let sid = format!("bench-{}", app.next.fetch_add(1, Ordering::Relaxed));
        app.sessions.write().unwrap_or_else(|p| p.into_inner()).insert(sid.clone());
        let body = result_response(id.get(), r#"{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"bench","version":"1"}}"#);
        return ([(header::CONTENT_TYPE, "application/json".to_owned()), (header::HeaderName::from_static("mcp-session-id"), sid)], body).into_response();
    }
    let sid = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !app.sessions.read().unwrap_or_else(|p| p.into_inner()).contains(sid) {
        counts.refused.fetch_add(1, Ordering::Relaxed);
        return StatusCode::NOT_FOUND.into_response();
    }
    let body = match method.as_ref() {
        "tools/list" => {
            counts.list.fetch_add(1, Ordering::Relaxed);
            result_response(id.get(), &app.tools_json)
        }
        "tools/call" => {
            counts.call.fetch_add(1, Ordering::Relaxed);
            result_response(id.get(), &format!(r#"{{"content":[{{"type":"text","text":{}}}],"isError":false}}"#, echo_text(params.as_ref())))
        }
        "ping" => {
            counts.other.fetch_add(1, Ordering::Relaxed);
            result_response(id.get(), "{}")
        }
        _ => {
            counts.other.fetch_add(1, Ordering::Relaxed);
            error_body(id.get(), -32601, "Method not found")
        }
    };
    reply(&app, StatusCode::OK, body)
}

/// A stateless 2026-07-28 request: headers checked against the body, then answered.
fn modern(app: &App, headers: &HeaderMap, id: &str, method: &str, params: Option<&Envelope<'_>>, version: &serde_json::value::RawValue) -> Response {
    let counts = &app.counts;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let version = raw_str(version).unwrap_or_default();
    if header("mcp-protocol-version") != Some(version.as_ref()) {
        counts.refused.fetch_add(1, Ordering::Relaxed);
        return json(StatusCode::BAD_REQUEST, error_body(id, -32020, "Header mismatch: MCP-Protocol-Version must equal the _meta protocolVersion"));
    }
    if version != MODERN_VERSION {
        counts.refused.fetch_add(1, Ordering::Relaxed);
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32022,"message":"Unsupported protocol version","data":{{"supported":["{MODERN_VERSION}"],"requested":{}}}}}}}"#,
            serde_json::to_string(version.as_ref()).unwrap_or_default()
        );
        return json(StatusCode::BAD_REQUEST, body.into_bytes());
    }
    if header(HEADER_METHOD) != Some(method) {
        counts.refused.fetch_add(1, Ordering::Relaxed);
        return json(StatusCode::BAD_REQUEST, error_body(id, -32020, "Header mismatch: Mcp-Method must equal the body's method"));
    }
    let body = match method {
        "server/discover" => {
            counts.discover.fetch_add(1, Ordering::Relaxed);
            result_response(id, &app.discover_json)
        }
        "tools/list" => {
            counts.list.fetch_add(1, Ordering::Relaxed);
            result_response(id, &app.modern_tools_json)
        }
        "tools/call" => {
            // Our tool names are plain ASCII, so Mcp-Name is never Base64-encoded here.
            let name = params.and_then(|p| p.str("name"));
            if name.is_none() || header(HEADER_NAME) != name.as_deref() {
                counts.refused.fetch_add(1, Ordering::Relaxed);
                return json(StatusCode::BAD_REQUEST, error_body(id, -32020, "Header mismatch: Mcp-Name must equal params.name"));
            }
            counts.call.fetch_add(1, Ordering::Relaxed);
            result_response(id, &format!(r#"{{"resultType":"complete","content":[{{"type":"text","text":{}}}],"isError":false}}"#, echo_text(params)))
        }
        // Includes subscriptions/listen (this backend's lists never change) and the
        // legacy-only methods (ping, initialize, ...), as the revision says.
        _ => {
            counts.other.fetch_add(1, Ordering::Relaxed);
            return json(StatusCode::NOT_FOUND, error_body(id, -32601, "Method not found"));
        }
    };
    reply(app, StatusCode::OK, body)
}

/// `arguments.text` as raw JSON (`""` when absent).
fn echo_text(params: Option<&Envelope<'_>>) -> String {
    params
        .and_then(|p| p.get("arguments").and_then(|a| Envelope::parse_raw(a).ok()).and_then(|a| a.get("text").map(|t| t.get().to_owned())))
        .unwrap_or_else(|| "\"\"".into())
}

fn error_body(id: &str, code: i32, message: &str) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":"{message}"}}}}"#).into_bytes()
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn reply(app: &App, status: StatusCode, body: Vec<u8>) -> Response {
    if app.sse {
        let mut framed = b"event: message\ndata: ".to_vec();
        framed.extend_from_slice(&body);
        framed.extend_from_slice(b"\n\n");
        (status, [(header::CONTENT_TYPE, "text/event-stream")], framed).into_response()
    } else {
        json(status, body)
    }
}
