//! The cast of the demo: users and their roles, the secrets in the store, the three backends
//! and the gateway config that ties them together.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::backend::{self, DemoServer, DemoTool};
use super::idp::{self, DevIdp, GATEWAY_CLIENT, GATEWAY_SECRET};
use super::vault;
use crate::cli::DemoArgs;

pub const ALICE_PAT: &str = "ghp_alice0demo0personal0access0token00";
pub const ALICE_WEATHER_KEY: &str = "wk_alice_demo_api_key_7f3a";
pub const BOB_WEATHER_KEY: &str = "wk_bob_demo_api_key_91c2";
const STORE_TOKEN: &str = "demo-store-token";

pub struct World {
    pub idp: Arc<DevIdp>,
    vault_addr: String,
    vault_token: String,
    urls: BTreeMap<&'static str, String>,
}

fn users() -> BTreeMap<&'static str, Value> {
    BTreeMap::from([
        (
            "alice",
            json!({
                "codereview.local": {"roles": ["analyze_pr", "suggest_fix"]},
                "github.mcp.local": {"roles": ["list_repos"]},
                "weather.local": {"roles": ["get_forecast"]},
            }),
        ),
        (
            "bob",
            json!({
                "github.mcp.local": {"roles": ["list_repos"]},
                "weather.local": {"roles": ["get_forecast"]},
            }),
        ),
    ])
}

fn secrets() -> Vec<(&'static str, &'static str)> {
    vec![("alice/github.mcp.local", ALICE_PAT), ("alice/weather.local", ALICE_WEATHER_KEY), ("bob/weather.local", BOB_WEATHER_KEY)]
}

impl World {
    pub async fn start(args: &DemoArgs) -> Result<Self, String> {
        let audiences = vec!["codereview.local".to_owned(), "github.mcp.local".to_owned(), "weather.local".to_owned()];
        let idp = idp::start(users(), audiences).await.map_err(|e| format!("cannot start the dev IdP: {e}"))?;
        let (vault_addr, vault_token) = match (&args.vault_addr, &args.vault_token) {
            (Some(addr), Some(token)) => {
                seed_real_vault(addr, token).await?;
                (addr.trim_end_matches('/').to_owned(), token.clone())
            }
            _ => {
                let entries = secrets()
                    .into_iter()
                    .map(|(path, value)| (format!("secret/data/{path}"), BTreeMap::from([("token".to_owned(), value.to_owned())])))
                    .collect();
                (vault::start(STORE_TOKEN.to_owned(), entries).await.map_err(|e| format!("cannot start the dev store: {e}"))?, STORE_TOKEN.to_owned())
            }
        };
        let mut urls = BTreeMap::new();
        for s in servers() {
            let name = s.name;
            urls.insert(name, backend::start(s).await.map_err(|e| format!("cannot start demo backend {name}: {e}"))?);
        }
        Ok(Self { idp, vault_addr, vault_token, urls })
    }

    pub fn gateway_yaml(&self, listen: &str) -> String {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        format!(
            r#"listen: {listen}
auth:
  issuers: [{{issuer: {issuer}}}]
  audiences: [mcpgate]
credentials:
  vault: {{address: {vault}, auth: {{token: {{value: {vtoken}}}}}}}
  token_exchange: {{client_id: {client}, client_secret: {{value: {secret}}}}}
servers:
  - name: codereview
    url: {codereview}
    auth: {{client_ids: [codereview.local]}}
    credentials:
      - token_exchange: {{audience: codereview.local, require_tool_role: true}}
  - name: github
    url: {github}
    auth: {{client_ids: [github.mcp.local]}}
    credentials:
      - vault: {{path: "{{username}}/github.mcp.local"}}
      - token_exchange: {{audience: github.mcp.local}}
  - name: weather
    url: {weather}
    auth: {{client_ids: [weather.local]}}
    credentials:
      - vault: {{path: "{{username}}/weather.local", header: X-API-Key}}
"#,
            listen = q(listen),
            issuer = q(self.idp.issuer()),
            vault = q(&self.vault_addr),
            vtoken = q(&self.vault_token),
            client = q(GATEWAY_CLIENT),
            secret = q(GATEWAY_SECRET),
            codereview = q(&self.urls["codereview"]),
            github = q(&self.urls["github"]),
            weather = q(&self.urls["weather"]),
        )
    }
}

async fn seed_real_vault(addr: &str, token: &str) -> Result<(), String> {
    let client = reqwest::Client::builder().no_proxy().build().map_err(|e| e.to_string())?;
    for (path, value) in secrets() {
        let url = format!("{}/v1/secret/data/{path}", addr.trim_end_matches('/'));
        let resp = client
            .post(&url)
            .header("X-Vault-Token", token)
            .json(&json!({"data": {"token": value}}))
            .send()
            .await
            .map_err(|_| format!("cannot reach Vault at {addr}"))?;
        if !resp.status().is_success() {
            return Err(format!("Vault at {addr} refused writing secret/{path}: HTTP {}", resp.status()));
        }
    }
    Ok(())
}

/// What a backend saw in `Authorization` / `X-API-Key`, shown without revealing secrets.
fn received(headers: &HeaderMap) -> String {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return format!("X-API-Key {}", mask(key));
    }
    let Some(bearer) = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")) else {
        return "no credential".to_owned();
    };
    match jwt_claims(bearer) {
        Some(c) => format!(
            "a token with aud={} sub={} act={}",
            c["aud"].as_str().unwrap_or("?"),
            c["sub"].as_str().unwrap_or("?"),
            c["act"]["sub"].as_str().unwrap_or("-")
        ),
        None => format!("Bearer {}", mask(bearer)),
    }
}

fn jwt_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

pub fn mask(secret: &str) -> String {
    let shown: String = secret.chars().take(4).collect();
    format!("{shown}…({} chars)", secret.chars().count())
}

fn servers() -> Vec<Arc<DemoServer>> {
    let schema = |props: Value| json!({"type": "object", "properties": props});
    vec![
        DemoServer::new(
            "codereview",
            "Code review tools (OAuth: expects a token for codereview.local).",
            vec![
                DemoTool {
                    name: "analyze_pr",
                    description: "Summarise the risk of a pull request",
                    schema: schema(json!({"pr": {"type": "integer"}})),
                    run: |a, h| format!("PR #{}: low risk [codereview received {}]", a["pr"].as_i64().unwrap_or(0), received(h)),
                },
                DemoTool {
                    name: "suggest_fix",
                    description: "Suggest a fix for a review comment",
                    schema: schema(json!({"comment": {"type": "string"}})),
                    run: |_, h| format!("extract a function [codereview received {}]", received(h)),
                },
            ],
        ),
        DemoServer::new(
            "github",
            "Repository tools (expects a GitHub PAT).",
            vec![DemoTool {
                name: "list_repos",
                description: "List the caller's repositories",
                schema: schema(json!({})),
                run: |_, h| format!("mcpgate, infra, website [github received {}]", received(h)),
            }],
        ),
        DemoServer::new(
            "weather",
            "Weather forecasts (expects an API key).",
            vec![DemoTool {
                name: "get_forecast",
                description: "Forecast for a city",
                schema: schema(json!({"city": {"type": "string"}})),
                run: |a, h| format!("{}: 21°C [weather received {}]", a["city"].as_str().unwrap_or("?"), received(h)),
            }],
        ),
    ]
}
