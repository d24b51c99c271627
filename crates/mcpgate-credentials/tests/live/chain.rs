//! The seed's acceptance story end to end on real OpenBao and a real OpenID provider,
//! loaded from `tests/config/alice.yaml`: each backend gets its own credential, and no
//! backend ever receives the caller's own token.

use mcpgate_credentials::{CredentialsConfig, DiscoverySourceConfig, Resolver, ServerCredentials, ServerInfo, SourceConfig};
use serde::Deserialize;
use serde_json::json;

use crate::support::{Bao, Idp, caller, header, http, jwt_claims};

/// The keys the gateway's server entries use for credentials (they carry more keys there).
#[derive(Deserialize)]
struct Example {
    credentials: CredentialsConfig,
    servers: Vec<ExampleServer>,
}

#[derive(Deserialize)]
struct ExampleServer {
    name: String,
    url: String,
    #[serde(default)]
    credentials: Vec<SourceConfig>,
    #[serde(default)]
    discovery_credentials: Option<DiscoverySourceConfig>,
}

const ALICE_YAML: &str = include_str!("../config/alice.yaml");

/// The example with its secrets and addresses pointed at the test components.
fn example(vault_addr: &str) -> (CredentialsConfig, Vec<ServerInfo>) {
    let yaml = ALICE_YAML
        .replace("https://vault.example:8200", vault_addr)
        .replace("{env: MCPGATE_VAULT_TOKEN}", "{value: root}")
        .replace("{env: MCPGATE_EXCHANGE_SECRET}", "{value: mcpgate-secret}")
        .replace("{env: MCPGATE_WEATHER_DISCOVERY_KEY}", "{value: weather-discovery-key}");
    let example: Example = yaml_serde::from_str(&yaml).expect("the example parses");
    let servers = example
        .servers
        .into_iter()
        .map(|s| ServerInfo::new(s.name, Some(&s.url), ServerCredentials { credentials: s.credentials, discovery: s.discovery_credentials }))
        .collect();
    (example.credentials, servers)
}

#[test]
fn the_alice_example_parses_and_validates() {
    let (cfg, servers) = example("https://vault.example:8200");
    assert!(cfg.validate().is_ok());
    assert_eq!(servers.len(), 3);
    assert_eq!(servers[1].credentials.credentials.iter().map(SourceConfig::kind).collect::<Vec<_>>(), ["vault", "token_exchange"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_story_each_backend_gets_its_own_credential() {
    let (Some(bao), Some(idp)) = (Bao::start().await, Idp::start(&[]).await) else { return };
    let pat = "ghp_aliceAAAAbbbbCCCCddddEEEEffffGGGGhhhh";
    bao.put_secret("alice/github.mcp.local", json!({ "token": pat })).await;
    bao.put_secret("alice/weather.local", json!({ "token": "wk-alice-42" })).await;
    let (cfg, servers) = example(&bao.addr);
    let r = Resolver::new(&cfg, &servers, http()).expect("the example builds");
    let alice = idp.identity("alice").await;
    let original = alice.token().expose().to_owned();

    let codereview = r.resolve("codereview", &caller(&alice), Some("analyze_pr")).await.expect("codereview");
    let exchanged = header(&codereview, "authorization");
    assert_eq!(jwt_claims(exchanged.strip_prefix("Bearer ").expect("bearer"))["aud"], "codereview.local");

    let github = r.resolve("github", &caller(&alice), Some("list_repos")).await.expect("github");
    assert_eq!((github.source, header(&github, "authorization")), ("vault", format!("Bearer {pat}")));

    let weather = r.resolve("weather", &caller(&alice), Some("get_forecast")).await.expect("weather");
    assert_eq!(header(&weather, "x-api-key"), "wk-alice-42");
    assert!(weather.headers.iter().all(|(n, _)| n != "authorization"));

    for resolved in [&codereview, &github, &weather] {
        assert!(resolved.headers.iter().all(|(_, v)| !v.to_str().expect("ascii").contains(&original)), "no passthrough");
    }
    let discovery = r.discovery("weather").await.expect("discovery").expect("configured");
    assert_eq!(header(&discovery, "x-api-key"), "weather-discovery-key");
    assert!(r.discovery("github").await.expect("ok").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_stored_pat_github_falls_back_to_token_exchange() {
    let (Some(bao), Some(idp)) = (Bao::start().await, Idp::start(&[]).await) else { return };
    let (cfg, servers) = example(&bao.addr);
    let r = Resolver::new(&cfg, &servers, http()).expect("the example builds");
    let bob = idp.identity("bob").await;
    let github = r.resolve("github", &caller(&bob), Some("list_repos")).await.expect("exchanged");
    assert_eq!(github.source, "token_exchange");
    let claims = jwt_claims(header(&github, "authorization").strip_prefix("Bearer ").expect("bearer"));
    assert_eq!((claims["aud"].as_str(), claims["sub"].as_str()), (Some("github.mcp.local"), Some("user-bob")));
    // weather needs a stored key (on_missing: fail).
    let err = r.resolve("weather", &caller(&bob), Some("get_forecast")).await.expect_err("no key");
    assert_eq!(err.to_string(), "server \"weather\": vault: no credential is stored for this caller");
    let stats = r.stats();
    assert_eq!((stats.vault_reads, stats.exchanges), (2, 1), "{stats:?}");
}
