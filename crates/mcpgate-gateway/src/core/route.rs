//! The core every call goes through, whatever the client's or the backend's era: find the
//! owner of the named item in the catalog, **permit** it with the caller's rules (a denied name
//! gets exactly the unknown-name error), and rewrite the params into the backend's names.
//!
//! A [`Target`] can only be made here, so no path reaches a backend without a permission check.

use mcpgate_protocol::envelope::{Envelope, json_string};
use mcpgate_protocol::names::{ServerName, backend_uri};
use mcpgate_protocol::{ErrorCode, RpcError};
use std::sync::Arc;

use crate::backend::Backend;
use crate::catalog::{Catalog, ItemKind, ResultRewrite};
use crate::identity::{Access, audit};
use crate::observe::labels::{authz_reason_index, method_index};
use crate::observe::series::bump;
use crate::state::Shared;

/// A routed request, ready to send.
pub struct Target {
    pub backend: Arc<Backend>,
    pub method: String,
    /// The backend's name of the tool being called (credential checks may need it).
    pub tool: Option<String>,
    /// The params as the backend must see them (names already mapped back).
    pub params: String,
    pub rewrite: ResultRewrite,
    /// The backend's own name or URI of the item (`Mcp-Name` for modern backends).
    pub name: Option<String>,
    /// The tool's `x-mcp-header` declarations (`Mcp-Param-*` for modern backends).
    pub param_headers: Vec<mcpgate_protocol::modern::ParamHeader>,
    /// Only this module makes one: a `Target` is proof that the call was permitted.
    _permit: Permit,
}

/// The mark of a permission check passed (constructible in this module only).
pub struct Permit(());

/// Finds the owner of the named item and rewrites params into the backend's names.
pub fn route(shared: &Shared, catalog: &Catalog, method: &str, params: Option<&Envelope<'_>>, access: &Access, request_id: &str) -> Result<Target, RpcError> {
    let params = params.ok_or_else(|| RpcError::new(ErrorCode::InvalidParams, "params are required"))?;
    // A denied item gets exactly the error an unknown one gets: no existence oracle.
    let _span = crate::stage_span!("authorize", decision = tracing::field::Empty, reason = tracing::field::Empty).entered();
    // The refusal is made only when it is one (its message is formatted).
    let permit = |server: &ServerName, kind: ItemKind, name: &str, annotations: Option<&serde_json::Value>, not_found: &dyn Fn() -> RpcError| {
        let verdict = access.decide(server, kind, name, annotations);
        _span.record("decision", if verdict.allowed { "allow" } else { "deny" });
        _span.record("reason", verdict.code);
        // Open gateways (no auth) decide nothing: counting `no_auth` would only add a lookup.
        if access.meter.is_enabled()
            && access.is_restricted()
            && let Some(b) = shared.backend(server)
        {
            let k = match kind {
                ItemKind::Tool => 0,
                ItemKind::Prompt => 1,
                ItemKind::Resource | ItemKind::ResourceTemplate => 2,
            };
            bump(&b.series.authz[k][authz_reason_index(verdict.code)]);
        }
        if access.is_restricted() {
            audit(&shared.audit, access, server.as_str(), kind.as_str(), name, &verdict, request_id);
        }
        if verdict.allowed { Ok(()) } else { Err(not_found()) }
    };
    let mut tool = None;
    let mut param_headers = Vec::new();
    let mut backend_name = None;
    let (server, replace_key, replace_value, rewrite) = match method {
        "tools/call" | "prompts/get" => {
            let name = params.str("name").ok_or_else(|| RpcError::new(ErrorCode::InvalidParams, "params.name must be a string"))?;
            let (kind, what) = if method == "tools/call" { (ItemKind::Tool, "tool") } else { (ItemKind::Prompt, "prompt") };
            let entry = super::personal::find(catalog, access, kind, &name);
            let unknown = || RpcError::new(ErrorCode::InvalidParams, format!("Unknown {what}: {name}"));
            // Outside the virtual server's selection: unknown here, like a name nobody has.
            let entry = entry.filter(|e| access.in_scope(kind, e)).ok_or_else(unknown)?;
            permit(&entry.server, kind, &entry.backend_name, entry.annotations.as_ref(), &unknown)?;
            if kind == ItemKind::Tool {
                tool = Some(entry.backend_name.clone());
                param_headers = entry.param_headers.clone();
            }
            access.meter.routed(|s| entry.series.get_or_init(|| s.item(method_index(method), entry.server.as_str(), Some(&entry.backend_name))).clone());
            backend_name = Some(entry.backend_name.clone());
            (entry.server.clone(), "name", json_string(&entry.backend_name), ResultRewrite::None)
        }
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            let uri = params.str("uri").ok_or_else(|| RpcError::new(ErrorCode::InvalidParams, "params.uri must be a string"))?;
            let (server, original) =
                resource_owner(shared, &uri).filter(|(s, _)| resource_in_scope(catalog, access, s, &uri)).ok_or_else(|| resource_not_found(&uri))?;
            permit(&server, ItemKind::Resource, &original, None, &|| resource_not_found(&uri))?;
            let rewrite = if method == "resources/read" { ResultRewrite::ResourceContents } else { ResultRewrite::None };
            backend_name = Some(original.clone());
            (server, "uri", json_string(&original), rewrite)
        }
        _ => {
            // completion/complete: the ref names a prompt or a resource template.
            let r =
                params.get("ref").and_then(|r| Envelope::parse_raw(r).ok()).ok_or_else(|| RpcError::new(ErrorCode::InvalidParams, "params.ref is required"))?;
            let (server, key, value) = match r.str("type").as_deref() {
                Some("ref/prompt") => {
                    let name = r.str("name").unwrap_or_default();
                    let unknown = || RpcError::new(ErrorCode::InvalidParams, format!("Unknown prompt: {name}"));
                    let e =
                        super::personal::find(catalog, access, ItemKind::Prompt, &name).filter(|e| access.in_scope(ItemKind::Prompt, e)).ok_or_else(unknown)?;
                    permit(&e.server, ItemKind::Prompt, &e.backend_name, None, &unknown)?;
                    (e.server.clone(), "name", json_string(&e.backend_name))
                }
                Some("ref/resource") => {
                    let uri = r.str("uri").unwrap_or_default();
                    let (server, original) =
                        resource_owner(shared, &uri).filter(|(s, _)| resource_in_scope(catalog, access, s, &uri)).ok_or_else(|| resource_not_found(&uri))?;
                    permit(&server, ItemKind::Resource, &original, None, &|| resource_not_found(&uri))?;
                    (server, "uri", json_string(&original))
                }
                _ => return Err(RpcError::new(ErrorCode::InvalidParams, "ref.type must be ref/prompt or ref/resource")),
            };
            let new_ref = String::from_utf8(r.rewrite(&[(key, Some(&value))])).unwrap_or_default();
            (server, "ref", new_ref, ResultRewrite::None)
        }
    };
    let backend = shared.backend(&server).ok_or_else(|| RpcError::new(ErrorCode::BackendUnavailable, format!("server '{server}' is not configured")))?;
    if method != "tools/call" && method != "prompts/get" {
        // Resources and completions are counted per server: their URIs are not a closed set.
        let slot = match method {
            "resources/read" => 0,
            "resources/subscribe" => 1,
            "resources/unsubscribe" => 2,
            _ => 3,
        };
        access.meter.routed(|s| backend.series.per_server_items[slot].get_or_init(|| s.item(method_index(method), backend.name.as_str(), None)).clone());
    }
    let params = String::from_utf8(params.rewrite(&[(replace_key, Some(&replace_value))])).unwrap_or_default();
    Ok(Target { backend, method: method.to_owned(), tool, params, rewrite, name: backend_name, param_headers, _permit: Permit(()) })
}

/// The target of a `tasks/*` request: the task id was minted for this caller (the binding is
/// the permission), and its backend still exists.
pub fn task(shared: &Shared, server: &ServerName, method: &str, params: String, backend_task: &str) -> Option<Target> {
    let backend = shared.backend(server)?;
    Some(Target {
        backend,
        method: method.to_owned(),
        tool: None,
        params,
        rewrite: ResultRewrite::None,
        name: Some(backend_task.to_owned()),
        param_headers: Vec::new(),
        _permit: Permit(()),
    })
}

fn resource_not_found(uri: &str) -> RpcError {
    RpcError::new(ErrorCode::ResourceNotFound, format!("Resource not found: {uri}"))
}

/// Whether a virtual server the request came through shows the resource `uri` (as exposed)
/// of `server`: the URI itself is selected, or it is a listed resource or an expansion of a
/// listed template that is. Always true on the main endpoint.
pub fn resource_in_scope(catalog: &Catalog, access: &Access, server: &ServerName, uri: &str) -> bool {
    let Some(v) = access.scope() else { return true };
    v.admits(ItemKind::Resource, server, uri, None)
        || catalog.resources.iter().any(|e| &e.server == server && e.exposed == uri && v.admits_entry(ItemKind::Resource, e))
        || catalog
            .templates
            .iter()
            .any(|e| &e.server == server && crate::catalog::template_matches(&e.exposed, uri) && v.admits_entry(ItemKind::ResourceTemplate, e))
}

/// The server a namespaced URI belongs to, and the backend's own URI.
pub fn resource_owner(shared: &Shared, uri: &str) -> Option<(ServerName, String)> {
    let backends = shared.backends.load();
    if let [only] = backends.as_slice()
        && only.prefix.is_empty()
    {
        return Some((only.name.clone(), uri.to_owned()));
    }
    let (name, _) = uri.split_once('+')?;
    let server = ServerName::parse(name).ok()?;
    let b = backends.iter().find(|b| b.name == server)?;
    Some((b.name.clone(), backend_uri(&b.name, uri)?.to_owned()))
}
