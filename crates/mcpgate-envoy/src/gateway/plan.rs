//! The ext_proc router's decision for one POSTed message, made by the gateway's own code:
//! the standalone input checks, the session lookup and identity binding, `dispatch::route`
//! (owner, permission, names), the credential chain and the client's backend session.
//!
//! A call to a Streamable HTTP backend becomes a [`Route`] Envoy forwards; anything Envoy
//! cannot forward to one backend is answered by the front door in process. Never logs a
//! credential.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use mcpgate_gateway::backend::Backend;
use mcpgate_gateway::backend::Era;
use mcpgate_gateway::calls::modern::request_headers;
use mcpgate_gateway::calls::unavailable;
use mcpgate_gateway::clients::legacy::kind_of;
use mcpgate_gateway::clients::modern::modern_error;
use mcpgate_gateway::core::{self, ResultRewrite};
use mcpgate_gateway::front::{checks, post};
use mcpgate_gateway::reject::Reject;
use mcpgate_gateway::request::ModernRequest;
use mcpgate_gateway::session::{AnswerTarget, ClientSession};
use mcpgate_protocol::envelope::{Envelope, Kind};
use mcpgate_protocol::modern::{HEADER_NAME, HEADER_PARAM_PREFIX, encode_header_value};
use mcpgate_protocol::{ErrorCode, RpcError};
use mcpgate_upstream::{TransportSpec, UpstreamError};
use tokio::time::{Instant, timeout_at};

use super::reply::Reply;
use super::{Access, Answer, Shared};

/// Methods the gateway routes to one backend (legacy sessions).
const LEGACY_CALLS: &[&str] = &["tools/call", "prompts/get", "resources/read", "resources/subscribe", "resources/unsubscribe", "completion/complete"];
/// Methods the gateway routes to one backend (2026-07-28).
const MODERN_CALLS: &[&str] = &["tools/call", "prompts/get", "resources/read", "completion/complete"];

/// What to do with one message.
pub enum Plan {
    /// Answer as standalone mcpgate does (its front door, in process).
    FrontDoor,
    /// An answer decided here.
    Answer(Answer),
    /// Envoy forwards the message to one backend.
    Route(Box<Route>),
}

/// A message Envoy forwards to its backend, and how.
pub struct Route {
    pub server: String,
    /// The JSON-RPC method.
    pub method: String,
    /// The backend's own name of the tool (`tools/call`).
    pub tool: Option<String>,
    /// The value routes match on (`envoy.routes`).
    pub route_value: String,
    /// The backend's path (and query).
    pub path: String,
    /// The body as the backend must receive it.
    pub body: Vec<u8>,
    /// Headers to set: the backend session and version, `Mcp-Name`, static headers and the
    /// credential (values marked sensitive).
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Headers to remove (the caller's token, the client's session id).
    pub remove: Vec<HeaderName>,
    /// How to treat what comes back.
    pub reply: Reply,
    /// Keeps a legacy call cancellable while it is in flight.
    pub _in_flight: Option<InFlightGuard>,
}

/// Calls in flight through Envoy, by (gateway session, client request id): where a client's
/// `notifications/cancelled` must go. In process only (see docs/envoy.md).
#[derive(Default)]
pub struct InFlight {
    map: Mutex<HashMap<(String, String), String>>,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), String>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(self: &Arc<Self>, session: &str, id: &str, server: &str) -> InFlightGuard {
        let key = (session.to_owned(), id.to_owned());
        self.lock().insert(key.clone(), server.to_owned());
        InFlightGuard { owner: self.clone(), key }
    }

    fn server(&self, session: &str, id: &str) -> Option<String> {
        self.lock().get(&(session.to_owned(), id.to_owned())).cloned()
    }
}

pub struct InFlightGuard {
    owner: Arc<InFlight>,
    key: (String, String),
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.owner.lock().remove(&self.key);
    }
}

/// The router's decision for a POST to the MCP endpoint by an admitted caller.
pub async fn plan(shared: &Arc<Shared>, in_flight: &Arc<InFlight>, headers: &HeaderMap, access: &Access, body: &[u8]) -> Plan {
    match parse(headers, body) {
        Err(r) => Plan::Answer(super::refusal(&r)),
        Ok((env, kind)) => {
            let mcp = checks::McpHeaders::read(headers);
            if post::is_modern(body, &env, &mcp) || post::announces_modern(&env, &mcp) {
                modern_plan(shared, headers, &env, kind, access).await
            } else {
                legacy_plan(shared, in_flight, &mcp, &env, body, kind, access).await
            }
        }
    }
}

/// The checks standalone runs on a POST body, in its order.
pub(super) fn parse<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<(Envelope<'a>, Kind), Reject> {
    checks::content_type(headers)?;
    checks::accept_post(headers)?;
    let env = post::message(body)?;
    let kind = kind_of(&env)?;
    Ok((env, kind))
}

async fn modern_plan(shared: &Arc<Shared>, headers: &HeaderMap, env: &Envelope<'_>, kind: Kind, access: &Access) -> Plan {
    let method = env.method().unwrap_or_default();
    if kind == Kind::Request && method == "subscriptions/listen" {
        // A long-lived stream cannot be an immediate response, and no single backend has it.
        let id = env.id().map(|i| i.get().to_owned());
        let e = RpcError::new(ErrorCode::MethodNotFound, "Method not found: subscriptions/listen is not available through Envoy; list again instead");
        return Plan::Answer(Answer::json(StatusCode::NOT_FOUND, e.response(id.as_deref())));
    }
    if kind != Kind::Request || !MODERN_CALLS.contains(&method.as_ref()) {
        return Plan::FrontDoor;
    }
    let (req, params) = match ModernRequest::parse(shared, headers, env) {
        Ok(r) => r,
        Err((status, e, id)) => return Plan::Answer(Answer::json(status, e.response(id.as_deref()))),
    };
    let catalog = shared.catalog.load_full();
    let target = match core::route(shared, &catalog, &req.method, Some(&params), access, &req.id) {
        Ok(t) => t,
        Err(e) => return Plan::Answer(Answer::rpc_error(Some(&req.id), &modern_error(e))),
    };
    // A legacy backend needs the gateway's era bridge in the data path: served in process.
    if !matches!(target.backend.era(), Era::Modern | Era::Dual) || target.backend.http_url().is_none() {
        return Plan::FrontDoor;
    }
    let deadline = Instant::now() + target.backend.timeouts.call;
    let credential = match resolve(shared, access, &target.backend, target.tool.as_deref(), deadline).await {
        Ok(c) => c,
        Err(e) => return Plan::Answer(Answer::rpc_error(Some(&req.id), &modern_error(e))),
    };
    let mut set = Vec::new();
    let names = request_headers(&target);
    if let Some(name) = &names.name {
        push(&mut set, HEADER_NAME, &encode_header_value(name));
    }
    for (param, value) in &names.params {
        push(&mut set, &format!("{HEADER_PARAM_PREFIX}{}", param.to_ascii_lowercase()), &encode_header_value(value));
    }
    let body = env.rewrite(&[("params", Some(&target.params))]);
    let reply = Reply::new(target.backend.clone(), target.rewrite, req.id.clone(), None, None, true);
    Plan::Route(Box::new(route(shared, &target.backend, &target.method, target.tool.clone(), body, credential.as_ref(), set, reply, None)))
}

async fn legacy_plan(
    shared: &Arc<Shared>,
    in_flight: &Arc<InFlight>,
    mcp: &checks::McpHeaders<'_>,
    env: &Envelope<'_>,
    body: &[u8],
    kind: Kind,
    access: &Access,
) -> Plan {
    let method = env.method();
    if method.as_deref() == Some("initialize") && mcp.session_id().is_none() {
        return Plan::FrontDoor;
    }
    let session = match session_of(shared, mcp, access) {
        Ok(s) => s,
        Err(r) => return Plan::Answer(super::refusal(&r)),
    };
    match (kind, method.as_deref()) {
        (Kind::Request, Some(m)) if LEGACY_CALLS.contains(&m) => call_plan(shared, in_flight, &session, env, m, access).await,
        (Kind::Notification, Some("notifications/cancelled")) => cancel_plan(shared, in_flight, &session, env, body),
        (Kind::Response, _) => answer_plan(shared, &session, env),
        _ => Plan::FrontDoor,
    }
}

/// The session checks standalone runs on every non-initialize legacy message.
fn session_of(shared: &Shared, mcp: &checks::McpHeaders<'_>, access: &Access) -> Result<Arc<ClientSession>, Reject> {
    mcp.protocol_version()?;
    let id = mcp.session_id().ok_or(Reject::MissingSession)?;
    let session = shared.sessions.get(id).ok_or(Reject::UnknownSession)?;
    checks::same_identity(&session, access)?;
    Ok(session)
}

async fn call_plan(shared: &Arc<Shared>, in_flight: &Arc<InFlight>, session: &Arc<ClientSession>, env: &Envelope<'_>, method: &str, access: &Access) -> Plan {
    let id = env.id().map_or_else(|| "null".to_owned(), |i| i.get().to_owned());
    let params = match env.params_object() {
        Ok(p) => p,
        Err(e) => return Plan::Answer(Answer::rpc_error(Some(&id), &RpcError::new(ErrorCode::InvalidParams, format!("params must be an object: {e}")))),
    };
    let catalog = shared.catalog.load_full();
    let target = match core::route(shared, &catalog, method, params.as_ref(), access, &id) {
        Ok(t) => t,
        Err(e) => return Plan::Answer(Answer::rpc_error(Some(&id), &e)),
    };
    // stdio and legacy HTTP+SSE backends cannot be reached by Envoy, and a backend that speaks
    // only 2026-07-28 has no sessions (the gateway bridges the eras): the gateway calls them.
    if !matches!(target.backend.spec.transport, TransportSpec::StreamableHttp { .. }) || target.backend.era() == Era::Modern {
        return Plan::FrontDoor;
    }
    let deadline = Instant::now() + target.backend.timeouts.call;
    let credential = match resolve(shared, access, &target.backend, target.tool.as_deref(), deadline).await {
        Ok(c) => c,
        Err(e) => return Plan::Answer(Answer::rpc_error(Some(&id), &e)),
    };
    // The backend session is the client's own, opened (or reused) by the gateway with the
    // call's credential, exactly as standalone does; Envoy carries its id.
    let conn = match timeout_at(deadline, session.backend(&target.backend, credential.as_ref())).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Plan::Answer(Answer::rpc_error(Some(&id), &unavailable(&target.backend, &e))),
        Err(_) => return Plan::Answer(Answer::rpc_error(Some(&id), &unavailable(&target.backend, &UpstreamError::Timeout))),
    };
    let mut set = Vec::new();
    session_headers(&mut set, &conn);
    let body = env.rewrite(&[("params", Some(&target.params))]);
    let guard = in_flight.start(&session.id, &id, target.backend.name.as_str());
    let reply = Reply::new(target.backend.clone(), target.rewrite, id, Some(session.clone()), Some(conn), false);
    Plan::Route(Box::new(route(shared, &target.backend, &target.method, target.tool.clone(), body, credential.as_ref(), set, reply, Some(guard))))
}

/// A cancellation goes to the backend that has the call (ids are the client's own there).
fn cancel_plan(shared: &Arc<Shared>, in_flight: &InFlight, session: &Arc<ClientSession>, env: &Envelope<'_>, body: &[u8]) -> Plan {
    let request_id = env.params_object().ok().flatten().and_then(|p| p.get("requestId").map(|r| r.get().to_owned()));
    let server = request_id.and_then(|r| in_flight.server(&session.id, &r));
    relay_plan(shared, session, server.as_deref().map(|s| (s, None)), body.to_vec(), None)
}

/// The client's answer to a request a backend sent it: back to that backend, under the
/// backend's own id.
fn answer_plan(shared: &Arc<Shared>, session: &Arc<ClientSession>, env: &Envelope<'_>) -> Plan {
    let Some(id) = env.id() else { return Plan::FrontDoor };
    match session.answer_target(id.get()) {
        AnswerTarget::Backend { server, fingerprint, backend_id } => {
            let body = env.rewrite(&[("id", Some(&backend_id))]);
            relay_plan(shared, session, Some((server.as_str(), Some(fingerprint))), body, Some(StatusCode::ACCEPTED))
        }
        AnswerTarget::Here(reply) => {
            let _ = reply.send(env.rewrite(&[]));
            Plan::Answer(Answer { status: StatusCode::ACCEPTED, headers: vec![], body: Default::default() })
        }
        // Waiting on another replica, or not ours: the front door forwards or refuses it.
        AnswerTarget::Replica(_) | AnswerTarget::Unknown => Plan::FrontDoor,
    }
}

/// A notification or response for a backend session the client already has.
/// `to` names the server and, when known, the credential fingerprint of the backend session.
fn relay_plan(shared: &Arc<Shared>, session: &Arc<ClientSession>, to: Option<(&str, Option<u64>)>, body: Vec<u8>, gone: Option<StatusCode>) -> Plan {
    let found = to.and_then(|(s, fingerprint)| {
        let backend = shared.backends.load().iter().find(|b| b.name.as_str() == s).cloned()?;
        let fingerprint = fingerprint.unwrap_or_else(|| session.credential_of(&backend.name));
        Some((session.connection(&backend.name, fingerprint)?, backend))
    });
    let Some((conn, backend)) = found else {
        // Nothing to deliver to: standalone accepts it and moves on.
        return match gone {
            Some(status) => Plan::Answer(Answer { status, headers: vec![], body: Default::default() }),
            None => Plan::FrontDoor,
        };
    };
    let mut set = Vec::new();
    session_headers(&mut set, &conn);
    let reply = Reply::new(backend.clone(), ResultRewrite::None, "null".into(), Some(session.clone()), Some(conn), false);
    Plan::Route(Box::new(route(shared, &backend, "", None, body, None, set, reply, None)))
}

#[allow(clippy::too_many_arguments)]
fn route(
    shared: &Shared,
    backend: &Arc<Backend>,
    method: &str,
    tool: Option<String>,
    body: Vec<u8>,
    credential: Option<&mcpgate_credentials::Resolved>,
    extra: Vec<(HeaderName, HeaderValue)>,
    reply: Reply,
    guard: Option<InFlightGuard>,
) -> Route {
    let config = shared.config.load();
    let server = backend.name.as_str().to_owned();
    let route_value = config.envoy.as_ref().and_then(|e| e.route_value(&config, &server)).unwrap_or_else(|| server.clone());
    let path = backend.http_url().map_or_else(|| "/".to_owned(), |u| u[url::Position::BeforePath..].to_owned());
    // The caller's token never goes on, unless an ext_authz after the router still needs it
    // and sets the credential itself (`envoy.ext_proc.credentials: false`).
    let inject = config.envoy.as_ref().is_none_or(|e| e.ext_proc.credentials);
    let mut set: Vec<(HeaderName, HeaderValue)> = backend.headers.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    if inject {
        for (n, v) in credential.iter().flat_map(|c| c.headers.iter()) {
            set.retain(|(existing, _)| existing != n);
            set.push((n.clone(), v.clone()));
        }
    }
    set.extend(extra);
    let mut remove = vec![HeaderName::from_static(checks::SESSION_HEADER)];
    if inject {
        remove.push(http::header::AUTHORIZATION);
    }
    // A header that is set replaces the client's; it must not also be removed.
    remove.retain(|r| !set.iter().any(|(n, _)| n == r));
    Route {
        server,
        method: if method.is_empty() { method_of(&body) } else { method.to_owned() },
        tool,
        route_value,
        path,
        body,
        set,
        remove,
        reply,
        _in_flight: guard,
    }
}

fn method_of(body: &[u8]) -> String {
    Envelope::parse(body).ok().and_then(|e| e.method().map(|m| m.into_owned())).unwrap_or_default()
}

/// The call's credential from the server's chain, bounded by the call's deadline.
async fn resolve(
    shared: &Shared,
    access: &Access,
    backend: &Backend,
    tool: Option<&str>,
    deadline: Instant,
) -> Result<Option<mcpgate_credentials::Resolved>, RpcError> {
    match timeout_at(deadline, core::credential(shared, access, backend, tool)).await {
        Ok(r) => r,
        Err(_) => Err(unavailable(backend, &UpstreamError::Timeout)),
    }
}

/// The backend session's id and protocol version, in place of the client's.
fn session_headers(set: &mut Vec<(HeaderName, HeaderValue)>, conn: &mcpgate_upstream::Connection) {
    if let Some(sid) = conn.shareable_id() {
        push(set, checks::SESSION_HEADER, sid);
    }
    push(set, checks::VERSION_HEADER, &conn.init_result().protocol_version);
}

fn push(set: &mut Vec<(HeaderName, HeaderValue)>, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
        set.push((n, v));
    }
}
