//! How the gateway authenticates to Vault (AppRole, JWT, Kubernetes, token) and keeps its
//! token alive: renewal before expiry and a new login once renewal reaches the max TTL.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Bao, FakeCaller, Idp, header, resolver, scratch_dir};

const GITHUB: (&str, &str, &str) = ("github", "http://github.mcp.local/mcp", "credentials: [{vault: {}}]");

/// Enables AppRole with role `gateway` (`role` fields merged in); returns (role_id, secret_id).
async fn approle(bao: &Bao, role: Value) -> (String, String) {
    bao.reader_policy().await;
    bao.ok("POST", "sys/auth/approle", Some(json!({ "type": "approle" }))).await;
    let mut body = json!({ "token_policies": ["reader"] });
    body.as_object_mut().expect("object").extend(role.as_object().expect("object").clone());
    bao.ok("POST", "auth/approle/role/gateway", Some(body)).await;
    let role_id = bao.ok("GET", "auth/approle/role/gateway/role-id", None).await["data"]["role_id"].as_str().expect("id").to_owned();
    let secret = bao.ok("POST", "auth/approle/role/gateway/secret-id", None).await;
    (role_id, secret["data"]["secret_id"].as_str().expect("secret_id").to_owned())
}

/// Enables the JWT method at `mount`, trusting the IdP's keys for audience `vault`.
async fn jwt_method(bao: &Bao, idp: &Idp, mount: &str) {
    bao.reader_policy().await;
    bao.ok("POST", &format!("sys/auth/{mount}"), Some(json!({ "type": "jwt" }))).await;
    bao.ok("POST", &format!("auth/{mount}/config"), Some(json!({ "jwks_url": idp.jwks_uri, "bound_issuer": idp.issuer }))).await;
    let role = json!({ "role_type": "jwt", "user_claim": "sub", "bound_audiences": ["vault"], "token_policies": ["reader"], "token_ttl": "5m" });
    bao.ok("POST", &format!("auth/{mount}/role/gateway"), Some(role)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approle_login_reads_the_users_secret() {
    let Some(bao) = Bao::start().await else { return };
    bao.put_secret("alice/github.mcp.local", json!({ "token": "ghp_alice" })).await;
    let (role_id, secret_id) = approle(&bao, json!({})).await;
    let creds = format!("vault: {{address: '{}', auth: {{approle: {{role_id: '{role_id}', secret_id: {{value: '{secret_id}'}}}}}}}}", bao.addr);
    let r = resolver(&creds, &[GITHUB]);
    let resolved = r.resolve("github", &FakeCaller::named("alice").caller(), None).await.expect("read");
    assert_eq!(header(&resolved, "authorization"), "Bearer ghp_alice");
    assert_eq!(r.stats().vault_logins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_approle_secret_id_fails_without_showing_it() {
    let Some(bao) = Bao::start().await else { return };
    let (role_id, _) = approle(&bao, json!({})).await;
    let wrong = "0000aaaa-wrong-secret-id-9999";
    let creds = format!("vault: {{address: '{}', auth: {{approle: {{role_id: '{role_id}', secret_id: {{value: '{wrong}'}}}}}}}}", bao.addr);
    let r = resolver(&creds, &[GITHUB]);
    let err = r.resolve("github", &FakeCaller::named("alice").caller(), None).await.expect_err("login refused");
    let text = format!("{err} {err:?}");
    assert!(text.contains("login at auth/approle/login refused (HTTP 400"), "{text}");
    assert!(!text.contains(wrong), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_login_with_a_token_file_reads_the_users_secret() {
    let (Some(bao), Some(idp)) = (Bao::start().await, Idp::start(&[]).await) else { return };
    jwt_method(&bao, &idp, "jwt").await;
    bao.put_secret("alice/github.mcp.local", json!({ "token": "ghp_alice" })).await;
    let dir = scratch_dir("jwt");
    let jwt_file = dir.join("gateway.jwt");
    std::fs::write(&jwt_file, idp.user_token_with("carol", &[("audience", "vault")]).await + "\n").expect("write jwt");
    let creds = format!("vault: {{address: '{}', auth: {{jwt: {{role: gateway, jwt: {{file: '{}'}}}}}}}}", bao.addr, jwt_file.display());
    let r = resolver(&creds, &[GITHUB]);
    let resolved = r.resolve("github", &FakeCaller::named("alice").caller(), None).await.expect("read");
    assert_eq!(header(&resolved, "authorization"), "Bearer ghp_alice");
    std::fs::remove_dir_all(dir).ok();
}

/// No Kubernetes API server here: the JWT method mounted at `kubernetes` accepts the same
/// login body (`role`, `jwt`), which exercises the service-account file and the mount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_login_sends_the_service_account_token_file() {
    let (Some(bao), Some(idp)) = (Bao::start().await, Idp::start(&[]).await) else { return };
    jwt_method(&bao, &idp, "kubernetes").await;
    bao.put_secret("alice/github.mcp.local", json!({ "token": "ghp_alice" })).await;
    let dir = scratch_dir("k8s");
    let sa_file = dir.join("token");
    std::fs::write(&sa_file, idp.user_token_with("carol", &[("audience", "vault")]).await).expect("write token");
    let creds = format!("vault: {{address: '{}', auth: {{kubernetes: {{role: gateway, jwt_file: '{}'}}}}}}", bao.addr, sa_file.display());
    let r = resolver(&creds, &[GITHUB]);
    r.resolve("github", &FakeCaller::named("alice").caller(), None).await.expect("read");
    assert_eq!(r.stats().vault_logins, 1);
    std::fs::remove_dir_all(dir).ok();
}

/// Reads every 250 ms for `secs` seconds with caching off; every read must succeed.
async fn keep_reading(r: &mcpgate_credentials::Resolver, secs: u64) {
    let alice = FakeCaller::named("alice");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        r.resolve("github", &alice.caller(), None).await.expect("every read succeeds");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_vault_token_is_renewed_before_it_expires() {
    let Some(bao) = Bao::start().await else { return };
    bao.reader_policy().await;
    bao.put_secret("alice/github.mcp.local", json!({ "token": "ghp_alice" })).await;
    let token = bao.create_token(json!({ "policies": ["reader"], "ttl": "3s", "renewable": true })).await;
    let creds = format!("vault: {{address: '{}', cache_ttl: 0s, auth: {{token: {{value: '{token}'}}}}}}", bao.addr);
    let r = resolver(&creds, &[GITHUB]);
    keep_reading(&r, 6).await;
    let stats = r.stats();
    assert!(stats.vault_renewals >= 2, "renewed repeatedly: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_logs_in_again_when_its_token_reaches_max_ttl() {
    let Some(bao) = Bao::start().await else { return };
    bao.put_secret("alice/github.mcp.local", json!({ "token": "ghp_alice" })).await;
    let (role_id, secret_id) = approle(&bao, json!({ "token_ttl": "2s", "token_max_ttl": "3s" })).await;
    let creds = format!("vault: {{address: '{}', cache_ttl: 0s, auth: {{approle: {{role_id: '{role_id}', secret_id: {{value: '{secret_id}'}}}}}}}}", bao.addr);
    let r = resolver(&creds, &[GITHUB]);
    keep_reading(&r, 7).await;
    let stats = r.stats();
    assert!(stats.vault_logins >= 2, "logged in again past the max TTL: {stats:?}");
}
