//! Legacy backends: a call goes out on the client's own backend session, and everything the
//! backend sends back is translated: ids restored, server-initiated requests re-numbered for
//! the client, resource URIs re-namespaced. Bounded by the backend's call timeout; never hangs.
//!
//! A [`BackendCall`] is registered with the session *before* it is sent, so from the first
//! byte on it can be cancelled, and a server request the backend sends for it on its GET stream
//! (instead of the call's own stream) reaches it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use mcpgate_credentials::Resolved;
use mcpgate_protocol::envelope::{Envelope, Kind, json_string, splice};
use mcpgate_protocol::errors::notification;
use mcpgate_upstream::{Connection, Exchange, Inbound, UpstreamError};
use tokio::time::{Instant, sleep_until, timeout_at};
use tracing::Instrument;

use super::{rewrite_contents, unavailable};
use crate::backend::Backend;
use crate::core::{ResultRewrite, Target, credential};
use crate::identity::Access;
use crate::observe::{RequestMeter, trace};
use crate::reply::Reply;
use crate::session::{ClientSession, Inbox};
use crate::state::Shared;

pub async fn forward(shared: &Arc<Shared>, session: &Arc<ClientSession>, access: &Access, target: Target, client_id: String) -> Reply {
    let deadline = Instant::now() + target.backend.timeouts.call;
    let credential = match timeout_at(deadline, credential(shared, access, &target.backend, target.tool.as_deref())).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Reply::Json(e.response(Some(&client_id))),
        Err(_) => return Reply::Json(unavailable(&target.backend, &UpstreamError::Timeout).response(Some(&client_id))),
    };
    let (rewrite, backend) = (target.rewrite, target.backend.clone());
    let meter = access.meter.clone();
    meter.upstream_sent();
    let mut call = match timeout_at(deadline, BackendCall::open(session, target, credential, &client_id)).await {
        Ok(Ok(call)) => call,
        Ok(Err(e)) => return Reply::Json(unavailable(&backend, &e).response(Some(&client_id))),
        Err(_) => return Reply::Json(unavailable(&backend, &UpstreamError::Timeout).response(Some(&client_id))),
    };
    let first = next(&mut call, rewrite, deadline, &meter).await;
    if first.is_final {
        return Reply::Json(first.bytes.to_vec());
    }
    // Something came before the response: answer as a stream and keep relaying.
    let stream = futures::stream::unfold((Some(first), call, meter), move |(pending, mut call, meter)| async move {
        let item = match pending {
            Some(item) => item,
            None => next(&mut call, rewrite, deadline, &meter).await,
        };
        if item.bytes.is_empty() {
            return None;
        }
        let out = item.bytes.clone();
        let follow = item.is_final.then(|| Out { bytes: Bytes::new(), is_final: true });
        Some((out, (follow, call, meter)))
    });
    Reply::Stream(stream.boxed())
}

type Sending = Pin<Box<dyn Future<Output = Result<Exchange, UpstreamError>> + Send>>;

enum Phase {
    /// Sent (or being sent); the backend has not started answering.
    Sending(Sending),
    /// The backend's answer is being read.
    Receiving(Exchange),
}

/// One call on a client's legacy backend session, from before it is sent until its response.
pub(crate) struct BackendCall {
    pub(crate) session: Arc<ClientSession>,
    pub(crate) backend: Arc<Backend>,
    pub(crate) conn: Arc<Connection>,
    pub(crate) client_id: String,
    backend_id: u64,
    phase: Phase,
    /// Messages for this call that arrived on the backend session's GET stream.
    inbox: Inbox,
    finished: bool,
    /// To send it again once on a fresh backend session when the backend lost the old one.
    retry: Option<Retry>,
}

struct Retry {
    method: String,
    params: String,
    credential: Option<Resolved>,
}

impl BackendCall {
    /// Gets the client's backend session for the call's credential, registers the call, and
    /// starts sending it.
    pub(crate) async fn open(session: &Arc<ClientSession>, target: Target, credential: Option<Resolved>, client_id: &str) -> Result<Self, UpstreamError> {
        let backend = target.backend.clone();
        let conn = session.backend(&backend, credential.as_ref()).await?;
        let retry = Retry { method: target.method, params: target.params, credential };
        let (backend_id, inbox, phase) = start(session, &backend, &conn, client_id, &retry.method, &retry.params);
        Ok(Self { session: session.clone(), backend, conn, client_id: client_id.to_owned(), backend_id, phase, inbox, finished: false, retry: Some(retry) })
    }

    /// Whether the response has been read.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// The next raw message from the backend for this call (from the call's stream or the
    /// session's GET stream), until the response (`is_final`). Waits until `deadline`.
    pub(crate) async fn next_raw(&mut self, deadline: Instant) -> Result<Inbound, UpstreamError> {
        if self.finished {
            return Err(UpstreamError::Closed);
        }
        // One timer for both phases: armed (registered with the runtime) once per call at most,
        // and polled again only when it may have fired.
        let timer = sleep_until(deadline);
        let mut timer = std::pin::pin!(timer);
        let mut holder = None;
        loop {
            // Looked at first: with the biased selects below, a backend that always has another
            // message ready would otherwise never let the deadline be seen.
            let got = if Instant::now() >= deadline {
                Err(UpstreamError::Timeout)
            } else {
                match &mut self.phase {
                    // Biased: messages first (related ones before the answer they came before), and
                    // the deadline last, so a call whose answer is ready never arms the timer.
                    Phase::Sending(send) => tokio::select! {
                        biased;
                        bytes = self.inbox.recv() => Ok(Inbound::related(bytes)),
                        sent = send => match sent {
                            Ok(ex) => {
                                self.phase = Phase::Receiving(ex);
                                continue;
                            }
                            Err(UpstreamError::SessionExpired | UpstreamError::Closed) if self.retry.is_some() => {
                                self.reopen().await?;
                                continue;
                            }
                            Err(e) => Err(e),
                        },
                        () = std::future::poll_fn(|cx| crate::timer::poll_deadline(timer.as_mut(), &mut holder, cx)) => Err(UpstreamError::Timeout),
                    },
                    Phase::Receiving(ex) => tokio::select! {
                        biased;
                        bytes = self.inbox.recv() => Ok(Inbound::related(bytes)),
                        next = ex.next() => match next {
                            Ok(Some(m)) => Ok(m),
                            Ok(None) => Err(UpstreamError::Closed),
                            Err(e) => Err(e),
                        },
                        () = std::future::poll_fn(|cx| crate::timer::poll_deadline(timer.as_mut(), &mut holder, cx)) => Err(UpstreamError::Timeout),
                    },
                }
            };
            match &got {
                Ok(m) if m.is_final => self.finish(),
                Ok(_) => {}
                Err(UpstreamError::Timeout) => {
                    self.cancel_upstream("gateway timeout");
                    self.finish();
                }
                Err(e) => {
                    if matches!(e, UpstreamError::Closed | UpstreamError::Connect(_) | UpstreamError::SessionExpired) {
                        self.session.forget_backend(&self.backend.name, &self.conn);
                    }
                    self.finish();
                }
            }
            return got;
        }
    }

    fn finish(&mut self) {
        self.finished = true;
        self.session.end_call(&self.client_id);
    }

    /// The backend lost the session the call went out on: a fresh one, once, and send again.
    async fn reopen(&mut self) -> Result<(), UpstreamError> {
        let Some(retry) = self.retry.take() else { return Err(UpstreamError::Closed) };
        tracing::info!(server = %self.backend.name, "backend session lost; re-initialising");
        self.session.forget_backend(&self.backend.name, &self.conn);
        // Boxed: opening a backend session is rare, and its state would enlarge every call.
        self.conn = Box::pin(self.session.backend(&self.backend, retry.credential.as_ref())).await?;
        let (backend_id, inbox, phase) = start(&self.session, &self.backend, &self.conn, &self.client_id, &retry.method, &retry.params);
        (self.backend_id, self.inbox, self.phase) = (backend_id, inbox, phase);
        Ok(())
    }

    /// Tells the backend to stop working on the call (in the background).
    pub(crate) fn cancel_upstream(&self, reason: &str) {
        let msg = notification("notifications/cancelled", Some(&format!(r#"{{"requestId":{},"reason":{}}}"#, self.backend_id, json_string(reason))));
        let conn = self.conn.clone();
        tokio::spawn(async move {
            let _ = conn.notify(msg).await;
        });
    }
}

impl Drop for BackendCall {
    fn drop(&mut self) {
        if !self.finished {
            self.session.end_call(&self.client_id);
        }
    }
}

/// Registers the call under a fresh backend id and starts sending it.
fn start(session: &ClientSession, backend: &Backend, conn: &Arc<Connection>, client_id: &str, method: &str, params: &str) -> (u64, Inbox, Phase) {
    let backend_id = conn.allocate_id();
    let inbox = session.start_call(client_id, &backend.name, conn, backend_id);
    // Written now: the sending future owns the body, not copies of the method and params.
    let request = conn.prepare(backend_id, method, Some(params));
    let span = crate::stage_span!("upstream", otel.kind = "client", mcp.server = %backend.name, mcp.method.name = %method);
    let trace = span.in_scope(trace::outbound);
    let conn = conn.clone();
    let send: Sending = Box::pin(async move { conn.send(request, trace.as_ref()).await }.instrument(span));
    (backend_id, inbox, Phase::Sending(send))
}

struct Out {
    bytes: Bytes,
    is_final: bool,
}

/// The next message for the client, already translated; errors become the final response.
async fn next(call: &mut BackendCall, rewrite: ResultRewrite, deadline: Instant, meter: &RequestMeter) -> Out {
    loop {
        let item = match call.next_raw(deadline).await {
            Ok(m) => {
                if m.is_final {
                    meter.upstream_answered();
                }
                m
            }
            Err(e) => return Out { bytes: Bytes::from(unavailable(&call.backend, &e).response(Some(&call.client_id))), is_final: true },
        };
        match translate(call, rewrite, &item) {
            Some(bytes) => return Out { bytes, is_final: item.is_final },
            None if item.is_final => {
                let e = UpstreamError::Protocol("unreadable response".into());
                return Out { bytes: Bytes::from(unavailable(&call.backend, &e).response(Some(&call.client_id))), is_final: true };
            }
            // Not something to show the client; wait for the next message.
            None => {}
        }
    }
}

fn translate(call: &BackendCall, rewrite: ResultRewrite, item: &Inbound) -> Option<Bytes> {
    if let (true, ResultRewrite::None, Some(at)) = (item.is_final, rewrite, &item.id_at) {
        // The response was parsed to be recognised: only its id changes.
        return Some(Bytes::from(splice(&item.bytes, at.clone(), &call.client_id)));
    }
    let env = Envelope::parse(&item.bytes).ok()?;
    match env.kind()? {
        Kind::Response if item.is_final => {
            let result = match (rewrite, env.get("result")) {
                (ResultRewrite::ResourceContents, Some(r)) => Some(rewrite_contents(&call.backend.name, &call.backend.prefix, r)?),
                _ => None,
            };
            let mut replace = vec![("id", Some(call.client_id.as_str()))];
            if let Some(r) = &result {
                replace.push(("result", Some(r.as_str())));
            }
            Some(Bytes::from(env.rewrite(&replace)))
        }
        Kind::Response => None,
        Kind::Request if call.session.refuse_unsupported(&call.conn, &env) => None,
        Kind::Request => {
            let id = call.session.mint_server_request_id(&call.backend.name, env.id()?.get());
            Some(Bytes::from(env.rewrite(&[("id", Some(&id))])))
        }
        Kind::Notification if mcpgate_protocol::errors::is_list_changed(&env) => {
            call.session.list_changed_by(&call.backend, &env.method().unwrap_or_default());
            None
        }
        Kind::Notification => Some(item.bytes.clone()),
    }
}
