//! `mcpgate demo`: the seed's Alice story on one machine, no external services. It starts a
//! development OpenID provider (token exchange included), a development secret store with
//! Vault's KV v2 API (or uses a real Vault with `--vault-addr`), three backends that report
//! the credential they received, and the gateway in front of them; then walks through what
//! each party sees. Everything listens on loopback; the IdP and the store are dev-only.

mod backend;
mod idp;
mod story;
mod vault;
mod walkthrough;

use std::process::ExitCode;
use std::time::Duration;

use mcpgate_gateway::Shared;
use mcpgate_gateway::config::parse_str;

use crate::cli::DemoArgs;

pub async fn run(args: DemoArgs) -> ExitCode {
    let world = match story::World::start(&args).await {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match parse_str(&world.gateway_yaml(&args.listen), &|_| None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let shared = match Shared::start(config.clone(), None) {
        Ok(s) => s,
        Err(errors) => {
            eprintln!("error: {}", errors.join("; "));
            return ExitCode::FAILURE;
        }
    };
    let listener = match mcpgate_gateway::listener::bind_tcp(&config.listen).await {
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
    let ok = walkthrough::run(&url, &world).await;
    if args.once {
        return if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    let token = world.idp.login("alice").unwrap_or_default();
    println!("\nThe gateway keeps serving at {url}. Connect a client as alice, for example:");
    println!("  npx @modelcontextprotocol/inspector --cli {url} --method tools/list --header \"Authorization: Bearer {token}\"");
    println!("(a development token from the demo's dev-only IdP at {}; valid for 1 hour)", world.idp.issuer());
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
