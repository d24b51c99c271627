//! Header checks shared by the MCP endpoint's methods.

use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue, ORIGIN};
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
/// The same names, parsed once: a lookup by `&str` validates and lowercases the name first.
pub const SESSION: HeaderName = HeaderName::from_static(SESSION_HEADER);
pub const VERSION: HeaderName = HeaderName::from_static(VERSION_HEADER);

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
    let ok = headers.get(CONTENT_TYPE).is_some_and(|v| media_type(v.as_bytes()).eq_ignore_ascii_case(b"application/json"));
    if ok { Ok(()) } else { Err(Reject::UnsupportedMediaType) }
}

/// Whether `Accept` admits `mime` (exact, `type/*` or `*/*`). Read as bytes.
pub fn accepts(headers: &HeaderMap, mime: &str) -> bool {
    let top = mime.split('/').next().unwrap_or("").as_bytes();
    accept_items(headers).any(|t| admits(t, mime.as_bytes(), top))
}

/// The media types `Accept` lists, across every `Accept` header.
fn accept_items(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers.get_all(ACCEPT).iter().flat_map(|v| v.as_bytes().split(|&b| b == b',')).map(media_type)
}

/// A media type without its parameters and the whitespace around it.
fn media_type(value: &[u8]) -> &[u8] {
    value.split(|&b| b == b';').next().unwrap_or_default().trim_ascii()
}

/// Whether one listed media type `t` admits `mime`, whose top-level type is `top`.
fn admits(t: &[u8], mime: &[u8], top: &[u8]) -> bool {
    t.eq_ignore_ascii_case(mime) || t.strip_suffix(b"/*").is_some_and(|ty| ty == b"*" || ty.eq_ignore_ascii_case(top))
}

/// A POST must accept both a JSON answer and a stream (read in one pass: every call's request
/// comes through here).
pub fn accept_post(headers: &HeaderMap) -> Result<(), Reject> {
    // What the SDKs send, compared whole before it is taken apart.
    if headers.get(ACCEPT).is_some_and(|v| v.as_bytes() == b"application/json, text/event-stream") {
        return Ok(());
    }
    let (mut json, mut sse) = (false, false);
    for t in accept_items(headers) {
        json = json || admits(t, b"application/json", b"application");
        sse = sse || admits(t, b"text/event-stream", b"text");
        if json && sse {
            return Ok(());
        }
    }
    Err(Reject::NotAcceptable("application/json and text/event-stream"))
}

pub fn protocol_version(headers: &HeaderMap) -> Result<(), Reject> {
    legacy_version(headers.get(VERSION))
}

/// A legacy request's version header: absent, or one this gateway speaks.
fn legacy_version(value: Option<&HeaderValue>) -> Result<(), Reject> {
    match value.map(|v| v.to_str().unwrap_or("")) {
        None => Ok(()),
        Some(v) if is_supported_legacy(v) => Ok(()),
        Some(v) => Err(Reject::UnsupportedVersion(v.chars().take(40).collect())),
    }
}

pub fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers.get(SESSION).and_then(|v| v.to_str().ok())
}

/// The MCP headers of a request, found in one pass over its headers (a lookup per name hashes
/// and probes each time). Of a repeated header the first counts, as with `HeaderMap::get`.
#[derive(Default, Clone, Copy)]
pub struct McpHeaders<'a> {
    session: Option<&'a HeaderValue>,
    version: Option<&'a HeaderValue>,
}

impl<'a> McpHeaders<'a> {
    pub fn read(headers: &'a HeaderMap) -> Self {
        let mut out = Self::default();
        for (name, value) in headers {
            if *name == SESSION {
                out.session.get_or_insert(value);
            } else if *name == VERSION {
                out.version.get_or_insert(value);
            }
        }
        out
    }

    pub fn session_id(&self) -> Option<&'a str> {
        self.session.and_then(|v| v.to_str().ok())
    }

    /// `MCP-Protocol-Version`, when it is visible ASCII.
    pub fn version(&self) -> Option<&'a str> {
        self.version.and_then(|v| v.to_str().ok())
    }

    /// A legacy request's version header: absent, or one this gateway speaks.
    pub fn protocol_version(&self) -> Result<(), Reject> {
        legacy_version(self.version)
    }
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
    fn mcp_headers_are_read_in_one_pass_and_the_first_of_a_repeat_counts() {
        let mut h = accept(&["application/json, text/event-stream"]);
        h.append(SESSION, HeaderValue::from_static("s1"));
        h.append(SESSION, HeaderValue::from_static("s2"));
        h.append(VERSION, HeaderValue::from_static("2025-06-18"));
        let mcp = McpHeaders::read(&h);
        assert_eq!((mcp.session_id(), mcp.version()), (Some("s1"), Some("2025-06-18")));
        assert!(mcp.protocol_version().is_ok());
        // A version that is not visible ASCII is refused (as an empty one), never skipped.
        h.insert(VERSION, HeaderValue::from_bytes(b"2025-06-18\xff").expect("obs-text is a valid header value"));
        let mcp = McpHeaders::read(&h);
        assert_eq!(mcp.version(), None);
        assert!(matches!(mcp.protocol_version(), Err(Reject::UnsupportedVersion(v)) if v.is_empty()));
        assert_eq!(McpHeaders::read(&HeaderMap::new()).session_id(), None);
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
