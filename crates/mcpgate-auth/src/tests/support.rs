//! Test fixtures: committed test-only keys, token minting, and an in-process IdP (OIDC
//! discovery + JWKS on 127.0.0.1) that counts JWKS requests and can rotate keys.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::{AuthConfig, Authenticator, default_http_client};

pub const RSA1_KEY: &str = include_str!("../../tests/keys/rsa1.key.pem");
pub const RSA1_PUB: &str = include_str!("../../tests/keys/rsa1.pub.pem");
pub const RSA2_KEY: &str = include_str!("../../tests/keys/rsa2.key.pem");
pub const EC1_KEY: &str = include_str!("../../tests/keys/ec1.key.pem");
pub const ED1_KEY: &str = include_str!("../../tests/keys/ed1.key.pem");
pub const ED1_PUB: &str = include_str!("../../tests/keys/ed1.pub.pem");
pub const WB1_KEY: &str = include_str!("../../tests/keys/wristband1.key.pem");
pub const WB1_PUB: &str = include_str!("../../tests/keys/wristband1.pub.pem");
pub const WB2_KEY: &str = include_str!("../../tests/keys/wristband2.key.pem");

pub const AUDIENCE: &str = "https://gateway.test/mcp";

pub fn now() -> i64 {
    crate::verify::now() as i64
}

fn encoding_key(alg: Algorithm, pem: &str) -> EncodingKey {
    match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .expect("test key parses")
}

/// A signed JWT.
pub fn mint(alg: Algorithm, private_pem: &str, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &encoding_key(alg, private_pem)).expect("signing works")
}

/// The public JWK of a private test key, with `kid` and (optionally) `alg`.
pub fn jwk(alg: Algorithm, private_pem: &str, kid: &str, with_alg: bool) -> Value {
    let mut jwk = Jwk::from_encoding_key(&encoding_key(alg, private_pem), alg).expect("jwk");
    jwk.common.key_id = Some(kid.to_owned());
    if !with_alg {
        jwk.common.key_algorithm = None;
    }
    serde_json::to_value(jwk).expect("jwk json")
}

/// Valid access-token claims for `issuer`; callers override what a test is about.
pub fn claims(issuer: &str, sub: &str) -> Value {
    json!({
        "iss": issuer,
        "sub": sub,
        "aud": AUDIENCE,
        "exp": now() + 300,
        "iat": now(),
        "preferred_username": sub,
        "scope": "openid mcp",
    })
}

pub fn with(mut base: Value, overrides: Value) -> Value {
    if let (Value::Object(b), Value::Object(o)) = (&mut base, overrides) {
        for (k, v) in o {
            if v.is_null() {
                b.remove(&k);
            } else {
                b.insert(k, v);
            }
        }
    }
    base
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub fn config(yaml: &str) -> AuthConfig {
    yaml_serde::from_str(yaml).expect("test config parses")
}

pub fn authenticator(yaml: &str) -> Authenticator {
    Authenticator::new(&config(yaml), default_http_client().expect("client")).expect("config is valid")
}

/// An in-process IdP serving discovery and a JWKS that tests can replace.
pub struct TestIdp {
    pub issuer: String,
    state: Arc<IdpState>,
    task: tokio::task::JoinHandle<()>,
}

struct IdpState {
    issuer: String,
    jwks: Mutex<Value>,
    jwks_hits: AtomicUsize,
    jwks_delay: Duration,
}

impl TestIdp {
    pub async fn start(jwks: Value) -> TestIdp {
        Self::start_with_delay(jwks, Duration::ZERO).await
    }

    pub async fn start_with_delay(jwks: Value, jwks_delay: Duration) -> TestIdp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let issuer = format!("http://{}/realms/test", listener.local_addr().expect("addr"));
        let state = Arc::new(IdpState { issuer: issuer.clone(), jwks: Mutex::new(jwks), jwks_hits: AtomicUsize::new(0), jwks_delay });
        let app = Router::new()
            .route("/realms/test/.well-known/openid-configuration", get(discovery))
            .route("/realms/test/certs", get(certs))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestIdp { issuer, state, task }
    }

    pub fn set_jwks(&self, jwks: Value) {
        *self.state.jwks.lock().expect("lock") = jwks;
    }

    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    /// An `auth:` config trusting this IdP through discovery.
    pub fn config_yaml(&self, extra: &str) -> String {
        format!("issuers:\n  - issuer: {}\naudiences: [{AUDIENCE}]\n{extra}", self.issuer)
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn discovery(State(s): State<Arc<IdpState>>) -> axum::Json<Value> {
    axum::Json(json!({ "issuer": s.issuer, "jwks_uri": format!("{}/certs", s.issuer) }))
}

async fn certs(State(s): State<Arc<IdpState>>) -> axum::Json<Value> {
    s.jwks_hits.fetch_add(1, Ordering::SeqCst);
    if !s.jwks_delay.is_zero() {
        tokio::time::sleep(s.jwks_delay).await;
    }
    let jwks = s.jwks.lock().expect("lock").clone();
    axum::Json(jwks)
}
