//! Remote keys from an in-process IdP: discovery, caching, rotation, rate-limited and
//! coalesced refreshes, and failing closed when keys cannot be fetched.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::json;

use super::support::*;
use crate::AuthError;

fn rsa_jwks(kids: &[(&str, &str)]) -> serde_json::Value {
    json!({ "keys": kids.iter().map(|(kid, pem)| jwk(Algorithm::RS256, pem, kid, true)).collect::<Vec<_>>() })
}

#[tokio::test]
async fn keys_found_through_discovery_are_fetched_once_and_cached() {
    let idp = TestIdp::start(rsa_jwks(&[("k1", RSA1_KEY)])).await;
    let auth = authenticator(&idp.config_yaml(""));
    for user in ["alice", "bob", "carol"] {
        let token = mint(Algorithm::RS256, RSA1_KEY, Some("k1"), &claims(&idp.issuer, user));
        assert_eq!(auth.verify_bearer(Some(&bearer(&token))).await.expect("valid").subject, user);
    }
    assert_eq!(idp.jwks_hits(), 1);
}

#[tokio::test]
async fn rotated_key_is_found_by_refetching_on_an_unknown_kid() {
    let idp = TestIdp::start(rsa_jwks(&[("k1", RSA1_KEY)])).await;
    let auth = authenticator(&idp.config_yaml("jwks: {refresh_min_interval: 0s}"));
    let old = mint(Algorithm::RS256, RSA1_KEY, Some("k1"), &claims(&idp.issuer, "alice"));
    assert!(auth.verify_bearer(Some(&bearer(&old))).await.is_ok());

    idp.set_jwks(rsa_jwks(&[("k2", RSA2_KEY)]));
    let new = mint(Algorithm::RS256, RSA2_KEY, Some("k2"), &claims(&idp.issuer, "alice"));
    assert_eq!(auth.verify_bearer(Some(&bearer(&new))).await.expect("rotated key found").subject, "alice");
    assert_eq!(idp.jwks_hits(), 2);
}

#[tokio::test]
async fn unknown_kid_is_refused_and_refetches_are_rate_limited() {
    let idp = TestIdp::start(rsa_jwks(&[("k1", RSA1_KEY)])).await;
    let auth = authenticator(&idp.config_yaml("jwks: {refresh_min_interval: 300ms}"));
    let good = mint(Algorithm::RS256, RSA1_KEY, Some("k1"), &claims(&idp.issuer, "alice"));
    assert!(auth.verify_bearer(Some(&bearer(&good))).await.is_ok());
    tokio::time::sleep(Duration::from_millis(350)).await;

    let stranger = mint(Algorithm::RS256, RSA2_KEY, Some("who"), &claims(&idp.issuer, "mallory"));
    for _ in 0..5 {
        assert_eq!(auth.verify_bearer(Some(&bearer(&stranger))).await.err(), Some(AuthError::UnknownKey));
    }
    assert_eq!(idp.jwks_hits(), 2, "one load plus one refetch, then rate-limited");

    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(auth.verify_bearer(Some(&bearer(&stranger))).await.err(), Some(AuthError::UnknownKey));
    assert_eq!(idp.jwks_hits(), 3, "allowed again after the interval");
}

#[tokio::test]
async fn a_key_rotated_just_after_the_first_load_is_fetched_at_once() {
    // The load on first use does not start the unknown-kid rate limit: an IdP that rotates
    // right after the gateway loaded its keys must not get its new tokens refused for
    // `refresh_min_interval` (found by the key-rotation-under-load fault test).
    let idp = TestIdp::start(rsa_jwks(&[("k1", RSA1_KEY)])).await;
    let auth = authenticator(&idp.config_yaml("jwks: {refresh_min_interval: 1h}"));
    let old = mint(Algorithm::RS256, RSA1_KEY, Some("k1"), &claims(&idp.issuer, "alice"));
    assert!(auth.verify_bearer(Some(&bearer(&old))).await.is_ok());

    idp.set_jwks(rsa_jwks(&[("k1", RSA1_KEY), ("k2", RSA2_KEY)]));
    let new = mint(Algorithm::RS256, RSA2_KEY, Some("k2"), &claims(&idp.issuer, "bob"));
    assert_eq!(auth.verify_bearer(Some(&bearer(&new))).await.expect("new key fetched").subject, "bob");
    assert_eq!(idp.jwks_hits(), 2);

    // That refetch did start the limit: a stranger's kid costs no further request.
    let stranger = mint(Algorithm::RS256, RSA2_KEY, Some("who"), &claims(&idp.issuer, "mallory"));
    assert_eq!(auth.verify_bearer(Some(&bearer(&stranger))).await.err(), Some(AuthError::UnknownKey));
    assert_eq!(idp.jwks_hits(), 2);
}

#[tokio::test]
async fn concurrent_unknown_kid_verifications_share_one_jwks_request() {
    let idp = TestIdp::start_with_delay(rsa_jwks(&[("k1", RSA1_KEY)]), Duration::from_millis(100)).await;
    let auth = authenticator(&idp.config_yaml("jwks: {refresh_min_interval: 0s}"));
    let first = mint(Algorithm::RS256, RSA1_KEY, Some("k1"), &claims(&idp.issuer, "alice"));
    assert!(auth.verify_bearer(Some(&bearer(&first))).await.is_ok());
    assert_eq!(idp.jwks_hits(), 1);

    idp.set_jwks(rsa_jwks(&[("k1", RSA1_KEY), ("k2", RSA2_KEY)]));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let auth = auth.clone();
        let token = mint(Algorithm::RS256, RSA2_KEY, Some("k2"), &claims(&idp.issuer, &format!("user{i}")));
        tasks.push(tokio::spawn(async move { auth.verify_bearer(Some(&bearer(&token))).await }));
    }
    for t in tasks {
        assert!(t.await.expect("task").is_ok());
    }
    assert_eq!(idp.jwks_hits(), 2, "twenty misses, one refetch");
}

#[tokio::test]
async fn unreachable_keys_fail_closed_with_503() {
    // A port nobody listens on: bind, note the address, drop the listener.
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
    let issuer = format!("http://{addr}/realms/gone");
    let auth = authenticator(&format!("issuers: [{{issuer: '{issuer}'}}]\naudiences: [{AUDIENCE}]\njwks: {{fetch_timeout: 2s}}"));
    let token = mint(Algorithm::RS256, RSA1_KEY, Some("k1"), &claims(&issuer, "alice"));
    let err = auth.verify_bearer(Some(&bearer(&token))).await.expect_err("no keys");
    assert_eq!(err, AuthError::Unavailable);
    assert_eq!(err.status(), 503);
}

#[tokio::test]
async fn discovery_naming_another_issuer_is_not_trusted() {
    let idp = TestIdp::start(rsa_jwks(&[("k1", RSA1_KEY)])).await;
    // Configure the issuer with a trailing slash: discovery answers without it.
    let issuer = format!("{}/", idp.issuer);
    let auth = authenticator(&format!("issuers: [{{issuer: '{issuer}'}}]\naudiences: [{AUDIENCE}]"));
    let token = mint(Algorithm::RS256, RSA1_KEY, Some("k1"), &claims(&issuer, "alice"));
    assert_eq!(auth.verify_bearer(Some(&bearer(&token))).await.err(), Some(AuthError::Unavailable));
    assert_eq!(idp.jwks_hits(), 0);
}

#[tokio::test]
async fn explicit_jwks_uri_skips_discovery() {
    let idp = TestIdp::start(json!({ "keys": [jwk(Algorithm::ES256, EC1_KEY, "e1", false)] })).await;
    let yaml = format!("issuers:\n  - issuer: {0}\n    jwks_uri: {0}/certs\n    discovery: false\naudiences: [{AUDIENCE}]", idp.issuer);
    let token = mint(Algorithm::ES256, EC1_KEY, Some("e1"), &claims(&idp.issuer, "alice"));
    assert!(authenticator(&yaml).verify_bearer(Some(&bearer(&token))).await.is_ok());
}

#[tokio::test]
async fn key_replaced_under_the_same_kid_is_refetched_and_the_retired_key_stops_verifying() {
    let idp = TestIdp::start(rsa_jwks(&[("k1", RSA1_KEY)])).await;
    let auth = authenticator(&idp.config_yaml("jwks: {refresh_min_interval: 0s}"));
    let old = mint(Algorithm::RS256, RSA1_KEY, Some("k1"), &claims(&idp.issuer, "alice"));
    assert!(auth.verify_bearer(Some(&bearer(&old))).await.is_ok(), "verified, and remembered");

    idp.set_jwks(rsa_jwks(&[("k1", RSA2_KEY)]));
    let new = mint(Algorithm::RS256, RSA2_KEY, Some("k1"), &claims(&idp.issuer, "bob"));
    assert_eq!(auth.verify_bearer(Some(&bearer(&new))).await.expect("the replaced key is fetched").subject, "bob");
    assert_eq!(idp.jwks_hits(), 2, "one load plus one refetch on the failed signature");

    let again = auth.verify_bearer(Some(&bearer(&old))).await;
    assert_eq!(again.err(), Some(AuthError::BadSignature), "the remembered verification was dropped with the retired key");
}

#[tokio::test]
async fn key_type_changed_under_the_same_kid_is_refetched() {
    let idp = TestIdp::start(rsa_jwks(&[("k1", RSA1_KEY)])).await;
    let auth = authenticator(&idp.config_yaml("jwks: {refresh_min_interval: 0s}"));
    let first = mint(Algorithm::RS256, RSA1_KEY, Some("k1"), &claims(&idp.issuer, "alice"));
    assert!(auth.verify_bearer(Some(&bearer(&first))).await.is_ok());

    idp.set_jwks(json!({ "keys": [jwk(Algorithm::ES256, EC1_KEY, "k1", true)] }));
    let ec = mint(Algorithm::ES256, EC1_KEY, Some("k1"), &claims(&idp.issuer, "alice"));
    assert!(auth.verify_bearer(Some(&bearer(&ec))).await.is_ok(), "an EC key now under k1");
    assert_eq!(auth.verify_bearer(Some(&bearer(&first))).await.err(), Some(AuthError::AlgorithmNotAllowed));
}

#[tokio::test]
async fn bad_signature_on_a_known_kid_refetches_at_most_once_per_interval() {
    let idp = TestIdp::start(rsa_jwks(&[("k1", RSA1_KEY)])).await;
    let auth = authenticator(&idp.config_yaml("jwks: {refresh_min_interval: 1h}"));
    let forged = mint(Algorithm::RS256, RSA2_KEY, Some("k1"), &claims(&idp.issuer, "mallory"));
    for _ in 0..5 {
        assert_eq!(auth.verify_bearer(Some(&bearer(&forged))).await.err(), Some(AuthError::BadSignature));
    }
    // The scheduled first load does not use up the on-demand allowance (a key rotated just
    // after it must be fetched at once), so one refetch follows; then forged signatures cannot
    // drive any more within the interval.
    assert_eq!(idp.jwks_hits(), 2, "the first load plus one on-demand refetch per interval");
}

#[tokio::test]
async fn claim_failures_after_a_good_signature_never_refetch() {
    let idp = TestIdp::start(rsa_jwks(&[("k1", RSA1_KEY)])).await;
    let auth = authenticator(&idp.config_yaml("jwks: {refresh_min_interval: 0s}"));
    let expired = mint(Algorithm::RS256, RSA1_KEY, Some("k1"), &with(claims(&idp.issuer, "alice"), json!({"exp": now() - 3600})));
    let elsewhere = mint(Algorithm::RS256, RSA1_KEY, Some("k1"), &with(claims(&idp.issuer, "alice"), json!({"aud": "other"})));
    assert_eq!(auth.verify_bearer(Some(&bearer(&expired))).await.err(), Some(AuthError::Expired));
    assert_eq!(auth.verify_bearer(Some(&bearer(&elsewhere))).await.err(), Some(AuthError::WrongAudience));
    assert_eq!(idp.jwks_hits(), 1);
}
