//! The Vault read cache: hits are counted, entries expire, misses are remembered briefly,
//! and concurrent misses for one path make one request.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::support::{Bao, FakeCaller, header, resolver};

const GITHUB: (&str, &str, &str) = ("github", "http://github.mcp.local/mcp", "credentials: [{vault: {}}]");

fn creds(bao: &Bao, extra: &str) -> String {
    format!("vault: {{address: '{}', auth: {{token: {{value: root}}}}{extra}}}", bao.addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_call_is_served_from_the_cache() {
    let Some(bao) = Bao::start().await else { return };
    bao.put_secret("alice/github.mcp.local", json!({ "token": "ghp_alice" })).await;
    let r = resolver(&creds(&bao, ""), &[GITHUB]);
    let alice = FakeCaller::named("alice");
    let first = r.resolve("github", &alice.caller(), None).await.expect("first");
    let second = r.resolve("github", &alice.caller(), None).await.expect("second");
    assert_eq!(first.fingerprint, second.fingerprint);
    let stats = r.stats();
    assert_eq!((stats.vault_reads, stats.vault_cache_hits), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_secret_is_read_again_after_cache_ttl() {
    let Some(bao) = Bao::start().await else { return };
    bao.put_secret("alice/github.mcp.local", json!({ "token": "ghp_old" })).await;
    let r = resolver(&creds(&bao, ", cache_ttl: 300ms"), &[GITHUB]);
    let alice = FakeCaller::named("alice");
    let old = r.resolve("github", &alice.caller(), None).await.expect("old");
    bao.put_secret("alice/github.mcp.local", json!({ "token": "ghp_new" })).await;
    assert_eq!(header(&r.resolve("github", &alice.caller(), None).await.expect("cached"), "authorization"), "Bearer ghp_old");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let new = r.resolve("github", &alice.caller(), None).await.expect("new");
    assert_eq!(header(&new, "authorization"), "Bearer ghp_new");
    assert_ne!(old.fingerprint, new.fingerprint, "a rotated PAT gets a new backend session");
    assert_eq!(r.stats().vault_reads, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_entry_is_remembered_for_the_negative_cache_ttl() {
    let Some(bao) = Bao::start().await else { return };
    let server = "credentials: [{vault: {on_missing: fail}}]";
    let r = resolver(&creds(&bao, ", negative_cache_ttl: 400ms"), &[("github", "http://github.mcp.local/mcp", server)]);
    let bob = FakeCaller::named("bob");
    for _ in 0..3 {
        r.resolve("github", &bob.caller(), None).await.expect_err("no entry");
    }
    assert_eq!((r.stats().vault_reads, r.stats().vault_cache_hits), (1, 2));
    bao.put_secret("bob/github.mcp.local", json!({ "token": "ghp_bob" })).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resolved = r.resolve("github", &bob.caller(), None).await.expect("now stored");
    assert_eq!(header(&resolved, "authorization"), "Bearer ghp_bob");
    assert_eq!(r.stats().vault_reads, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_misses_make_one_vault_read() {
    let Some(bao) = Bao::start().await else { return };
    bao.put_secret("alice/github.mcp.local", json!({ "token": "ghp_alice" })).await;
    let r = resolver(&creds(&bao, ""), &[GITHUB]);
    let alice = Arc::new(FakeCaller::named("alice"));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (r, alice) = (r.clone(), alice.clone());
        tasks.push(tokio::spawn(async move { r.resolve("github", &alice.caller(), None).await.map(|c| c.fingerprint) }));
    }
    let mut fingerprints = Vec::new();
    for t in tasks {
        fingerprints.push(t.await.expect("task").expect("resolved"));
    }
    fingerprints.dedup();
    assert_eq!(fingerprints.len(), 1);
    let stats = r.stats();
    assert_eq!(stats.vault_reads, 1, "{stats:?}");
    assert_eq!(stats.vault_logins, 1, "one lookup of the gateway's token: {stats:?}");
    assert_eq!(stats.vault_cache_hits, 49);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_users_never_share_a_cached_secret() {
    let Some(bao) = Bao::start().await else { return };
    bao.put_secret("alice/github.mcp.local", json!({ "token": "ghp_alice" })).await;
    bao.put_secret("bob/github.mcp.local", json!({ "token": "ghp_bob" })).await;
    let r = resolver(&creds(&bao, ""), &[GITHUB]);
    let a = r.resolve("github", &FakeCaller::named("alice").caller(), None).await.expect("alice");
    let b = r.resolve("github", &FakeCaller::named("bob").caller(), None).await.expect("bob");
    assert_eq!(header(&a, "authorization"), "Bearer ghp_alice");
    assert_eq!(header(&b, "authorization"), "Bearer ghp_bob");
    assert_ne!(a.fingerprint, b.fingerprint);
}
