//! Caller identities that could address another user's Vault path are refused before any
//! request: checked with the resolver's counters and OpenBao's own audit log.

use mcpgate_credentials::CredentialError;
use serde_json::json;

use crate::support::{Bao, FakeCaller, resolver};

const INJECTIONS: &[&str] = &["alice/../bob", "alice%2f..%2fbob", "bob\n", "..", "\u{430}lice", "bob/", "al\\ice"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_path_rejects_usernames_that_could_reach_another_users_secret() {
    let Some(bao) = Bao::start_with_audit().await else { return };
    bao.put_secret("bob/github.mcp.local", json!({ "token": "ghp_bob" })).await;
    let creds = format!("vault: {{address: '{}', auth: {{token: {{value: root}}}}}}", bao.addr);
    // Even with a fallback after it, a refused identity ends the chain.
    let server = "credentials: [{vault: {on_error: next}}, {static: {secret: {value: fallback}}}]";
    let r = resolver(&creds, &[("github", "http://github.mcp.local/mcp", server)]);
    for name in INJECTIONS {
        let caller = FakeCaller::named(name);
        let err = r.resolve("github", &caller.caller(), None).await.expect_err(name);
        let CredentialError::InvalidIdentity { server, via, reason } = &err else { panic!("{name:?}: {err:?}") };
        assert_eq!((server.as_str(), *via), ("github", "vault"));
        assert!(reason.starts_with("username (preferred_username)"), "{reason}");
        assert!(!err.to_string().contains('\n'), "no raw control characters in messages: {err}");
    }
    let stats = r.stats();
    assert_eq!((stats.vault_requests, stats.identities_rejected), (0, INJECTIONS.len() as u64), "{stats:?}");
    // OpenBao saw only the seeding write, never a read on behalf of these identities.
    assert_eq!(bao.audited_paths("secret/"), ["secret/data/bob/github.mcp.local"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookalike_username_is_named_by_its_code_point() {
    let Some(bao) = Bao::start().await else { return };
    let creds = format!("vault: {{address: '{}', auth: {{token: {{value: root}}}}}}", bao.addr);
    let r = resolver(&creds, &[("github", "http://github.mcp.local/mcp", "credentials: [{vault: {}}]")]);
    let err = r.resolve("github", &FakeCaller::named("\u{430}lice").caller(), None).await.expect_err("look-alike");
    assert!(err.to_string().contains("a non-ASCII character (U+0430)"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_the_username_claim_is_refused() {
    let Some(bao) = Bao::start().await else { return };
    let creds = format!("vault: {{address: '{}', auth: {{token: {{value: root}}}}}}", bao.addr);
    let r = resolver(&creds, &[("github", "http://github.mcp.local/mcp", "credentials: [{vault: {username_claim: email}}]")]);
    let err = r.resolve("github", &FakeCaller::named("alice").caller(), None).await.expect_err("no email claim");
    assert_eq!(err.reason_code(), "invalid_identity");
    assert!(err.to_string().contains("the token has no string claim \"email\""), "{err}");
    assert_eq!(r.stats().vault_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_username_addresses_its_own_path() {
    let Some(bao) = Bao::start().await else { return };
    bao.put_secret("alice@example.test/github.mcp.local", json!({ "token": "ghp_alice" })).await;
    let creds = format!("vault: {{address: '{}', auth: {{token: {{value: root}}}}}}", bao.addr);
    let r = resolver(&creds, &[("github", "http://github.mcp.local/mcp", "credentials: [{vault: {}}]")]);
    r.resolve("github", &FakeCaller::named("alice@example.test").caller(), None).await.expect("found");
}
