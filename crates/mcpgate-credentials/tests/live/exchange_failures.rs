//! Token exchange that cannot give a usable token fails the call with an error naming the
//! server and `token_exchange`: IdP down, audience refused, wrong `aud`, bad client secret,
//! and a tool outside the exchanged token's roles.

use mcpgate_credentials::CredentialError;
use serde_json::json;

use crate::support::{Idp, caller, resolver};

const CODEREVIEW: (&str, &str, &str) = ("codereview", "http://codereview.local/mcp", "credentials: [{token_exchange: {require_tool_role: true}}]");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_down_fails_closed_and_is_not_cached() {
    let Some(idp) = Idp::start(&["--fail-mode", "down"]).await else { return };
    let alice = idp.identity("alice").await;
    let r = resolver(&idp.exchange_yaml(""), &[CODEREVIEW]);
    let err = r.resolve("codereview", &caller(&alice), Some("analyze_pr")).await.expect_err("down");
    assert_eq!(err.to_string(), "server \"codereview\": token_exchange: the IdP is temporarily unavailable (HTTP 503 temporarily_unavailable)");
    assert_eq!(err.reason_code(), "exchange_failed");
    idp.set_mode(json!({ "token_exchange": "ok" })).await;
    r.resolve("codereview", &caller(&alice), Some("analyze_pr")).await.expect("recovered without waiting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_refusing_the_audience_fails_the_call() {
    let Some(idp) = Idp::start(&["--fail-mode", "refuse"]).await else { return };
    let alice = idp.identity("alice").await;
    let r = resolver(&idp.exchange_yaml(""), &[CODEREVIEW]);
    let err = r.resolve("codereview", &caller(&alice), Some("analyze_pr")).await.expect_err("refused");
    assert!(err.to_string().ends_with("the IdP refused the requested audience or resource (HTTP 400 invalid_target)"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audience_outside_the_idps_allow_list_is_refused() {
    let Some(idp) = Idp::start(&[]).await else { return };
    let alice = idp.identity("alice").await;
    let r = resolver(&idp.exchange_yaml(""), &[("rogue", "http://rogue.local/mcp", "credentials: [{token_exchange: {}}]")]);
    let err = r.resolve("rogue", &caller(&alice), None).await.expect_err("not allowed");
    assert!(matches!(&err, CredentialError::Exchange { server, reason } if server == "rogue" && reason.contains("invalid_target")), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_with_the_wrong_audience_is_rejected_and_not_used() {
    let Some(idp) = Idp::start(&["--fail-mode", "wrong_aud"]).await else { return };
    let alice = idp.identity("alice").await;
    let r = resolver(&idp.exchange_yaml(""), &[CODEREVIEW]);
    let err = r.resolve("codereview", &caller(&alice), Some("analyze_pr")).await.expect_err("wrong aud");
    assert_eq!(err, CredentialError::ExchangedTokenRejected { server: "codereview".into(), reason: "its aud is not \"codereview.local\"".into() });
    // Not cached: every call asks again (and is refused again).
    r.resolve("codereview", &caller(&alice), Some("analyze_pr")).await.expect_err("still wrong");
    assert_eq!(idp.exchanges("user-alice", "codereview.local").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_of_the_gateways_audiences_is_rejected() {
    // The IdP mints aud=github.mcp.local, which the gateway also exchanges for: it must
    // still be refused for codereview (exact audience, not "one of ours").
    let Some(idp) = Idp::start(&["--fail-mode", "wrong_aud"]).await else { return };
    idp.set_mode(json!({ "wrong_aud": "github.mcp.local" })).await;
    let alice = idp.identity("alice").await;
    let github = ("github", "http://github.mcp.local/mcp", "credentials: [{token_exchange: {}}]");
    let r = resolver(&idp.exchange_yaml(""), &[CODEREVIEW, github]);
    let err = r.resolve("codereview", &caller(&alice), Some("analyze_pr")).await.expect_err("wrong aud");
    assert_eq!(err.reason_code(), "exchanged_token_rejected");
    assert!(err.to_string().contains("its aud is not exactly \"codereview.local\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_fails_without_showing_it() {
    let Some(idp) = Idp::start(&[]).await else { return };
    let alice = idp.identity("alice").await;
    let yaml = "token_exchange: {client_id: mcpgate, client_secret: {value: wrong-secret-5150}}";
    let r = resolver(yaml, &[CODEREVIEW]);
    let err = r.resolve("codereview", &caller(&alice), Some("analyze_pr")).await.expect_err("bad secret");
    let text = format!("{err} {err:?}");
    assert!(text.contains("refused the gateway's client credentials (HTTP 401 invalid_client)"), "{text}");
    assert!(!text.contains("wrong-secret-5150"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_tool_role_refuses_a_tool_outside_the_exchanged_roles() {
    let Some(idp) = Idp::start(&[]).await else { return };
    let (alice, bob) = (idp.identity("alice").await, idp.identity("bob").await);
    let r = resolver(&idp.exchange_yaml(""), &[CODEREVIEW]);
    r.resolve("codereview", &caller(&alice), Some("suggest_fix")).await.expect("alice holds suggest_fix");
    let err = r.resolve("codereview", &caller(&alice), Some("delete_repo")).await.expect_err("no role");
    assert_eq!(err, CredentialError::ToolNotPermitted { server: "codereview".into(), tool: "delete_repo".into() });
    let err = r.resolve("codereview", &caller(&bob), Some("analyze_pr")).await.expect_err("bob has no roles there");
    assert_eq!(err.reason_code(), "tool_not_permitted");
    // One exchange per user: the role check runs on the cached token.
    assert_eq!(idp.exchanges("user-alice", "codereview.local").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_tool_never_falls_through_to_the_next_source() {
    let Some(idp) = Idp::start(&[]).await else { return };
    let alice = idp.identity("alice").await;
    let server = "credentials: [{token_exchange: {require_tool_role: true, on_error: next}}, {static: {secret: {value: k}}}]";
    let r = resolver(&idp.exchange_yaml(""), &[("codereview", "http://codereview.local/mcp", server)]);
    let err = r.resolve("codereview", &caller(&alice), Some("delete_repo")).await.expect_err("refused");
    assert_eq!(err.reason_code(), "tool_not_permitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_failure_falls_through_when_on_error_is_next() {
    let Some(idp) = Idp::start(&["--fail-mode", "down"]).await else { return };
    let alice = idp.identity("alice").await;
    let server = "credentials: [{token_exchange: {on_error: next}}, {static: {secret: {value: service-key}, header: X-API-Key}}]";
    let r = resolver(&idp.exchange_yaml(""), &[("codereview", "http://codereview.local/mcp", server)]);
    let resolved = r.resolve("codereview", &caller(&alice), None).await.expect("fell through");
    assert_eq!(resolved.source, "static");
}
