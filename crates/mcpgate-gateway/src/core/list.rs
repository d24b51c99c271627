//! List answers from the catalog, filtered per caller (no backend round trip), for both eras.

use mcpgate_protocol::envelope::{Envelope, json_string, raw_str};
use mcpgate_protocol::{ErrorCode, RpcError};

use crate::catalog::{Catalog, ItemKind, page};
use crate::identity::Access;
use crate::state::Shared;

/// The whole response carrying one page of a list as the caller may see it; `extra` members
/// (raw JSON) are appended to the result. Written into one buffer: a page of thousands of
/// tools is large, and every extra copy of it costs.
#[allow(clippy::too_many_arguments)]
pub fn list_response(
    shared: &Shared,
    catalog: &Catalog,
    kind: ItemKind,
    params: Option<&Envelope<'_>>,
    size: usize,
    id: &str,
    access: &Access,
    extra: &[(&str, &str)],
) -> Result<Vec<u8>, RpcError> {
    let cursor = params.and_then(|p| p.get("cursor"));
    let cursor = match cursor.map(raw_str) {
        None => None,
        Some(Some(c)) => Some(c),
        Some(None) => return Err(RpcError::new(ErrorCode::InvalidParams, "cursor must be a string")),
    };
    let all = catalog.items(kind);
    let visible = shared.views.visible(catalog, kind, access);
    let mut items: Vec<_> = visible.iter().map(|i| &all[*i as usize]).collect();
    if let Some(personal) = access.personal() {
        items = super::personal::merge(items, personal, kind, access);
    }
    if access.is_restricted() && cursor.is_none() {
        shared.audit.record(crate::observe::audit::Event::List {
            subject: access.subject(),
            kind: kind.as_str(),
            visible: items.len(),
            total: all.len(),
            request_id: id,
        });
    }
    // The modern era allows an empty cursor for the first page.
    let cursor = cursor.filter(|c| !c.is_empty() || extra.is_empty());
    let Ok((items, next)) = page(&items, cursor.as_deref(), size) else {
        return Err(RpcError::new(ErrorCode::InvalidParams, "Invalid cursor"));
    };
    let next = next.map(|c| json_string(c.as_str()));
    let extra_len: usize = extra.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
    let mut out = Vec::with_capacity(items.iter().map(|e| e.json.get().len() + 1).sum::<usize>() + id.len() + extra_len + 96);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b",\"result\":{");
    out.extend_from_slice(json_string(kind.list_key()).as_bytes());
    out.extend_from_slice(b":[");
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(e.json.get().as_bytes());
    }
    out.push(b']');
    if let Some(c) = &next {
        out.extend_from_slice(b",\"nextCursor\":");
        out.extend_from_slice(c.as_bytes());
    }
    for (k, v) in extra {
        out.push(b',');
        out.extend_from_slice(json_string(k).as_bytes());
        out.push(b':');
        out.extend_from_slice(v.as_bytes());
    }
    out.extend_from_slice(b"}}");
    Ok(out)
}
