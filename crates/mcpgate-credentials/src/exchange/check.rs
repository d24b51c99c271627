//! Validation of an exchanged token before it is used or cached: signature with the IdP's
//! keys (through `mcpgate_auth::Authenticator`, one per issuer, so JWKS fetching, rotation
//! and algorithm pinning are the same as for callers' tokens), `iss`, `exp`/`nbf`, `aud`
//! exactly the requested audience, and `sub` equal to the caller's. Never accepts a token
//! it could not verify and never prints one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use mcpgate_auth::{AuthConfig, Authenticator, Secret, VerifiedIdentity};
use serde_json::{Value, json};

use crate::caller::Caller;
use crate::config::ExchangeClientConfig;

pub(crate) struct Checker {
    issuer: Option<String>,
    jwks_uri: Option<String>,
    leeway: Duration,
    jwks_refresh: Duration,
    timeout: Duration,
    allow_insecure_http: bool,
    http: reqwest::Client,
    /// Every audience some server exchanges for; fixed once the resolver is built.
    audiences: Mutex<Vec<String>>,
    by_issuer: Mutex<HashMap<String, Authenticator>>,
}

impl Checker {
    pub fn new(cfg: &ExchangeClientConfig, http: reqwest::Client) -> Self {
        Self {
            issuer: cfg.issuer.clone(),
            jwks_uri: cfg.jwks_uri.clone(),
            leeway: cfg.leeway,
            jwks_refresh: cfg.jwks_refresh_min_interval,
            timeout: cfg.timeout,
            allow_insecure_http: cfg.allow_insecure_http,
            http,
            audiences: Mutex::new(Vec::new()),
            by_issuer: Mutex::new(HashMap::new()),
        }
    }

    pub fn add_audience(&self, audience: &str) {
        let mut audiences = self.audiences.lock().unwrap_or_else(|e| e.into_inner());
        if !audiences.iter().any(|a| a == audience) {
            audiences.push(audience.to_owned());
        }
    }

    /// Checks `token`, issued for `caller` and `audience`. Errors are short phrases.
    pub async fn check(&self, token: &Secret, caller: &Caller<'_>, audience: &str) -> Result<VerifiedIdentity, String> {
        let issuer = self.issuer.as_deref().unwrap_or(caller.issuer);
        let verifier = self.verifier(issuer)?;
        let identity = verifier.verify_bearer(Some(&format!("Bearer {}", token.expose()))).await.map_err(|e| match e.reason() {
            "wrong_audience" => format!("its aud is not {audience:?}"),
            "expired" => "it has already expired".to_owned(),
            "not_yet_valid" => "it is not yet valid".to_owned(),
            "bad_signature" => "its signature does not verify with the IdP's keys".to_owned(),
            "unknown_key" => "it is signed with a key the IdP does not publish".to_owned(),
            "unknown_issuer" => format!("its issuer is not {issuer:?}"),
            "keys_unavailable" => "the IdP's keys cannot be fetched".to_owned(),
            _ => e.to_string(),
        })?;
        let exact = match identity.claim("aud") {
            Some(Value::String(aud)) => aud == audience,
            Some(Value::Array(list)) => list.len() == 1 && list[0].as_str() == Some(audience),
            _ => false,
        };
        if !exact {
            return Err(format!("its aud is not exactly {audience:?}"));
        }
        if identity.subject != caller.subject {
            return Err("its sub is not the caller's".to_owned());
        }
        Ok(identity)
    }

    fn verifier(&self, issuer: &str) -> Result<Authenticator, String> {
        let mut by_issuer = self.by_issuer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = by_issuer.get(issuer) {
            return Ok(a.clone());
        }
        let audiences = self.audiences.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut issuer_cfg = json!({ "issuer": issuer, "allow_insecure_http": self.allow_insecure_http });
        if let Some(uri) = &self.jwks_uri {
            issuer_cfg["jwks_uri"] = json!(uri);
        }
        let cfg = json!({
            "issuers": [issuer_cfg],
            "audiences": audiences,
            "leeway": format!("{}ms", self.leeway.as_millis()),
            // Exchanged tokens are cached by the exchanger; no second cache.
            "token_cache_size": 0,
            "jwks": {
                "refresh_min_interval": format!("{}ms", self.jwks_refresh.as_millis()),
                "fetch_timeout": format!("{}ms", self.timeout.as_millis()),
            },
        });
        let cfg: AuthConfig = serde_json::from_value(cfg).map_err(|e| format!("cannot verify tokens of {issuer:?}: {e}"))?;
        let verifier = Authenticator::new(&cfg, self.http.clone()).map_err(|errors| format!("cannot verify tokens of {issuer:?}: {}", errors.join("; ")))?;
        by_issuer.insert(issuer.to_owned(), verifier.clone());
        Ok(verifier)
    }
}

/// The string list at `path` in `claims` (e.g. `resource_access.<aud>.roles`); empty when
/// absent or not a list.
pub(crate) fn roles<'a>(claims: &'a serde_json::Map<String, Value>, path: &[String]) -> Vec<&'a str> {
    let Some((first, rest)) = path.split_first() else { return Vec::new() };
    let mut at = claims.get(first);
    for segment in rest {
        at = at.and_then(|v| v.get(segment));
    }
    match at {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn roles_are_read_at_the_dotted_path_with_dots_in_keys() {
        let claims = json!({"resource_access": {"codereview.local": {"roles": ["analyze_pr", 3, "suggest_fix"]}}});
        let claims = claims.as_object().expect("object");
        let path = ["resource_access".to_owned(), "codereview.local".to_owned(), "roles".to_owned()];
        assert_eq!(super::roles(claims, &path), ["analyze_pr", "suggest_fix"]);
        let other = ["resource_access".to_owned(), "github.mcp.local".to_owned(), "roles".to_owned()];
        assert!(super::roles(claims, &other).is_empty());
    }
}
