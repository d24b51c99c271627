//! Multiplexed transports (legacy HTTP+SSE, stdio): one inbound message stream shared by all
//! requests of a session, dispatched here by JSON-RPC id and progress token.
//!
//! Queues are bounded: a request's messages wait for its reader (so a flood during a call
//! slows the backend's stream, and with it the session's other calls on that backend, rather
//! than filling memory); out-of-request messages are dropped when their queue is full.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use mcpgate_protocol::envelope::{Envelope, Kind};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::error::UpstreamError;
use crate::exchange::Exchange;

/// Messages of one request held for its reader.
const PER_REQUEST: usize = 64;

#[derive(Default)]
struct Table {
    pending: HashMap<u64, mpsc::Sender<Bytes>>,
    progress: HashMap<String, u64>,
    closed: bool,
}

/// Routes inbound messages to the request they belong to.
pub(crate) struct Mux {
    table: Mutex<Table>,
    events: mpsc::Sender<Bytes>,
    dropped: std::sync::atomic::AtomicU64,
}

impl Mux {
    pub(crate) fn new(events: mpsc::Sender<Bytes>) -> Arc<Self> {
        Arc::new(Self { table: Mutex::new(Table::default()), events, dropped: Default::default() })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(self: &Arc<Self>, id: u64, progress_token: Option<String>) -> Result<(mpsc::Receiver<Bytes>, PendingGuard), UpstreamError> {
        let (tx, rx) = mpsc::channel(PER_REQUEST);
        let mut t = self.table();
        if t.closed {
            return Err(UpstreamError::Closed);
        }
        t.pending.insert(id, tx);
        if let Some(tok) = &progress_token {
            t.progress.insert(tok.clone(), id);
        }
        Ok((rx, PendingGuard { mux: self.clone(), id, progress_token }))
    }

    /// Delivers one message read from the backend; waits while its request's queue is full.
    pub(crate) async fn dispatch(&self, msg: Bytes) {
        let Some(target) = self.target(&msg) else { return };
        match target {
            Some(tx) => {
                // The request's reader is gone (answered, timed out, abandoned): nothing to do.
                let _ = tx.send(msg).await;
            }
            None => {
                if let Err(mpsc::error::TrySendError::Full(_)) = self.events.try_send(msg) {
                    let n = self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    // Logged at 1, 2, 4, 8, ... drops: visible, but not a log line per message.
                    if n.is_power_of_two() {
                        tracing::warn!(dropped = n, "backend messages outside any request dropped: nobody is reading them fast enough");
                    }
                }
            }
        }
    }

    /// The queue of the request `msg` belongs to (`Some(None)`: the connection's event queue;
    /// `None`: not a message at all, ignored).
    fn target(&self, msg: &[u8]) -> Option<Option<mpsc::Sender<Bytes>>> {
        let Ok(env) = Envelope::parse(msg) else {
            tracing::debug!("ignoring a non-object message from a backend");
            return None;
        };
        let t = self.table();
        let target = match env.kind() {
            Some(Kind::Response) => env.id().and_then(|id| id.get().parse::<u64>().ok()),
            Some(Kind::Notification) if env.method().as_deref() == Some("notifications/progress") => env
                .params_object()
                .ok()
                .flatten()
                .and_then(|p| p.get("progressToken").map(|t| t.get().to_owned()))
                .and_then(|tok| t.progress.get(&tok).copied()),
            // A log line or a server request while exactly one request is open belongs to it.
            Some(_) if t.pending.len() == 1 => t.pending.keys().next().copied(),
            _ => None,
        };
        Some(target.and_then(|id| t.pending.get(&id)).cloned())
    }

    /// The transport ended: every open request sees `Closed`.
    pub(crate) fn close_all(&self) {
        let mut t = self.table();
        t.closed = true;
        t.pending.clear();
        t.progress.clear();
    }
}

/// Frees a request's slot when its [`Exchange`] is dropped.
pub(crate) struct PendingGuard {
    mux: Arc<Mux>,
    id: u64,
    progress_token: Option<String>,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut t = self.mux.table();
        t.pending.remove(&self.id);
        if let Some(tok) = &self.progress_token {
            t.progress.remove(tok);
        }
    }
}

pub(crate) enum Writer {
    Post { client: reqwest::Client, endpoint: url::Url, headers: http::HeaderMap },
    Stdin(tokio::sync::Mutex<ChildStdin>),
}

/// A session over a multiplexed transport.
pub(crate) struct MuxLink {
    pub(crate) mux: Arc<Mux>,
    pub(crate) writer: Writer,
    pub(crate) tasks: Vec<AbortHandle>,
    pub(crate) child: Option<Mutex<Child>>,
}

impl MuxLink {
    pub(crate) async fn send(&self, message: Vec<u8>) -> Result<(), UpstreamError> {
        match &self.writer {
            Writer::Post { client, endpoint, headers } => {
                let resp = client
                    .post(endpoint.clone())
                    .headers(headers.clone())
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(message)
                    .send()
                    .await
                    .map_err(|e| UpstreamError::from_reqwest(&e))?;
                if resp.status().is_success() { Ok(()) } else { Err(UpstreamError::Status { status: resp.status().as_u16() }) }
            }
            Writer::Stdin(stdin) => {
                let mut stdin = stdin.lock().await;
                let mut line = message;
                line.push(b'\n');
                stdin.write_all(&line).await.map_err(|_| UpstreamError::Closed)?;
                stdin.flush().await.map_err(|_| UpstreamError::Closed)
            }
        }
    }

    pub(crate) async fn request(&self, id: u64, body: Vec<u8>, progress_token: Option<String>) -> Result<Exchange, UpstreamError> {
        let (rx, guard) = self.mux.register(id, progress_token)?;
        self.send(body).await?;
        Ok(Exchange::channel(id, rx, guard))
    }

    /// Sends the `initialize` request (id 0) and waits for its response.
    pub(crate) async fn initialize(&self, message: Vec<u8>) -> Result<Vec<u8>, UpstreamError> {
        let ex = self.request(0, message, None).await?;
        Ok(ex.response().await?.to_vec())
    }

    pub(crate) fn close(&self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(child) = &self.child {
            let _ = child.lock().unwrap_or_else(|p| p.into_inner()).start_kill();
        }
        self.mux.close_all();
    }
}

impl Drop for MuxLink {
    fn drop(&mut self) {
        self.close();
    }
}

pub(crate) fn progress_token(params: Option<&str>) -> Option<String> {
    let params = Envelope::parse(params?.as_bytes()).ok()?;
    let meta = Envelope::parse_raw(params.get("_meta")?).ok()?;
    meta.get("progressToken").map(|t| t.get().to_owned())
}
