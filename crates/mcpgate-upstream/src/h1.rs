//! A plain-HTTP/1.1 client for the per-call hot path.
//!
//! A general-purpose pooled client runs every connection as its own task: a request is handed
//! to that task and the response handed back, two cross-task wake-ups per call on top of the
//! socket's own. Here the calling task drives the connection itself while it waits for the
//! response and reads a JSON body; only a streamed (SSE) response hands the connection to a
//! task of its own. Idle connections are kept per backend address (`host:port`) and per lane
//! (a socket wakes the runtime it is registered with, so a lane reuses only its own: see
//! [`enter_lane`]), and checked for a close by the backend before reuse. Used for `http://`
//! backends; `https://` goes through reqwest.

use std::collections::HashMap;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures::future::{Either, select};
use futures::{Stream, StreamExt};
use http::header::HOST;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::{InvalidResponse, UpstreamError};

type Conn = http1::Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// A connection and its sender. Kept boxed: hyper's connection state is about 700 bytes, and
/// every move of it (out of the pool, into the call's future, back) would copy them.
struct Idle {
    sender: http1::SendRequest<Full<Bytes>>,
    conn: Conn,
}

/// Idle connections to one backend address.
pub(crate) struct Pool {
    authority: String,
    host: HeaderValue,
    /// One list per lane (slot 0: threads outside the lanes), so that a lane's calls reuse
    /// connections registered with its own runtime.
    #[expect(clippy::vec_box, reason = "boxed so that taking a connection out moves a pointer, not the connection")]
    idle: [Mutex<Vec<Box<Idle>>>; SLOTS],
}

/// Idle lists per pool: slot 0 for threads outside the lanes, the rest for lanes (lane n in
/// slot 1 + (n - 1) mod 15, so lanes past 15 share a slot with another lane, never with slot 0).
const SLOTS: usize = 16;

thread_local! {
    static LANE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks this thread as lane `lane` (from 1): its calls keep their own idle connections.
pub fn enter_lane(lane: usize) {
    LANE.with(|l| l.set(lane));
}

fn slot() -> usize {
    match LANE.with(|l| l.get()) {
        0 => 0,
        lane => 1 + (lane - 1) % (SLOTS - 1),
    }
}

const MAX_IDLE: usize = 256;

/// The shared pool for `url` (plain `http` only).
pub(crate) fn pool_for(url: &url::Url) -> Option<Arc<Pool>> {
    static POOLS: OnceLock<Mutex<HashMap<String, Arc<Pool>>>> = OnceLock::new();
    if url.scheme() != "http" {
        return None;
    }
    let authority = format!("{}:{}", url.host_str()?, url.port_or_known_default()?);
    let host = HeaderValue::from_str(&match url.port() {
        Some(p) => format!("{}:{p}", url.host_str()?),
        None => url.host_str()?.to_owned(),
    })
    .ok()?;
    let mut pools = POOLS.get_or_init(Mutex::default).lock().unwrap_or_else(|p| p.into_inner());
    Some(pools.entry(authority.clone()).or_insert_with(|| Arc::new(Pool { authority, host, idle: Default::default() })).clone())
}

/// The request target (path and query) of `url`.
pub(crate) fn target_of(url: &url::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// A response whose body is either read (JSON and everything else) or left streaming (SSE).
pub(crate) enum Answer {
    Full { status: StatusCode, headers: HeaderMap, body: Bytes },
    Streaming { headers: HeaderMap, body: Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send>> },
}

impl Pool {
    fn checkout(&self) -> Option<Box<Idle>> {
        let mut idle = self.idle[slot()].lock().unwrap_or_else(|p| p.into_inner());
        while let Some(mut c) = idle.pop() {
            // Let the connection notice a close the backend sent while it was idle.
            let mut cx = Context::from_waker(Waker::noop());
            if matches!(c.conn.poll_without_shutdown(&mut cx), Poll::Pending) && !c.sender.is_closed() {
                return Some(c);
            }
        }
        None
    }

    fn checkin(&self, c: Box<Idle>) {
        let mut idle = self.idle[slot()].lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(c);
        }
    }

    async fn connect(&self) -> Result<Box<Idle>, UpstreamError> {
        let tcp = TcpStream::connect(&self.authority).await.map_err(|_| UpstreamError::Connect("connection refused or unreachable".into()))?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(tcp)).await.map_err(|e| UpstreamError::Connect(e.to_string()))?;
        Ok(Box::new(Idle { sender, conn }))
    }

    /// POSTs `body` to `path` with `headers`.
    pub(crate) async fn post(&self, path: &str, headers: HeaderMap, body: Vec<u8>) -> Result<Answer, UpstreamError> {
        let mut req = Request::post(path).body(Full::new(Bytes::from(body))).map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        *req.headers_mut() = headers;
        req.headers_mut().insert(HOST, self.host.clone());
        let (mut c, resp) = loop {
            let (mut c, reused) = match self.checkout() {
                Some(c) => (c, true),
                // Boxed: rare, and its state would otherwise enlarge every call's future.
                None => (Box::pin(self.connect()).await?, false),
            };
            match drive(&mut c.conn, c.sender.try_send_request(req)).await? {
                Ok(resp) => break (c, resp),
                Err(mut e) => match e.take_message() {
                    // A pooled connection the backend closed just now: the request was never
                    // written and came back, so it is safe to send it on a fresh connection.
                    Some(unsent) if reused && e.error().is_canceled() => req = unsent,
                    _ => return Err(from_hyper(e.error())),
                },
            }
        };
        let (parts, body) = resp.into_parts();
        let is_sse = crate::error::content_type_starts(&parts.headers, "text/event-stream");
        if is_sse && parts.status.is_success() {
            // A stream outlives this call: the connection gets a task of its own (and is not
            // reused: it serves this stream until it ends).
            let conn = c.conn;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let frames = http_body_util::BodyStream::new(body).filter_map(|f| async move {
                match f {
                    Ok(frame) => frame.into_data().ok().map(Ok),
                    Err(e) => Some(Err(from_hyper(&e))),
                }
            });
            return Ok(Answer::Streaming { headers: parts.headers, body: Box::pin(frames) });
        }
        // The head arrived: a connection that ends now cut the body short (and the request
        // was delivered, so it must not be sent again).
        let body = match drive(&mut c.conn, collect(body)).await {
            Ok(Ok(body)) => body,
            Ok(Err(e)) | Err(e) => return Err(cut_short(e)),
        };
        let reusable = parts.headers.get(http::header::CONNECTION).is_none_or(|v| !v.as_bytes().eq_ignore_ascii_case(b"close"));
        if reusable {
            self.checkin(c);
        }
        Ok(Answer::Full { status: parts.status, headers: parts.headers, body })
    }
}

async fn collect(body: Incoming) -> Result<Bytes, UpstreamError> {
    body.collect().await.map(|b| b.to_bytes()).map_err(|e| from_hyper(&e))
}

/// Runs `work` while driving the connection it needs. The connection ending first (closed by
/// the backend) is an error; `work` finishing first leaves the connection usable.
async fn drive<F: std::future::Future>(conn: &mut Conn, work: F) -> Result<F::Output, UpstreamError> {
    let conn_done = poll_fn(|cx| conn.poll_without_shutdown(cx));
    let work = std::pin::pin!(work);
    let conn_done = std::pin::pin!(conn_done);
    match select(work, conn_done).await {
        Either::Left((out, _)) => Ok(out),
        Either::Right((Ok(()), work)) => {
            // The backend closed the connection: the answer may already be complete.
            match futures::FutureExt::now_or_never(work) {
                Some(out) => Ok(out),
                None => Err(UpstreamError::Closed),
            }
        }
        Either::Right((Err(e), _)) => Err(from_hyper(&e)),
    }
}

/// An error while reading a body whose head arrived: the body was cut short (a connection
/// closed or reset early, a broken chunk), unless the wait itself ran out.
fn cut_short(e: UpstreamError) -> UpstreamError {
    match e {
        UpstreamError::Timeout => UpstreamError::Timeout,
        _ => UpstreamError::Invalid(InvalidResponse::Truncated),
    }
}

fn from_hyper(e: &hyper::Error) -> UpstreamError {
    // A reset or an early end of the connection surfaces as an I/O error under hyper's own.
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() || io {
        UpstreamError::Closed
    } else if e.is_timeout() {
        UpstreamError::Timeout
    } else {
        UpstreamError::Protocol(format!("HTTP: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A keep-alive HTTP/1.1 server answering every request with `{}`; counts the connections
    /// it accepted.
    fn server() -> (url::Url, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = url::Url::parse(&format!("http://{}/mcp", listener.local_addr().expect("addr"))).expect("url");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut writer = stream;
                    loop {
                        let mut length = 0;
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                                length = v.trim().parse().expect("length");
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).expect("body");
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                        if writer.write_all(answer).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    /// Runs `calls` POSTs one after the other on a thread marked as lane `lane`, and keeps
    /// that lane's runtime (with which its idle connections are registered) alive until the
    /// returned sender is dropped.
    fn calls_on_lane(lane: usize, url: &url::Url, calls: usize) -> std::sync::mpsc::Sender<()> {
        let url = url.clone();
        let (done_tx, done) = std::sync::mpsc::channel();
        let (keep, end) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            enter_lane(lane);
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let pool = pool_for(&url).expect("http");
                for _ in 0..calls {
                    match pool.post(&target_of(&url), HeaderMap::new(), b"{}".to_vec()).await.expect("post") {
                        Answer::Full { status, body, .. } => assert_eq!((status, &body[..]), (StatusCode::OK, &b"{}"[..])),
                        Answer::Streaming { .. } => panic!("not a stream"),
                    }
                }
            });
            done_tx.send(()).expect("done");
            let _ = end.recv();
        });
        done.recv_timeout(std::time::Duration::from_secs(30)).expect("the lane's calls");
        keep
    }

    #[test]
    fn lanes_never_share_a_slot_with_threads_outside_them() {
        let slot_of = |lane| {
            enter_lane(lane);
            slot()
        };
        let slots: Vec<usize> = (0..=16).map(slot_of).collect();
        enter_lane(0);
        assert_eq!(slots[0], 0);
        assert!(slots[1..].iter().all(|&s| s != 0), "{slots:?}");
        assert_eq!(slots[1..16].iter().collect::<std::collections::HashSet<_>>().len(), 15, "the first 15 lanes each have their own");
        assert_eq!(slots[16], slots[1], "lane 16 shares lane 1's");
    }

    #[test]
    fn each_lane_reuses_its_own_idle_connections_and_not_another_lanes() {
        let (url, accepted) = server();

        let _one = calls_on_lane(1, &url, 3);
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "lane 1's calls share one kept-alive connection");

        // Lane 1's connection is idle and healthy, but registered with lane 1's runtime.
        let _two = calls_on_lane(2, &url, 3);
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "lane 2 opens its own rather than take lane 1's");
    }
}
