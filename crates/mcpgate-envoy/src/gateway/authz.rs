//! The ext_authz decision, made by the gateway's own code: identity (`admit`), the body
//! checks standalone runs, the permission check of `dispatch::route` (an item denied and an
//! item unknown get the same answer), the credential chain and the wristband issuer.
//!
//! The route target decides what a request is: addressed to a backend (Envoy will send it
//! there, so the body already carries the backend's own names and the backend's credential
//! may be added) or to the gateway (exposed names; no backend credential, since nothing
//! says where it will go). Never adds a credential for a destination it has not verified.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use mcpgate_gateway::backend::Backend;
use mcpgate_gateway::catalog::Catalog;
use mcpgate_gateway::clients::modern::modern_error;
use mcpgate_gateway::core;
use mcpgate_protocol::envelope::{Envelope, Kind, json_string};
use mcpgate_protocol::names::expose_uri;
use mcpgate_protocol::{ErrorCode, RpcError};

use super::{Access, Answer, Shared};

/// Call-type methods, decided on the parsed body.
const CALLS: &[&str] = &["tools/call", "prompts/get", "resources/read", "resources/subscribe", "resources/unsubscribe", "completion/complete"];

/// Where Envoy will send the request, by its route target value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The gateway itself (mcpgate, or its ext_proc router, is behind).
    Gateway,
    /// A configured backend server.
    Backend(String),
}

/// The server whose route value `value` is (case-insensitive; a `:port` suffix is ignored
/// when the value without it matches).
pub fn destination(shared: &Shared, value: Option<&str>) -> Destination {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else { return Destination::Gateway };
    let config = shared.config.load();
    let Some(envoy) = &config.envoy else { return Destination::Gateway };
    let bare = value.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(value, |(h, _)| h);
    for s in config.servers.iter().filter(|s| s.enabled) {
        if let Some(v) = envoy.route_value(&config, &s.name)
            && (v.eq_ignore_ascii_case(value) || v.eq_ignore_ascii_case(bare))
        {
            return Destination::Backend(s.name.clone());
        }
    }
    Destination::Gateway
}

/// What an allowed request carries on.
#[derive(Debug, Default)]
pub struct Granted {
    pub method: Option<String>,
    pub tool: Option<String>,
    pub server: Option<String>,
    /// The backend credential (values marked sensitive), for a backend destination.
    pub credential: Vec<(HeaderName, HeaderValue)>,
    /// The signed wristband (header, token).
    pub wristband: Option<(String, String)>,
}

/// The decision for one checked request: what it may carry on with, or the answer it gets.
pub async fn verdict_headers(
    shared: &Arc<Shared>,
    method: &Method,
    headers: &HeaderMap,
    body: Option<&[u8]>,
    dest: &Destination,
    credentials: bool,
    wristband: bool,
) -> Result<Granted, Answer> {
    let access = super::admit(shared, headers).await?;
    let mut granted = Granted::default();
    if let Destination::Backend(server) = dest {
        granted.server = Some(server.clone());
        if method != Method::POST {
            return Err(forbidden(&format!("a {method} request cannot be sent to backend '{server}' directly: the gateway owns backend sessions")));
        }
    }
    if method == Method::POST {
        match body {
            Some(body) => decide_body(shared, &access, headers, body, dest, credentials, &mut granted).await?,
            None if matches!(dest, Destination::Backend(_)) => {
                return Err(forbidden("a request to a backend is decided on its body: configure with_request_body on the ext_authz filter"));
            }
            None => {}
        }
    }
    if wristband {
        granted.wristband = super::wristband(shared, &access);
    }
    Ok(granted)
}

fn forbidden(message: &str) -> Answer {
    Answer::json(StatusCode::FORBIDDEN, RpcError::new(ErrorCode::InvalidRequest, format!("Forbidden: {message}")).response(None))
}

async fn decide_body(
    shared: &Arc<Shared>,
    access: &Access,
    headers: &HeaderMap,
    body: &[u8],
    dest: &Destination,
    credentials: bool,
    granted: &mut Granted,
) -> Result<(), Answer> {
    let (env, kind) = super::plan::parse(headers, body).map_err(|r| super::refusal(&r))?;
    let method = env.method().map(|m| m.into_owned());
    granted.method = method.clone();
    let modern = mcpgate_gateway::front::post::is_modern(body, &env, &mcpgate_gateway::front::checks::McpHeaders::read(headers));
    let id = env.id().map_or_else(|| "null".to_owned(), |i| i.get().to_owned());
    let deny = |e: RpcError| Answer::rpc_error(Some(&id), &if modern { modern_error(e) } else { e });
    let catalog = shared.catalog.load_full();
    let is_call = kind == Kind::Request && method.as_deref().is_some_and(|m| CALLS.contains(&m));
    let (backend, tool) = match dest {
        Destination::Gateway if is_call => {
            let params = env.params_object().map_err(|e| deny(RpcError::new(ErrorCode::InvalidParams, format!("params must be an object: {e}"))))?;
            let target = core::route(shared, &catalog, method.as_deref().unwrap_or_default(), params.as_ref(), access, &id).map_err(deny)?;
            granted.server = Some(target.backend.name.as_str().to_owned());
            granted.tool = target.tool.clone();
            return Ok(());
        }
        Destination::Gateway => return Ok(()),
        Destination::Backend(server) if is_call => {
            let target = route_on_backend(shared, &catalog, server, &env, access, &id).map_err(deny)?;
            (target.backend.clone(), target.tool.clone())
        }
        Destination::Backend(server) if kind == Kind::Request => {
            let m = method.unwrap_or_default();
            return Err(forbidden(&format!("{m} is answered by the gateway (its ext_proc router), not by backend '{server}'")));
        }
        // A notification or a response on the client's backend session: nothing to permit
        // beyond the caller, but it needs the backend's credential.
        Destination::Backend(server) => (backend_named(shared, server).ok_or_else(|| forbidden("the backend is not configured"))?, None),
    };
    granted.tool = tool.clone();
    if credentials {
        let resolved = core::credential(shared, access, &backend, tool.as_deref()).await.map_err(deny)?;
        granted.credential = resolved.map(|c| c.headers).unwrap_or_default();
    }
    Ok(())
}

/// `dispatch::route` for a body in the backend's own names (the router already rewrote it):
/// the names are mapped to the exposed ones, routed and permitted as standalone does, and
/// the owner must be the destination. Anything else is the unknown-item answer.
fn route_on_backend(shared: &Arc<Shared>, catalog: &Catalog, server: &str, env: &Envelope<'_>, access: &Access, id: &str) -> Result<core::Target, RpcError> {
    let backend = backend_named(shared, server).ok_or_else(|| RpcError::new(ErrorCode::BackendUnavailable, format!("server '{server}' is not configured")))?;
    let method = env.method().unwrap_or_default();
    let params = env.params_object().ok().flatten().ok_or_else(|| RpcError::new(ErrorCode::InvalidParams, "params are required"))?;
    let expose_name = |n: &str| json_string(&format!("{}{n}", backend.prefix));
    let expose = |uri: &str| if backend.prefix.is_empty() { json_string(uri) } else { json_string(&expose_uri(&backend.name, uri)) };
    let exposed = match method.as_ref() {
        "tools/call" | "prompts/get" => params.str("name").map(|n| params.rewrite(&[("name", Some(&expose_name(&n)))])),
        "completion/complete" => params.get("ref").and_then(|r| Envelope::parse_raw(r).ok()).map(|r| {
            let new_ref = match (r.str("name"), r.str("uri")) {
                (Some(n), _) => r.rewrite(&[("name", Some(&expose_name(&n)))]),
                (None, Some(u)) => r.rewrite(&[("uri", Some(&expose(&u)))]),
                _ => r.rewrite(&[]),
            };
            params.rewrite(&[("ref", Some(&String::from_utf8_lossy(&new_ref)))])
        }),
        _ => params.str("uri").map(|u| params.rewrite(&[("uri", Some(&expose(&u)))])),
    };
    let exposed = exposed.unwrap_or_else(|| params.rewrite(&[]));
    let exposed_env = Envelope::parse(&exposed).map_err(|_| RpcError::new(ErrorCode::InvalidParams, "params must be an object"))?;
    let target = core::route(shared, catalog, &method, Some(&exposed_env), access, id)?;
    if target.backend.name.as_str() != server {
        // Reachable only with overlapping names across servers; still never a credential
        // for another server than the destination.
        return Err(RpcError::new(ErrorCode::InvalidParams, format!("Unknown tool: {}", params.str("name").unwrap_or_default())));
    }
    Ok(target)
}

fn backend_named(shared: &Shared, server: &str) -> Option<Arc<Backend>> {
    shared.backends.load().iter().find(|b| b.name.as_str() == server).cloned()
}
