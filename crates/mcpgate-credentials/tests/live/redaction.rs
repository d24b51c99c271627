//! Secrets never appear in `Debug` or `Display` of configuration, resolvers, callers,
//! credentials or errors: checked with known secret strings.

use mcpgate_credentials::{CredentialError, CredentialsConfig, ServerCredentials};

use crate::support::{FakeCaller, resolver};

const SECRETS: &[&str] = &["inline-vault-token-AA11", "inline-secret-id-BB22", "inline-client-secret-CC33", "inline-api-key-DD44"];

fn assert_clean(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret}: {text}");
    }
}

#[tokio::test]
async fn configs_resolvers_credentials_and_errors_never_print_secrets() {
    let credentials = format!(
        "vault: {{address: 'https://vault.example', auth: {{token: {{value: {}}}}}}}\n\
         token_exchange: {{client_id: mcpgate, client_secret: {{value: {}}}}}\n\
         client_credentials: {{token_endpoint: 'https://idp.example/token', client_id: gw, client_secret: {{value: {}}}}}",
        SECRETS[0], SECRETS[2], SECRETS[2]
    );
    let approle = format!("vault: {{address: 'https://v', auth: {{approle: {{role_id: r, secret_id: {{value: {}}}}}}}}}", SECRETS[1]);
    let server = format!("credentials: [{{static: {{secret: {{value: {}}}, header: X-API-Key}}}}]", SECRETS[3]);
    let cfg: CredentialsConfig = yaml_serde::from_str(&credentials).expect("parses");
    let approle_cfg: CredentialsConfig = yaml_serde::from_str(&approle).expect("parses");
    let server_cfg: ServerCredentials = yaml_serde::from_str(&server).expect("parses");
    assert_clean("config Debug", &format!("{cfg:?} {approle_cfg:?} {server_cfg:?}"));

    let r = resolver(&credentials, &[("weather", "https://weather.local/mcp", &server)]);
    assert_clean("resolver Debug", &format!("{r:?}"));
    let alice = FakeCaller::named("alice");
    assert!(!format!("{:?}", alice.caller()).contains("caller-token-of-alice"));
    let resolved = r.resolve("weather", &alice.caller(), None).await.expect("static");
    assert_clean("resolved Debug", &format!("{resolved:?} {}", resolved.masked));
    assert_eq!(resolved.masked, "…(19 chars)");

    let errors = [
        CredentialError::NoCredential { server: "s".into(), tried: vec!["vault", "token_exchange"] },
        CredentialError::BadHeaderValue { server: "s".into(), via: "static" },
        CredentialError::Vault { server: "s".into(), reason: "permission denied reading secret/data/a/b (HTTP 403)".into() },
    ];
    for e in &errors {
        assert_clean("error", &format!("{e} {e:?}"));
    }
}
