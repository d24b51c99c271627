//! Header checks shared by the MCP endpoint's methods.

use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, CONTENT_TYPE, ORIGIN};
use axum::response::{IntoResponse, Response};
use mcpgate_protocol::versions::is_supported_legacy;

use std::sync::Arc;

use crate::config::GatewayConfig;
use crate::governance::VirtualServer;
use crate::identity::Access;
use crate::reject::Reject;
use crate::session::ClientSession;
use crate::state::Shared;

pub const SESSION_HEADER: &str = "mcp-session-id";
pub const VERSION_HEADER: &str = "mcp-protocol-version";

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let body = self.rpc().response(None);
        (self.status(), [(CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// Browsers send `Origin`; a page on another site must not drive a local gateway (DNS
/// rebinding). Without an allow-list only loopback origins pass.
pub fn origin(config: &GatewayConfig, headers: &HeaderMap) -> Result<(), Reject> {
    let Some(origin) = headers.get(ORIGIN) else { return Ok(()) };
    let origin = origin.to_str().map_err(|_| Reject::BadOrigin)?.trim_end_matches('/');
    let allowed = if config.allowed_origins.is_empty() {
        url::Url::parse(origin).ok().and_then(|u| u.host_str().map(is_loopback_host)).unwrap_or(false)
    } else {
        config.allowed_origins.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    };
    if allowed { Ok(()) } else { Err(Reject::BadOrigin) }
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost" || host == "[::1]" || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

pub fn content_type(headers: &HeaderMap) -> Result<(), Reject> {
    let ok = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if ok { Ok(()) } else { Err(Reject::UnsupportedMediaType) }
}

/// Whether `Accept` admits `mime` (exact, `type/*` or `*/*`). Read as bytes: every call's
/// request goes through here twice.
pub fn accepts(headers: &HeaderMap, mime: &str) -> bool {
    let (mime, top) = (mime.as_bytes(), mime.split('/').next().unwrap_or("").as_bytes());
    headers.get_all(ACCEPT).iter().any(|v| {
        v.as_bytes().split(|&b| b == b',').any(|item| {
            let t = item.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
            t.eq_ignore_ascii_case(mime) || t.strip_suffix(b"/*").is_some_and(|ty| ty == b"*" || ty.eq_ignore_ascii_case(top))
        })
    })
}

pub fn accept_post(headers: &HeaderMap) -> Result<(), Reject> {
    if !accepts(headers, "application/json") || !accepts(headers, "text/event-stream") {
        return Err(Reject::NotAcceptable("application/json and text/event-stream"));
    }
    Ok(())
}

pub fn protocol_version(headers: &HeaderMap) -> Result<(), Reject> {
    match headers.get(VERSION_HEADER).map(|v| v.to_str().unwrap_or("")) {
        None => Ok(()),
        Some(v) if is_supported_legacy(v) => Ok(()),
        Some(v) => Err(Reject::UnsupportedVersion(v.chars().take(40).collect())),
    }
}

pub fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok())
}

/// A failed authentication: why (the metrics' `auth_failures` label) and the challenge to
/// answer with.
pub struct Denied {
    pub reason: &'static str,
    pub challenge: Response,
}

/// Who is calling, on which endpoint: identity and permissions, then a virtual server's own
/// token requirements.
pub async fn access(shared: &Shared, headers: &HeaderMap, scope: Option<Arc<VirtualServer>>) -> Result<Access, Denied> {
    let security = shared.security.load();
    let denied = |e: &mcpgate_auth::AuthError, scope: Option<&VirtualServer>| Denied { reason: e.reason(), challenge: security.challenge_for(e, scope) };
    let access = security.access(headers).await.map_err(|e| denied(&e, scope.as_deref()))?;
    match scope {
        None => Ok(access),
        Some(v) => {
            v.check_token(access.identity.as_ref()).map_err(|e| denied(&e, Some(&v)))?;
            Ok(access.within(v))
        }
    }
}

/// The session named by the client (cached, or loaded from the shared store), on the endpoint
/// it was created on: a session of another endpoint is unknown here (404), exactly like one
/// that never existed.
pub async fn session(shared: &Shared, id: &str, access: &Access) -> Result<Arc<ClientSession>, Reject> {
    let session = shared.find_session(id).await?;
    if session.virtual_server() != access.scope().map(|v| &*v.name) {
        return Err(Reject::UnknownSession);
    }
    Ok(session)
}

/// A legacy session belongs to the identity that created it.
pub fn same_identity(session: &ClientSession, access: &Access) -> Result<(), Reject> {
    if session.principal == access.principal() { Ok(()) } else { Err(Reject::SessionIdentity) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(ACCEPT, v.parse().expect("a valid header value"));
        }
        h
    }

    #[test]
    fn accept_admits_exact_wildcard_and_parameterised_types() {
        let both = accept(&["application/json, text/event-stream"]);
        assert!(accepts(&both, "application/json") && accepts(&both, "text/event-stream"));
        assert!(accept_post(&accept(&["Application/JSON;q=0.9 , text/*", "x/y"])).is_ok());
        assert!(accept_post(&accept(&["*/*"])).is_ok());
        assert!(accepts(&accept(&["x/y", "text/event-stream;charset=utf-8"]), "text/event-stream"));
    }

    #[test]
    fn accept_without_both_types_is_refused() {
        for values in
            [&[][..], &["application/json"], &["text/event-stream"], &["application/jsonx, text/event-stream"], &["application/*/*, text/event-stream"]]
        {
            assert!(matches!(accept_post(&accept(values)), Err(Reject::NotAcceptable(_))), "{values:?}");
        }
    }
}
