//! Multiplexed transports (legacy HTTP+SSE, stdio): one inbound message stream shared by all
//! requests of a session, dispatched here by JSON-RPC id and progress token.

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

#[derive(Default)]
struct Table {
    pending: HashMap<u64, mpsc::UnboundedSender<Bytes>>,
    progress: HashMap<String, u64>,
    closed: bool,
}

/// Routes inbound messages to the request they belong to.
pub(crate) struct Mux {
    table: Mutex<Table>,
    events: mpsc::UnboundedSender<Bytes>,
}

impl Mux {
    pub(crate) fn new(events: mpsc::UnboundedSender<Bytes>) -> Arc<Self> {
        Arc::new(Self { table: Mutex::new(Table::default()), events })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(self: &Arc<Self>, id: u64, progress_token: Option<String>) -> Result<(mpsc::UnboundedReceiver<Bytes>, PendingGuard), UpstreamError> {
        let (tx, rx) = mpsc::unbounded_channel();
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

    /// Delivers one message read from the backend.
    pub(crate) fn dispatch(&self, msg: Bytes) {
        let Ok(env) = Envelope::parse(&msg) else {
            tracing::debug!("ignoring a non-object message from a backend");
            return;
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
        match target.and_then(|id| t.pending.get(&id)) {
            Some(tx) => {
                let _ = tx.send(msg);
            }
            None => {
                let _ = self.events.send(msg);
            }
        }
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

    pub(crate) async fn request(&self, id: u64, body: Vec<u8>, params: Option<&str>) -> Result<Exchange, UpstreamError> {
        let (rx, guard) = self.mux.register(id, progress_token(params))?;
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

fn progress_token(params: Option<&str>) -> Option<String> {
    let params = Envelope::parse(params?.as_bytes()).ok()?;
    let meta = Envelope::parse_raw(params.get("_meta")?).ok()?;
    meta.get("progressToken").map(|t| t.get().to_owned())
}
