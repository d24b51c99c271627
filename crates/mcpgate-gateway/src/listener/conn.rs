//! One client connection: its state (requests in flight, when it went idle, whether bytes of
//! a next request have started to arrive), the byte-watching wrapper around its stream, the
//! service wrapper that marks it busy for as long as a response body lives, and the watchdog
//! that closes it when a request head does not arrive in time or it stays idle too long.
//!
//! Never closes a connection with a request in flight (body reads are bounded in the
//! handler, `limits.body_read_timeout`); never reads or logs request content.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::ConnLimits;
use super::inline::Inline;
use super::table::Closed;

/// What the watchdog knows about a connection. Updated with atomics on the request path.
pub(crate) struct ConnState {
    pub id: u64,
    pub ip: IpAddr,
    opened: Instant,
    in_flight: AtomicU32,
    /// Whether any request was received (before that, the head timeout runs from accept).
    served: AtomicBool,
    /// Microseconds since `opened` when the last request ended.
    idle_since: AtomicU64,
    /// Microseconds since `opened` (+1, so 0 means none) of the first byte read while idle.
    read_while_idle: AtomicU64,
    /// HTTP/2: bytes while idle are frames (pings, window updates), not a slow request head.
    h2: AtomicBool,
    evicted: AtomicBool,
    evict: CancellationToken,
}

impl ConnState {
    pub fn new(id: u64, ip: IpAddr) -> Self {
        Self {
            id,
            ip,
            opened: Instant::now(),
            in_flight: AtomicU32::new(0),
            served: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            read_while_idle: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            evict: CancellationToken::new(),
        }
    }

    fn now_us(&self) -> u64 {
        self.opened.elapsed().as_micros() as u64
    }

    fn at(&self, us: u64) -> Instant {
        self.opened + Duration::from_micros(us)
    }

    pub fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// When it was last busy (or opened), for choosing whom to evict: an instant, comparable
    /// across connections (each one's own counters are relative to when it opened).
    pub fn last_active(&self) -> Instant {
        self.at(self.idle_since.load(Ordering::Relaxed))
    }

    pub fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    pub fn evict(&self) {
        // The flag first: the connection woken by the token looks at the flag.
        self.evicted.store(true, Ordering::Release);
        self.evict.cancel();
    }

    pub fn set_h2(&self) {
        self.h2.store(true, Ordering::Relaxed);
    }

    /// Starts the head clock. Only the connection's own task reads its stream, and its
    /// watchdog looks at the deadline after every poll of the connection: no wake-up needed.
    fn note_read(&self) {
        if self.is_idle() && self.read_while_idle.load(Ordering::Relaxed) == 0 {
            self.read_while_idle.store(self.now_us() + 1, Ordering::Relaxed);
        }
    }

    /// When the watchdog should act if nothing changes, and why; `None` while busy.
    fn deadline(&self, limits: &ConnLimits) -> Option<(Instant, Closed)> {
        if !self.is_idle() {
            return None;
        }
        if !self.served.load(Ordering::Relaxed) {
            return Some((self.opened + limits.header_read_timeout, Closed::HeaderTimeout));
        }
        let read = self.read_while_idle.load(Ordering::Relaxed);
        if read > 0 && !self.h2.load(Ordering::Relaxed) {
            return Some((self.at(read - 1) + limits.header_read_timeout, Closed::HeaderTimeout));
        }
        Some((self.at(self.idle_since.load(Ordering::Relaxed)) + limits.idle_timeout, Closed::Idle))
    }
}

/// Marks the connection busy from request head to the end of the response body.
pub(crate) struct Busy(Arc<ConnState>);

impl Busy {
    pub(crate) fn begin(state: &Arc<ConnState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        state.served.store(true, Ordering::Relaxed);
        state.read_while_idle.store(0, Ordering::Relaxed);
        Busy(state.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let s = &self.0;
        s.idle_since.store(s.now_us(), Ordering::Relaxed);
        s.read_while_idle.store(0, Ordering::Relaxed);
        s.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A stream that tells its connection when bytes arrive while no request is in flight (the
/// start of a next request head, or a slowloris trickle).
pub(crate) struct Watched<T> {
    inner: T,
    state: Arc<ConnState>,
    /// Plain-text connections: how many bytes of the HTTP/2 preface matched so far (`None`
    /// once decided).
    sniff: Option<usize>,
}

const H2_PREFIX: &[u8] = b"PRI ";

impl<T> Watched<T> {
    pub fn new(inner: T, state: Arc<ConnState>, sniff: bool) -> Self {
        Self { inner, state, sniff: sniff.then_some(0) }
    }

    fn saw(&mut self, bytes: &[u8]) {
        if let Some(matched) = self.sniff {
            let want = &H2_PREFIX[matched..];
            let n = want.len().min(bytes.len());
            if bytes[..n] != want[..n] {
                self.sniff = None;
            } else if matched + n == H2_PREFIX.len() {
                self.state.set_h2();
                self.sniff = None;
            } else {
                self.sniff = Some(matched + n);
            }
        }
        self.state.note_read();
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.saw(&buf.filled()[before..]);
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// What a connection serves: a router, and optionally one route taken before it.
#[derive(Clone)]
pub struct App {
    pub router: Router,
    pub shortcut: Option<Shortcut>,
}

impl From<Router> for App {
    fn from(router: Router) -> Self {
        Self { router, shortcut: None }
    }
}

/// One route answered without the router (its matching, boxed services and extensions): the
/// MCP endpoint's POST, which every call takes.
#[derive(Clone)]
pub struct Shortcut {
    pub method: http::Method,
    pub path: Arc<str>,
    pub handler: Handler,
}

/// What answers a [`Shortcut`]'s requests.
pub type Handler = Arc<dyn Fn(http::Request<Body>) -> Pin<Box<dyn Future<Output = axum::response::Response> + Send>> + Send + Sync>;

/// The app as hyper calls it, holding the connection busy while a response body lives.
#[derive(Clone)]
pub(crate) struct Tracked {
    pub app: App,
    pub state: Arc<ConnState>,
}

impl hyper::service::Service<http::Request<Incoming>> for Tracked {
    type Response = http::Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let busy = Busy::begin(&self.state);
        if let Some(s) = self.app.shortcut.as_ref().filter(|s| req.method() == s.method && req.uri().path() == &*s.path) {
            let answer = (s.handler)(req.map(Body::new));
            return Box::pin(async move { Ok(answer.await.map(|body| TrackedBody { body, _busy: busy })) });
        }
        let app = self.app.router.clone();
        Box::pin(async move {
            let Ok(resp) = app.oneshot(req).await;
            Ok(resp.map(|body| TrackedBody { body, _busy: busy }))
        })
    }
}

/// A response body that keeps its connection marked busy until hyper drops it.
pub(crate) struct TrackedBody {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// How a connection's life ended, as far as the gateway is concerned.
pub(crate) enum Ending {
    /// The client closed it, or it finished after a shutdown.
    Normal,
    Closed(Closed),
}

/// The listener's "close every connection" signal: a token to be woken by, and a flag to look
/// at on every poll (tokio-util's `is_cancelled` takes the token's lock, and every poll of
/// every connection on every worker would look).
#[derive(Default)]
pub(crate) struct CloseAll {
    fired: AtomicBool,
    token: CancellationToken,
}

impl CloseAll {
    pub fn fire(&self) {
        // The flag first: a connection woken by the token looks at the flag.
        self.fired.store(true, Ordering::Release);
        self.token.cancel();
    }

    fn fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }
}

/// Time a connection asked to close (idle, evicted) gets before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Drives `conn` (a hyper connection) until it ends, closing it on the watchdog's deadlines,
/// on eviction, or gracefully when `stop` fires.
///
/// One hand-written poll instead of a `select!` loop: after each poll of the connection (which
/// is where a request's first bytes are seen) the deadline of an idle connection is looked at
/// again, the timer is moved only when it must fire earlier, and polled only when it may have
/// fired or was moved. A request on a kept-alive connection thus costs no wake-up of the
/// connection's task, no new timer, and no clock read here. Wake-ups the connection causes itself
/// while polled are handled in the same poll ([`Inline`]).
pub(crate) async fn watch<C>(conn: C, state: &ConnState, limits: &ConnLimits, stop: &CloseAll) -> Ending
where
    C: Future + GracefulShutdown,
{
    let mut conn = std::pin::pin!(conn);
    let mut stopped = std::pin::pin!(stop.token.cancelled());
    let mut evicted = std::pin::pin!(state.evict.cancelled());
    let mut ending: Option<Ending> = None;
    let mut hard_stop: Option<Instant> = None;
    let mut registered = false;
    // The waker the timer holds (the same for the connection's life), until it fires or moves.
    let mut holder = None;
    // When the connection is busy, when to look again (the end of a request does not wake us).
    let busy_check = limits.idle_timeout.min(limits.header_read_timeout);
    let next = |hard_stop: Option<Instant>| match hard_stop {
        Some(at) => (at, None),
        None => state.deadline(limits).map_or_else(|| (Instant::now() + busy_check, None), |(at, why)| (at, Some(why))),
    };
    let mut armed = next(None).0;
    let mut timer = std::pin::pin!(tokio::time::sleep_until(armed));
    Inline::new(std::future::poll_fn(|cx| {
        loop {
            if conn.as_mut().poll(cx).is_ready() {
                return Poll::Ready(ending.take().unwrap_or(Ending::Normal));
            }
            if ending.is_none() {
                // Polled once, to be woken when they fire (the waker stays the same for the
                // connection's life); after that a flag is cheaper to look at.
                if !registered {
                    let _ = (stopped.as_mut().poll(cx), evicted.as_mut().poll(cx));
                    registered = true;
                }
                if stop.fired() {
                    conn.as_mut().graceful();
                    ending = Some(Ending::Normal);
                    continue;
                }
                if state.is_evicted() {
                    conn.as_mut().graceful();
                    ending = Some(Ending::Closed(Closed::Evicted));
                    hard_stop = Some(Instant::now() + CLOSE_GRACE);
                    continue;
                }
            }
            // While busy (and not stopping) nothing can be due: the timer already looks again
            // later, so there is no deadline to compute and no clock to read.
            let due = match hard_stop {
                Some(at) => Some((at, None)),
                None => state.deadline(limits).map(|(at, why)| (at, Some(why))),
            };
            if let Some((deadline, _)) = due
                && deadline < armed
            {
                armed = deadline;
                timer.as_mut().reset(armed);
                holder = None;
            }
            // Not polled after every poll of the connection: only once it may have fired.
            if crate::timer::poll_deadline(timer.as_mut(), &mut holder, cx).is_pending() {
                return Poll::Pending;
            }
            // The timer fired: act when the deadline as it is now has passed.
            let now = Instant::now();
            if let Some((deadline, why)) = due
                && deadline <= now
            {
                if hard_stop.is_some() {
                    return Poll::Ready(ending.take().unwrap_or(Ending::Normal));
                }
                match why {
                    // Nothing is owed to a client that never finished its request head.
                    Some(Closed::HeaderTimeout) => return Poll::Ready(Ending::Closed(Closed::HeaderTimeout)),
                    Some(why) => {
                        conn.as_mut().graceful();
                        ending = Some(Ending::Closed(why));
                        hard_stop = Some(now + CLOSE_GRACE);
                    }
                    None => {}
                }
            }
            armed = next(hard_stop).0;
            timer.as_mut().reset(armed);
            holder = None;
        }
    }))
    .await
}

/// A hyper connection that can be asked to finish its in-flight work and close.
pub(crate) trait GracefulShutdown {
    fn graceful(self: Pin<&mut Self>);
}
