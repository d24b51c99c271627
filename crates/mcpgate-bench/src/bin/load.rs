//! An MCP load driver: each worker opens its own legacy-era session (initialize +
//! notifications/initialized), then sends `tools/call` (or `tools/list`) requests on it; with
//! `--modern` there is no session and every request is a stateless 2026-07-28 request
//! (`params._meta` with the protocol version, client capabilities and client info; headers
//! `MCP-Protocol-Version`, `Mcp-Method` and, for `tools/call`, `Mcp-Name`).
//! Closed loop at a fixed concurrency, or open loop at a fixed rate. Prints one JSON line; with
//! several `--token`s (worker `w` uses token `w % n`) it also summarises each token's requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use mcpgate_bench::Summary;
use serde_json::json;

#[derive(Parser, Clone)]
struct Args {
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Seconds to run (after a 1 s warm-up).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Open loop: total calls per second spread over the workers (0 = closed loop).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// tools/call (echo) or tools/list.
    #[arg(long, default_value = "call")]
    op: String,
    /// Tool name to call.
    #[arg(long, default_value = "echo")]
    tool: String,
    /// Bearer token to send. Repeat it for several callers: worker `w` uses token `w % n`, and
    /// the output has a summary per token (`by_token`, in the order given).
    #[arg(long)]
    token: Vec<String>,
    /// Stateless 2026-07-28 requests (no initialize, no session).
    #[arg(long)]
    modern: bool,
    /// Session-scale mode: open this many sessions (each calling every `--tool` once, at most
    /// `--concurrency` at a time), keep them open, print a summary, then wait `--hold` seconds.
    #[arg(long, default_value_t = 0)]
    sessions: usize,
    /// Extra tools to call per session in `--sessions` mode (comma-separated).
    #[arg(long, default_value = "")]
    also: String,
    /// Seconds to keep the sessions open after opening them (the harness reads RSS meanwhile).
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.sessions > 0 {
        return open_sessions(args).await;
    }
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(args.concurrency * 2).build().unwrap_or_default();
    let start = Instant::now() + Duration::from_secs(1);
    let end = start + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::new();
    for w in 0..args.concurrency {
        let (client, args) = (client.clone(), Arc::new(args.clone()));
        tasks.push(tokio::spawn(async move { worker(w, client, args, start, end).await }));
    }
    let tokens = args.token.len().max(1);
    let (mut lat, mut errors) = (Vec::new(), 0usize);
    let mut per_token: Vec<(Vec<u64>, usize)> = vec![(Vec::new(), 0); tokens];
    for (w, t) in tasks.into_iter().enumerate() {
        let (l, e) = t.await.unwrap_or((vec![], 1));
        lat.extend_from_slice(&l);
        errors += e;
        let slot = &mut per_token[w % tokens];
        slot.0.extend(l);
        slot.1 += e;
    }
    let secs = args.duration;
    let summary = |lat: &mut Vec<u64>, errors: usize| {
        let s = Summary::of(lat);
        json!({"calls": s.count, "errors": errors, "throughput": s.count as f64 / secs,
               "p50_us": s.p50, "p90_us": s.p90, "p99_us": s.p99, "max_us": s.max, "mean_us": s.mean})
    };
    let mut out = summary(&mut lat, errors);
    let extra =
        json!({"url": args.url, "op": args.op, "era": if args.modern { "modern" } else { "legacy" }, "concurrency": args.concurrency, "rate": args.rate});
    if let (Some(o), Some(e)) = (out.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
        if args.token.len() > 1 {
            o.insert("by_token".into(), per_token.iter_mut().map(|(l, e)| summary(l, *e)).collect());
        }
    }
    println!("{out}");
}

/// `params._meta` of a 2026-07-28 request.
const MODERN_META: &str = r#"{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"mcpgate-load","version":"1"}}"#;
const MODERN_VERSION: &str = "2026-07-28";

/// Who a worker is to the server: its legacy session, or nothing (modern), and its token.
struct Caller<'a> {
    session: Option<String>,
    token: Option<&'a str>,
}

async fn worker(w: usize, client: reqwest::Client, args: Arc<Args>, start: Instant, end: Instant) -> (Vec<u64>, usize) {
    let token = (!args.token.is_empty()).then(|| args.token[w % args.token.len()].as_str());
    let session = if args.modern {
        None
    } else {
        let Some(s) = initialize(&client, &args, token).await else { return (vec![], 1) };
        Some(s)
    };
    let caller = Caller { session, token };
    let meta = if args.modern { format!(r#","_meta":{MODERN_META}"#) } else { String::new() };
    let body = if args.op == "list" {
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{{}}}}}"#, meta.trim_start_matches(','))
    } else {
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{}","arguments":{{"text":"hello from worker {w}"}}{meta}}}}}"#, args.tool)
    };
    let interval = (args.rate > 0.0).then(|| Duration::from_secs_f64(args.concurrency as f64 / args.rate));
    let mut next_at = start + interval.map_or(Duration::ZERO, |i| i.mul_f64(w as f64 / args.concurrency as f64));
    let (mut lat, mut errors) = (Vec::new(), 0);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if let Some(i) = interval {
            tokio::time::sleep_until(next_at.into()).await;
            next_at += i;
        }
        // Latency from the actual send: tokio's timer is millisecond-grained, so the scheduled
        // instant would add timer jitter that is not the server's.
        let sent = Instant::now();
        let (ok, done) = send(&client, &args, &caller, body.clone()).await;
        if done < start {
            continue;
        }
        if ok {
            lat.push(done.saturating_duration_since(sent).as_micros() as u64);
        } else {
            errors += 1;
        }
    }
    (lat, errors)
}

fn request(client: &reqwest::Client, args: &Args, caller: &Caller<'_>, body: String) -> reqwest::RequestBuilder {
    let mut r = client.post(&args.url).header("content-type", "application/json").header("accept", "application/json, text/event-stream").body(body);
    if let Some(s) = &caller.session {
        r = r.header("mcp-session-id", s).header("mcp-protocol-version", "2025-11-25");
    } else if args.modern {
        r = r.header("mcp-protocol-version", MODERN_VERSION);
        if args.op == "list" {
            r = r.header("mcp-method", "tools/list");
        } else {
            r = r.header("mcp-method", "tools/call").header("mcp-name", &args.tool);
        }
    }
    if let Some(t) = caller.token {
        r = r.bearer_auth(t);
    }
    r
}

async fn initialize(client: &reqwest::Client, args: &Args, token: Option<&str>) -> Option<String> {
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcpgate-load","version":"1"}}}"#;
    let resp = request(client, args, &Caller { session: None, token }, init.to_owned()).send().await.ok()?;
    let sid = resp.headers().get("mcp-session-id")?.to_str().ok()?.to_owned();
    let _ = resp.bytes().await;
    let caller = Caller { session: Some(sid), token };
    let _ = request(client, args, &caller, r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_owned()).send().await.ok()?.bytes().await;
    caller.session
}

/// Whether the request got a result (for `--modern`, one with a `resultType`), and when its
/// body had arrived (checking the body is not part of the latency).
async fn send(client: &reqwest::Client, args: &Args, caller: &Caller<'_>, body: String) -> (bool, Instant) {
    let (status, body) = match request(client, args, caller, body).send().await {
        Ok(r) => (r.status(), r.bytes().await),
        Err(e) => {
            report_failure(&format!("request failed: {e}"));
            return (false, Instant::now());
        }
    };
    let done = Instant::now();
    let ok = match &body {
        Ok(b) if status.is_success() => {
            // `"result":` comes early (after the id), so the search stops early.
            has(b, b"\"result\":") && (!args.modern || has(b, b"\"resultType\""))
        }
        _ => false,
    };
    if !ok {
        let text = body.as_ref().map(|b| String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned()).unwrap_or_default();
        report_failure(&format!("HTTP {status}: {text}"));
    }
    (ok, done)
}

fn has(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The first failure is worth seeing (on stderr); the count is in the summary.
fn report_failure(what: &str) {
    static SEEN: AtomicBool = AtomicBool::new(false);
    if !SEEN.swap(true, Ordering::Relaxed) {
        eprintln!("mcpgate-load: first failure: {what}");
    }
}

/// Opens `args.sessions` sessions, each calling `--tool` and every `--also` tool once.
async fn open_sessions(args: Args) {
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(args.concurrency * 2).build().unwrap_or_default();
    let args = Arc::new(args);
    let sem = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.sessions);
    for w in 0..args.sessions {
        let (client, args, sem) = (client.clone(), args.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.ok()?;
            let token = args.token.first().map(String::as_str);
            let caller = Caller { session: Some(initialize(&client, &args, token).await?), token };
            let tools = std::iter::once(args.tool.as_str()).chain(args.also.split(',').filter(|t| !t.is_empty()));
            for tool in tools {
                let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"text":"session {w}"}}}}}}"#);
                if !send(&client, &args, &caller, body).await.0 {
                    return None;
                }
            }
            Some(())
        }));
    }
    let mut errors = 0;
    for t in tasks {
        if !matches!(t.await, Ok(Some(()))) {
            errors += 1;
        }
    }
    println!("{}", json!({"sessions": args.sessions, "errors": errors, "seconds": started.elapsed().as_secs_f64()}));
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
}
