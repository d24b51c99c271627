//! `mcpgate demo`: the gateway in front of three built-in backends, with a walkthrough.

mod backend;
mod walkthrough;

use std::process::ExitCode;
use std::time::Duration;

use mcpgate_gateway::Shared;
use mcpgate_gateway::config::parse_str;
use serde_json::{Value, json};

use crate::cli::DemoArgs;
use backend::{DemoServer, DemoTool};

fn text(v: &Value, k: &str, d: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or(d).to_owned()
}

fn servers() -> Vec<std::sync::Arc<DemoServer>> {
    vec![
        DemoServer::new("codereview", "Code review tools for pull requests.", vec![
            DemoTool {
                name: "analyze_pr",
                description: "Summarise the risk of a pull request",
                schema: json!({"type":"object","properties":{"pr":{"type":"integer"}},"required":["pr"]}),
                run: |a| format!("PR #{}: 3 files changed, low risk", a.get("pr").and_then(Value::as_i64).unwrap_or(0)),
            },
            DemoTool {
                name: "suggest_fix",
                description: "Suggest a fix for a review comment",
                schema: json!({"type":"object","properties":{"comment":{"type":"string"}}}),
                run: |a| format!("Suggested fix for {:?}: extract a function", text(a, "comment", "")),
            },
        ]),
        DemoServer::new("github", "Repository tools.", vec![DemoTool {
            name: "list_repos",
            description: "List the caller's repositories",
            schema: json!({"type":"object","properties":{}}),
            run: |_| "mcpgate, infra, website".to_owned(),
        }]),
        DemoServer::new("weather", "Weather forecasts.", vec![DemoTool {
            name: "get_forecast",
            description: "Forecast for a city",
            schema: json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}),
            run: |a| format!("{}: 21°C, light wind", text(a, "city", "somewhere")),
        }]),
    ]
}

pub async fn run(args: DemoArgs) -> ExitCode {
    let mut yaml = format!("listen: {}\nservers:\n", serde_json::to_string(&args.listen).unwrap_or_default());
    for s in servers() {
        let name = s.name;
        match backend::start(s).await {
            Ok(url) => yaml.push_str(&format!("  - {{name: {name}, url: \"{url}\"}}\n")),
            Err(e) => {
                eprintln!("error: cannot start demo backend {name}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let config = match parse_str(&yaml, &|_| None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let shared = match Shared::start(config.clone()) {
        Ok(s) => s,
        Err(errors) => {
            eprintln!("error: {}", errors.join("; "));
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e} (fix: pass --listen 127.0.0.1:PORT)", config.listen);
            return ExitCode::FAILURE;
        }
    };
    let url = format!("http://{}{}", listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), config.mcp_path);
    let app = mcpgate_gateway::front::router(shared.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    if !wait_ready(&shared, 4).await {
        eprintln!("error: the demo backends did not become ready");
        return ExitCode::FAILURE;
    }
    let ok = walkthrough::run(&url).await;
    if args.once {
        return if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    println!("\nThe gateway keeps serving at {url}. Connect a client, for example:");
    println!("  npx @modelcontextprotocol/inspector --cli {url} --method tools/list");
    println!("  (or add {url} as a Streamable HTTP server in your MCP client)");
    println!("Press Ctrl-C to stop.");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
        _ = server => ExitCode::FAILURE,
    }
}

async fn wait_ready(shared: &Shared, tools: usize) -> bool {
    for _ in 0..100 {
        if shared.catalog.load().tools.len() >= tools {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
