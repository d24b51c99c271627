//! The demo's scripted clients: alice and bob, step by step, with what each party sees.

use serde_json::{Value, json};

use super::story::{ALICE_PAT, ALICE_WEATHER_KEY, World, mask};

struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
    session: String,
    next: u64,
}

impl Client {
    async fn connect(url: &str, token: String) -> Option<Self> {
        let http = reqwest::Client::builder().no_proxy().build().ok()?;
        let body = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcpgate-demo","version":"1"}}});
        let resp = http.post(url).bearer_auth(&token).header("accept", "application/json, text/event-stream").json(&body).send().await.ok()?;
        let session = resp.headers().get("mcp-session-id")?.to_str().ok()?.to_owned();
        let mut c = Self { http, url: url.to_owned(), token, session, next: 1 };
        c.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"})).await;
        Some(c)
    }

    async fn send(&mut self, body: Value) -> Option<Value> {
        let resp = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body)
            .send()
            .await
            .ok()?;
        resp.json().await.ok()
    }

    async fn call(&mut self, method: &str, params: Value) -> Option<Value> {
        self.next += 1;
        self.send(json!({"jsonrpc":"2.0","id":self.next,"method":method,"params":params})).await
    }

    async fn tools(&mut self) -> Vec<String> {
        let list = self.call("tools/list", json!({})).await.unwrap_or_default();
        list["result"]["tools"].as_array().map(|t| t.iter().filter_map(|t| t["name"].as_str().map(str::to_owned)).collect()).unwrap_or_default()
    }

    async fn tool(&mut self, name: &str, args: Value) -> Result<String, String> {
        let reply = self.call("tools/call", json!({"name": name, "arguments": args})).await.unwrap_or_default();
        match reply["result"]["content"][0]["text"].as_str() {
            Some(t) => Ok(t.to_owned()),
            None => Err(reply["error"]["message"].as_str().unwrap_or("no answer").to_owned()),
        }
    }
}

/// Runs the story; true when every party saw exactly what it should.
pub async fn run(url: &str, world: &World) -> bool {
    let mut ok = true;
    let mut check = |cond: bool, what: &str| {
        if !cond {
            println!("     !! unexpected: {what}");
            ok = false;
        }
    };
    println!("mcpgate demo: the gateway at {url}");
    println!("(dev-only IdP {} and secret store on loopback; never use them for real)\n", world.idp.issuer());

    let Some(alice_token) = world.idp.login("alice") else { return false };
    let Some(mut alice) = Client::connect(url, alice_token.clone()).await else {
        println!("alice could not connect");
        return false;
    };
    let tools = alice.tools().await;
    println!("1. alice signs in (her token: aud=mcpgate) and lists tools: she sees exactly her {} tools", tools.len());
    for t in &tools {
        println!("     {t}");
    }
    check(tools == ["codereview_analyze_pr", "codereview_suggest_fix", "github_list_repos", "weather_get_forecast"], "alice's tool list");

    println!("\n2. Each call carries a credential for that backend only, never alice's token:");
    for (tool, args, expect) in [
        ("codereview_analyze_pr", json!({"pr": 42}), "aud=codereview.local sub=user-alice act=mcpgate".to_owned()),
        ("codereview_suggest_fix", json!({"comment": "long function"}), "aud=codereview.local".to_owned()),
        ("github_list_repos", json!({}), format!("Bearer {}", mask(ALICE_PAT))),
        ("weather_get_forecast", json!({"city": "Lisbon"}), format!("X-API-Key {}", mask(ALICE_WEATHER_KEY))),
    ] {
        let source = if tool.starts_with("codereview") { "token exchange (RFC 8693)" } else { "Vault" };
        match alice.tool(tool, args).await {
            Ok(text) => {
                println!("     {tool} via {source}\n       -> {text}");
                check(text.contains(&expect), &format!("{tool} should receive {expect}"));
                check(!text.contains("aud=mcpgate"), "a backend received alice's own token");
            }
            Err(e) => {
                println!("     {tool} -> error: {e}");
                check(false, tool);
            }
        }
    }

    let Some(bob_token) = world.idp.login("bob") else { return false };
    let Some(mut bob) = Client::connect(url, bob_token).await else { return false };
    let tools = bob.tools().await;
    println!("\n3. bob lists tools: {}", tools.join(", "));
    check(tools == ["github_list_repos", "weather_get_forecast"], "bob's tool list");
    match bob.tool("github_list_repos", json!({})).await {
        Ok(text) => {
            println!("     github_list_repos: bob has no PAT in the store, so the gateway falls back to token exchange\n       -> {text}");
            check(text.contains("aud=github.mcp.local sub=user-bob"), "bob's fallback credential");
        }
        Err(e) => check(false, &format!("bob's github call failed: {e}")),
    }
    let denied = bob.tool("codereview_analyze_pr", json!({"pr": 1})).await;
    println!("     codereview_analyze_pr (not bob's) -> error: {}", denied.clone().err().unwrap_or_default());
    check(denied == Err("Unknown tool: codereview_analyze_pr".to_owned()), "bob's denied call");

    println!("\n{}", if ok { "demo OK" } else { "demo FAILED" });
    ok
}
