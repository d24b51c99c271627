//! The first two request stages: who is calling (a verified bearer token) and what they may
//! see and call (an `mcpgate_auth::Caller`). Everything after this takes an [`Access`], so no
//! path reaches a backend without having been through here.
//!
//! Never logs a token; audit lines name the subject, the item and the decision only.

use std::sync::Arc;

use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mcpgate_auth::{AuthError, Authenticator, Caller, ItemRef, Kind, Policy, VerifiedIdentity, WristbandIssuer};
use mcpgate_credentials::Resolver;
use mcpgate_protocol::names::ServerName;
use mcpgate_protocol::{ErrorCode, RpcError};
use serde_json::json;

use crate::catalog::{Entry, ItemKind};
use crate::config::GatewayConfig;
use crate::governance::VirtualServer;
use crate::observe::RequestMeter;

/// Authentication and permission machinery built from one config.
pub struct Security {
    authenticator: Option<Authenticator>,
    policy: Option<Policy>,
    pub wristband: Option<WristbandIssuer>,
    /// Backend credentials per server (token exchange, Vault, static, …).
    pub credentials: Resolver,
    resource: String,
    metadata_url: String,
    issuers: Vec<String>,
    scopes: Vec<String>,
    /// The rate-limit rules of this config.
    pub quotas: crate::quota::Quotas,
}

impl Security {
    pub fn build(config: &GatewayConfig, http: &reqwest::Client, series: &crate::observe::Series) -> Result<Self, Vec<String>> {
        let resource = config.resource_url();
        let metadata_url = crate::governance::metadata_url(&resource);
        let credentials =
            Resolver::with_counters(&config.credentials.clone().unwrap_or_default(), &config.credential_infos(), http.clone(), series.credentials.clone())?;
        let quotas = crate::quota::Quotas::build(&config.rate_limits, series)?;
        let Some(auth) = &config.auth else {
            return Ok(Self {
                authenticator: None,
                policy: None,
                wristband: None,
                credentials,
                resource,
                metadata_url,
                issuers: vec![],
                scopes: vec![],
                quotas,
            });
        };
        let authenticator = if auth.require_token { Some(Authenticator::new(auth, http.clone())?) } else { None };
        let policy = Policy::compile(&auth.permissions, &config.server_auth_infos())?;
        let wristband = auth.wristband_issue.as_ref().map(WristbandIssuer::new).transpose().map_err(|e| vec![format!("auth.wristband_issue: {e}")])?;
        Ok(Self {
            authenticator,
            policy: Some(policy),
            wristband,
            credentials,
            resource,
            metadata_url,
            issuers: auth.issuers.iter().map(|i| i.issuer.clone()).collect(),
            scopes: auth.required_scopes.clone(),
            quotas,
        })
    }

    /// Verifies the caller and computes their permissions. Fails closed: with authentication
    /// configured, no valid token means no access at all.
    pub async fn access(&self, headers: &HeaderMap) -> Result<Access, AuthError> {
        self.single_credentials(headers)?;
        let identity = match &self.authenticator {
            Some(a) => {
                let header = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                Some(a.verify_bearer(header).await?)
            }
            None => None,
        };
        let caller = self.policy.as_ref().map(|p| p.caller(identity.as_ref(), headers));
        Ok(Access { identity, caller, scope: None, personal: None, meter: RequestMeter::disabled() })
    }

    /// A credential header sent twice is refused whatever the configuration: proxies and
    /// servers disagree on which copy wins, and the gateway will not guess.
    fn single_credentials(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let twice = |name: &axum::http::HeaderName| headers.get_all(name).iter().nth(1).is_some();
        if twice(&axum::http::header::AUTHORIZATION) {
            return Err(AuthError::Ambiguous("Authorization".into()));
        }
        if let Some(name) = self.policy.iter().flat_map(|p| p.wristband_headers()).find(|h| twice(h)) {
            return Err(AuthError::Ambiguous(name.as_str().to_owned()));
        }
        Ok(())
    }

    /// The 400/401/403/503 answer for a failed authentication, with the RFC 9728 challenge.
    pub fn challenge(&self, err: &AuthError) -> Response {
        self.challenge_for(err, None)
    }

    /// The challenge on a virtual server's path: its metadata document and its scopes.
    pub fn challenge_for(&self, err: &AuthError, scope: Option<&VirtualServer>) -> Response {
        let mut parts = Vec::new();
        if let Some(code) = err.www_authenticate_error() {
            parts.push(format!("error=\"{code}\""));
        }
        let mut wanted = self.scopes.clone();
        wanted.extend(scope.iter().flat_map(|v| v.required_scopes.iter().filter(|s| !self.scopes.contains(s)).cloned()));
        let scopes = if err.needed_scopes().is_empty() { wanted.join(" ") } else { err.needed_scopes().join(" ") };
        if !scopes.is_empty() {
            parts.push(format!("scope=\"{scopes}\""));
        }
        parts.push(format!("resource_metadata=\"{}\"", scope.map_or(self.metadata_url.as_str(), |v| v.metadata_url.as_str())));
        let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::UNAUTHORIZED);
        let body = RpcError::new(ErrorCode::InvalidRequest, format!("{}: {err}", status.canonical_reason().unwrap_or("Unauthorized"))).response(None);
        let mut resp = (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response();
        if status != StatusCode::SERVICE_UNAVAILABLE
            && let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", parts.join(", ")))
        {
            resp.headers_mut().insert(WWW_AUTHENTICATE, v);
        }
        resp
    }

    /// RFC 9728 Protected Resource Metadata, when bearer tokens are required.
    pub fn resource_metadata(&self) -> Option<serde_json::Value> {
        self.authenticator.as_ref()?;
        Some(json!({
            "resource": self.resource,
            "authorization_servers": self.issuers,
            "scopes_supported": self.scopes,
            "bearer_methods_supported": ["header"],
            "resource_name": "mcpgate",
        }))
    }
}

/// Who is calling and what they may touch, for one request.
#[derive(Clone)]
pub struct Access {
    pub identity: Option<VerifiedIdentity>,
    caller: Option<Arc<Caller>>,
    /// The virtual server the request came through: it narrows what the caller may touch.
    scope: Option<Arc<VirtualServer>>,
    /// What per-user servers list for this caller (attached for lists and calls).
    personal: Option<Arc<crate::catalog::Personal>>,
    /// This request's measurements (set by the front door; disabled when metrics are off).
    pub meter: RequestMeter,
}

/// The outcome of a permission check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub reason: String,
    /// The reason's stable code (`mcpgate_auth::Decision::reason`, or `no_auth`).
    pub code: &'static str,
}

impl Access {
    /// No auth configured: everything is visible and callable.
    pub fn unrestricted() -> Self {
        Self { identity: None, caller: None, scope: None, personal: None, meter: RequestMeter::disabled() }
    }

    /// The same caller, on virtual server `scope`.
    pub fn within(mut self, scope: Arc<VirtualServer>) -> Self {
        self.scope = Some(scope);
        self
    }

    /// The same caller, with their own listings of the per-user servers.
    pub fn with_personal(mut self, personal: Arc<crate::catalog::Personal>) -> Self {
        self.personal = Some(personal);
        self
    }

    /// The caller's own listings of the per-user servers, when attached.
    pub fn personal(&self) -> Option<&crate::catalog::Personal> {
        self.personal.as_deref()
    }

    /// The virtual server the request came through, if any.
    pub fn scope(&self) -> Option<&Arc<VirtualServer>> {
        self.scope.as_ref()
    }

    /// The combined instructions the request's endpoint shows: all servers' on the main
    /// endpoint; on a virtual server only those of servers it shows something of.
    pub fn instructions(&self, catalog: &crate::catalog::Catalog) -> Option<String> {
        match &self.scope {
            None => catalog.instructions.clone(),
            Some(v) => catalog.instructions_where(|k, e| v.admits_entry(k, e)),
        }
    }

    /// Whether the request's endpoint shows `e` at all (a virtual server's selection).
    pub fn in_scope(&self, kind: ItemKind, e: &Entry) -> bool {
        self.scope.as_ref().is_none_or(|v| v.admits_entry(kind, e))
    }

    /// Whether the caller may see and call `e` here: the endpoint shows it and the
    /// permissions allow it.
    pub fn shows(&self, kind: ItemKind, e: &Entry) -> bool {
        self.in_scope(kind, e) && self.decide(&e.server, kind, &e.backend_name, e.annotations.as_ref()).allowed
    }

    pub fn decide(&self, server: &ServerName, kind: ItemKind, name: &str, annotations: Option<&serde_json::Value>) -> Verdict {
        let Some(caller) = &self.caller else { return Verdict { allowed: true, reason: "no_auth".into(), code: "no_auth" } };
        let kind = match kind {
            ItemKind::Tool => Kind::Tool,
            ItemKind::Prompt => Kind::Prompt,
            ItemKind::Resource | ItemKind::ResourceTemplate => Kind::Resource,
        };
        let d = caller.decide(&ItemRef { server: server.as_str(), kind, name, annotations });
        Verdict { allowed: d.allowed, reason: d.to_string(), code: d.reason }
    }

    /// Equal for callers that see the same items on the same endpoint: the key for
    /// per-caller list caches.
    pub fn fingerprint(&self) -> u64 {
        let caller = self.caller.as_ref().map_or(0, |c| c.fingerprint());
        match &self.scope {
            None => caller,
            Some(v) => {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                (caller, &*v.name).hash(&mut h);
                h.finish()
            }
        }
    }

    /// The identity a legacy session is bound to: the verified token's issuer and subject, or,
    /// behind an external authorizer, the subject of the verified wristband.
    pub fn principal(&self) -> Option<String> {
        match (&self.identity, &self.caller) {
            (Some(i), _) => Some(format!("{}\u{1f}{}", i.issuer, i.subject)),
            (None, Some(c)) => c.subject().map(|s| format!("wristband\u{1f}{s}")),
            (None, None) => None,
        }
    }

    /// The subject for audit lines.
    pub fn subject(&self) -> &str {
        self.identity.as_ref().map(|i| i.subject.as_str()).or_else(|| self.caller.as_ref().and_then(|c| c.subject())).unwrap_or("-")
    }

    pub fn is_restricted(&self) -> bool {
        self.caller.is_some()
    }
}

/// One audit record per decision on a call-type request. Never carries a token.
pub fn audit(sink: &crate::observe::audit::Audit, access: &Access, server: &str, kind: &str, name: &str, verdict: &Verdict, request_id: &str) {
    sink.record(crate::observe::audit::Event::Access {
        subject: access.subject(),
        server,
        kind,
        name,
        allowed: verdict.allowed,
        reason: &verdict.reason,
        request_id,
    });
}
