//! Wristbands: both claim layouts, every way a wristband can be wrong, binding to the
//! caller, and the gateway's own issuer round-tripping through the verifier.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use super::support::*;
use crate::{
    Grants, ItemRef, Kind, PermissionsConfig, Policy, ServerAuthInfo, VerifiedIdentity, WristbandError, WristbandIssuer, WristbandSourceConfig,
    WristbandVerifier,
};

const AUTHORIZER: &str = "https://authorizer.test";

fn source_yaml(format: &str, on_missing: &str) -> String {
    let pem = WB1_PUB.replace('\n', "\\n");
    format!("{{header: null, format: {format}, keys: [{{pem: \"{pem}\"}}], issuer: '{AUTHORIZER}', audience: mcpgate, on_missing: {on_missing}}}")
        .replace("header: null, ", "")
}

fn verifier(format: &str) -> WristbandVerifier {
    let cfg: WristbandSourceConfig = yaml_serde::from_str(&source_yaml(format, "deny")).expect("parse");
    WristbandVerifier::new(&cfg).expect("verifier")
}

fn seed_claims(sub: Option<&str>) -> Value {
    let mut c = json!({
        "iss": AUTHORIZER,
        "aud": "mcpgate",
        "exp": now() + 60,
        "iat": now(),
        "allowed-tools": "{\"server1.mcp.local\":[\"greet\",\"time\"],\"other.host\":[\"x\"]}",
    });
    if let Some(sub) = sub {
        c["sub"] = sub.into();
    }
    c
}

fn band(claims: &Value) -> String {
    mint(Algorithm::ES256, WB1_KEY, Some("wb1"), claims)
}

#[test]
fn seed_format_wristband_grants_its_tools() {
    let w = verifier("tools").verify(&band(&seed_claims(None)), None).expect("valid wristband");
    assert!(w.grants.contains("server1.mcp.local", Kind::Tool, "greet"));
    assert!(w.grants.contains("server1.mcp.local", Kind::Tool, "time"));
    assert!(!w.grants.contains("server1.mcp.local", Kind::Tool, "x"));
}

#[test]
fn capabilities_format_grants_tools_prompts_and_resources() {
    let c = with(
        seed_claims(None),
        json!({
            "allowed-tools": null,
            "allowed-capabilities": { "tools": { "server1.mcp.local": ["greet"] }, "prompts": { "server1.mcp.local": ["hello"] }, "resources": { "server1.mcp.local": ["file:///a"] } }
        }),
    );
    let g = verifier("capabilities").verify(&band(&c), None).expect("valid").grants;
    assert!(g.contains("server1.mcp.local", Kind::Tool, "greet"));
    assert!(g.contains("server1.mcp.local", Kind::Prompt, "hello"));
    assert!(g.contains("server1.mcp.local", Kind::Resource, "file:///a"));
    assert!(!g.contains("server1.mcp.local", Kind::Tool, "hello"));
}

#[test]
fn wristband_without_the_permissions_claim_is_refused() {
    let c = with(seed_claims(None), json!({ "allowed-tools": null }));
    assert!(matches!(verifier("tools").verify(&band(&c), None), Err(WristbandError::Malformed(_))));
    let c = with(seed_claims(None), json!({ "allowed-tools": "not json" }));
    assert!(matches!(verifier("tools").verify(&band(&c), None), Err(WristbandError::Malformed(_))));
}

#[test]
fn tampered_wristband_is_refused() {
    let jwt = band(&seed_claims(None));
    let parts: Vec<&str> = jwt.split('.').collect();
    let more = with(seed_claims(None), json!({ "allowed-tools": "{\"server1.mcp.local\":[\"greet\",\"time\",\"rm_rf\"]}" }));
    let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(more.to_string()), parts[2]);
    assert_eq!(verifier("tools").verify(&forged, None).err(), Some(WristbandError::BadSignature));
}

#[test]
fn expired_wristband_is_refused() {
    let c = with(seed_claims(None), json!({ "exp": now() - 60 }));
    assert_eq!(verifier("tools").verify(&band(&c), None).err(), Some(WristbandError::Expired));
    let c = with(seed_claims(None), json!({ "exp": null }));
    assert!(matches!(verifier("tools").verify(&band(&c), None), Err(WristbandError::Malformed(_))));
}

#[test]
fn wristband_signed_by_another_key_is_refused() {
    let jwt = mint(Algorithm::ES256, WB2_KEY, Some("wb1"), &seed_claims(None));
    assert_eq!(verifier("tools").verify(&jwt, None).err(), Some(WristbandError::BadSignature));
    let rs = mint(Algorithm::RS256, RSA1_KEY, None, &seed_claims(None));
    assert_eq!(verifier("tools").verify(&rs, None).err(), Some(WristbandError::AlgorithmNotAllowed));
}

#[test]
fn wristband_from_another_issuer_or_for_another_audience_is_refused() {
    let c = with(seed_claims(None), json!({ "iss": "https://evil.test" }));
    assert_eq!(verifier("tools").verify(&band(&c), None).err(), Some(WristbandError::WrongIssuer));
    let c = with(seed_claims(None), json!({ "iss": null }));
    assert_eq!(verifier("tools").verify(&band(&c), None).err(), Some(WristbandError::WrongIssuer));
    let c = with(seed_claims(None), json!({ "aud": "someone-else" }));
    assert_eq!(verifier("tools").verify(&band(&c), None).err(), Some(WristbandError::WrongAudience));
}

#[test]
fn wristband_subject_must_match_the_verified_caller() {
    let alice = VerifiedIdentity::for_tests("alice", json!({}));
    let bob = VerifiedIdentity::for_tests("bob", json!({}));
    let jwt = band(&seed_claims(Some("alice")));
    assert!(verifier("tools").verify(&jwt, Some(&alice)).is_ok());
    assert_eq!(verifier("tools").verify(&jwt, Some(&bob)).err(), Some(WristbandError::SubjectMismatch));
}

fn wristband_policy(on_missing: &str) -> Policy {
    let yaml = format!("sources: [{{wristband: {}}}]", source_yaml("tools", on_missing));
    let cfg: PermissionsConfig = yaml_serde::from_str(&yaml).expect("parse");
    let servers = vec![ServerAuthInfo::new("server1", Some("http://server1.mcp.local:8080/mcp"), None)];
    Policy::compile(&cfg, &servers).expect("compiles")
}

fn headers(values: &[&str]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for v in values {
        h.append("x-authorized-tools", v.parse().expect("header value"));
    }
    h
}

fn greet() -> ItemRef<'static> {
    ItemRef { server: "server1", kind: Kind::Tool, name: "greet", annotations: None }
}

#[test]
fn policy_maps_wristband_hosts_to_servers() {
    let caller = wristband_policy("deny").caller(None, &headers(&[&band(&seed_claims(None))]));
    let d = caller.decide(&greet());
    assert_eq!((d.allowed, d.reason), (true, "wristband"));
    assert!(!caller.decide(&ItemRef { name: "x", ..greet() }).allowed);
}

#[test]
fn missing_wristband_denies_unless_allow_all_but_a_bad_one_always_denies() {
    let d = wristband_policy("deny").caller(None, &headers(&[])).decide(&greet());
    assert_eq!((d.allowed, d.reason), (false, "wristband_missing"));
    let d = wristband_policy("allow_all").caller(None, &headers(&[])).decide(&greet());
    assert_eq!((d.allowed, d.reason), (true, "wristband_allow_all"));
    let expired = band(&with(seed_claims(None), json!({ "exp": now() - 60 })));
    let d = wristband_policy("allow_all").caller(None, &headers(&[&expired])).decide(&greet());
    assert_eq!((d.allowed, d.reason), (false, "wristband_invalid"));
    let good = band(&seed_claims(None));
    let d = wristband_policy("deny").caller(None, &headers(&[&good, &good])).decide(&greet());
    assert_eq!((d.allowed, d.reason), (false, "wristband_invalid"));
}

#[test]
fn wristband_for_another_user_grants_nothing_in_policy() {
    let bob = VerifiedIdentity::for_tests("bob", json!({}));
    let alices = band(&seed_claims(Some("alice")));
    let d = wristband_policy("deny").caller(Some(&bob), &headers(&[&alices])).decide(&greet());
    assert_eq!((d.allowed, d.reason), (false, "wristband_invalid"));
}

fn issuer(format: &str) -> WristbandIssuer {
    let pem = WB2_KEY.replace('\n', "\\n");
    let yaml = format!("{{private_key_pem: \"{pem}\", kid: gw-1, issuer: 'https://mcpgate.test', audience: backends, format: {format}, ttl: 30s}}");
    WristbandIssuer::new(&yaml_serde::from_str(&yaml).expect("parse")).expect("issuer")
}

#[test]
fn issued_wristband_round_trips_through_the_verifier() {
    for format in ["tools", "capabilities"] {
        let issuer = issuer(format);
        let mut grants = Grants::new();
        grants.insert("server1.mcp.local", Kind::Tool, "greet");
        grants.insert("server1.mcp.local", Kind::Prompt, "hello");
        let alice = VerifiedIdentity::for_tests("alice", json!({}));
        let jwt = issuer.issue(&alice, &grants).expect("signed");

        let header = jsonwebtoken::decode_header(&jwt).expect("header");
        assert_eq!((header.alg, header.kid.as_deref()), (Algorithm::ES256, Some("gw-1")));
        let jwks = issuer.jwks().to_string();
        let cfg: WristbandSourceConfig =
            yaml_serde::from_str(&format!("{{format: {format}, keys: [{{jwks: '{jwks}'}}], issuer: 'https://mcpgate.test', audience: backends}}"))
                .expect("parse");
        let w = WristbandVerifier::new(&cfg).expect("verifier").verify(&jwt, Some(&alice)).expect("round trip");
        assert_eq!(w.subject.as_deref(), Some("alice"));
        assert!(w.expires_at <= now() as u64 + 30);
        assert!(w.grants.contains("server1.mcp.local", Kind::Tool, "greet"));
        assert_eq!(w.grants.contains("server1.mcp.local", Kind::Prompt, "hello"), format == "capabilities");
    }
}

#[test]
fn issuer_debug_never_shows_the_private_key() {
    let shown = format!("{:?}", issuer("tools"));
    assert!(!shown.contains("PRIVATE") && shown.contains("***"), "{shown}");
    assert_eq!(issuer("tools").header_name(), "x-authorized-tools");
    assert_eq!(issuer("capabilities").header_name(), "x-mcp-authorized");
}
