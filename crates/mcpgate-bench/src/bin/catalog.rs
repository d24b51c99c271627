//! `mcpgate-bench-catalog`: how long a catalog rebuild takes with definition pinning, on a
//! synthetic catalog (default 10 servers × 500 tools with realistic schemas). Measures
//! `catalog::build` itself, in-process:
//! - `off`: no pinning;
//! - `enforce (new listings)`: every listing just arrived, so every definition is hashed;
//! - `enforce (listings kept)`: a rebuild after an approval or a config change, hashes reused;
//! - `record (new listings)`.
//!
//! Prints one JSON object: per variant the minimum, median and maximum wall-clock milliseconds
//! over `--rounds`, and the median CPU milliseconds of the building thread (from
//! `/proc/thread-self/schedstat`, so time other processes take on a shared machine is left out).

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use mcpgate_gateway::catalog::{BackendCaps, Listing, ServerEntry, build};
use mcpgate_gateway::config::parse_str;
use mcpgate_gateway::governance::ServerRules;
use mcpgate_gateway::pins::{Change, PinSet, Selection};
use mcpgate_protocol::names::ServerName;
use serde_json::value::RawValue;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10)]
    servers: usize,
    #[arg(long, default_value_t = 500)]
    tools_per_server: usize,
    #[arg(long, default_value_t = 20)]
    rounds: usize,
}

fn tool(i: usize) -> Box<RawValue> {
    let json = format!(
        r#"{{"name":"tool_{i:05}","title":"Tool {i}","description":"Looks up record {i} in the inventory and returns its fields; use it before changing anything.","inputSchema":{{"type":"object","properties":{{"id":{{"type":"string","description":"The record id"}},"fields":{{"type":"array","items":{{"type":"string"}}}},"limit":{{"type":"integer","minimum":1,"maximum":100}}}},"required":["id"]}},"outputSchema":{{"type":"object","properties":{{"result":{{"type":"string"}}}}}},"annotations":{{"readOnlyHint":true,"openWorldHint":false}}}}"#
    );
    RawValue::from_string(json).unwrap_or_else(|_| std::process::exit(2))
}

fn listing(tools: &[Box<RawValue>]) -> Arc<Listing> {
    let mut l = Listing::default();
    l.tools = tools.to_vec();
    l.caps = BackendCaps { tools: true, ..Default::default() };
    Arc::new(l)
}

fn entries(names: &[ServerName], items: &[Vec<Box<RawValue>>], mode: &str, fresh: bool, kept: &[Arc<Listing>]) -> Vec<ServerEntry> {
    let yaml = format!("pins: {{file: /nonexistent/pins.yaml}}\nservers:\n  - {{name: s, url: 'http://x/mcp', pinning: {mode}}}\n");
    let config = parse_str(&yaml, &|_| None).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let rules = Arc::new(ServerRules::from_config(&config.servers[0]));
    names
        .iter()
        .enumerate()
        .map(|(i, n)| ServerEntry {
            name: n.clone(),
            prefix: format!("{n}_"),
            listing: Some(if fresh { listing(&items[i]) } else { kept[i].clone() }),
            rules: rules.clone(),
        })
        .collect()
}

/// Nanoseconds this thread has run on a CPU (Linux).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
}

fn measure(rounds: usize, mut once: impl FnMut() -> (f64, Option<f64>)) -> serde_json::Value {
    let (mut wall, mut cpu): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (w, c) = once();
        wall.push(w);
        cpu.extend(c);
    }
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    let median = |v: &[f64]| v.get(v.len() / 2).copied().map(round);
    serde_json::json!({"min_ms": round(wall[0]), "median_ms": median(&wall), "max_ms": round(wall[wall.len() - 1]), "cpu_median_ms": median(&cpu), "rounds": rounds})
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn main() {
    let args = Args::parse();
    let names: Vec<ServerName> = (0..args.servers).map(|i| ServerName::parse(&format!("s{i:03}")).unwrap_or_else(|_| std::process::exit(2))).collect();
    let items: Vec<Vec<Box<RawValue>>> = (0..args.servers).map(|s| (0..args.tools_per_server).map(|t| tool(s * args.tools_per_server + t)).collect()).collect();
    let kept: Vec<Arc<Listing>> = items.iter().map(|i| listing(i)).collect();

    // Approve everything once, as an operator would before enforcing.
    let mut pins = PinSet::default();
    let first = build(&entries(&names, &items, "enforce", false, &kept), &pins);
    let _ = pins.apply(&Change::Observe(first.pin_report.observations.clone()), "t");
    let _ = pins.apply(&Change::Approve { selection: Selection::All, hash: None, by: "bench".into() }, "t");
    let check = build(&entries(&names, &items, "enforce", false, &kept), &pins);
    let total = args.servers * args.tools_per_server;
    if check.tools.len() != total {
        eprintln!("expected {total} tools served after approval, got {}", check.tools.len());
        std::process::exit(1);
    }

    let timed = |mode: &'static str, fresh: bool, pins: &PinSet| {
        let servers = entries(&names, &items, mode, fresh, &kept);
        let cpu = thread_cpu_ns();
        let t = Instant::now();
        let c = build(&servers, pins);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let cpu_ms = cpu.zip(thread_cpu_ns()).map(|(a, b)| b.saturating_sub(a) as f64 / 1e6);
        assert_eq!(c.tools.len(), total);
        drop(c);
        (ms, cpu_ms)
    };
    let out = serde_json::json!({
        "tools": total,
        "servers": args.servers,
        "off": measure(args.rounds, || timed("off", true, &pins)),
        "enforce_new_listings": measure(args.rounds, || timed("enforce", true, &pins)),
        "enforce_listings_kept": measure(args.rounds, || timed("enforce", false, &pins)),
        "record_new_listings": measure(args.rounds, || timed("record", true, &pins)),
    });
    println!("{out}");
}
