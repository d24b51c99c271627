//! The floor for benchmarks: the least an MCP-aware proxy hop can do. Accepts HTTP/1.1,
//! reads the JSON-RPC body, parses its envelope (the same lossless parser the gateway uses),
//! strips the `<prefix>` from a `tools/call`'s `params.name`, and forwards the request (headers
//! included: the backend's own session id passes through) on a pooled connection to one
//! backend; the answer comes back untouched. No sessions, no auth, no catalog: whatever the
//! gateway costs above this is the price of what it does.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mcpgate_protocol::envelope::{Envelope, json_string};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9902")]
    listen: SocketAddr,
    /// The backend's MCP endpoint, e.g. http://127.0.0.1:9901/mcp.
    #[arg(long)]
    backend: String,
    /// Stripped from tool names on the way to the backend.
    #[arg(long, default_value = "b_")]
    prefix: String,
}

type Pool = Client<HttpConnector, Full<Bytes>>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let backend: hyper::Uri = args.backend.parse().map_err(|e| std::io::Error::other(format!("--backend: {e}")))?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let pool: Pool = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(512).build(connector);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let prefix: &'static str = Box::leak(args.prefix.into_boxed_str());
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let (pool, backend) = (pool.clone(), backend.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| forward(req, pool.clone(), backend.clone(), prefix));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}

async fn forward(req: Request<Incoming>, pool: Pool, backend: hyper::Uri, prefix: &str) -> Result<Response<Full<Bytes>>, Infallible> {
    let (mut parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else { return Ok(status(StatusCode::BAD_REQUEST)) };
    let (body, name) = rewrite_name(body, prefix);
    if let Some(name) = name.and_then(|n| hyper::header::HeaderValue::from_str(&n).ok()) {
        // A 2026-07-28 request names its tool in `Mcp-Name` too: it must match the body.
        if parts.headers.contains_key("mcp-name") {
            parts.headers.insert("mcp-name", name);
        }
    }
    parts.uri = backend;
    parts.headers.remove(hyper::header::HOST);
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    let Ok(resp) = pool.request(Request::from_parts(parts, Full::new(body))).await else { return Ok(status(StatusCode::BAD_GATEWAY)) };
    let (parts, body) = resp.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else { return Ok(status(StatusCode::BAD_GATEWAY)) };
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// A `tools/call` body with `params.name` stripped of `prefix` (and the new name); anything
/// else unchanged.
fn rewrite_name(body: Bytes, prefix: &str) -> (Bytes, Option<String>) {
    let Ok(env) = Envelope::parse(&body) else { return (body, None) };
    if env.method().as_deref() != Some("tools/call") {
        return (body, None);
    }
    let Some(params) = env.params_object().ok().flatten() else { return (body, None) };
    let Some(name) = params.str("name") else { return (body, None) };
    let Some(bare) = name.strip_prefix(prefix) else { return (body, None) };
    let params = params.rewrite(&[("name", Some(&json_string(bare)))]);
    let Ok(params) = std::str::from_utf8(&params) else { return (body, None) };
    let rewritten = Bytes::from(env.rewrite(&[("params", Some(params))]));
    (rewritten, Some(bare.to_owned()))
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r
}
