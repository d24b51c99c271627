//! Requests to an OAuth 2.0 token endpoint (RFC 8693 token exchange, client_credentials):
//! the form, the gateway's client authentication (RFC 6749 §2.3.1, Basic or in the body),
//! and reading the answer. Owns the gateway's client secret; never logs a request (it holds
//! the subject token or the secret) or a response body (it holds the new token), and turns
//! error answers into fixed phrases plus the RFC error code.

use std::time::Duration;

use base64::Engine;
use mcpgate_auth::Secret;
use serde_json::Value;

use crate::config::ClientAuthMethod;
use crate::wire::{describe, read_json};

/// A token issued by the endpoint.
pub(crate) struct Issued {
    pub token: Secret,
    pub expires_in: Option<Duration>,
}

/// The gateway as a client of one IdP.
pub(crate) struct TokenClient {
    http: reqwest::Client,
    client_id: String,
    secret: Secret,
    method: ClientAuthMethod,
    timeout: Duration,
    counters: std::sync::Arc<crate::stats::Counters>,
}

impl TokenClient {
    pub fn new(http: reqwest::Client, client_id: String, secret: Secret, method: ClientAuthMethod, timeout: Duration) -> Self {
        Self { http, client_id, secret, method, timeout, counters: Default::default() }
    }

    /// Counts this client's requests in `counters` (the resolver's).
    pub fn counted(mut self, counters: std::sync::Arc<crate::stats::Counters>) -> Self {
        self.counters = counters;
        self
    }

    /// The POST for `params`, with the gateway's client authentication added.
    pub fn build(&self, endpoint: &url::Url, params: &[(&str, &str)]) -> Result<reqwest::Request, String> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.extend_pairs(params);
        let mut req = self
            .http
            .post(endpoint.clone())
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .timeout(self.timeout);
        match self.method {
            ClientAuthMethod::Post => {
                form.append_pair("client_id", &self.client_id);
                form.append_pair("client_secret", self.secret.expose());
            }
            ClientAuthMethod::Basic => {
                // RFC 6749 §2.3.1: both parts form-encoded before Base64.
                let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let pair = format!("{}:{}", enc(&self.client_id), enc(self.secret.expose()));
                let mut value = http::HeaderValue::from_str(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
                    .map_err(|_| "the client credentials do not fit a header".to_owned())?;
                value.set_sensitive(true);
                req = req.header(http::header::AUTHORIZATION, value);
            }
        }
        req.body(form.finish()).build().map_err(|_| "cannot build the token request".to_owned())
    }

    /// Sends `params` and returns the issued token. Errors are safe to show.
    pub async fn request(&self, endpoint: &url::Url, params: &[(&str, &str)]) -> Result<Issued, String> {
        let req = self.build(endpoint, params)?;
        let resp =
            crate::wire::execute(&self.http, req, &self.counters.idp).await.map_err(|e| format!("the token endpoint is unreachable: {}", describe(&e)))?;
        let status = resp.status().as_u16();
        let body = read_json(resp).await.map_err(|e| format!("the token endpoint's answer: {e}"))?;
        if status != 200 {
            return Err(explain(status, &body));
        }
        let token = body.get("access_token").and_then(Value::as_str).filter(|t| !t.is_empty());
        let token = token.ok_or("the token endpoint's answer has no access_token")?;
        let expires_in = match body.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        Ok(Issued { token: Secret::new(token), expires_in: expires_in.map(Duration::from_secs) })
    }
}

/// An error answer in words: a fixed phrase for the RFC 6749/8693 codes, the status, and the
/// code itself (only when it looks like one: no free text from the IdP reaches a message).
fn explain(status: u16, body: &Value) -> String {
    let code =
        body.get("error").and_then(Value::as_str).filter(|c| !c.is_empty() && c.len() <= 64 && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'));
    let phrase = match code {
        Some("invalid_target") => "the IdP refused the requested audience or resource",
        Some("invalid_client") => "the IdP refused the gateway's client credentials",
        Some("invalid_grant") => "the IdP refused the caller's token",
        Some("unauthorized_client" | "unsupported_grant_type") => "the gateway's client may not use this grant",
        Some("invalid_scope") => "the IdP refused the requested scope",
        Some("temporarily_unavailable") => "the IdP is temporarily unavailable",
        _ if status >= 500 => "the IdP failed",
        _ => "the token request was refused",
    };
    match code {
        Some(code) => format!("{phrase} (HTTP {status} {code})"),
        None => format!("{phrase} (HTTP {status})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(method: ClientAuthMethod) -> TokenClient {
        TokenClient::new(reqwest::Client::new(), "mcp gate".into(), Secret::new("s3cr:et"), method, Duration::from_secs(5))
    }

    fn body(req: &reqwest::Request) -> String {
        String::from_utf8(req.body().and_then(|b| b.as_bytes()).expect("buffered").to_vec()).expect("utf8")
    }

    #[test]
    fn basic_client_auth_form_encodes_id_and_secret() {
        let url = url::Url::parse("https://idp.example/token").expect("url");
        let req = client(ClientAuthMethod::Basic).build(&url, &[("grant_type", "client_credentials")]).expect("builds");
        let auth = req.headers().get("authorization").expect("basic");
        assert!(auth.is_sensitive());
        let encoded = auth.to_str().expect("ascii").strip_prefix("Basic ").expect("basic");
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).expect("b64");
        assert_eq!(decoded, b"mcp+gate:s3cr%3Aet");
        assert_eq!(body(&req), "grant_type=client_credentials");
        assert_eq!(req.headers()["content-type"], "application/x-www-form-urlencoded");
    }

    #[test]
    fn post_client_auth_puts_the_secret_in_the_body_only() {
        let url = url::Url::parse("https://idp.example/token").expect("url");
        let req = client(ClientAuthMethod::Post).build(&url, &[("grant_type", "client_credentials"), ("scope", "a b")]).expect("ok");
        assert!(req.headers().get("authorization").is_none());
        assert_eq!(body(&req), "grant_type=client_credentials&scope=a+b&client_id=mcp+gate&client_secret=s3cr%3Aet");
    }

    #[test]
    fn error_answers_become_fixed_phrases_without_idp_text() {
        let body = serde_json::json!({"error": "invalid_target", "error_description": "echo: eyJsecret"});
        let msg = explain(400, &body);
        assert_eq!(msg, "the IdP refused the requested audience or resource (HTTP 400 invalid_target)");
        let odd = serde_json::json!({"error": "free text with eyJsecret"});
        assert_eq!(explain(400, &odd), "the token request was refused (HTTP 400)");
        assert_eq!(explain(503, &Value::Null), "the IdP failed (HTTP 503)");
    }
}
