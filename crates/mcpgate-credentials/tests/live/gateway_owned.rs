//! Credentials the gateway owns or forwards: static secrets (env, file), client credentials,
//! explicit passthrough (with its warning), discovery credentials, and configuration errors.

use std::sync::{Arc, Mutex};

use mcpgate_credentials::CredentialError;

use crate::support::{FakeCaller, Idp, header, resolver, scratch_dir, try_resolver};

const STATIC_ENV_CHILD: &str = "MCPGATE_CRED_TEST_CHILD";

/// Environment variables cannot be set in-process without `unsafe`; the test runs itself in
/// a child process with the variable set.
#[test]
fn static_secret_from_env_is_sent_in_the_configured_header() {
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args(["--exact", "gateway_owned::static_env_child", "--nocapture", "--test-threads=1"])
        .env(STATIC_ENV_CHILD, "1")
        .env("MCPGATE_TEST_STATIC_KEY", "env-secret-8086")
        .output()
        .expect("child runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("1 passed"), "child: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn static_env_child() {
    if std::env::var_os(STATIC_ENV_CHILD).is_none() {
        return; // only meaningful inside static_secret_from_env_is_sent_in_the_configured_header
    }
    let server = "credentials: [{static: {secret: {env: MCPGATE_TEST_STATIC_KEY}, header: X-API-Key}}]";
    let r = resolver("{}", &[("weather", "https://weather.local/mcp", server)]);
    let resolved = r.resolve("weather", &FakeCaller::named("alice").caller(), None).await.expect("static");
    assert_eq!((resolved.source, header(&resolved, "x-api-key")), ("static", "env-secret-8086".to_owned()));
}

#[tokio::test]
async fn static_secret_from_a_file_is_trimmed_and_the_same_for_every_caller() {
    let dir = scratch_dir("static");
    let file = dir.join("key");
    std::fs::write(&file, "file-secret-1999\n").expect("write");
    let server = format!("credentials: [{{static: {{secret: {{file: '{}'}}, format: 'Token {{value}}'}}}}]", file.display());
    let r = resolver("{}", &[("weather", "https://weather.local/mcp", &server)]);
    let a = r.resolve("weather", &FakeCaller::named("alice").caller(), None).await.expect("alice");
    let b = r.resolve("weather", &FakeCaller::named("bob").caller(), None).await.expect("bob");
    assert_eq!(header(&a, "authorization"), "Token file-secret-1999");
    assert_eq!(a.fingerprint, b.fingerprint);
    assert_eq!(a.masked, "…(16 chars)");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn an_unset_secret_variable_is_a_config_error_naming_the_key() {
    let server = "credentials: [{static: {secret: {env: MCPGATE_SURELY_UNSET_1234}}}]";
    let errors = try_resolver("{}", &[("weather", "https://weather.local/mcp", server)]).expect_err("unset");
    assert_eq!(errors, ["servers[0].credentials[0]: secret: environment variable MCPGATE_SURELY_UNSET_1234 is not set"]);
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn passthrough_forwards_the_callers_token_and_warns_when_built() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    let server = "credentials: [{passthrough: {}}]";
    let r = tracing::subscriber::with_default(subscriber, || resolver("{}", &[("legacy", "http://legacy.local/mcp", server)]));
    let logged = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf8");
    assert!(logged.contains("WARN") && logged.contains("passthrough") && logged.contains("legacy"), "{logged}");
    let alice = FakeCaller::named("alice");
    let resolved = r.resolve("legacy", &alice.caller(), None).await.expect("passthrough");
    assert_eq!(resolved.source, "passthrough");
    assert_eq!(header(&resolved, "authorization"), "Bearer caller-token-of-alice");
    assert!(!logged.contains("caller-token-of-alice"));
}

#[tokio::test]
async fn discovery_uses_its_own_credential_and_calls_need_a_chain() {
    let server = "discovery: {static: {secret: {value: discovery-key}, header: X-API-Key}}";
    let r = resolver("{}", &[("weather", "https://weather.local/mcp", server)]);
    assert!(!r.has_chain("weather"));
    let d = r.discovery("weather").await.expect("ok").expect("configured");
    assert_eq!(header(&d, "x-api-key"), "discovery-key");
    let err = r.resolve("weather", &FakeCaller::named("alice").caller(), None).await.expect_err("no chain");
    assert_eq!(err.reason_code(), "no_credential");
    let unknown = r.resolve("nope", &FakeCaller::named("alice").caller(), None).await.expect_err("unknown");
    assert_eq!(unknown, CredentialError::UnknownServer { server: "nope".into() });
}

/// The test IdP has no client allowed the client_credentials grant, so this checks that the
/// request reaches the real token endpoint with the gateway's client authentication and
/// that a refusal fails closed. A successful grant is covered only by the unit tests of the
/// request form (see the report: the fixture needs a client_credentials client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_refused_by_the_idp_fails_closed() {
    let Some(idp) = Idp::start(&[]).await else { return };
    let creds = format!("client_credentials: {{token_endpoint: '{}', client_id: mcpgate, client_secret: {{value: mcpgate-secret}}}}", idp.token_endpoint);
    let server = "credentials: [{client_credentials: {scope: catalog}}]\ndiscovery: {client_credentials: {scope: catalog}}";
    let r = resolver(&creds, &[("inventory", "http://inventory.local/mcp", server)]);
    let err = r.discovery("inventory").await.expect_err("refused");
    assert_eq!((err.reason_code(), err.server()), ("client_credentials_failed", "inventory"));
    assert!(err.to_string().contains("(HTTP 400"), "{err}");
    let err = r.resolve("inventory", &FakeCaller::named("alice").caller(), None).await.expect_err("refused");
    assert_eq!(err.source_name(), Some("client_credentials"));
    assert_eq!(r.stats().client_credentials_requests, 2, "a refusal is not cached");
    let stats = idp.stats().await;
    assert_eq!(stats["token_requests"]["client_credentials"], 2, "{stats}");
}

#[test]
fn configuration_mistakes_are_reported_together_with_their_keys() {
    let servers = [
        ("a", "http://a.local/mcp", "credentials: [{vault: {}}, {token_exchange: {}}]"),
        ("b", "http://b.local/mcp", "credentials: [{static: {secret: {value: k}}}, {passthrough: {}}]"),
        ("c", "http://c.local/mcp", "credentials: [{static: {secret: {value: k}, header: Host}}]"),
        ("d", "http://d.local/mcp", "credentials: [{static: {secret: {value: k}, format: 'Bearer {val}'}}]"),
        ("a", "http://a2.local/mcp", "discovery: {client_credentials: {}}"),
    ];
    let errors = try_resolver("{}", &servers).expect_err("invalid");
    let expected = [
        "servers[0].credentials[0]: a vault source needs the top-level credentials.vault section",
        "servers[0].credentials[1]: a token_exchange source needs the top-level credentials.token_exchange section",
        "servers[1].credentials[1]: never reached: the static source before it always yields a credential",
        "servers[2].credentials[0]: header \"Host\" cannot carry a credential",
        "servers[3].credentials[0]: format: \"Bearer {val}\": unknown placeholder {val}; use {value}",
        "servers[4].discovery_credentials: a client_credentials source needs the top-level credentials.client_credentials section",
        "servers[4].name: \"a\" is listed twice",
    ];
    assert_eq!(errors, expected);
}

#[test]
fn a_broken_tls_file_of_a_used_section_is_reported_with_its_key() {
    let dir = scratch_dir("tls");
    let not_pem = dir.join("not-a-ca.pem");
    std::fs::write(&not_pem, "hello").expect("write");
    let creds = format!(
        "vault: {{address: 'https://vault.local:8200', auth: {{token: {{value: t}}}}, tls: {{ca_file: '{}'}}}}\n\
         client_credentials: {{token_endpoint: 'https://idp.local/token', client_id: c, client_secret: {{value: s}}, tls: {{cert_file: '{}'}}}}",
        not_pem.display(),
        not_pem.display()
    );
    let servers = [("a", "https://a.local/mcp", "credentials: [{vault: {path: 'x'}}]\ndiscovery: {client_credentials: {}}")];
    let errors = try_resolver(&creds, &servers).expect_err("invalid");
    assert!(errors.iter().any(|e| e.starts_with("credentials.vault.tls.ca_file: ") && e.contains("not-a-ca.pem")), "{errors:?}");
    assert!(errors.iter().any(|e| e.starts_with("credentials.client_credentials.tls.key_file: cert_file is set without key_file")), "{errors:?}");
}
