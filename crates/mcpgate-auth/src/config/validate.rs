//! Checks on `auth:` that serde cannot express. Messages name the key and the fix; never
//! touches the network (key and TLS files are read, to report a broken one by its key).

use std::collections::HashSet;
use std::time::Duration;

use super::{AuthConfig, IssuerConfig};

impl AuthConfig {
    /// Every problem found, each as `auth.<path>: <what is wrong and how to fix it>`.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if self.require_token && self.issuers.is_empty() {
            errors.push("auth.issuers: at least one trusted issuer is required".to_owned());
        }
        if self.algorithms.is_empty() {
            errors.push("auth.algorithms: at least one algorithm is required".to_owned());
        }
        if self.leeway > Duration::from_secs(300) {
            errors.push("auth.leeway: more than 5m accepts long-expired tokens; use e.g. 30s".to_owned());
        }
        if self.jwks.fetch_timeout.is_zero() {
            errors.push("auth.jwks.fetch_timeout: must be more than 0".to_owned());
        }
        let mut seen = HashSet::new();
        for (i, issuer) in self.issuers.iter().enumerate() {
            let at = format!("auth.issuers[{i}]");
            if !seen.insert(issuer.issuer.as_str()) {
                errors.push(format!("{at}.issuer: {:?} is listed twice", issuer.issuer));
            }
            check_issuer(issuer, &self.audiences, &at, &mut errors);
        }
        if let Some(w) = &self.wristband_issue {
            if w.private_key_pem.is_some() == w.private_key_file.is_some() {
                errors.push("auth.wristband_issue: give exactly one of private_key_pem, private_key_file".to_owned());
            }
            if w.ttl.is_zero() || w.ttl > Duration::from_secs(3600) {
                errors.push("auth.wristband_issue.ttl: must be between 1s and 1h (short-lived; e.g. 60s)".to_owned());
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}

fn check_issuer(issuer: &IssuerConfig, global_audiences: &[String], at: &str, errors: &mut Vec<String>) {
    if issuer.issuer.is_empty() {
        errors.push(format!("{at}.issuer: must not be empty"));
    } else if issuer.static_keys.is_empty()
        && issuer.jwks_uri.is_none()
        && let Err(e) = check_url(&issuer.issuer, issuer.allow_insecure_http)
    {
        // Discovery fetches from the issuer URL itself.
        errors.push(format!("{at}.issuer: {e}"));
    }
    if issuer.effective_audiences(global_audiences).is_empty() {
        errors.push(format!("{at}: no audience configured; set auth.audiences (e.g. the gateway's public MCP URL) or audiences on the issuer"));
    }
    if !issuer.static_keys.is_empty() && issuer.jwks_uri.is_some() {
        errors.push(format!("{at}: give static_keys or jwks_uri, not both"));
    }
    if let Some(uri) = &issuer.jwks_uri
        && let Err(e) = check_url(uri, issuer.allow_insecure_http)
    {
        errors.push(format!("{at}.jwks_uri: {e}"));
    }
    if issuer.static_keys.is_empty() && issuer.jwks_uri.is_none() && !issuer.discovery {
        errors.push(format!("{at}: no keys: set static_keys or jwks_uri, or enable discovery"));
    }
    for (k, key) in issuer.static_keys.iter().enumerate() {
        if let Err(e) = key.load() {
            errors.push(format!("{at}.static_keys[{k}]: {e}"));
        }
    }
    if let Some(tls) = &issuer.tls {
        if !issuer.static_keys.is_empty() {
            errors.push(format!("{at}.tls: an issuer with static_keys fetches nothing; remove tls"));
        }
        if let Err(problems) = tls.check() {
            errors.extend(problems.into_iter().map(|p| format!("{at}.tls.{}: {} (fix: {})", p.key, p.problem, p.fix)));
        }
    }
}

/// An issuer, JWKS, Vault or token-endpoint URL must be `https`, or `http` on a loopback host, or `http` with
/// `allow_insecure_http`. No user info (credentials in URLs end up in logs).
pub fn check_url(raw: &str, allow_insecure_http: bool) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password; configure credentials separately".to_owned());
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_insecure_http || is_loopback(&url) => Ok(url),
        "http" => Err(format!("{raw:?} uses plain http; use https (or allow_insecure_http: true inside a trusted network)")),
        other => Err(format!("{raw:?}: scheme {other:?} is not supported; use https")),
    }
}

pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::check_url;
    use crate::AuthConfig;

    fn parse(yaml: &str) -> AuthConfig {
        yaml_serde::from_str(yaml).expect("config parses")
    }

    #[test]
    fn plain_http_issuer_is_refused_unless_loopback_or_allowed() {
        assert!(check_url("https://idp.example/realms/a", false).is_ok());
        assert!(check_url("http://127.0.0.1:8080/realms/a", false).is_ok());
        assert!(check_url("http://keycloak.svc:8080/realms/a", false).is_err());
        assert!(check_url("http://keycloak.svc:8080/realms/a", true).is_ok());
        assert!(check_url("file:///etc/jwks.json", true).is_err());
    }

    #[test]
    fn config_without_audience_is_refused() {
        let cfg = parse("issuers: [{issuer: 'https://idp.example'}]");
        let errors = cfg.validate().expect_err("no audience");
        assert!(errors[0].contains("no audience"), "{errors:?}");
    }

    #[test]
    fn unknown_config_keys_are_refused() {
        let r: Result<AuthConfig, _> = yaml_serde::from_str("issuers: []\naudience: x");
        assert!(r.is_err());
    }

    #[test]
    fn defaults_are_fail_closed() {
        let cfg = parse("issuers: [{issuer: 'https://idp.example'}]\naudiences: [mcp]");
        assert_eq!(cfg.leeway.as_secs(), 30);
        assert!(cfg.required_scopes.is_empty());
        assert!(cfg.validate().is_ok());
        let crate::SourceConfig::Claims(claims) = &cfg.permissions.sources[0] else { panic!("claims source by default") };
        assert_eq!(claims.on_missing, crate::OnMissing::Deny);
    }
}
