//! A load driver for mcpgate's Envoy services: plays Envoy's side of ext_proc and ext_authz
//! with the tonic clients generated from Envoy's official protos (`envoy-types`), closed loop
//! at a fixed concurrency, all workers on one HTTP/2 connection as an Envoy worker has.
//!
//! Ops (one unit each): `route`, the request phase of a routed `tools/call` (one ext_proc
//! stream: request headers, request body routed and rewritten; Envoy with response processing
//! off); `call`, the whole exchange as Envoy processes it with the bootstrap of docs/envoy.md:
//! request headers and body, then response headers and response body (a JSON answer fed back
//! without a real upstream hop); `list`, `tools/list` (headers,
//! body, immediate response); `authz`, one ext_authz `Check` of a routed call. Each worker
//! first opens its own gateway session through ext_proc. Prints one JSON line.

use std::time::{Duration, Instant};

use clap::Parser;
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, attribute_context};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_request::Request;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_response::Response;
use envoy_types::pb::envoy::service::ext_proc::v3::{HttpBody, HttpHeaders, ProcessingRequest, ProcessingResponse, ProtocolConfiguration};
use mcpgate_bench::Summary;
use serde_json::json;
use tokio::sync::mpsc;
use tonic::transport::Channel;

#[derive(Parser, Clone)]
struct Args {
    /// The gRPC address (host:port).
    #[arg(long)]
    target: String,
    #[arg(long, default_value = "call")]
    op: String,
    /// Exposed tool name (`call`); the backend's own name is used for `authz`.
    #[arg(long, default_value = "b_echo")]
    tool: String,
    /// The backend's route value (`authz`).
    #[arg(long, default_value = "b.local")]
    host: String,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds to measure (after a 1 s warm-up).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
}

const JSON: [(&str, &str); 2] = [("content-type", "application/json"), ("accept", "application/json, text/event-stream")];

fn headers(pairs: &[(&str, &str)]) -> Option<HeaderMap> {
    Some(HeaderMap { headers: pairs.iter().map(|(k, v)| HeaderValue { key: (*k).into(), value: String::new(), raw_value: v.as_bytes().to_vec() }).collect() })
}

fn request_headers(session: Option<&str>) -> ProcessingRequest {
    let mut pairs = vec![(":method", "POST"), (":path", "/mcp"), (":authority", "mcp.bench.local"), (":scheme", "http")];
    pairs.extend(JSON);
    if let Some(s) = session {
        pairs.extend([("mcp-session-id", s), ("mcp-protocol-version", "2025-11-25")]);
    }
    ProcessingRequest {
        request: Some(Request::RequestHeaders(HttpHeaders { headers: headers(&pairs), ..Default::default() })),
        // Envoy sends its body modes on a stream's first message (BUFFERED = 2, STREAMED = 1).
        protocol_config: Some(ProtocolConfiguration { request_body_mode: 2, response_body_mode: 1, ..Default::default() }),
        ..Default::default()
    }
}

fn body(bytes: Vec<u8>) -> ProcessingRequest {
    ProcessingRequest { request: Some(Request::RequestBody(HttpBody { body: bytes, end_of_stream: true, ..Default::default() })), ..Default::default() }
}

/// One ext_proc stream: each message waits for its answer, as Envoy does.
struct Stream {
    tx: mpsc::Sender<ProcessingRequest>,
    rx: tonic::Streaming<ProcessingResponse>,
}

impl Stream {
    async fn open(client: &mut ExternalProcessorClient<Channel>) -> Option<Self> {
        let (tx, rx) = mpsc::channel(2);
        let rx = client.process(tokio_stream::wrappers::ReceiverStream::new(rx)).await.ok()?.into_inner();
        Some(Self { tx, rx })
    }

    async fn send(&mut self, m: ProcessingRequest) -> Option<ProcessingResponse> {
        self.tx.send(m).await.ok()?;
        self.rx.message().await.ok()?
    }
}

async fn session(client: &mut ExternalProcessorClient<Channel>) -> Option<String> {
    let mut s = Stream::open(client).await?;
    s.send(request_headers(None)).await?;
    let init = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcpgate-envoy-load","version":"1"}}}"#;
    let Some(Response::ImmediateResponse(r)) = s.send(body(init.to_vec())).await?.response else { return None };
    let sid = r.headers?.set_headers.into_iter().filter_map(|o| o.header).find(|h| h.key == "mcp-session-id")?;
    let sid = String::from_utf8(sid.raw_value).ok()?;
    let mut s = Stream::open(client).await?;
    s.send(request_headers(Some(&sid))).await?;
    s.send(body(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_vec())).await?;
    Some(sid)
}

async fn one_call(client: &mut ExternalProcessorClient<Channel>, sid: &str, tool: &str, n: u64, with_response: bool) -> Option<()> {
    let mut s = Stream::open(client).await?;
    s.send(request_headers(Some(sid))).await?;
    let call = format!(r#"{{"jsonrpc":"2.0","id":{n},"method":"tools/call","params":{{"name":"{tool}","arguments":{{"text":"hi"}}}}}}"#);
    let Some(Response::RequestBody(_)) = s.send(body(call.into_bytes())).await?.response else { return None };
    if !with_response {
        return Some(());
    }
    let resp = headers(&[(":status", "200"), ("content-type", "application/json"), ("content-length", "80")]);
    s.send(ProcessingRequest { request: Some(Request::ResponseHeaders(HttpHeaders { headers: resp, ..Default::default() })), ..Default::default() }).await?;
    let answer = format!(r#"{{"jsonrpc":"2.0","id":{n},"result":{{"content":[{{"type":"text","text":"hi"}}]}}}}"#);
    let last = ProcessingRequest {
        request: Some(Request::ResponseBody(HttpBody { body: answer.into_bytes(), end_of_stream: true, ..Default::default() })),
        ..Default::default()
    };
    matches!(s.send(last).await?.response, Some(Response::ResponseBody(_))).then_some(())
}

async fn one_list(client: &mut ExternalProcessorClient<Channel>, sid: &str, n: u64) -> Option<()> {
    let mut s = Stream::open(client).await?;
    s.send(request_headers(Some(sid))).await?;
    let list = format!(r#"{{"jsonrpc":"2.0","id":{n},"method":"tools/list"}}"#);
    match s.send(body(list.into_bytes())).await?.response {
        Some(Response::ImmediateResponse(r)) if r.status.is_some_and(|s| s.code == 200) => Some(()),
        _ => None,
    }
}

async fn one_check(client: &mut AuthorizationClient<Channel>, host: &str, tool: &str, n: u64) -> Option<()> {
    let raw = format!(r#"{{"jsonrpc":"2.0","id":{n},"method":"tools/call","params":{{"name":"{tool}","arguments":{{"text":"hi"}}}}}}"#).into_bytes();
    let mut hdrs: std::collections::HashMap<String, String> = JSON.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    hdrs.extend([(":method".into(), "POST".into()), (":path".into(), "/mcp".into()), (":authority".into(), host.to_owned())]);
    let http = attribute_context::HttpRequest {
        method: "POST".into(),
        path: "/mcp".into(),
        host: host.into(),
        headers: hdrs,
        size: raw.len() as i64,
        raw_body: raw,
        ..Default::default()
    };
    let req = CheckRequest {
        attributes: Some(AttributeContext { request: Some(attribute_context::Request { http: Some(http), ..Default::default() }), ..Default::default() }),
    };
    (client.check(req).await.ok()?.into_inner().status?.code == 0).then_some(())
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let channel = match Channel::from_shared(format!("http://{}", args.target)) {
        Ok(e) => e.tcp_nodelay(true).connect().await.ok(),
        Err(_) => None,
    };
    let Some(channel) = channel else {
        eprintln!("mcpgate-envoy-load: cannot connect to {}", args.target);
        std::process::exit(1);
    };
    let start = Instant::now() + Duration::from_secs(1);
    let end = start + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (channel, args) = (channel.clone(), args.clone());
        tasks.push(tokio::spawn(async move {
            let mut proc = ExternalProcessorClient::new(channel.clone()).max_decoding_message_size(64 << 20);
            let mut authz = AuthorizationClient::new(channel);
            let sid = if args.op == "authz" { String::new() } else { session(&mut proc).await.unwrap_or_default() };
            let (mut lat, mut errors, mut total, mut n) = (Vec::new(), 0usize, 0usize, 0u64);
            while Instant::now() < end {
                n += 1;
                let sent = Instant::now();
                let ok = match args.op.as_str() {
                    "list" => one_list(&mut proc, &sid, n).await,
                    "authz" => one_check(&mut authz, &args.host, &args.tool, n).await,
                    "route" => one_call(&mut proc, &sid, &args.tool, n, false).await,
                    _ => one_call(&mut proc, &sid, &args.tool, n, true).await,
                };
                total += 1;
                match ok {
                    Some(()) if sent >= start => lat.push(sent.elapsed().as_micros() as u64),
                    Some(()) => {}
                    None => errors += 1,
                }
            }
            (lat, errors, total)
        }));
    }
    let (mut lat, mut errors, mut total) = (Vec::new(), 0, 0);
    for t in tasks {
        let (l, e, n) = t.await.unwrap_or_default();
        lat.extend(l);
        errors += e;
        total += n;
    }
    let s = Summary::of(&mut lat);
    println!(
        "{}",
        json!({"op": args.op, "concurrency": args.concurrency, "calls": s.count, "calls_total": total, "errors": errors,
               "throughput": s.count as f64 / args.duration, "p50_us": s.p50, "p90_us": s.p90, "p99_us": s.p99, "max_us": s.max, "mean_us": s.mean})
    );
}
