//! What the gateway does with each JSON-RPC message of a legacy-era session: answer it from
//! the catalog, route it to the owning backend, or relay it to where it belongs.

use std::sync::Arc;

use mcpgate_protocol::envelope::{Envelope, Kind, json_string};
use mcpgate_protocol::errors::{notification, result_response};
use mcpgate_protocol::versions::negotiate;
use mcpgate_protocol::{ErrorCode, ObjectWriter, RpcError};

use crate::calls::legacy::forward;
use crate::catalog::{Catalog, ItemKind};
use crate::cluster::BusMessage;
use crate::core::{list_response, route};
use crate::identity::Access;
use crate::reject::Reject;
use crate::reply::Reply;
use crate::session::{AnswerTarget, Cancelled, ClientSession, Refused};
use crate::state::Shared;
use mcpgate_store::bus::To;

/// `initialize`: a new client session and its result.
pub async fn initialize(shared: &Shared, env: &Envelope<'_>, access: &Access) -> Result<(Arc<ClientSession>, Vec<u8>), Reject> {
    let id = env.id().ok_or_else(|| Reject::Invalid("initialize must be a request".into()))?;
    let params = env.params_object().map_err(|e| Reject::Invalid(format!("params: {e}")))?;
    let requested = params.as_ref().and_then(|p| p.str("protocolVersion"));
    let version = negotiate(requested.as_deref());
    let caps = params.as_ref().and_then(|p| p.get("capabilities")).map_or("{}".to_owned(), |c| c.get().to_owned());
    let info = params.as_ref().and_then(|p| p.get("clientInfo")).map_or_else(mcpgate_upstream_client_info, |c| c.get().to_owned());
    let catalog = shared.catalog.load_full();
    let config = shared.config.load_full();
    let limits = &config.limits;
    if limits.refuse_sessions_without_access && access.is_restricted() && sees_nothing(shared, &catalog, access) {
        tracing::info!(target: "mcpgate::audit", subject = access.subject(), decision = "deny", reason = "no_visible_items", "session refused");
        return Err(Reject::NoAccess);
    }
    let session = ClientSession::new(&shared.session_ctx(), version, caps, info, access.principal());
    // Bound before the session is stored: the binding is part of its record on every replica.
    if let Some(v) = access.scope() {
        session.bind_virtual_server(v.name.clone());
    }
    match shared.sessions.insert(session.clone(), &limits.sessions()).await {
        Ok(Some((evicted, stored))) => {
            let backends = shared.backends.load_full();
            drop(tokio::spawn(async move { evicted.end_everywhere(stored, &backends).await }));
        }
        Ok(None) => {}
        Err(Refused::Full) => return Err(Reject::TooManySessions),
        Err(Refused::PrincipalQuota) => return Err(Reject::PrincipalSessions(limits.max_sessions_per_principal)),
        Err(Refused::Store(why)) => return Err(Reject::StoreUnavailable(why)),
        Err(Refused::Unknown) => return Err(Reject::UnknownSession),
    }
    let mut result = ObjectWriter::new();
    result
        .string("protocolVersion", version)
        .raw("capabilities", &capabilities(&catalog))
        .raw("serverInfo", &format!(r#"{{"name":"mcpgate","title":"mcpgate MCP gateway","version":"{}"}}"#, env!("CARGO_PKG_VERSION")));
    if let Some(text) = access.instructions(&catalog) {
        result.string("instructions", &text);
    }
    let result = String::from_utf8(result.finish()).unwrap_or_default();
    tracing::info!(session = %crate::session::short(&session.id), version, "session created");
    Ok((session, result_response(id.get(), &result)))
}

/// Whether `access` may see no item of any kind in `catalog`.
fn sees_nothing(shared: &Shared, catalog: &Catalog, access: &Access) -> bool {
    ItemKind::ALL.iter().all(|kind| shared.views.visible(catalog, *kind, access).is_empty())
}

fn mcpgate_upstream_client_info() -> String {
    r#"{"name":"unknown-client","version":"0"}"#.to_owned()
}

/// The union of what the gateway can serve. Lists are always offered (backends may appear
/// later); subscriptions and completions only when some backend supports them.
pub(crate) fn capabilities(c: &Catalog) -> String {
    let mut w = ObjectWriter::new();
    w.raw("tools", r#"{"listChanged":true}"#)
        .raw("prompts", r#"{"listChanged":true}"#)
        .raw("resources", if c.caps.subscribe { r#"{"listChanged":true,"subscribe":true}"# } else { r#"{"listChanged":true}"# })
        .raw("logging", "{}");
    if c.caps.completions {
        w.raw("completions", "{}");
    }
    String::from_utf8(w.finish()).unwrap_or_default()
}

pub async fn request(shared: &Arc<Shared>, session: &Arc<ClientSession>, env: &Envelope<'_>, method: &str, access: &Access) -> Reply {
    let id = env.id().map(|i| i.get().to_owned()).unwrap_or_else(|| "null".into());
    let params = match env.params_object() {
        Ok(p) => p,
        Err(e) => return error(&id, RpcError::new(ErrorCode::InvalidParams, format!("params must be an object: {e}"))),
    };
    // Per-user servers' listings for this caller (no-op without any).
    let attached = crate::core::personal::attach(shared, access, method).await;
    let access = attached.as_ref().unwrap_or(access);
    let catalog = shared.catalog.load_full(); // held across the call: an Arc, not a guard
    let page_size = shared.config.load().catalog.page_size;
    let list = |kind| list(shared, &catalog, kind, params.as_ref(), page_size, &id, access);
    match method {
        "ping" => Reply::Json(result_response(&id, "{}")),
        "tools/list" => list(ItemKind::Tool),
        "prompts/list" => list(ItemKind::Prompt),
        "resources/list" => list(ItemKind::Resource),
        "resources/templates/list" => list(ItemKind::ResourceTemplate),
        // Boxed (like the other rare paths below): their states would enlarge every call's future.
        "logging/setLevel" => Box::pin(set_level(shared, session, access, params.as_ref(), &id)).await,
        "tools/call" | "prompts/get" | "resources/read" | "resources/subscribe" | "resources/unsubscribe" | "completion/complete" => {
            let target = match route(shared, &catalog, method, params.as_ref(), access, &id) {
                Ok(t) => t,
                Err(e) => return error(&id, e),
            };
            if let Err(e) = crate::core::admit(shared, access, &target, &id).await {
                return error(&id, e);
            }
            match target {
                // Resource subscriptions at a backend that speaks 2026-07-28 go through its
                // `subscriptions/listen` (dual-era SDK servers answer legacy `resources/subscribe`
                // with "Method not found").
                target if target.backend.era().serves_modern() && method.starts_with("resources/") && method.ends_with("subscribe") => {
                    let uri = params.as_ref().and_then(|p| p.str("uri")).unwrap_or_default().into_owned();
                    Box::pin(super::subscribe::through_listen(shared, session, access, target, &uri, id)).await
                }
                target if !target.backend.era().serves_legacy() => crate::calls::rounds::for_session(shared, session, access, target, id).await,
                target => forward(shared, session, access, target, id).await,
            }
        }
        "initialize" => error(&id, RpcError::new(ErrorCode::InvalidRequest, "session already initialized")),
        other => error(&id, RpcError::new(ErrorCode::MethodNotFound, format!("Method not found: {other}"))),
    }
}

fn error(id: &str, e: RpcError) -> Reply {
    Reply::Json(e.response(Some(id)))
}

fn list(shared: &Shared, catalog: &Catalog, kind: ItemKind, params: Option<&Envelope<'_>>, size: usize, id: &str, access: &Access) -> Reply {
    match list_response(shared, catalog, kind, params, size, id, access, &[]) {
        Ok(body) => Reply::Json(body),
        Err(e) => error(id, e),
    }
}

async fn set_level(shared: &Shared, session: &ClientSession, access: &Access, params: Option<&Envelope<'_>>, id: &str) -> Reply {
    let Some(level) = params.and_then(|p| p.str("level")) else {
        return error(id, RpcError::new(ErrorCode::InvalidParams, "level is required"));
    };
    session.set_log_level(level.to_string()).await;
    let body = format!(r#"{{"level":{}}}"#, json_string(&level));
    // In a cluster, the client's backend sessions other replicas opened are told too.
    for server in session.stored_backend_servers().await {
        if let Some(backend) = shared.backend(&server)
            && let Ok(cred) = crate::core::credential(shared, access, &backend, None).await
        {
            let _ = session.backend(&backend, cred.as_ref()).await;
        }
    }
    for (_, conn) in session.open_backends() {
        if let Ok(ex) = conn.request("logging/setLevel", Some(&body)).await {
            let _ = ex.response().await;
        }
    }
    Reply::Json(result_response(id, "{}"))
}

/// A notification from the client.
pub async fn client_notification(session: &Arc<ClientSession>, env: &Envelope<'_>, method: &str) -> Reply {
    if method == "notifications/cancelled"
        && let Some(request_id) = env.params_object().ok().flatten().and_then(|p| p.get("requestId").map(|r| r.get().to_owned()))
    {
        return cancel(session, env, request_id).await;
    }
    match method {
        "notifications/roots/list_changed" => {
            for (_, conn) in session.open_backends() {
                let _ = conn.notify(notification(method, None)).await;
            }
            Reply::Accepted
        }
        _ => Reply::Accepted,
    }
}

/// `notifications/cancelled`: the call stops wherever it runs (here, or on another replica).
async fn cancel(session: &Arc<ClientSession>, env: &Envelope<'_>, request_id: String) -> Reply {
    match session.cancel(&request_id) {
        Cancelled::Backend(conn, backend_id) => {
            let params = env.params_object().ok().flatten().map(|p| p.rewrite(&[("requestId", Some(&backend_id.to_string()))]));
            let params = params.and_then(|p| String::from_utf8(p).ok());
            let _ = conn.notify(notification("notifications/cancelled", params.as_deref())).await;
        }
        Cancelled::Stopped => {}
        Cancelled::Unknown => {
            if let Some(cluster) = session.cluster() {
                cluster.send(To::All, &BusMessage::Cancel { session: session.id.clone(), request_id }).await;
            }
        }
    }
    Reply::Accepted
}

/// A response from the client to a request a backend (or the gateway) sent it. Any replica
/// delivers it: the id says where it goes.
pub async fn client_response(shared: &Shared, session: &Arc<ClientSession>, env: &Envelope<'_>, access: &Access) -> Reply {
    let Some(id) = env.id() else { return Reply::Rejected(Reject::Invalid("response without id".into())) };
    let (server, fingerprint, backend_id) = match session.answer_target(id.get()) {
        AnswerTarget::Here(reply) => {
            let _ = reply.send(env.rewrite(&[]));
            return Reply::Accepted;
        }
        AnswerTarget::Replica(replica) => {
            if let Some(cluster) = session.cluster() {
                let message = BusMessage::Answer {
                    session: session.id.clone(),
                    id: id.get().to_owned(),
                    response: String::from_utf8_lossy(&env.rewrite(&[])).into_owned(),
                };
                cluster.send(To::Replica(replica), &message).await;
            }
            return Reply::Accepted;
        }
        AnswerTarget::Unknown => return Reply::Rejected(Reject::Invalid("no pending server request has this id".into())),
        AnswerTarget::Backend { server, fingerprint, backend_id } => (server, fingerprint, backend_id),
    };
    let mut conn = session.connection(&server, fingerprint);
    if conn.is_none()
        && let Some(backend) = shared.backend(&server)
        && let Ok(cred) = crate::core::credential(shared, access, &backend, None).await
        && cred.as_ref().map_or(0, |c| c.fingerprint) == fingerprint
    {
        // The backend session another replica opened (or this one dropped from its cache).
        conn = session.backend(&backend, cred.as_ref()).await.ok();
    }
    match conn {
        Some(conn) => {
            let msg = env.rewrite(&[("id", Some(&backend_id))]);
            if let Err(e) = conn.respond(msg).await {
                tracing::warn!(server = %server, error = %e, "could not deliver the client's answer to the backend");
            }
        }
        None => tracing::warn!(server = %server, "backend session gone before the client answered"),
    }
    Reply::Accepted
}

/// Whether a parsed body is one the session machinery accepts at all.
pub fn kind_of(env: &Envelope<'_>) -> Result<Kind, Reject> {
    if env.str("jsonrpc").as_deref() != Some("2.0") {
        return Err(Reject::Invalid("jsonrpc must be \"2.0\"".into()));
    }
    if let Some(id) = env.get("id") {
        if id.get() == "null" {
            return Err(Reject::Invalid("id must not be null".into()));
        }
        // MCP narrows JSON-RPC: an id is a string or an integer. Anything else would be
        // echoed back to a client (or a backend) that cannot match it.
        if !mcpgate_protocol::envelope::is_valid_id(id) {
            return Err(Reject::Invalid("id must be a string or an integer".into()));
        }
    }
    env.kind().ok_or_else(|| Reject::Invalid("not a request, notification or response".into()))
}
