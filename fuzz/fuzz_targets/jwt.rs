//! Bearer-token verification (`Authenticator::verify_bearer`, static keys) fed hostile
//! `Authorization` headers: raw bytes, and genuine tokens with one part replaced or bytes
//! spliced in.
//!
//! Properties: nothing panics; a header is accepted only if its token carries, byte for byte,
//! the header and claims of a token the trusted keys really signed (a fuzzer cannot forge a
//! signature, so any other acceptance is a verification hole); an accepted identity is the
//! signed subject.
#![no_main]

#[path = "keys.rs"]
mod keys;

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keys::{TestKey, now};
use libfuzzer_sys::fuzz_target;
use mcpgate_auth::{AuthConfig, Authenticator};
use serde_json::json;

const ISSUER: &str = "https://idp.fuzz.test";
const SUBJECT: &str = "fuzz-subject";

struct World {
    runtime: tokio::runtime::Runtime,
    authenticator: Authenticator,
    /// Genuinely signed tokens (ES256, EdDSA).
    tokens: Vec<String>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let keys = [TestKey::p256("ec-1"), TestKey::ed25519("ed-1")];
        let cfg: AuthConfig = serde_json::from_value(json!({
            "issuers": [{"issuer": ISSUER, "static_keys": [{"jwks": {"keys": keys.iter().map(TestKey::jwk).collect::<Vec<_>>()}}]}],
            "audiences": ["mcpgate"],
            "token_cache_size": 0,
        }))
        .expect("auth config");
        let claims = json!({"iss": ISSUER, "sub": SUBJECT, "aud": "mcpgate", "iat": now(), "exp": now() + 86_400 * 365, "scope": "mcp"});
        let tokens = keys.iter().map(|k| k.sign(&claims)).collect();
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let authenticator = Authenticator::new(&cfg, reqwest::Client::new()).expect("authenticator");
        World { runtime, authenticator, tokens }
    })
}

fn decoded_parts(token: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut parts = token.split('.');
    let h = URL_SAFE_NO_PAD.decode(parts.next()?.trim_end_matches('=')).ok()?;
    let p = URL_SAFE_NO_PAD.decode(parts.next()?.trim_end_matches('=')).ok()?;
    Some((h, p))
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let Some((&mode, rest)) = data.split_first() else { return };
    let header = match mode % 4 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => {
            // One part of a genuine token replaced by the fuzzer's bytes.
            let Some((&which, bytes)) = rest.split_first() else { return };
            let token = &w.tokens[usize::from(which >> 4) % w.tokens.len()];
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            parts[usize::from(which) % 3] = URL_SAFE_NO_PAD.encode(bytes);
            format!("Bearer {}", parts.join("."))
        }
        2 => {
            // Bytes spliced into a genuine token at a chosen offset.
            let Some((&at, bytes)) = rest.split_first() else { return };
            let token = &w.tokens[usize::from(at >> 7) % w.tokens.len()];
            let mut t = token.clone().into_bytes();
            let pos = (usize::from(at) * 7) % (t.len() + 1);
            t.splice(pos..pos, bytes.iter().copied());
            format!("Bearer {}", String::from_utf8_lossy(&t))
        }
        _ => {
            // A token with the fuzzer's header and claims JSON and a genuine signature.
            let (h, p) = rest.split_at(rest.len() / 2);
            let sig = w.tokens[usize::from(mode >> 4) % w.tokens.len()].rsplit('.').next().unwrap_or_default().to_owned();
            format!("Bearer {}.{}.{sig}", URL_SAFE_NO_PAD.encode(h), URL_SAFE_NO_PAD.encode(p))
        }
    };
    let result = w.runtime.block_on(w.authenticator.verify_bearer(Some(&header)));
    if let Ok(identity) = result {
        assert_eq!(identity.subject, SUBJECT);
        let token = header.split_once(' ').map(|(_, t)| t.trim()).unwrap_or_default();
        let presented = decoded_parts(token).expect("an accepted token has readable parts");
        assert!(w.tokens.iter().any(|t| decoded_parts(t).as_ref() == Some(&presented)), "accepted a token whose signed content was changed: {header:?}");
    }
});
