//! The stateless (2026-07-28) era on the MCP endpoint, beside legacy sessions.
//!
//! A POST whose `params._meta` carries `io.modelcontextprotocol/protocolVersion` is served
//! here: validated against its SEP-2243 headers, answered from the catalog (lists, discovery)
//! or routed and permitted by `core` and handed to the backend-era adapter for the owning
//! backend (`calls::modern` or `calls::bridge`). Nothing about the caller outlives the request
//! except calls parked for an `input_required` round trip.

pub mod listen;
pub mod tasks;
mod validate;

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use mcpgate_protocol::envelope::{Envelope, Kind, json_string};
use mcpgate_protocol::errors::result_response;
use mcpgate_protocol::modern::{LEGACY_ONLY_METHODS, META_SERVER_INFO};
use mcpgate_protocol::versions::MODERN_VERSION;
use mcpgate_protocol::{ErrorCode, ObjectWriter, RpcError};

use crate::calls::answer::{error, json};
use crate::catalog::ItemKind;
use crate::identity::Access;
use crate::request::ModernRequest;
use crate::state::Shared;

/// Answers one modern-era message.
pub async fn handle(shared: &Arc<Shared>, headers: &HeaderMap, env: &Envelope<'_>, kind: Kind, access: Access) -> Response {
    match kind {
        // This revision defines no client notifications over HTTP; accepting them is harmless.
        Kind::Notification => return StatusCode::ACCEPTED.into_response(),
        Kind::Response => {
            let e =
                RpcError::new(ErrorCode::InvalidRequest, "a 2026-07-28 client never sends responses; answer input requests by retrying with inputResponses");
            return error(StatusCode::BAD_REQUEST, None, &e);
        }
        Kind::Request => {}
    }
    let (req, params) = match ModernRequest::parse(shared, headers, env) {
        Ok(r) => r,
        Err((status, e, id)) => return error(status, id.as_deref(), &e),
    };
    // Per-user servers' listings for this caller (no-op without any).
    let access = match crate::core::personal::attach(shared, &access, &req.method).await {
        Some(attached) => attached,
        None => access,
    };
    // Only lists read the catalog and page size here: a call's routing takes its own snapshot.
    let list = |kind| {
        let catalog = shared.catalog.load_full();
        let page_size = shared.config.load().catalog.page_size;
        let (ttl, scope) = cache_hints(shared, &access);
        let scope = json_string(scope);
        let extra = [("resultType", r#""complete""#), ("ttlMs", ttl.as_str()), ("cacheScope", scope.as_str())];
        match crate::core::list_response(shared, &catalog, kind, Some(&params), page_size, &req.id, &access, &extra) {
            Ok(body) => json(StatusCode::OK, body),
            Err(e) => error(StatusCode::OK, Some(&req.id), &e),
        }
    };
    match req.method.as_str() {
        "server/discover" => json(StatusCode::OK, result_response(&req.id, &discover(shared, &access))),
        "tools/list" => list(ItemKind::Tool),
        "prompts/list" => list(ItemKind::Prompt),
        "resources/list" => list(ItemKind::Resource),
        "resources/templates/list" => list(ItemKind::ResourceTemplate),
        "tools/call" | "prompts/get" | "resources/read" | "completion/complete" => call(shared, access, req, &params).await,
        // Boxed so their larger states do not enlarge every call's future.
        "subscriptions/listen" => Box::pin(listen::handle(shared, &access, &req)).await,
        "tasks/get" | "tasks/update" | "tasks/cancel" => Box::pin(tasks::handle(shared, access, req)).await,
        m if LEGACY_ONLY_METHODS.contains(&m) => {
            let e = RpcError::new(ErrorCode::MethodNotFound, format!("Method not found: {m} does not exist in protocol version {MODERN_VERSION}"));
            error(StatusCode::NOT_FOUND, Some(&req.id), &e)
        }
        m => error(StatusCode::NOT_FOUND, Some(&req.id), &RpcError::new(ErrorCode::MethodNotFound, format!("Method not found: {m}"))),
    }
}

/// `ttlMs` and `cacheScope` for catalog answers. Lists filtered per caller (or built from a
/// backend's private lists) are `private`; the
/// ttl never exceeds the smallest one a modern backend gave for its own lists.
fn cache_hints(shared: &Shared, access: &Access) -> (String, &'static str) {
    let configured = shared.config.load().catalog.cache_ttl.as_millis() as u64;
    let ttl = shared.catalog.load().backend_ttl_ms.map_or(configured, |b| b.min(configured));
    let personal = access.identity.is_some() || access.is_restricted() || shared.config.load().auth.is_some() || shared.catalog.load().backend_private;
    (ttl.to_string(), if personal { "private" } else { "public" })
}

fn discover(shared: &Shared, access: &Access) -> String {
    let catalog = shared.catalog.load_full();
    let (ttl, scope) = cache_hints(shared, access);
    let mut w = ObjectWriter::new();
    w.string("resultType", "complete").raw("supportedVersions", &format!(r#"["{MODERN_VERSION}"]"#)).raw("capabilities", &capabilities(&catalog));
    if let Some(text) = access.instructions(&catalog) {
        w.string("instructions", &text);
    }
    w.raw("ttlMs", &ttl).string("cacheScope", scope).raw("_meta", &server_info_meta());
    String::from_utf8(w.finish()).unwrap_or_default()
}

/// What the gateway offers a modern client: the legacy union, with change notifications
/// delivered through `subscriptions/listen`.
fn capabilities(c: &crate::catalog::Catalog) -> String {
    let mut w = ObjectWriter::new();
    w.raw("tools", r#"{"listChanged":true}"#)
        .raw("prompts", r#"{"listChanged":true}"#)
        .raw("resources", if c.caps.subscribe { r#"{"listChanged":true,"subscribe":true}"# } else { r#"{"listChanged":true}"# });
    if c.caps.completions {
        w.raw("completions", "{}");
    }
    if c.caps.tasks {
        w.raw("extensions", &format!(r#"{{"{}":{{}}}}"#, mcpgate_protocol::modern::TASKS_EXTENSION));
    }
    String::from_utf8(w.finish()).unwrap_or_default()
}

pub(crate) fn server_info_meta() -> String {
    format!(r#"{{"{META_SERVER_INFO}":{{"name":"mcpgate","title":"mcpgate MCP gateway","version":"{}"}}}}"#, env!("CARGO_PKG_VERSION"))
}

/// A modern client's `tools/call`, `prompts/get`, `resources/read` or `completion/complete`
/// (`params`: the request's params, parsed).
async fn call(shared: &Arc<Shared>, access: Access, req: ModernRequest, params: &Envelope<'_>) -> Response {
    let catalog = shared.catalog.load();
    let target = match crate::core::route(shared, &catalog, &req.method, Some(params), &access, &req.id) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::OK, Some(&req.id), &modern_error(e)),
    };
    drop(catalog);
    if let Err(e) = crate::core::admit(shared, &access, &target, &req.id).await {
        return error(StatusCode::OK, Some(&req.id), &e);
    }
    if target.backend.era().serves_modern() {
        crate::calls::modern::stateless(shared, &access, &req, target).await
    } else {
        Box::pin(crate::calls::bridge::call(shared, access, req, target)).await
    }
}

/// 2025-era error codes a modern client must not see (`-32002` became `-32602`).
pub fn modern_error(mut e: RpcError) -> RpcError {
    if e.code == ErrorCode::ResourceNotFound {
        e.code = ErrorCode::InvalidParams;
    }
    e
}
