//! `resources/subscribe` and `resources/unsubscribe` from a legacy session for a resource of a
//! backend that speaks 2026-07-28, which has no such methods: the gateway subscribes at the backend itself
//! (`subscriptions/listen`, shared with every other subscriber of the same resource and
//! credential: `calls::subscriptions`) and relays each `notifications/resources/updated` to the
//! client's GET stream under the URI the client named. The subscription ends on unsubscribe or
//! when the session ends.

use std::sync::Arc;

use mcpgate_protocol::envelope::{Envelope, json_string};
use mcpgate_protocol::errors::{notification, result_response};
use mcpgate_protocol::{ErrorCode, RpcError};

use crate::calls::subscriptions::Subscriber;
use crate::core::{Target, credential};
use crate::identity::Access;
use crate::reply::Reply;
use crate::session::ClientSession;
use crate::state::Shared;

/// `exposed` is the URI as the client named it; `target` names the backend's own.
pub async fn through_listen(shared: &Arc<Shared>, session: &Arc<ClientSession>, access: &Access, target: Target, exposed: &str, id: String) -> Reply {
    if target.method == "resources/unsubscribe" {
        session.remove_subscription(exposed);
        return Reply::Json(result_response(&id, "{}"));
    }
    let backend = target.backend.clone();
    let original = target.name.clone().unwrap_or_default();
    let cred = match credential(shared, access, &backend, None).await {
        Ok(c) => c,
        Err(e) => return Reply::Json(e.response(Some(&id))),
    };
    let init = session.init_options();
    let ctx = shared.session_ctx();
    let who = Subscriber {
        ctx: &ctx,
        credential: cred.as_ref(),
        principal: session.principal.clone(),
        capabilities: &init.capabilities,
        client_info: &init.client_info,
    };
    let Some(mut sub) = shared.subscriptions.subscribe(&backend, who, &original).await else {
        let e = RpcError::new(ErrorCode::InvalidParams, format!("server '{}' did not accept a subscription to {exposed}", backend.name));
        return Reply::Json(e.response(Some(&id)));
    };
    let weak = Arc::downgrade(session);
    let uri = json_string(exposed);
    let relay = tokio::spawn(async move {
        while let Some(msg) = sub.recv().await {
            let Some(session) = weak.upgrade() else { return };
            // The update as the client knows the resource; anything else the backend put in
            // the params (e.g. `_meta`) passes through.
            let Ok(env) = Envelope::parse(&msg) else { continue };
            let Some(params) = env.params_object().ok().flatten() else { continue };
            let params = params.rewrite(&[("uri", Some(&uri))]);
            session.push(bytes::Bytes::from(notification("notifications/resources/updated", std::str::from_utf8(&params).ok())));
        }
    });
    session.add_subscription(exposed.to_owned(), relay.abort_handle());
    Reply::Json(result_response(&id, "{}"))
}
