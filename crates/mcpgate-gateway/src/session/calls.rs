//! The calls of one client session that have not answered yet: how to cancel each, and where a
//! backend's server request that arrived outside the call's own stream must go.
//!
//! A backend may send `sampling/createMessage`, `elicitation/create` or `roots/list` on its GET
//! stream instead of the call's response stream (the spec allows it; some SDK examples do it).
//! Such a request is handed to the call it belongs to through the call's inbox, so it reaches
//! the client on the stream the client is reading for that call.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::task::AtomicWaker;
use mcpgate_protocol::names::ServerName;
use mcpgate_upstream::Connection;
use tokio::sync::Notify;

/// How an unanswered call is cancelled.
enum Cancel {
    /// A legacy backend: `notifications/cancelled` with the backend's request id, on the
    /// backend session the call went out on.
    Backend { conn: Weak<Connection>, backend_id: u64 },
    /// A call the gateway drives itself (a modern backend's rounds): wake it to stop.
    Notify(Arc<Notify>),
}

struct InFlight {
    server: ServerName,
    cancel: Cancel,
    /// Where raw backend messages for this call that arrived on the backend's GET stream go
    /// (gone once the call is).
    inbox: Option<Weak<Mailbox>>,
    /// Start order, to pick the oldest call when several could take a message.
    seq: u64,
}

/// What cancelling a call asks of the caller.
pub enum Cancelled {
    /// Send `notifications/cancelled` with this request id on this backend session.
    Backend(Arc<Connection>, u64),
    /// The call was told to stop; nothing else to do.
    Stopped,
    /// No such call (already answered, or never made).
    Unknown,
}

#[derive(Default)]
pub(super) struct Calls {
    map: Mutex<HashMap<String, InFlight>>,
    seq: AtomicU64,
}

impl Calls {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, InFlight>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn start_backend(&self, client_id: &str, server: &ServerName, conn: &Arc<Connection>, backend_id: u64) -> Inbox {
        let mailbox = Arc::new(Mailbox::default());
        let entry = InFlight {
            server: server.clone(),
            cancel: Cancel::Backend { conn: Arc::downgrade(conn), backend_id },
            inbox: Some(Arc::downgrade(&mailbox)),
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
        };
        self.lock().insert(client_id.to_owned(), entry);
        Inbox(mailbox)
    }

    pub(super) fn start_driven(&self, client_id: &str, server: &ServerName) -> Arc<Notify> {
        let n = Arc::new(Notify::new());
        let entry = InFlight { server: server.clone(), cancel: Cancel::Notify(n.clone()), inbox: None, seq: self.seq.fetch_add(1, Ordering::Relaxed) };
        self.lock().insert(client_id.to_owned(), entry);
        n
    }

    pub(super) fn end(&self, client_id: &str) {
        self.lock().remove(client_id);
    }

    pub(super) fn cancel(&self, client_id: &str) -> Cancelled {
        let Some(call) = self.lock().remove(client_id) else { return Cancelled::Unknown };
        match call.cancel {
            Cancel::Notify(n) => {
                n.notify_one();
                Cancelled::Stopped
            }
            Cancel::Backend { conn, backend_id } => match conn.upgrade() {
                Some(conn) => Cancelled::Backend(conn, backend_id),
                None => Cancelled::Unknown,
            },
        }
    }

    /// The calls waiting on `conn` (a backend session of `server`).
    pub(super) fn waiting_on(&self, server: &ServerName, conn: &Arc<Connection>) -> usize {
        self.lock().values().filter(|c| c.is_on(server, conn)).count()
    }

    /// Hands `msg` to the oldest call waiting on `conn`; false when there is none.
    pub(super) fn hand_to_oldest(&self, server: &ServerName, conn: &Arc<Connection>, msg: Bytes) -> bool {
        let map = self.lock();
        let oldest = map.values().filter(|c| c.is_on(server, conn)).min_by_key(|c| c.seq);
        oldest.and_then(|c| c.inbox.as_ref()).is_some_and(|to| Mailbox::deliver(to, msg))
    }

    /// Hands `msg` to the oldest call waiting on any backend session of `server` (a server
    /// request that reached another replica); false when there is none.
    pub(super) fn hand_to_any(&self, server: &ServerName, msg: Bytes) -> bool {
        let map = self.lock();
        let oldest = map.values().filter(|c| c.inbox.is_some() && &c.server == server).min_by_key(|c| c.seq);
        oldest.and_then(|c| c.inbox.as_ref()).is_some_and(|to| Mailbox::deliver(to, msg))
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}

impl InFlight {
    fn is_on(&self, server: &ServerName, conn: &Arc<Connection>) -> bool {
        match &self.cancel {
            Cancel::Backend { conn: c, .. } => self.inbox.is_some() && &self.server == server && std::ptr::eq(c.as_ptr(), Arc::as_ptr(conn)),
            Cancel::Notify(_) => false,
        }
    }
}

/// The messages one call receives from outside its own stream. Rare, yet every call has one
/// from before it is sent; so a queue and a waker, which cost a call far less than a channel.
#[derive(Default)]
struct Mailbox {
    queue: Mutex<VecDeque<Bytes>>,
    /// Whether `queue` holds something (changed with the queue, under its lock): what a poll
    /// looks at when nothing waits, which is nearly always.
    filled: AtomicBool,
    waker: AtomicWaker,
}

impl Mailbox {
    /// Queues `msg` for the call and wakes it; false when the call is gone.
    fn deliver(to: &Weak<Mailbox>, msg: Bytes) -> bool {
        let Some(mailbox) = to.upgrade() else { return false };
        {
            let mut queue = mailbox.lock();
            queue.push_back(msg);
            mailbox.filled.store(true, Ordering::Release);
        }
        mailbox.waker.wake();
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Bytes>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self) -> Option<Bytes> {
        if !self.filled.load(Ordering::Acquire) {
            return None;
        }
        let mut queue = self.lock();
        let msg = queue.pop_front();
        if queue.is_empty() {
            self.filled.store(false, Ordering::Release);
        }
        msg
    }
}

/// The receiving end of a call's [`Mailbox`] (held by the call).
pub struct Inbox(Arc<Mailbox>);

impl Inbox {
    /// The next message handed to the call; pending until there is one.
    pub async fn recv(&self) -> Bytes {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Bytes> {
        if let Some(msg) = self.0.take() {
            return Poll::Ready(msg);
        }
        self.0.waker.register(cx.waker());
        // Looked at again: a message delivered before the waker was registered woke no one.
        self.0.take().map_or(Poll::Pending, Poll::Ready)
    }
}
