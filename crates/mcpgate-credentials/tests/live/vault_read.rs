//! Reading per-user secrets from Vault with token auth: the header shapes, what a missing
//! entry does, and that an unreachable or refusing Vault fails the call naming the server.

use mcpgate_credentials::CredentialError;
use serde_json::json;

use crate::support::{Bao, FakeCaller, header, resolver, try_resolver};

fn vault_yaml(bao: &Bao, token: &str) -> String {
    format!("vault: {{address: '{}', auth: {{token: {{value: '{token}'}}}}}}", bao.addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_token_auth_reads_the_users_pat_into_a_bearer_header() {
    let Some(bao) = Bao::start().await else { return };
    let pat = "ghp_0123456789abcdefghijklmnopqrstuvwxyz";
    bao.put_secret("alice/github.mcp.local", json!({ "token": pat })).await;
    let r = resolver(&vault_yaml(&bao, "root"), &[("github", "http://github.mcp.local/mcp", "credentials: [{vault: {}}]")]);
    let alice = FakeCaller::named("alice");
    let resolved = r.resolve("github", &alice.caller(), Some("list_repos")).await.expect("alice's PAT");
    assert_eq!(resolved.source, "vault");
    assert_eq!(header(&resolved, "authorization"), format!("Bearer {pat}"));
    assert!(resolved.headers[0].1.is_sensitive());
    assert_eq!(resolved.masked, "ghp_…(40 chars)");
    assert_eq!(r.stats().vault_reads, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_api_key_goes_into_the_configured_x_api_key_header() {
    let Some(bao) = Bao::start().await else { return };
    bao.put_secret("alice/weather.local", json!({ "api_key": "wk-alice-123" })).await;
    let server = "credentials: [{vault: {field: api_key, header: X-API-Key}}]";
    let r = resolver(&vault_yaml(&bao, "root"), &[("weather", "https://weather.local/mcp", server)]);
    let alice = FakeCaller::named("alice");
    let resolved = r.resolve("weather", &alice.caller(), Some("get_forecast")).await.expect("key");
    assert_eq!(resolved.headers.len(), 1);
    assert_eq!(header(&resolved, "x-api-key"), "wk-alice-123");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_vault_entry_falls_through_to_the_next_source() {
    let Some(bao) = Bao::start().await else { return };
    let server = "credentials: [{vault: {}}, {static: {secret: {value: shared-fallback-key}, header: X-API-Key}}]";
    let r = resolver(&vault_yaml(&bao, "root"), &[("github", "http://github.mcp.local/mcp", server)]);
    let bob = FakeCaller::named("bob");
    let resolved = r.resolve("github", &bob.caller(), None).await.expect("fallback");
    assert_eq!(resolved.source, "static");
    assert_eq!(header(&resolved, "x-api-key"), "shared-fallback-key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_vault_entry_fails_when_on_missing_is_fail() {
    let Some(bao) = Bao::start().await else { return };
    let server = "credentials: [{vault: {on_missing: fail}}]";
    let r = resolver(&vault_yaml(&bao, "root"), &[("github", "http://github.mcp.local/mcp", server)]);
    let err = r.resolve("github", &FakeCaller::named("bob").caller(), None).await.expect_err("no entry");
    assert_eq!(err, CredentialError::Missing { server: "github".into(), via: "vault" });
    assert_eq!(err.to_string(), "server \"github\": vault: no credential is stored for this caller");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_with_only_a_missing_entry_ends_in_no_credential() {
    let Some(bao) = Bao::start().await else { return };
    let r = resolver(&vault_yaml(&bao, "root"), &[("github", "http://github.mcp.local/mcp", "credentials: [{vault: {}}]")]);
    let err = r.resolve("github", &FakeCaller::named("bob").caller(), None).await.expect_err("nothing");
    assert_eq!(err.reason_code(), "no_credential");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_down_fails_closed_naming_the_server_and_vault() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let creds = format!("vault: {{address: 'http://127.0.0.1:{port}', timeout: 2s, auth: {{token: {{value: root}}}}}}");
    let server = "credentials: [{vault: {}}, {static: {secret: {value: must-not-be-used}}}]";
    let r = resolver(&creds, &[("github", "http://github.mcp.local/mcp", server)]);
    let err = r.resolve("github", &FakeCaller::named("alice").caller(), None).await.expect_err("down");
    let CredentialError::Vault { server, reason } = &err else { panic!("a vault error, got {err:?}") };
    assert_eq!(server, "github");
    assert!(reason.contains("connection failed"), "{reason}");
    assert!(err.to_string().starts_with("server \"github\": vault: "), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_403_fails_closed_and_never_shows_the_token() {
    let Some(bao) = Bao::start().await else { return };
    bao.put_secret("alice/github.mcp.local", json!({ "token": "ghp_x" })).await;
    // A valid token whose policy cannot read the secret.
    let token = bao.create_token(json!({ "policies": ["default"], "id": "known-gateway-token-4711" })).await;
    let r = resolver(&vault_yaml(&bao, &token), &[("github", "http://github.mcp.local/mcp", "credentials: [{vault: {}}]")]);
    let err = r.resolve("github", &FakeCaller::named("alice").caller(), None).await.expect_err("403");
    assert!(matches!(&err, CredentialError::Vault { server, reason } if server == "github" && reason.contains("HTTP 403")), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("known-gateway-token-4711"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_failure_falls_through_only_when_on_error_is_next() {
    let Some(bao) = Bao::start().await else { return };
    let server = "credentials: [{vault: {on_error: next}}, {static: {secret: {value: fallback-key}}}]";
    let r = resolver(&vault_yaml(&bao, "not-a-valid-token"), &[("github", "http://github.mcp.local/mcp", server)]);
    let resolved = r.resolve("github", &FakeCaller::named("alice").caller(), None).await.expect("fell through");
    assert_eq!(resolved.source, "static");
    assert_eq!(r.stats().fall_throughs, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_without_the_configured_field_is_an_error_not_a_miss() {
    let Some(bao) = Bao::start().await else { return };
    bao.put_secret("alice/github.mcp.local", json!({ "pat": "ghp_x" })).await;
    let r = resolver(&vault_yaml(&bao, "root"), &[("github", "http://github.mcp.local/mcp", "credentials: [{vault: {}}]")]);
    let err = r.resolve("github", &FakeCaller::named("alice").caller(), None).await.expect_err("no field");
    assert!(err.to_string().contains("has no field \"token\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_mount_and_path_template_address_the_secret() {
    let Some(bao) = Bao::start().await else { return };
    bao.ok("POST", "sys/mounts/kv-team", Some(json!({ "type": "kv", "options": { "version": "2" } }))).await;
    let (status, _) = bao.api("POST", "kv-team/data/mcp/github/alice", Some(json!({ "data": { "token": "team-pat" } }))).await;
    assert_eq!(status, 200);
    let server = "credentials: [{vault: {mount: kv-team, path: 'mcp/{server}/{username}'}}]";
    let r = resolver(&vault_yaml(&bao, "root"), &[("github", "http://github.mcp.local/mcp", server)]);
    let resolved = r.resolve("github", &FakeCaller::named("alice").caller(), None).await.expect("found");
    assert_eq!(header(&resolved, "authorization"), "Bearer team-pat");
}

#[tokio::test]
async fn a_vault_source_without_the_vault_section_is_a_config_error() {
    let errors = try_resolver("{}", &[("github", "http://github.mcp.local/mcp", "credentials: [{vault: {}}]")]).expect_err("no vault section");
    assert_eq!(errors, ["servers[0].credentials[0]: a vault source needs the top-level credentials.vault section"]);
}
