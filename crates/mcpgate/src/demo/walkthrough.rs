//! The demo's scripted client: what a user of the gateway sees, step by step.

use serde_json::{Value, json};

/// Lists and calls every demo tool through the gateway; true when all behaved as expected.
pub async fn run(url: &str) -> bool {
    let client = reqwest::Client::builder().no_proxy().build().unwrap_or_default();
    println!("mcpgate demo: gateway at {url}\n");
    let Some(session) = initialize(&client, url).await else {
        println!("  initialize failed");
        return false;
    };
    let Some(list) = call(&client, url, &session, 2, "tools/list", json!({})).await else { return false };
    let names: Vec<String> = list["result"]["tools"].as_array().map(|t| t.iter().filter_map(|t| t["name"].as_str().map(str::to_owned)).collect()).unwrap_or_default();
    println!("1. tools/list through the gateway shows {} tools from 3 backends:", names.len());
    for n in &names {
        println!("     {n}");
    }
    let expected = ["codereview_analyze_pr", "codereview_suggest_fix", "github_list_repos", "weather_get_forecast"];
    let mut ok = names == expected;
    println!("\n2. Each call is routed to the backend that owns the tool, with the prefix removed:");
    for (i, (tool, args)) in [
        ("codereview_analyze_pr", json!({"pr": 42})),
        ("codereview_suggest_fix", json!({"comment": "long function"})),
        ("github_list_repos", json!({})),
        ("weather_get_forecast", json!({"city": "Lisbon"})),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = call(&client, url, &session, 10 + i as u64, "tools/call", json!({"name": tool, "arguments": args})).await;
        let text = reply.as_ref().and_then(|r| r["result"]["content"][0]["text"].as_str().map(str::to_owned));
        match text {
            Some(t) => println!("     {tool} -> {t}"),
            None => {
                println!("     {tool} -> FAILED: {reply:?}");
                ok = false;
            }
        }
    }
    println!("\n3. An unknown tool gets a clear error:");
    let reply = call(&client, url, &session, 20, "tools/call", json!({"name": "github_delete_repo", "arguments": {}})).await;
    let msg = reply.as_ref().and_then(|r| r["error"]["message"].as_str().map(str::to_owned)).unwrap_or_default();
    println!("     github_delete_repo -> error: {msg}");
    ok &= msg.contains("Unknown tool");
    println!("\n{}", if ok { "demo OK" } else { "demo FAILED" });
    ok
}

async fn initialize(client: &reqwest::Client, url: &str) -> Option<String> {
    let body = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcpgate-demo","version":"1"}}});
    let resp = client.post(url).header("accept", "application/json, text/event-stream").json(&body).send().await.ok()?;
    let sid = resp.headers().get("mcp-session-id")?.to_str().ok()?.to_owned();
    let _ = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &sid)
        .json(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .send()
        .await;
    Some(sid)
}

async fn call(client: &reqwest::Client, url: &str, session: &str, id: u64, method: &str, params: Value) -> Option<Value> {
    let resp = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}))
        .send()
        .await
        .ok()?;
    resp.json().await.ok()
}
