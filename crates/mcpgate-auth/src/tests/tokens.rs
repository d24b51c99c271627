//! Bearer-token verification against static keys: what is accepted, what is refused and
//! with which error.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::json;

use super::support::*;
use crate::AuthError;

const ISS: &str = "https://idp.test/realms/a";

/// Trusts ISS with rsa1 (RS256, kid rsa1), ec1 (kid ec1) and ed1 (PEM, kid ed1).
fn static_yaml(extra: &str) -> String {
    let jwks = json!({ "keys": [jwk(Algorithm::RS256, RSA1_KEY, "rsa1", true), jwk(Algorithm::ES256, EC1_KEY, "ec1", false)] });
    let ed_pem = ED1_PUB.replace('\n', "\\n");
    format!(
        "issuers:\n  - issuer: {ISS}\n    static_keys:\n      - jwks: '{jwks}'\n      - pem: \"{ed_pem}\"\n        kid: ed1\naudiences: [{AUDIENCE}]\n{extra}"
    )
}

async fn verify(yaml: &str, token: &str) -> Result<crate::VerifiedIdentity, AuthError> {
    authenticator(yaml).verify_bearer(Some(&bearer(token))).await
}

#[tokio::test]
async fn valid_rs256_token_is_accepted_with_identity_and_scopes() {
    let token = mint(Algorithm::RS256, RSA1_KEY, Some("rsa1"), &claims(ISS, "alice"));
    let id = verify(&static_yaml(""), &token).await.expect("valid token");
    assert_eq!(id.issuer, ISS);
    assert_eq!(id.subject, "alice");
    assert_eq!(id.username.as_deref(), Some("alice"));
    assert_eq!(id.scopes, ["mcp", "openid"]);
    assert_eq!(id.token().expose(), token);
}

#[tokio::test]
async fn valid_es256_token_is_accepted() {
    let token = mint(Algorithm::ES256, EC1_KEY, Some("ec1"), &claims(ISS, "alice"));
    assert!(verify(&static_yaml(""), &token).await.is_ok());
}

#[tokio::test]
async fn eddsa_token_is_accepted_with_a_pem_key() {
    let token = mint(Algorithm::EdDSA, ED1_KEY, Some("ed1"), &claims(ISS, "alice"));
    assert!(verify(&static_yaml(""), &token).await.is_ok());
}

#[tokio::test]
async fn audience_may_be_an_array_containing_ours() {
    let c = with(claims(ISS, "alice"), json!({ "aud": ["other", AUDIENCE] }));
    let token = mint(Algorithm::RS256, RSA1_KEY, Some("rsa1"), &c);
    assert!(verify(&static_yaml(""), &token).await.is_ok());
}

#[tokio::test]
async fn expired_token_is_refused_but_leeway_is_honoured() {
    let yaml = static_yaml("leeway: 30s");
    let expired = mint(Algorithm::RS256, RSA1_KEY, Some("rsa1"), &with(claims(ISS, "a"), json!({ "exp": now() - 120 })));
    assert_eq!(verify(&yaml, &expired).await.err(), Some(AuthError::Expired));
    let within = mint(Algorithm::RS256, RSA1_KEY, Some("rsa1"), &with(claims(ISS, "a"), json!({ "exp": now() - 10 })));
    assert!(verify(&yaml, &within).await.is_ok());
}

#[tokio::test]
async fn not_yet_valid_token_is_refused() {
    let token = mint(Algorithm::RS256, RSA1_KEY, Some("rsa1"), &with(claims(ISS, "a"), json!({ "nbf": now() + 120 })));
    assert_eq!(verify(&static_yaml(""), &token).await.err(), Some(AuthError::NotYetValid));
}

#[tokio::test]
async fn token_from_an_unknown_issuer_is_refused() {
    let token = mint(Algorithm::RS256, RSA1_KEY, Some("rsa1"), &claims("https://evil.test", "a"));
    assert_eq!(verify(&static_yaml(""), &token).await.err(), Some(AuthError::UnknownIssuer));
}

#[tokio::test]
async fn token_for_another_audience_is_refused() {
    let wrong = mint(Algorithm::RS256, RSA1_KEY, Some("rsa1"), &with(claims(ISS, "a"), json!({ "aud": "other-api" })));
    assert_eq!(verify(&static_yaml(""), &wrong).await.err(), Some(AuthError::WrongAudience));
    let none = mint(Algorithm::RS256, RSA1_KEY, Some("rsa1"), &with(claims(ISS, "a"), json!({ "aud": null })));
    assert_eq!(verify(&static_yaml(""), &none).await.err(), Some(AuthError::WrongAudience));
}

#[tokio::test]
async fn token_signed_by_another_key_has_a_bad_signature() {
    let token = mint(Algorithm::RS256, RSA2_KEY, Some("rsa1"), &claims(ISS, "a"));
    assert_eq!(verify(&static_yaml(""), &token).await.err(), Some(AuthError::BadSignature));
}

#[tokio::test]
async fn tampered_payload_has_a_bad_signature() {
    let token = mint(Algorithm::ES256, EC1_KEY, Some("ec1"), &claims(ISS, "bob"));
    let parts: Vec<&str> = token.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(ISS, "admin")).expect("json"));
    let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
    assert_eq!(verify(&static_yaml(""), &tampered).await.err(), Some(AuthError::BadSignature));
}

#[tokio::test]
async fn alg_none_token_is_refused() {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"rsa1"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(ISS, "admin")).expect("json"));
    for token in [format!("{header}.{payload}."), format!("{header}.{payload}")] {
        let err = verify(&static_yaml(""), &token).await.expect_err("alg none");
        assert!(matches!(err, AuthError::AlgorithmNotAllowed | AuthError::Malformed(_)), "{err:?}");
    }
}

#[tokio::test]
async fn hs256_token_signed_with_the_public_key_is_refused() {
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = Some("rsa1".into());
    let key = jsonwebtoken::EncodingKey::from_secret(RSA1_PUB.as_bytes());
    let token = jsonwebtoken::encode(&header, &claims(ISS, "admin"), &key).expect("sign");
    assert_eq!(verify(&static_yaml(""), &token).await.err(), Some(AuthError::AlgorithmNotAllowed));
}

#[tokio::test]
async fn algorithm_outside_the_allow_list_is_refused() {
    // The RS256 key in the JWKS is skipped; the EC one stays.
    let jwks = json!({ "keys": [jwk(Algorithm::RS256, RSA1_KEY, "rsa1", true), jwk(Algorithm::ES256, EC1_KEY, "ec1", false)] });
    let yaml = format!("issuers: [{{issuer: '{ISS}', static_keys: [{{jwks: '{jwks}'}}]}}]\naudiences: [{AUDIENCE}]\nalgorithms: [ES256]");
    let token = mint(Algorithm::RS256, RSA1_KEY, Some("rsa1"), &claims(ISS, "a"));
    assert_eq!(verify(&yaml, &token).await.err(), Some(AuthError::AlgorithmNotAllowed));
    let token = mint(Algorithm::ES256, EC1_KEY, Some("ec1"), &claims(ISS, "a"));
    assert!(verify(&yaml, &token).await.is_ok());
}

#[tokio::test]
async fn token_alg_must_equal_the_algorithm_pinned_by_the_key() {
    // rsa1's JWK says RS256; a PS256 signature by the same key is not accepted.
    let token = mint(Algorithm::PS256, RSA1_KEY, Some("rsa1"), &claims(ISS, "a"));
    assert_eq!(verify(&static_yaml(""), &token).await.err(), Some(AuthError::AlgorithmNotAllowed));
    // An EC key cannot verify an RS256 token even under its kid.
    let token = mint(Algorithm::RS256, RSA1_KEY, Some("ec1"), &claims(ISS, "a"));
    assert_eq!(verify(&static_yaml(""), &token).await.err(), Some(AuthError::AlgorithmNotAllowed));
}

#[tokio::test]
async fn unknown_kid_with_static_keys_is_refused() {
    let token = mint(Algorithm::RS256, RSA1_KEY, Some("nope"), &claims(ISS, "a"));
    assert_eq!(verify(&static_yaml(""), &token).await.err(), Some(AuthError::UnknownKey));
}

#[tokio::test]
async fn missing_header_and_other_schemes_are_told_apart() {
    let auth = authenticator(&static_yaml(""));
    assert_eq!(auth.verify_bearer(None).await.err(), Some(AuthError::Missing));
    let basic = auth.verify_bearer(Some("Basic YWxpY2U6cHc=")).await.expect_err("basic");
    assert!(matches!(basic, AuthError::Malformed(_)));
    assert_eq!(basic.status(), 401);
    let garbage = auth.verify_bearer(Some("Bearer not-a-jwt")).await.expect_err("garbage");
    assert!(matches!(garbage, AuthError::Malformed(_)));
}

#[tokio::test]
async fn missing_required_scope_is_403_naming_the_scopes() {
    let token = mint(Algorithm::RS256, RSA1_KEY, Some("rsa1"), &claims(ISS, "a"));
    let err = verify(&static_yaml("required_scopes: [mcp, 'mcp:tools']"), &token).await.expect_err("scope");
    assert_eq!(err, AuthError::InsufficientScope { needed: vec!["mcp".into(), "mcp:tools".into()] });
    assert_eq!(err.status(), 403);
    assert!(verify(&static_yaml("required_scopes: [mcp]"), &token).await.is_ok());
}

#[tokio::test]
async fn token_without_sub_is_refused() {
    let token = mint(Algorithm::RS256, RSA1_KEY, Some("rsa1"), &with(claims(ISS, "a"), json!({ "sub": null })));
    assert!(matches!(verify(&static_yaml(""), &token).await, Err(AuthError::Malformed(_))));
}

#[tokio::test]
async fn a_cached_token_is_still_refused_after_it_expires() {
    let auth = authenticator(&static_yaml("leeway: 0s"));
    let token = mint(Algorithm::RS256, RSA1_KEY, Some("rsa1"), &with(claims(ISS, "a"), json!({ "exp": now() + 1 })));
    assert!(auth.verify_bearer(Some(&bearer(&token))).await.is_ok());
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(auth.verify_bearer(Some(&bearer(&token))).await.err(), Some(AuthError::Expired));
}

#[tokio::test]
async fn debug_and_errors_never_show_the_token() {
    let token = mint(Algorithm::RS256, RSA1_KEY, Some("rsa1"), &claims(ISS, "alice"));
    let id = verify(&static_yaml(""), &token).await.expect("valid");
    let shown = format!("{id:?} {:?}", id.token());
    assert!(!shown.contains(&token) && !shown.contains(token.split('.').nth(2).expect("sig")), "{shown}");
    assert!(shown.contains("***"));
    let expired = mint(Algorithm::RS256, RSA1_KEY, Some("rsa1"), &with(claims(ISS, "a"), json!({ "exp": now() - 999 })));
    let err = verify(&static_yaml(""), &expired).await.expect_err("expired");
    assert!(!format!("{err} {err:?}").contains(&expired));
}

#[tokio::test]
async fn a_private_key_is_refused_as_a_verification_key() {
    let pem = RSA1_KEY.replace('\n', "\\n");
    let yaml = format!("issuers:\n  - issuer: {ISS}\n    static_keys:\n      - pem: \"{pem}\"\naudiences: [{AUDIENCE}]\n");
    let errors = crate::Authenticator::new(&config(&yaml), crate::default_http_client().expect("client")).expect_err("refused");
    assert!(errors[0].contains("private key"), "{errors:?}");
    assert!(!errors[0].contains("BEGIN"), "{errors:?}");
}
