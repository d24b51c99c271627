//! Clients for backend MCP servers.
//!
//! A [`Connection`] is one initialised MCP session with one backend, over Streamable HTTP,
//! legacy HTTP+SSE or a spawned stdio process. Requests return an [`Exchange`]: the messages
//! the backend sends for that request (progress, logs, server-initiated requests) and finally
//! its response. Messages the backend sends outside any request arrive on the connection's
//! event channel.
//!
//! This crate never decides who may call what and never invents credentials: the headers a
//! connection sends are exactly the ones its creator passes in.

mod error;
mod exchange;
mod h1;
mod legacy_sse;
mod modern;
mod mux;
mod spec;
mod stdio;
mod streamable;

pub use error::{InvalidResponse, UpstreamError};
pub use exchange::{Exchange, Inbound};
pub use h1::enter_lane;
pub use modern::{Discovered, ModernLink, RequestHeaders, probe};
pub use spec::{BackendSpec, InitOptions, StdioSpec, TransportSpec, gateway_client_info};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::HeaderMap;
use mcpgate_protocol::ObjectWriter;
use mcpgate_protocol::envelope::{Envelope, raw_str};
use serde_json::value::RawValue;
use tokio::sync::{Mutex, mpsc};

/// Out-of-request messages held for the connection's reader (see [`Connection::take_events`]).
/// A GET stream waits when it is full (the backend is slowed down); a multiplexed transport,
/// whose reader also carries responses, drops them instead (logged).
pub const EVENT_QUEUE: usize = 1024;

/// What the backend answered to `initialize`.
#[derive(Debug, Clone)]
pub struct InitResult {
    /// The raw `result` object.
    pub raw: Box<RawValue>,
    pub protocol_version: String,
}

impl InitResult {
    fn parse(result: &RawValue) -> Result<Self, UpstreamError> {
        let env = Envelope::parse_raw(result).map_err(|e| UpstreamError::Protocol(format!("initialize result: {e}")))?;
        let protocol_version = env
            .get("protocolVersion")
            .and_then(raw_str)
            .ok_or_else(|| UpstreamError::Protocol("initialize result has no protocolVersion".into()))?
            .into_owned();
        Ok(Self { raw: result.to_owned(), protocol_version })
    }

    /// A member of the result (`capabilities`, `instructions`, `serverInfo`).
    pub fn member(&self, key: &str) -> Option<&RawValue> {
        Envelope::parse_raw(&self.raw).ok()?.get(key)
    }
}

enum Link {
    Http(streamable::HttpLink),
    Mux(mux::MuxLink),
}

/// A request written for one backend session ([`Connection::prepare`]).
pub struct Prepared {
    id: u64,
    body: Vec<u8>,
    /// `params._meta.progressToken`, which a multiplexed link routes progress by.
    progress_token: Option<String>,
}

/// One initialised session with a backend.
pub struct Connection {
    spec: Arc<BackendSpec>,
    link: Link,
    next_id: AtomicU64,
    init: InitResult,
    events: Mutex<Option<mpsc::Receiver<Bytes>>>,
}

impl Connection {
    /// Opens the transport and performs the `initialize` handshake.
    pub async fn connect(spec: Arc<BackendSpec>, client: &reqwest::Client, headers: HeaderMap, init: &InitOptions) -> Result<Self, UpstreamError> {
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let next_id = AtomicU64::new(first_request_id());
        let init_msg = init.request(0);
        let (link, init) = match &spec.transport {
            TransportSpec::StreamableHttp { url } => {
                let (mut link, resp) = streamable::HttpLink::connect(client.clone(), url.clone(), headers, init_msg, events_tx).await?;
                let init = parse_init_response(&resp)?;
                link.set_protocol_version(&init.protocol_version);
                (Link::Http(link), init)
            }
            TransportSpec::Sse { url } => {
                let link = legacy_sse::connect(client.clone(), url.clone(), headers, events_tx).await?;
                let init = parse_init_response(&link.initialize(init_msg).await?)?;
                (Link::Mux(link), init)
            }
            TransportSpec::Stdio(s) => {
                let link = stdio::spawn(&spec.name, s, events_tx)?;
                let init = parse_init_response(&link.initialize(init_msg).await?)?;
                (Link::Mux(link), init)
            }
        };
        let conn = Self { spec, link, next_id, init, events: Mutex::new(Some(events_rx)) };
        conn.notify(mcpgate_protocol::errors::notification("notifications/initialized", None)).await?;
        Ok(conn)
    }

    /// Resumes a Streamable HTTP backend session that another gateway replica opened (its id
    /// and protocol version come from the shared store): no `initialize`, no round trip.
    pub fn attach(
        spec: Arc<BackendSpec>,
        client: &reqwest::Client,
        headers: HeaderMap,
        session_id: &str,
        protocol_version: &str,
    ) -> Result<Self, UpstreamError> {
        let TransportSpec::StreamableHttp { url } = &spec.transport else {
            return Err(UpstreamError::Protocol("only Streamable HTTP sessions can be shared between replicas".into()));
        };
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let mut link = streamable::HttpLink::attach(client.clone(), url.clone(), headers, session_id, events_tx)?;
        link.set_protocol_version(protocol_version);
        let raw = RawValue::from_string("{}".to_owned()).map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        let init = InitResult { raw, protocol_version: protocol_version.to_owned() };
        Ok(Self { spec, link: Link::Http(link), next_id: AtomicU64::new(first_request_id()), init, events: Mutex::new(Some(events_rx)) })
    }

    /// The backend's id for this session, when it is a Streamable HTTP session that has one
    /// (the only kind another replica can resume).
    pub fn shareable_id(&self) -> Option<&str> {
        match &self.link {
            Link::Http(h) => h.session_id(),
            Link::Mux(_) => None,
        }
    }

    pub fn spec(&self) -> &BackendSpec {
        &self.spec
    }

    pub fn init_result(&self) -> &InitResult {
        &self.init
    }

    /// Sends a request built from `method` and raw `params`; the id is assigned here.
    pub async fn request(&self, method: &str, params: Option<&str>) -> Result<Exchange, UpstreamError> {
        self.request_with_id(self.allocate_id(), method, params, None).await
    }

    /// A request id for this session, unused so far. A caller that must know the id before the
    /// request is sent (to cancel it while the backend still thinks) takes one here and passes
    /// it to [`Self::request_with_id`].
    pub fn allocate_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a request under an id from [`Self::allocate_id`], with `extra` headers on this one
    /// request (a call's W3C trace context; Streamable HTTP only: the other transports have no
    /// per-request headers).
    pub async fn request_with_id(&self, id: u64, method: &str, params: Option<&str>, extra: Option<&HeaderMap>) -> Result<Exchange, UpstreamError> {
        self.send(self.prepare(id, method, params), extra).await
    }

    /// A request under an id from [`Self::allocate_id`], written and ready for [`Self::send`]:
    /// a caller that sends it later need not keep its method and params.
    pub fn prepare(&self, id: u64, method: &str, params: Option<&str>) -> Prepared {
        let mut w = ObjectWriter::jsonrpc(params.map_or(0, str::len) + method.len() + 72);
        w.number("id", id).string("method", method);
        if let Some(p) = params {
            w.raw("params", p);
        }
        let progress_token = match &self.link {
            Link::Mux(_) => mux::progress_token(params),
            Link::Http(_) => None,
        };
        Prepared { id, body: w.finish(), progress_token }
    }

    /// Sends a request from [`Self::prepare`], with `extra` headers as for
    /// [`Self::request_with_id`].
    pub async fn send(&self, req: Prepared, extra: Option<&HeaderMap>) -> Result<Exchange, UpstreamError> {
        match &self.link {
            Link::Http(h) => h.request(req.id, req.body, extra).await,
            Link::Mux(m) => m.request(req.id, req.body, req.progress_token).await,
        }
    }

    /// Sends a notification (e.g. `notifications/cancelled`).
    pub async fn notify(&self, message: Vec<u8>) -> Result<(), UpstreamError> {
        match &self.link {
            Link::Http(h) => h.post_no_reply(message).await,
            Link::Mux(m) => m.send(message).await,
        }
    }

    /// Answers a request the backend sent us (sampling, elicitation, roots).
    pub async fn respond(&self, message: Vec<u8>) -> Result<(), UpstreamError> {
        self.notify(message).await
    }

    /// Messages the backend sends outside any request. Taken once; for Streamable HTTP this
    /// also opens the backend's GET stream and waits (at most `wait`) until the backend has
    /// answered it: a backend may send a server request on that stream as soon as the next
    /// call reaches it, and a message sent before the stream exists is lost.
    pub async fn take_events(&self, wait: std::time::Duration) -> Option<mpsc::Receiver<Bytes>> {
        let rx = self.events.lock().await.take()?;
        if let Link::Http(h) = &self.link {
            let opened = h.open_event_stream();
            let _ = tokio::time::timeout(wait, opened).await;
        }
        Some(rx)
    }

    /// Ends the session politely (DELETE for Streamable HTTP; the process is killed for stdio).
    pub async fn close(&self) {
        match &self.link {
            Link::Http(h) => h.close().await,
            Link::Mux(m) => m.close(),
        }
    }
}

/// The first id this process gives requests on a backend session: a random 20-bit prefix per
/// process, so that replicas sharing one backend session never send the same id (ids stay
/// below 2^53, exact in every JSON implementation).
fn first_request_id() -> u64 {
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PREFIX.get_or_init(|| (u64::from(rand_u32()) & 0xF_FFFF).max(1) << 32) + 1
}

fn rand_u32() -> u32 {
    // Seeded from the clock and the process id: uniqueness between a few replicas, not secrecy.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}

fn parse_init_response(bytes: &[u8]) -> Result<InitResult, UpstreamError> {
    let env = Envelope::parse(bytes).map_err(|e| UpstreamError::Protocol(format!("initialize: {e}")))?;
    if let Some(err) = env.get("error") {
        return Err(UpstreamError::Rejected(err.get().to_owned()));
    }
    let result = env.get("result").ok_or_else(|| UpstreamError::Protocol("initialize response has neither result nor error".into()))?;
    InitResult::parse(result)
}
