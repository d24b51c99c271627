//! Gateway-owned OAuth tokens (client_credentials grant) for backends that accept the
//! gateway itself, and for catalog discovery. Tokens are cached per (scope, audience,
//! resource) until shortly before they expire; concurrent first uses share one request.
//! Never carries a caller's identity and never logs a token or the client secret.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mcpgate_auth::Secret;

use crate::config::{ClientCredentialsConfig, ClientCredentialsSourceConfig, OnError, check_url};
use crate::error::CredentialError;
use crate::memo::Memo;
use crate::oauth::TokenClient;
use crate::resolved::{Fingerprinter, Resolved};
use crate::resolver::Target;
use crate::stats::{Counters, bump};
use crate::template::{HeaderTemplate, Template, Var};

/// Lifetime assumed for a token issued without `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);

type Key = (Option<String>, Option<String>, Option<String>);

#[derive(Clone)]
struct GatewayToken {
    token: Secret,
    expires_at: SystemTime,
}

pub(crate) struct GatewayTokens {
    client: TokenClient,
    endpoint: url::Url,
    refresh_before: Duration,
    cache: Memo<Key, GatewayToken, String>,
    counters: Arc<Counters>,
}

impl GatewayTokens {
    pub fn new(cfg: &ClientCredentialsConfig, http: reqwest::Client, counters: Arc<Counters>) -> Result<Self, String> {
        let at = "credentials.client_credentials";
        let endpoint = check_url(&cfg.token_endpoint, cfg.allow_insecure_http).map_err(|e| format!("{at}.token_endpoint: {e}"))?;
        let secret = cfg.client_secret.load().map_err(|e| format!("{at}.client_secret: {e}"))?;
        Ok(Self {
            client: TokenClient::new(http, cfg.client_id.clone(), secret, cfg.auth_method, cfg.timeout).counted(counters.clone()),
            endpoint,
            refresh_before: cfg.refresh_before,
            cache: Memo::new(1024),
            counters,
        })
    }

    async fn token(&self, key: &Key) -> Result<GatewayToken, String> {
        let (result, answer) = self.cache.get_or_fetch(key, || self.fetch(key)).await;
        crate::memo::count_shared(&self.counters, answer, &self.counters.client_credentials_cache_hits);
        result
    }

    async fn fetch(&self, (scope, audience, resource): &Key) -> Result<(GatewayToken, Duration), String> {
        bump(&self.counters.client_credentials_requests);
        let params = form(scope.as_deref(), audience.as_deref(), resource.as_deref());
        let issued = self.client.request(&self.endpoint, &params).await?;
        let lifetime = issued.expires_in.unwrap_or(DEFAULT_LIFETIME);
        let keep = lifetime.saturating_sub(self.refresh_before.min(lifetime / 2));
        Ok((GatewayToken { token: issued.token, expires_at: SystemTime::now() + lifetime }, keep))
    }
}

/// The form of a client_credentials request (client authentication is added by the client).
pub(crate) fn form<'a>(scope: Option<&'a str>, audience: Option<&'a str>, resource: Option<&'a str>) -> Vec<(&'static str, &'a str)> {
    let mut params = vec![("grant_type", "client_credentials")];
    for (name, value) in [("scope", scope), ("audience", audience), ("resource", resource)] {
        if let Some(value) = value {
            params.push((name, value));
        }
    }
    params
}

/// A server's `client_credentials` source (calls or discovery).
pub(crate) struct ClientCredentialsSource {
    tokens: Arc<GatewayTokens>,
    key: Key,
    header: HeaderTemplate,
    pub on_error: OnError,
}

impl ClientCredentialsSource {
    pub fn build(cfg: &ClientCredentialsSourceConfig, tokens: Arc<GatewayTokens>, target: &Target) -> Result<Self, String> {
        let audience = match &cfg.audience {
            Some(src) => {
                let template = Template::parse(src, &[Var::Host, Var::Server]).map_err(|e| format!("audience: {e}"))?;
                if template.count(Var::Host) > 0 && target.host.is_none() {
                    return Err("audience: {host} needs a server with a URL".to_owned());
                }
                let host = target.host.as_deref().unwrap_or_default();
                Some(template.render(&[(Var::Host, host), (Var::Server, &target.name)]))
            }
            None => None,
        };
        let header = HeaderTemplate::parse(&cfg.header, cfg.format.as_deref())?;
        Ok(Self { tokens, key: (cfg.scope.clone(), audience, cfg.resource.clone()), header, on_error: cfg.on_error })
    }

    pub async fn resolve(&self, fingerprints: &Fingerprinter, target: &Target) -> Result<Resolved, CredentialError> {
        let server = || target.name.clone();
        let token = self.tokens.token(&self.key).await.map_err(|reason| CredentialError::ClientCredentials { server: server(), reason })?;
        fingerprints
            .resolved("client_credentials", &self.header, token.token.expose(), Some(token.expires_at))
            .ok_or_else(|| CredentialError::BadHeaderValue { server: server(), via: "client_credentials" })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_credentials_form_holds_only_the_asked_parameters() {
        assert_eq!(super::form(None, None, None), [("grant_type", "client_credentials")]);
        assert_eq!(
            super::form(Some("catalog:read"), Some("weather.local"), None),
            [("grant_type", "client_credentials"), ("scope", "catalog:read"), ("audience", "weather.local")]
        );
    }
}
