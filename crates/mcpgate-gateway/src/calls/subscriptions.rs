//! Resource-update subscriptions at backends, shared: one upstream subscription per (backend,
//! credential, resource), fanned out to every client stream that asked for that resource with
//! the same credential. A thousand client streams watching one resource cost the backend one
//! subscription, not a thousand.
//!
//! Upstream, in the backend's era: a modern backend gets a `subscriptions/listen` stream naming
//! the resource; a legacy one gets `resources/subscribe` on a backend session the gateway opens
//! for the subscription (with the caller's credential and declared capabilities). The upstream
//! subscription ends when its last subscriber goes away (the stream closed or the session
//! ended), which ends it at the backend too.
//!
//! Permission is the caller's business before subscribing: this module never decides who may
//! watch what.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use mcpgate_credentials::Resolved;
use mcpgate_protocol::envelope::{Envelope, Kind, json_string};
use mcpgate_protocol::modern::{request_meta, with_meta};
use mcpgate_protocol::names::ServerName;
use mcpgate_protocol::versions::LATEST_LEGACY;
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use crate::backend::Backend;
use crate::session::ClientSession;

const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Updates a slow subscriber may fall behind by; it then misses some (they are only signals to
/// read the resource again, and the next one tells the same).
const FANOUT_DEPTH: usize = 64;

/// (backend, credential fingerprint, the backend's URI).
type Key = (ServerName, u64, String);

/// The live upstream subscriptions of this process.
#[derive(Default)]
pub struct Subscriptions {
    map: Mutex<HashMap<Key, Weak<Upstream>>>,
}

/// One subscription at a backend; alive while someone holds a [`Subscription`] to it.
struct Upstream {
    fanout: broadcast::Sender<Bytes>,
    task: AbortHandle,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A subscriber's share of an upstream subscription. Dropping the last one ends it.
pub struct Subscription {
    _upstream: Arc<Upstream>,
    rx: broadcast::Receiver<Bytes>,
}

impl Subscription {
    /// The next `notifications/resources/updated` from the backend, raw (the backend's URI);
    /// `None` when the backend ended the subscription.
    pub async fn recv(&mut self) -> Option<Bytes> {
        loop {
            match self.rx.recv().await {
                Ok(msg) => return Some(msg),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// Who is asking, as the backend will be told (for a legacy backend's session).
pub struct Subscriber<'a> {
    pub ctx: &'a crate::session::SessionCtx,
    pub credential: Option<&'a Resolved>,
    pub principal: Option<String>,
    /// Raw JSON client capabilities and clientInfo.
    pub capabilities: &'a str,
    pub client_info: &'a str,
}

impl Subscriptions {
    /// Upstream subscriptions alive now.
    pub fn len(&self) -> usize {
        self.lock().values().filter(|w| w.strong_count() > 0).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Weak<Upstream>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A share of the subscription to `uri` (the backend's own URI) at `backend`, made at the
    /// backend when there is none for this credential yet. `None` when the backend refused it
    /// or could not be reached.
    pub async fn subscribe(&self, backend: &Arc<Backend>, who: Subscriber<'_>, uri: &str) -> Option<Subscription> {
        let key: Key = (backend.name.clone(), who.credential.map_or(0, |c| c.fingerprint), uri.to_owned());
        if let Some(up) = self.lock().get(&key).and_then(Weak::upgrade) {
            let rx = up.fanout.subscribe();
            return Some(Subscription { _upstream: up, rx });
        }
        // Two first subscribers at once may both subscribe upstream; the later one is kept in
        // the map and the other lives as long as its own subscriber.
        let (fanout, rx) = broadcast::channel(FANOUT_DEPTH);
        let task =
            if backend.era().serves_modern() { modern(backend, &who, uri, fanout.clone()).await? } else { legacy(backend, who, uri, fanout.clone()).await? };
        let up = Arc::new(Upstream { fanout, task });
        let mut map = self.lock();
        map.retain(|_, w| w.strong_count() > 0);
        map.insert(key, Arc::downgrade(&up));
        Some(Subscription { _upstream: up, rx })
    }
}

/// Whether `msg` is a resource update; such messages go to the subscribers.
fn is_update(msg: &[u8]) -> bool {
    Envelope::parse(msg).is_ok_and(|e| e.kind() == Some(Kind::Notification) && e.method().as_deref() == Some("notifications/resources/updated"))
}

async fn modern(backend: &Backend, who: &Subscriber<'_>, uri: &str, fanout: broadcast::Sender<Bytes>) -> Option<AbortHandle> {
    let link = backend.modern_link()?;
    let credential = who.credential.map_or(&[][..], |c| c.headers.as_slice());
    let params = with_meta(
        Some(&format!(r#"{{"notifications":{{"resourceSubscriptions":[{}]}}}}"#, json_string(uri))),
        &request_meta(who.capabilities, who.client_info),
    );
    let no_headers = Default::default();
    let listen = link.request_with("subscriptions/listen", &params, &no_headers, credential);
    let mut ex = tokio::time::timeout(SUBSCRIBE_TIMEOUT, listen).await.ok()?.ok()?;
    // The backend's acknowledgement says what it honours.
    let first = tokio::time::timeout(SUBSCRIBE_TIMEOUT, ex.next()).await.ok()?.ok()??;
    let accepted = Envelope::parse(&first.bytes)
        .ok()
        .and_then(|e| {
            e.params_object().ok().flatten().and_then(|p| p.get("notifications").and_then(|n| serde_json::from_str::<serde_json::Value>(n.get()).ok()))
        })
        .and_then(|n| n.get("resourceSubscriptions").and_then(|r| r.as_array()).map(|a| a.iter().any(|u| u.as_str() == Some(uri))))
        .unwrap_or(false);
    if !accepted {
        return None;
    }
    let task = tokio::spawn(async move {
        while let Ok(Some(m)) = ex.next().await {
            if !m.is_final && is_update(&m.bytes) {
                let _ = fanout.send(m.bytes);
            }
        }
    });
    Some(task.abort_handle())
}

async fn legacy(backend: &Arc<Backend>, who: Subscriber<'_>, uri: &str, fanout: broadcast::Sender<Bytes>) -> Option<AbortHandle> {
    if !backend.health().listing.is_some_and(|l| l.caps.subscribe) {
        return None;
    }
    // A backend session for this subscription alone: closing it ends the subscription.
    let id = format!("subscription-{:032x}", rand::random::<u128>());
    let session = ClientSession::internal(who.ctx, id, LATEST_LEGACY, who.capabilities.to_owned(), who.client_info.to_owned(), who.principal);
    let mut events = session.open_stream();
    let subscribed = tokio::time::timeout(SUBSCRIBE_TIMEOUT, async {
        let conn = session.backend(backend, who.credential).await.ok()?;
        let params = format!(r#"{{"uri":{}}}"#, json_string(uri));
        let answer = conn.request("resources/subscribe", Some(&params)).await.ok()?.response().await.ok()?;
        Some(Envelope::parse(&answer).is_ok_and(|e| e.has("result")))
    })
    .await
    .ok()
    .flatten()
    .unwrap_or(false);
    if !subscribed {
        session.close(true).await;
        return None;
    }
    let task = tokio::spawn(async move {
        // Closes the session (and so the subscription) however the task ends.
        let _closing = CloseOnDrop(session);
        while let Some(msg) = events.recv().await {
            if is_update(&msg) {
                let _ = fanout.send(msg);
            }
        }
    });
    Some(task.abort_handle())
}

struct CloseOnDrop(Arc<ClientSession>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        let session = self.0.clone();
        tokio::spawn(async move { session.close(true).await });
    }
}
