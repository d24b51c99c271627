//! Wristbands: what the gateway signs must verify back to the same grants, in both claim
//! layouts, and nothing else may verify.
//!
//! Properties:
//! - Grants built from the input (any client ids and names) survive `issue` → `verify`
//!   exactly (the tools layout carries tools only), bound to the caller's subject.
//! - A wristband with bytes spliced in, or any string at all, is either refused or verifies to
//!   exactly the grants that were signed; nothing panics.
#![no_main]

#[path = "keys.rs"]
mod keys;

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use keys::{TestKey, now};
use libfuzzer_sys::fuzz_target;
use mcpgate_auth::{AuthConfig, Authenticator, Grants, Kind, VerifiedIdentity, WristbandFormat, WristbandIssuer, WristbandVerifier};
use serde_json::json;

const ISSUER: &str = "https://idp.fuzz.test";

struct Pair {
    format: WristbandFormat,
    issuer: WristbandIssuer,
    verifier: WristbandVerifier,
}

struct World {
    identity: VerifiedIdentity,
    pairs: Vec<Pair>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        // A verified caller, the only way a `VerifiedIdentity` exists.
        let idp = TestKey::p256("idp-1");
        let cfg: AuthConfig = serde_json::from_value(json!({
            "issuers": [{"issuer": ISSUER, "static_keys": [{"jwks": {"keys": [idp.jwk()]}}]}],
            "audiences": ["mcpgate"],
        }))
        .expect("auth config");
        let token = idp.sign(&json!({"iss": ISSUER, "sub": "alice", "aud": "mcpgate", "exp": now() + 86_400 * 365}));
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let authn = Authenticator::new(&cfg, reqwest::Client::new()).expect("authenticator");
        let identity = rt.block_on(authn.verify_bearer(Some(&format!("Bearer {token}")))).expect("genuine token verifies");

        let pairs = [("tools", WristbandFormat::Tools), ("capabilities", WristbandFormat::Capabilities)]
            .into_iter()
            .map(|(name, format)| {
                let key = TestKey::p256("wb-1");
                let issuer = WristbandIssuer::new(
                    &serde_json::from_value(json!({"private_key_pem": key.pem, "kid": "wb-1", "issuer": "https://gw.fuzz.test", "audience": "backends", "format": name, "ttl": "1h"}))
                        .expect("issue config"),
                )
                .expect("issuer");
                let verifier = WristbandVerifier::new(
                    &serde_json::from_value(json!({"keys": [{"jwks": issuer.jwks()}], "issuer": "https://gw.fuzz.test", "audience": "backends", "format": name}))
                        .expect("verifier config"),
                )
                .expect("verifier");
                Pair { format, issuer, verifier }
            })
            .collect();
        World { identity, pairs }
    })
}

#[derive(Arbitrary, Debug)]
struct Input {
    grants: Vec<(u8, String, String)>,
    splice_at: u16,
    splice: Vec<u8>,
    raw: String,
}

fn kind(k: u8) -> Kind {
    match k % 3 {
        0 => Kind::Tool,
        1 => Kind::Prompt,
        _ => Kind::Resource,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let w = world();
    let mut grants = Grants::new();
    for (k, server, name) in &input.grants {
        grants.insert(server, kind(*k), name);
    }
    for pair in &w.pairs {
        let signed = match pair.format {
            WristbandFormat::Tools => {
                let mut tools = Grants::new();
                for (k, server, name) in &input.grants {
                    if kind(*k) == Kind::Tool {
                        tools.insert(server, Kind::Tool, name);
                    }
                }
                tools
            }
            WristbandFormat::Capabilities => grants.clone(),
        };
        let jwt = pair.issuer.issue(&w.identity, &grants).expect("signing works");
        let back = pair.verifier.verify(&jwt, Some(&w.identity)).expect("a wristband we signed verifies");
        assert_eq!(back.subject.as_deref(), Some("alice"));
        assert_eq!(back.grants, signed, "{:?} layout changed the grants", pair.format);

        let mut tampered = jwt.clone().into_bytes();
        let at = usize::from(input.splice_at) % (tampered.len() + 1);
        tampered.splice(at..at, input.splice.iter().copied());
        if let Ok(got) = pair.verifier.verify(&String::from_utf8_lossy(&tampered), Some(&w.identity)) {
            assert_eq!(got.grants, signed, "a tampered wristband verified with other grants");
        }
        if let Ok(got) = pair.verifier.verify(&input.raw, None) {
            panic!("an unsigned string verified: {:?}", got.grants);
        }
    }
});
