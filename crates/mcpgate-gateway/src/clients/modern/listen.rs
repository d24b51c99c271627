//! `subscriptions/listen`: a long-lived response stream of list changes and resource updates
//! for a modern client.
//!
//! List changes: the gateway fans in every backend's changes already (discovery re-lists on a
//! backend's `list_changed`, from its own session, from clients' sessions, or from a modern
//! backend's own listen stream) and rebuilds the catalog; each rebuild that changes a list is
//! told to every listener that asked for that list.
//!
//! Resource updates: each requested URI the caller may read is subscribed at its backend for
//! the life of the stream, with the caller's credential: a modern backend through its own
//! `subscriptions/listen`, a legacy one through `resources/subscribe` on a backend session
//! opened for this stream alone (closed, which ends the subscription, when the stream ends).
//! Only what a backend accepted is acknowledged. Closing the stream ends everything upstream.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use mcpgate_protocol::envelope::{Envelope, Kind, json_string};
use mcpgate_protocol::errors::notification;
use mcpgate_protocol::modern::META_SUBSCRIPTION_ID;
use mcpgate_protocol::names::{ServerName, expose_uri};
use mcpgate_protocol::sse::encode_message;
use mcpgate_protocol::{ErrorCode, ObjectWriter, RpcError};
use tokio::sync::{broadcast, mpsc};

use crate::backend::Backend;
use crate::calls::answer::error;
use crate::calls::subscriptions::{Subscriber, Subscription};
use crate::catalog::ItemKind;
use crate::core::credential;
use crate::identity::Access;
use crate::request::ModernRequest;
use crate::state::Shared;

const KEEP_ALIVE: Duration = Duration::from_secs(20);
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which list changes a listener asked for (and the gateway honours).
#[derive(Debug, Clone, Copy, Default)]
struct Filter {
    tools: bool,
    prompts: bool,
    resources: bool,
}

impl Filter {
    fn wants(self, kind: ItemKind) -> bool {
        match kind {
            ItemKind::Tool => self.tools,
            ItemKind::Prompt => self.prompts,
            ItemKind::Resource | ItemKind::ResourceTemplate => self.resources,
        }
    }

    /// The acknowledged subset.
    fn ack(self, resources: &[String]) -> String {
        let mut w = ObjectWriter::new();
        if self.tools {
            w.raw("toolsListChanged", "true");
        }
        if self.prompts {
            w.raw("promptsListChanged", "true");
        }
        if self.resources {
            w.raw("resourcesListChanged", "true");
        }
        if !resources.is_empty() {
            let list: Vec<String> = resources.iter().map(|u| json_string(u)).collect();
            w.raw("resourceSubscriptions", &format!("[{}]", list.join(",")));
        }
        String::from_utf8(w.finish()).unwrap_or_default()
    }
}

pub async fn handle(shared: &Arc<Shared>, access: &Access, req: &ModernRequest) -> Response {
    let max = shared.config.load().limits.max_listen_streams_per_principal;
    let Some(slot) = shared.listeners.acquire(&access.principal().unwrap_or_default(), max) else {
        let e = RpcError::new(ErrorCode::LimitReached, format!("this caller already has {max} subscriptions/listen streams open; close one first"));
        return error(StatusCode::TOO_MANY_REQUESTS, Some(&req.id), &e);
    };
    let params = req.params();
    let asked = params.get("notifications").map(|n| serde_json::from_str::<serde_json::Value>(n.get()).unwrap_or_default()).unwrap_or_default();
    let flag = |k: &str| asked.get(k).and_then(serde_json::Value::as_bool).unwrap_or(false);
    let filter = Filter { tools: flag("toolsListChanged"), prompts: flag("promptsListChanged"), resources: flag("resourcesListChanged") };
    let uris: Vec<String> = asked
        .get("resourceSubscriptions")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|u| u.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let meta = format!(r#"{{"{META_SUBSCRIPTION_ID}":{}}}"#, req.id);
    let (updates_tx, updates_rx) = mpsc::channel::<Bytes>(64);
    let honoured = subscribe_resources(shared, access, req, &uris, &meta, updates_tx).await;
    let ack = notification("notifications/subscriptions/acknowledged", Some(&format!(r#"{{"_meta":{meta},"notifications":{}}}"#, filter.ack(&honoured))));
    let rx = shared.changes.subscribe();
    let first = futures::stream::iter([Bytes::from(encode_message(&ack))]);
    // The slot is held for as long as the stream is open.
    let stopping = shared.stopping.clone();
    let scope = access.scope().map(|v| v.name.clone());
    let rest = futures::stream::unfold((rx, updates_rx, meta, slot), move |(mut rx, mut updates, meta, slot)| {
        let stopping = stopping.clone();
        let scope = scope.clone();
        async move {
            loop {
                let kind = tokio::select! {
                    // The replica is leaving: the client listens again (on another one).
                    () = stopping.cancelled() => return None,
                    update = updates.recv(), if !updates.is_closed() => match update {
                        Some(msg) => return Some((msg, (rx, updates, meta, slot))),
                        None => continue,
                    },
                    next = tokio::time::timeout(KEEP_ALIVE, rx.recv()) => match next {
                        Err(_) => return Some((Bytes::from_static(b":\n\n"), (rx, updates, meta, slot))),
                        // Only changes of the endpoint this stream was opened on.
                        Ok(Ok(change)) if change.scope == scope => change.kind,
                        Ok(Ok(_)) => continue,
                        // Missed some changes: tell about every list the listener follows.
                        Ok(Err(broadcast::error::RecvError::Lagged(_))) => ItemKind::Tool,
                        Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                    },
                };
                if !filter.wants(kind) {
                    continue;
                }
                let method = match kind {
                    ItemKind::Tool => "notifications/tools/list_changed",
                    ItemKind::Prompt => "notifications/prompts/list_changed",
                    ItemKind::Resource | ItemKind::ResourceTemplate => "notifications/resources/list_changed",
                };
                let msg = notification(method, Some(&format!(r#"{{"_meta":{meta}}}"#)));
                return Some((Bytes::from(encode_message(&msg)), (rx, updates, meta, slot)));
            }
        }
    });
    let body = first.chain(rest).map(Ok::<_, std::convert::Infallible>);
    crate::reply::sse_response(Body::from_stream(body))
}

/// Subscribes every requested URI the caller may read, grouped by backend; returns the URIs
/// (as the client named them) that a backend accepted. Each backend's updates are relayed to
/// `out` by a task that ends with the stream (when `out` is closed).
async fn subscribe_resources(shared: &Arc<Shared>, access: &Access, req: &ModernRequest, uris: &[String], meta: &str, out: mpsc::Sender<Bytes>) -> Vec<String> {
    let mut by_backend: BTreeMap<ServerName, Vec<(String, String)>> = BTreeMap::new();
    let catalog = shared.catalog.load_full();
    for uri in uris {
        // Only what the catalog knows: a listed resource or an expansion of a listed template.
        if !catalog.has_resource(uri) {
            continue;
        }
        let Some((server, original)) = crate::core::resource_owner(shared, uri) else { continue };
        if !crate::core::resource_in_scope(&catalog, access, &server, uri) || !access.decide(&server, ItemKind::Resource, &original, None).allowed {
            continue;
        }
        by_backend.entry(server).or_default().push((uri.clone(), original));
    }
    let mut honoured = Vec::new();
    let mut subscriptions = Vec::new();
    for (server, items) in by_backend {
        let Some(backend) = shared.backend(&server) else { continue };
        let Ok(Ok(cred)) = tokio::time::timeout(SUBSCRIBE_TIMEOUT, credential(shared, access, &backend, None)).await else { continue };
        for (client_uri, original) in items {
            let ctx = shared.session_ctx();
            let who = Subscriber {
                ctx: &ctx,
                credential: cred.as_ref(),
                principal: access.principal(),
                capabilities: &req.capabilities,
                client_info: &req.client_info,
            };
            if let Some(sub) = shared.subscriptions.subscribe(&backend, who, &original).await {
                honoured.push(client_uri);
                subscriptions.push((backend.clone(), sub));
            }
        }
    }
    if !subscriptions.is_empty() {
        let meta = meta.to_owned();
        tokio::spawn(relay_updates(subscriptions, meta, out));
    }
    honoured
}

/// Relays every subscription's updates to the stream until the stream closes (which drops the
/// subscriptions, and so ends each at its backend when this stream was its last subscriber).
async fn relay_updates(subscriptions: Vec<(Arc<Backend>, Subscription)>, meta: String, out: mpsc::Sender<Bytes>) {
    let streams = subscriptions.into_iter().map(|(backend, sub)| {
        Box::pin(futures::stream::unfold((backend, sub), |(backend, mut sub)| async move { sub.recv().await.map(|m| ((backend.clone(), m), (backend, sub))) }))
    });
    let mut all = futures::stream::select_all(streams);
    loop {
        let next = tokio::select! {
            () = out.closed() => return,
            n = all.next() => n,
        };
        let Some((backend, msg)) = next else { return };
        if let Some(msg) = relay_update(&backend, &msg, &meta)
            && out.send(msg).await.is_err()
        {
            return;
        }
    }
}

/// `notifications/resources/updated` as the client sees it: the exposed URI, its subscription id.
fn relay_update(backend: &Backend, msg: &[u8], meta: &str) -> Option<Bytes> {
    let env = Envelope::parse(msg).ok()?;
    if env.kind() != Some(Kind::Notification) || env.method().as_deref() != Some("notifications/resources/updated") {
        return None;
    }
    let params = env.params_object().ok()??;
    let uri = params.str("uri")?;
    let exposed = if backend.prefix.is_empty() { uri.into_owned() } else { expose_uri(&backend.name, &uri) };
    let params = params.rewrite(&[("uri", Some(&json_string(&exposed))), ("_meta", Some(meta))]);
    let msg = notification("notifications/resources/updated", std::str::from_utf8(&params).ok());
    Some(Bytes::from(encode_message(&msg)))
}
