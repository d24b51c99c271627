//! The test OpenID provider (`tests/fixtures/oidc/provider.mjs`, a real oidc-provider with
//! RFC 8693 token exchange) per test, on a free port; user tokens through its password grant;
//! its `/test/*` controls and counters; stopped by PID when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mcpgate_auth::{AuthConfig, Authenticator, VerifiedIdentity};
use serde_json::{Value, json};

pub struct Idp {
    pub issuer: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    child: Child,
    http: reqwest::Client,
}

impl Idp {
    /// Starts the provider with extra CLI `args`, or reports it missing (`None`: skip).
    pub async fn start(args: &[&str]) -> Option<Idp> {
        let script = super::repo_root().join("tests/fixtures/oidc/provider.mjs");
        let node = std::env::var("MCPGATE_OIDC_NODE").unwrap_or_else(|_| "node".to_owned());
        let hint = "run `bash tests/fixtures/oidc/install.sh` (needs Node >= 20 and npm)";
        let spawned =
            Command::new(&node).arg(&script).args(["--port", "0"]).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                super::missing("the test OpenID provider", &format!("cannot run {node} ({e}); {hint}"));
                return None;
            }
        };
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        let Ok(ready) = serde_json::from_str::<Value>(&line) else {
            let _ = child.kill();
            let status = child.wait().ok().and_then(|s| s.code());
            if status == Some(3) {
                super::missing("the test OpenID provider's packages", hint);
                return None;
            }
            panic!("the OpenID provider did not start (exit {status:?}, stdout {line:?})");
        };
        let field = |k: &str| ready[k].as_str().expect("ready line field").to_owned();
        Some(Idp { issuer: field("issuer"), token_endpoint: field("token_endpoint"), jwks_uri: field("jwks_uri"), child, http: super::http() })
    }

    /// A user's access token (password grant, client `mcp-client`, audience `mcpgate`).
    pub async fn user_token(&self, user: &str) -> String {
        self.user_token_with(user, &[]).await
    }

    pub async fn user_token_with(&self, user: &str, extra: &[(&str, &str)]) -> String {
        let password = format!("{user}-password");
        let mut form = vec![("grant_type", "password"), ("username", user), ("password", password.as_str())];
        form.extend_from_slice(extra);
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&form).finish();
        let resp = self
            .http
            .post(&self.token_endpoint)
            .basic_auth("mcp-client", Some("mcp-client-secret"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("token request");
        let status = resp.status();
        let value: Value = resp.json().await.expect("JSON");
        assert!(status.is_success(), "password grant for {user}: {status} {value}");
        value["access_token"].as_str().expect("access_token").to_owned()
    }

    /// The user's token verified as the gateway's identity stage would.
    pub async fn identity(&self, user: &str) -> VerifiedIdentity {
        let token = self.user_token(user).await;
        let cfg: AuthConfig = serde_json::from_value(json!({
            "issuers": [{ "issuer": self.issuer }],
            "audiences": ["mcpgate"],
        }))
        .expect("auth config");
        let auth = Authenticator::new(&cfg, super::http()).expect("authenticator");
        auth.verify_bearer(Some(&format!("Bearer {token}"))).await.expect("the user's token verifies")
    }

    pub async fn stats(&self) -> Value {
        self.http.get(format!("{}/test/stats", self.issuer)).send().await.expect("stats").json().await.expect("JSON")
    }

    pub async fn reset_stats(&self) {
        let resp = self.http.post(format!("{}/test/reset-stats", self.issuer)).send().await.expect("reset");
        assert!(resp.status().is_success(), "reset stats: {}", resp.status());
    }

    /// Token-exchange requests the IdP saw for (subject, audience).
    pub async fn exchanges(&self, subject: &str, audience: &str) -> u64 {
        self.stats().await["token_exchange"][subject][audience].as_u64().unwrap_or(0)
    }

    /// `POST /test/mode` with `mode` (e.g. `{"token_exchange": "down"}`).
    pub async fn set_mode(&self, mode: Value) {
        let resp = self.http.post(format!("{}/test/mode", self.issuer)).json(&mode).send().await.expect("mode");
        assert!(resp.status().is_success(), "set mode: {}", resp.status());
    }

    pub async fn rotate_keys(&self, drop_old: bool) {
        let q = if drop_old { "?drop_old=1" } else { "" };
        let resp = self.http.post(format!("{}/test/rotate-keys{q}", self.issuer)).send().await.expect("rotate");
        assert!(resp.status().is_success(), "rotate keys: {}", resp.status());
    }

    /// The `credentials.token_exchange` YAML for this provider (discovery of the issuer).
    pub fn exchange_yaml(&self, extra: &str) -> String {
        format!("token_exchange:\n  client_id: mcpgate\n  client_secret: {{value: mcpgate-secret}}\n{extra}")
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
