//! Checks on the top-level `credentials:` section that serde cannot express. Messages name
//! the key (`credentials.vault.address: …`) and the fix. Never touches the network and never
//! reads a secret (secrets are read when the resolver is built).

use std::time::Duration;

use super::{ClientCredentialsConfig, CredentialsConfig, ExchangeClientConfig, VaultAuth, VaultConfig, check_url};
use crate::template::check_mount;

impl CredentialsConfig {
    /// Every problem found, each as `credentials.<path>: <what is wrong and how to fix it>`.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if let Some(vault) = &self.vault {
            check_vault(vault, &mut errors);
        }
        if let Some(exchange) = &self.token_exchange {
            check_exchange(exchange, &mut errors);
        }
        if let Some(cc) = &self.client_credentials {
            check_client_credentials(cc, &mut errors);
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}

fn check_vault(v: &VaultConfig, errors: &mut Vec<String>) {
    let at = "credentials.vault";
    if let Err(e) = check_url(&v.address, v.allow_insecure_http) {
        errors.push(format!("{at}.address: {e}"));
    }
    if v.namespace.as_deref().is_some_and(|n| n.is_empty() || n.chars().any(|c| c.is_control())) {
        errors.push(format!("{at}.namespace: must be a non-empty name without control characters"));
    }
    check_timeout(v.timeout, &format!("{at}.timeout"), errors);
    let (mount, key) = match &v.auth {
        VaultAuth::Token(_) => (None, ""),
        VaultAuth::AppRole(a) => {
            if a.role_id.trim().is_empty() {
                errors.push(format!("{at}.auth.approle.role_id: must not be empty"));
            }
            (Some(&a.mount), "approle")
        }
        VaultAuth::Jwt(j) => {
            if j.role.trim().is_empty() {
                errors.push(format!("{at}.auth.jwt.role: must not be empty"));
            }
            (Some(&j.mount), "jwt")
        }
        VaultAuth::Kubernetes(k) => {
            if k.role.trim().is_empty() {
                errors.push(format!("{at}.auth.kubernetes.role: must not be empty"));
            }
            (Some(&k.mount), "kubernetes")
        }
    };
    if let Some(mount) = mount
        && let Err(e) = check_mount(mount)
    {
        errors.push(format!("{at}.auth.{key}.mount: {e}"));
    }
}

fn check_exchange(x: &ExchangeClientConfig, errors: &mut Vec<String>) {
    let at = "credentials.token_exchange";
    for (key, url) in [("token_endpoint", &x.token_endpoint), ("issuer", &x.issuer), ("jwks_uri", &x.jwks_uri)] {
        if let Some(url) = url
            && let Err(e) = check_url(url, x.allow_insecure_http)
        {
            errors.push(format!("{at}.{key}: {e}"));
        }
    }
    if x.client_id.trim().is_empty() {
        errors.push(format!("{at}.client_id: must not be empty"));
    }
    check_timeout(x.timeout, &format!("{at}.timeout"), errors);
    if x.leeway > Duration::from_secs(300) {
        errors.push(format!("{at}.leeway: more than 5m accepts long-expired tokens; use e.g. 5s"));
    }
}

fn check_client_credentials(c: &ClientCredentialsConfig, errors: &mut Vec<String>) {
    let at = "credentials.client_credentials";
    if let Err(e) = check_url(&c.token_endpoint, c.allow_insecure_http) {
        errors.push(format!("{at}.token_endpoint: {e}"));
    }
    if c.client_id.trim().is_empty() {
        errors.push(format!("{at}.client_id: must not be empty"));
    }
    check_timeout(c.timeout, &format!("{at}.timeout"), errors);
}

fn check_timeout(t: Duration, at: &str, errors: &mut Vec<String>) {
    if t.is_zero() || t > Duration::from_secs(300) {
        errors.push(format!("{at}: must be between 1ms and 5m (e.g. 5s)"));
    }
}

#[cfg(test)]
mod tests {
    use crate::CredentialsConfig;

    fn parse(yaml: &str) -> CredentialsConfig {
        yaml_serde::from_str(yaml).expect("config parses")
    }

    #[test]
    fn plain_http_vault_is_refused_unless_loopback_or_allowed() {
        let remote = parse("vault: {address: 'http://vault.svc:8200', auth: {token: {env: VAULT_TOKEN}}}");
        let errors = remote.validate().expect_err("plain http");
        assert!(errors[0].starts_with("credentials.vault.address: "), "{errors:?}");
        let local = parse("vault: {address: 'http://127.0.0.1:8200', auth: {token: {env: VAULT_TOKEN}}}");
        assert!(local.validate().is_ok());
        let allowed = parse("vault: {address: 'http://vault.svc:8200', allow_insecure_http: true, auth: {token: {env: T}}}");
        assert!(allowed.validate().is_ok());
    }

    #[test]
    fn vault_defaults_match_the_documentation() {
        let cfg = parse("vault: {address: 'https://vault.example', auth: {approle: {role_id: gw, secret_id: {file: /s}}}}");
        let vault = cfg.vault.expect("vault");
        assert_eq!(vault.cache_ttl.as_secs(), 30);
        assert_eq!(vault.negative_cache_ttl.as_secs(), 5);
        assert_eq!(vault.timeout.as_secs(), 5);
        let crate::VaultAuth::AppRole(approle) = vault.auth else { panic!("approle") };
        assert_eq!(approle.mount, "approle");
    }

    #[test]
    fn a_mount_with_dot_dot_is_refused() {
        let cfg = parse("vault: {address: 'https://v', auth: {jwt: {role: r, jwt: {env: J}, mount: '../sys'}}}");
        let errors = cfg.validate().expect_err("bad mount");
        assert!(errors[0].starts_with("credentials.vault.auth.jwt.mount: "), "{errors:?}");
    }

    #[test]
    fn two_auth_methods_or_unknown_keys_are_refused() {
        let two: Result<CredentialsConfig, _> =
            yaml_serde::from_str("vault: {address: 'https://v', auth: {token: {env: T}, approle: {role_id: a, secret_id: {env: S}}}}");
        assert!(two.is_err());
        let unknown: Result<CredentialsConfig, _> = yaml_serde::from_str("vault: {adress: 'https://v'}");
        assert!(unknown.is_err());
    }

    #[test]
    fn url_with_credentials_is_refused() {
        assert!(mcpgate_auth::config::check_url("https://user:pw@idp.example/token", false).is_err());
    }
}
