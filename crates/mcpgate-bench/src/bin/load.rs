//! An MCP load driver: each worker opens its own legacy-era session (initialize +
//! notifications/initialized), then sends `tools/call` (or `tools/list`) requests on it.
//! Closed loop at a fixed concurrency, or open loop at a fixed rate. Prints one JSON line.

use std::sync::Arc;
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
    /// Bearer token to send.
    #[arg(long)]
    token: Option<String>,
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
    let (mut lat, mut errors) = (Vec::new(), 0usize);
    for t in tasks {
        if let Ok((l, e)) = t.await {
            lat.extend(l);
            errors += e;
        }
    }
    let s = Summary::of(&mut lat);
    let secs = args.duration;
    println!(
        "{}",
        json!({"url": args.url, "op": args.op, "concurrency": args.concurrency, "rate": args.rate, "calls": s.count, "errors": errors,
               "throughput": s.count as f64 / secs, "p50_us": s.p50, "p90_us": s.p90, "p99_us": s.p99, "max_us": s.max, "mean_us": s.mean})
    );
}

async fn worker(w: usize, client: reqwest::Client, args: Arc<Args>, start: Instant, end: Instant) -> (Vec<u64>, usize) {
    let Some(session) = initialize(&client, &args).await else { return (vec![], 1) };
    let body = if args.op == "list" {
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#.to_owned()
    } else {
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{}","arguments":{{"text":"hello from worker {w}"}}}}}}"#, args.tool)
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
        let ok = send(&client, &args, &session, body.clone()).await;
        let done = Instant::now();
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

fn request(client: &reqwest::Client, args: &Args, session: Option<&str>, body: String) -> reqwest::RequestBuilder {
    let mut r = client.post(&args.url).header("content-type", "application/json").header("accept", "application/json, text/event-stream").body(body);
    if let Some(s) = session {
        r = r.header("mcp-session-id", s).header("mcp-protocol-version", "2025-11-25");
    }
    if let Some(t) = &args.token {
        r = r.bearer_auth(t);
    }
    r
}

async fn initialize(client: &reqwest::Client, args: &Args) -> Option<String> {
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcpgate-load","version":"1"}}}"#;
    let resp = request(client, args, None, init.to_owned()).send().await.ok()?;
    let sid = resp.headers().get("mcp-session-id")?.to_str().ok()?.to_owned();
    let _ = resp.bytes().await;
    let _ = request(client, args, Some(&sid), r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_owned()).send().await.ok()?.bytes().await;
    Some(sid)
}

async fn send(client: &reqwest::Client, args: &Args, session: &str, body: String) -> bool {
    match request(client, args, Some(session), body).send().await {
        Ok(r) if r.status().is_success() => r.bytes().await.is_ok_and(|b| b.windows(9).any(|w| w == b"\"result\":")),
        _ => false,
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
            let session = initialize(&client, &args).await?;
            let tools = std::iter::once(args.tool.as_str()).chain(args.also.split(',').filter(|t| !t.is_empty()));
            for tool in tools {
                let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"text":"session {w}"}}}}}}"#);
                if !send(&client, &args, &session, body).await {
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
