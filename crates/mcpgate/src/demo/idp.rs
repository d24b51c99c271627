//! A development-only OpenID provider for `mcpgate demo`: loopback only, users `alice` and
//! `bob` with Keycloak-style client roles, a password grant for getting a first token and an
//! RFC 8693 token-exchange grant for the gateway. Keys are generated at start (ES256) and
//! never leave the process. Never use it outside the demo.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value, json};

/// The demo's client the gateway exchanges tokens with.
pub const GATEWAY_CLIENT: &str = "mcpgate";
pub const GATEWAY_SECRET: &str = "demo-gateway-secret";
const KID: &str = "demo-1";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

pub struct DevIdp {
    issuer: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
    users: BTreeMap<&'static str, Value>,
    audiences: Vec<String>,
}

/// Starts the provider on an ephemeral loopback port.
pub async fn start(users: BTreeMap<&'static str, Value>, audiences: Vec<String>) -> std::io::Result<Arc<DevIdp>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).map_err(|_| std::io::Error::other("key generation failed"))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).map_err(|_| std::io::Error::other("bad key"))?;
    // Uncompressed point: 0x04 || X || Y.
    let point = pair.public_key().as_ref();
    let (x, y) = (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..65]));
    let idp = Arc::new(DevIdp {
        issuer: format!("http://{addr}"),
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        decoding: DecodingKey::from_ec_components(&x, &y).map_err(|_| std::io::Error::other("bad public key"))?,
        jwk: json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": KID, "alg": "ES256", "use": "sig"}),
        users,
        audiences,
    });
    let app =
        Router::new().route("/.well-known/openid-configuration", get(discovery)).route("/jwks", get(jwks)).route("/token", post(token)).with_state(idp.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(idp)
}

impl DevIdp {
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// A token for `user` issued to the gateway (`aud: mcpgate`), as a client would hold.
    pub fn login(&self, user: &str) -> Option<String> {
        let roles = self.users.get(user)?;
        self.sign(user, "mcpgate", roles.clone(), None)
    }

    fn sign(&self, user: &str, aud: &str, resource_access: Value, act: Option<&str>) -> Option<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("sub".into(), json!(format!("user-{user}")));
        claims.insert("aud".into(), json!(aud));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + 3600));
        claims.insert("preferred_username".into(), json!(user));
        claims.insert("scope".into(), json!("openid profile"));
        claims.insert("resource_access".into(), resource_access);
        if let Some(actor) = act {
            claims.insert("act".into(), json!({"sub": actor}));
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KID.into());
        jsonwebtoken::encode(&header, &claims, &self.encoding).ok()
    }
}

async fn discovery(State(idp): State<Arc<DevIdp>>) -> Json<Value> {
    Json(json!({
        "issuer": idp.issuer,
        "token_endpoint": format!("{}/token", idp.issuer),
        "jwks_uri": format!("{}/jwks", idp.issuer),
        "grant_types_supported": ["password", TOKEN_EXCHANGE],
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
}

async fn jwks(State(idp): State<Arc<DevIdp>>) -> Json<Value> {
    Json(json!({"keys": [idp.jwk]}))
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    (status, Json(json!({"error": code, "error_description": description}))).into_response()
}

async fn token(State(idp): State<Arc<DevIdp>>, headers: HeaderMap, Form(form): Form<BTreeMap<String, String>>) -> Response {
    match form.get("grant_type").map(String::as_str) {
        Some("password") => {
            let user = form.get("username").map(String::as_str).unwrap_or("");
            match idp.login(user) {
                Some(t) => Json(json!({"access_token": t, "token_type": "Bearer", "expires_in": 3600})).into_response(),
                None => oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown user"),
            }
        }
        Some(TOKEN_EXCHANGE) => exchange(&idp, &headers, &form),
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "password or token exchange only"),
    }
}

fn client_ok(headers: &HeaderMap, form: &BTreeMap<String, String>) -> bool {
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let expected = format!("{GATEWAY_CLIENT}:{GATEWAY_SECRET}");
    basic.as_deref() == Some(expected.as_str())
        || (form.get("client_id").map(String::as_str) == Some(GATEWAY_CLIENT) && form.get("client_secret").map(String::as_str) == Some(GATEWAY_SECRET))
}

fn exchange(idp: &DevIdp, headers: &HeaderMap, form: &BTreeMap<String, String>) -> Response {
    if !client_ok(headers, form) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed");
    }
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[&idp.issuer]);
    validation.set_audience(&["mcpgate"]);
    let subject = form.get("subject_token").map(String::as_str).unwrap_or("");
    let Ok(data) = jsonwebtoken::decode::<Map<String, Value>>(subject, &idp.decoding, &validation) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "subject token is not valid");
    };
    let audience = form.get("audience").map(String::as_str).unwrap_or("");
    if !idp.audiences.iter().any(|a| a == audience) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_target", "audience not allowed");
    }
    let user = data.claims.get("preferred_username").and_then(Value::as_str).unwrap_or("");
    let narrowed = data.claims.get("resource_access").and_then(|r| r.get(audience)).map_or(json!({}), |r| json!({ audience: r }));
    match idp.sign(user, audience, narrowed, Some(GATEWAY_CLIENT)) {
        Some(t) => Json(json!({
            "access_token": t,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": 3600,
        }))
        .into_response(),
        None => oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "signing failed"),
    }
}
