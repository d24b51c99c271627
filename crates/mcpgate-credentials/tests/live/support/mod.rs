//! Shared fixtures for the behaviour tests: real OpenBao and a real OpenID provider started
//! per test on free loopback ports and stopped by PID, plus helpers to build resolvers and
//! callers. A missing component skips the test with a message, or fails it when `CI` is set.

pub mod bao;
pub mod idp;

use std::path::PathBuf;

use mcpgate_auth::{Secret, VerifiedIdentity};
use mcpgate_credentials::{Caller, CredentialsConfig, Resolver, ServerCredentials, ServerInfo};
use serde_json::{Map, Value, json};

pub use bao::Bao;
pub use idp::Idp;

/// Reports a component that is not installed: a failure under `CI`, otherwise a skip.
pub fn missing(component: &str, hint: &str) {
    let msg = format!("{component} is not available: {hint}");
    if std::env::var_os("CI").is_some() {
        panic!("{msg} (CI is set, so this is a failure, not a skip)");
    }
    eprintln!("SKIPPED: {msg}");
}

/// `${MCPGATE_TEST_CACHE:-$HOME/.cache/mcpgate-test}`.
pub fn test_cache() -> PathBuf {
    match std::env::var_os("MCPGATE_TEST_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache/mcpgate-test"),
    }
}

/// The repository root (for `tests/fixtures`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A scratch directory unique to this process and `name`, removed by the caller.
pub fn scratch_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mcpgate-cred-{name}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

pub fn http() -> reqwest::Client {
    mcpgate_auth::default_http_client().expect("http client")
}

/// A resolver for `credentials` (YAML of the top-level section) and servers given as
/// (name, url, YAML of the server's credentials).
pub fn resolver(credentials: &str, servers: &[(&str, &str, &str)]) -> Resolver {
    try_resolver(credentials, servers).unwrap_or_else(|errors| panic!("config is valid: {errors:#?}"))
}

pub fn try_resolver(credentials: &str, servers: &[(&str, &str, &str)]) -> Result<Resolver, Vec<String>> {
    let cfg: CredentialsConfig = yaml_serde::from_str(credentials).expect("credentials parse");
    let servers: Vec<ServerInfo> = servers
        .iter()
        .map(|(name, url, creds)| {
            let creds: ServerCredentials = yaml_serde::from_str(creds).expect("server credentials parse");
            ServerInfo::new(*name, Some(url), creds)
        })
        .collect();
    Resolver::new(&cfg, &servers, http())
}

/// A caller known only by claims (for Vault sources, which never use the token).
pub struct FakeCaller {
    pub claims: Map<String, Value>,
    pub token: Secret,
    pub subject: String,
}

impl FakeCaller {
    pub fn named(username: &str) -> Self {
        let Value::Object(claims) = json!({ "preferred_username": username, "sub": format!("user-{username}") }) else { unreachable!() };
        Self { claims, token: Secret::new(format!("caller-token-of-{username}")), subject: format!("user-{username}") }
    }

    pub fn caller(&self) -> Caller<'_> {
        Caller { issuer: "https://idp.test", subject: &self.subject, claims: &self.claims, token: &self.token }
    }
}

/// A caller from a verified identity.
pub fn caller(identity: &VerifiedIdentity) -> Caller<'_> {
    Caller::from_identity(identity)
}

/// The header value of a resolved credential, for assertions.
pub fn header(resolved: &mcpgate_credentials::Resolved, name: &str) -> String {
    let (_, value) = resolved.headers.iter().find(|(n, _)| n.as_str() == name).unwrap_or_else(|| panic!("header {name}"));
    value.to_str().expect("ascii").to_owned()
}

/// The unverified payload of a JWT, for assertions on what a backend would receive.
pub fn jwt_claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON payload")
}
