//! RFC 8693 token exchange against a real OpenID provider: the backend gets a token whose
//! `aud` is exactly its audience and whose `sub` is the caller's; tokens are cached, and
//! concurrent first calls make one IdP request.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::support::{Idp, caller, header, jwt_claims, resolver};

const CODEREVIEW: (&str, &str, &str) = ("codereview", "http://codereview.local/mcp", "credentials: [{token_exchange: {require_tool_role: true}}]");
const GITHUB: (&str, &str, &str) = ("github", "http://github.mcp.local/mcp", "credentials: [{token_exchange: {scope: repo}}]");

fn bearer(resolved: &mcpgate_credentials::Resolved) -> String {
    header(resolved, "authorization").strip_prefix("Bearer ").expect("bearer").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_gets_a_token_for_exactly_its_audience_and_the_callers_subject() {
    let Some(idp) = Idp::start(&[]).await else { return };
    let alice = idp.identity("alice").await;
    let r = resolver(&idp.exchange_yaml(""), &[CODEREVIEW]);
    let resolved = r.resolve("codereview", &caller(&alice), Some("analyze_pr")).await.expect("exchanged");
    assert_eq!(resolved.source, "token_exchange");
    let token = bearer(&resolved);
    assert_ne!(token, alice.token().expose(), "the caller's own token never reaches the backend");
    let claims = jwt_claims(&token);
    assert_eq!(claims["aud"], "codereview.local");
    assert_eq!(claims["sub"], "user-alice");
    assert_eq!(claims["act"]["sub"], "mcpgate");
    assert_eq!(claims["resource_access"], json!({ "codereview.local": { "roles": ["analyze_pr", "suggest_fix"] } }));
    assert!(resolved.expires_at.is_some());
    assert!(resolved.masked.starts_with("eyJ") && !resolved.masked.contains(&token[4..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanged_tokens_are_cached_per_user_and_audience() {
    let Some(idp) = Idp::start(&[]).await else { return };
    let (alice, bob) = (idp.identity("alice").await, idp.identity("bob").await);
    let r = resolver(&idp.exchange_yaml(""), &[CODEREVIEW, GITHUB]);
    let a1 = r.resolve("github", &caller(&alice), Some("list_repos")).await.expect("alice github");
    let a2 = r.resolve("github", &caller(&alice), Some("list_repos")).await.expect("alice github again");
    let b = r.resolve("github", &caller(&bob), Some("list_repos")).await.expect("bob github");
    let c = r.resolve("codereview", &caller(&alice), Some("suggest_fix")).await.expect("alice codereview");
    assert_eq!(a1.fingerprint, a2.fingerprint);
    assert_ne!(a1.fingerprint, b.fingerprint);
    assert_ne!(a1.fingerprint, c.fingerprint);
    assert_eq!(jwt_claims(&bearer(&b))["sub"], "user-bob");
    assert_eq!(jwt_claims(&bearer(&a1))["scope"], "repo");
    assert_eq!(idp.exchanges("user-alice", "github.mcp.local").await, 1);
    assert_eq!(idp.exchanges("user-bob", "github.mcp.local").await, 1);
    assert_eq!(idp.exchanges("user-alice", "codereview.local").await, 1);
    let stats = r.stats();
    assert_eq!((stats.exchanges, stats.exchange_cache_hits), (3, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_first_calls_make_one_idp_request() {
    let Some(idp) = Idp::start(&[]).await else { return };
    idp.set_mode(json!({ "delay_ms": 200 })).await;
    let alice = Arc::new(idp.identity("alice").await);
    let r = resolver(&idp.exchange_yaml(""), &[CODEREVIEW]);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (r, alice) = (r.clone(), alice.clone());
        tasks.push(tokio::spawn(async move { r.resolve("codereview", &caller(&alice), Some("analyze_pr")).await.map(|c| c.fingerprint) }));
    }
    let mut fingerprints = Vec::new();
    for t in tasks {
        fingerprints.push(t.await.expect("task").expect("exchanged"));
    }
    fingerprints.dedup();
    assert_eq!(fingerprints.len(), 1, "everyone got the same token");
    assert_eq!(idp.exchanges("user-alice", "codereview.local").await, 1);
    assert_eq!(idp.stats().await["token_requests"]["urn:ietf:params:oauth:grant-type:token-exchange"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchanged_token_is_replaced_shortly_before_it_expires() {
    let Some(idp) = Idp::start(&["--exchange-ttl", "3"]).await else { return };
    let alice = idp.identity("alice").await;
    let r = resolver(&idp.exchange_yaml("  refresh_before: 1s\n"), &[CODEREVIEW]);
    let first = r.resolve("codereview", &caller(&alice), Some("analyze_pr")).await.expect("first");
    let cached = r.resolve("codereview", &caller(&alice), Some("analyze_pr")).await.expect("cached");
    assert_eq!(first.fingerprint, cached.fingerprint);
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let fresh = r.resolve("codereview", &caller(&alice), Some("analyze_pr")).await.expect("fresh");
    assert_ne!(first.fingerprint, fresh.fingerprint);
    assert!(fresh.expires_at > first.expires_at);
    assert_eq!(idp.exchanges("user-alice", "codereview.local").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_endpoint_and_jwks_need_no_discovery_and_post_auth_works() {
    let Some(idp) = Idp::start(&[]).await else { return };
    let alice = idp.identity("alice").await;
    let extra =
        format!("  token_endpoint: '{}'\n  jwks_uri: '{}'\n  issuer: '{}'\n  auth_method: client_secret_post\n", idp.token_endpoint, idp.jwks_uri, idp.issuer);
    let r = resolver(&idp.exchange_yaml(&extra), &[CODEREVIEW]);
    idp.reset_stats().await;
    r.resolve("codereview", &caller(&alice), Some("analyze_pr")).await.expect("exchanged");
    let stats = idp.stats().await;
    assert_eq!(stats["discovery_fetches"], 0, "{stats}");
    assert_eq!(stats["jwks_fetches"], 1, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_signed_with_a_rotated_key_still_validate() {
    let Some(idp) = Idp::start(&[]).await else { return };
    let alice = idp.identity("alice").await;
    let r = resolver(&idp.exchange_yaml("  jwks_refresh_min_interval: 500ms\n"), &[CODEREVIEW, GITHUB]);
    r.resolve("codereview", &caller(&alice), Some("analyze_pr")).await.expect("before rotation");
    idp.rotate_keys(false).await;
    // Key fetches on an unknown kid are rate-limited (here to one per 500 ms).
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let after = r.resolve("github", &caller(&alice), None).await.expect("after rotation");
    assert_eq!(jwt_claims(&bearer(&after))["aud"], "github.mcp.local");
}
