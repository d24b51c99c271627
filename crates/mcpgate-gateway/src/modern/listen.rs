//! `subscriptions/listen`: a long-lived response stream of list changes for a modern client.
//!
//! The gateway fans in every backend's changes already (discovery re-lists on a backend's
//! `list_changed`, from its own session, from clients' sessions, or from a modern backend's
//! own listen stream) and rebuilds the catalog; each rebuild that changes a list is told to
//! every listener that asked for that list. Closing the stream ends the subscription.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use mcpgate_protocol::ObjectWriter;
use mcpgate_protocol::errors::notification;
use mcpgate_protocol::modern::META_SUBSCRIPTION_ID;
use mcpgate_protocol::sse::encode_message;
use tokio::sync::broadcast;

use super::ModernRequest;
use crate::catalog::ItemKind;
use crate::state::Shared;

const KEEP_ALIVE: Duration = Duration::from_secs(20);

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

    /// The acknowledged subset. Resource update subscriptions are not offered, so they are
    /// left out (the spec's way of saying "not honoured").
    fn ack(self) -> String {
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
        String::from_utf8(w.finish()).unwrap_or_default()
    }
}

pub fn handle(shared: &Shared, req: &ModernRequest) -> Response {
    let params = req.params();
    let asked = params.get("notifications").map(|n| serde_json::from_str::<serde_json::Value>(n.get()).unwrap_or_default()).unwrap_or_default();
    let flag = |k: &str| asked.get(k).and_then(serde_json::Value::as_bool).unwrap_or(false);
    let filter = Filter { tools: flag("toolsListChanged"), prompts: flag("promptsListChanged"), resources: flag("resourcesListChanged") };
    let meta = format!(r#"{{"{META_SUBSCRIPTION_ID}":{}}}"#, req.id);
    let ack = notification("notifications/subscriptions/acknowledged", Some(&format!(r#"{{"_meta":{meta},"notifications":{}}}"#, filter.ack())));
    let rx = shared.changes.subscribe();
    let first = futures::stream::iter([Bytes::from(encode_message(&ack))]);
    let rest = futures::stream::unfold((rx, meta), move |(mut rx, meta)| async move {
        loop {
            let next = tokio::time::timeout(KEEP_ALIVE, rx.recv()).await;
            let kind = match next {
                Err(_) => return Some((Bytes::from_static(b":\n\n"), (rx, meta))),
                Ok(Ok(kind)) => kind,
                // Missed some changes: tell about every list the listener follows.
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => ItemKind::Tool,
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
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
            return Some((Bytes::from(encode_message(&msg)), (rx, meta)));
        }
    });
    let body = first.chain(rest).map(Ok::<_, std::convert::Infallible>);
    crate::front::post::sse_response(Body::from_stream(body))
}
