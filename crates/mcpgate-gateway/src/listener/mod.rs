//! The front door's accept loop: TCP (and TLS) connections served by hyper (HTTP/1.1 and
//! HTTP/2), each under a watchdog, within a global and a per-IP connection cap.
//!
//! Owns: binding, `TCP_NODELAY`, the caps (`table`), the head and idle timeouts of each
//! connection (`conn`), the TLS handshake and certificate reload (`tls`), and the two steps
//! of a shutdown: [`Handle::stop_accepting`] and [`Handle::close_connections`], then
//! [`Handle::wait_closed`]. What a request means is the router's business; body reads are
//! bounded in the handler (`limits.body_read_timeout`).
//!
//! Never closes a connection that has a request in flight, except at shutdown (gracefully);
//! never logs request content.

mod conn;
mod inline;
mod lanes;
mod table;
mod tls;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{GatewayConfig, Limits};
pub use conn::{App, Shortcut};
use conn::{ConnState, Ending, GracefulShutdown, Tracked, Watched};
pub use lanes::{Lanes, alive_tasks, lanes_running};
pub use table::FrontDoorStats;
use table::Table;
use tls::TlsFront;

/// The connection limits in force (read again for each new connection, so a reload applies
/// to connections opened after it).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnLimits {
    pub max_connections: usize,
    /// 0: no per-IP cap.
    pub max_connections_per_ip: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl From<&Limits> for ConnLimits {
    fn from(l: &Limits) -> Self {
        Self {
            max_connections: l.max_connections,
            max_connections_per_ip: l.max_connections_per_ip,
            header_read_timeout: l.header_read_timeout,
            idle_timeout: l.idle_connection_timeout,
        }
    }
}

/// Where the limits come from (the live config).
pub type LimitsSource = Arc<dyn Fn() -> ConnLimits + Send + Sync>;

/// The accept queue asked of the kernel, which caps it at `net.core.somaxconn` (4096 by
/// default since Linux 5.4). The runtime's own default is 128: a burst of new connections
/// past that (a reconnect storm after a restart, a load balancer's health checks and traffic
/// arriving together) loses SYNs, and each lost one costs its client a one-second retransmit.
const LISTEN_BACKLOG: u32 = 65_535;

/// A TCP listener on `addr` (`host:port`; every address it resolves to is tried in turn)
/// with the full accept queue the kernel allows. For every listener that takes callers'
/// connections: the front door, the admin listener, the Envoy services, the demo.
pub async fn bind_tcp(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host(addr).await? {
        let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(LISTEN_BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the address resolves to nothing")))
}

/// A bound listener, not yet serving.
pub struct FrontDoor {
    tcp: TcpListener,
    tls: Option<Arc<TlsFront>>,
    shared: Arc<DoorShared>,
}

struct DoorShared {
    table: Table,
    limits: LimitsSource,
    stop_accepting: CancellationToken,
    close: conn::CloseAll,
    tasks: TaskTracker,
}

/// Controls a serving front door from outside (shutdown).
#[derive(Clone)]
pub struct Handle {
    shared: Arc<DoorShared>,
}

impl Handle {
    /// No new connections are accepted; open ones carry on.
    pub fn stop_accepting(&self) {
        self.shared.stop_accepting.cancel();
    }

    /// Every open connection is asked to finish its in-flight requests and close (HTTP/2:
    /// GOAWAY; HTTP/1.1: close after the current response).
    pub fn close_connections(&self) {
        self.shared.close.fire();
    }

    /// Waits until the accept loop has stopped and every connection has closed.
    pub async fn wait_closed(&self) {
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }

    /// Connections open now.
    pub fn open_connections(&self) -> u64 {
        self.shared.table.stats.open()
    }
}

impl FrontDoor {
    /// Binds `config.listen` and, with `config.tls`, loads the certificate (an error names the
    /// key and file). `stats` is where `/status` reads the counters.
    pub async fn bind(config: &GatewayConfig, stats: Arc<FrontDoorStats>, limits: LimitsSource) -> Result<Self, String> {
        let tls = match &config.tls {
            Some(t) => Some(TlsFront::load(t, stats.clone())?),
            None => None,
        };
        let tcp = bind_tcp(&config.listen).await.map_err(|e| format!("listen {}: {e}", config.listen))?;
        let shared = Arc::new(DoorShared {
            table: Table::new(stats),
            limits,
            stop_accepting: CancellationToken::new(),
            close: conn::CloseAll::default(),
            tasks: TaskTracker::new(),
        });
        Ok(Self { tcp, tls, shared })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    pub fn handle(&self) -> Handle {
        Handle { shared: self.shared.clone() }
    }

    /// Accepts until [`Handle::stop_accepting`]; each connection runs in its own task, on the
    /// next of `lanes` (or here, without lanes).
    pub async fn serve(self, app: impl Into<App>, lanes: Lanes) {
        let app: App = app.into();
        if let Some(tls) = &self.tls {
            tls.watch();
        }
        let token = self.shared.tasks.token();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // Heads are bounded by the connection watchdog (which also covers the bytes the
        // protocol sniffing reads and the wait between requests), not by hyper's own timer.
        builder.http1().keep_alive(true);
        let builder = Arc::new(builder);
        loop {
            let accepted = tokio::select! {
                _ = self.shared.stop_accepting.cancelled() => break,
                r = self.tcp.accept() => r,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors (or a transient error): back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let limits = (self.shared.limits)();
            let state = match self.shared.table.admit(peer.ip(), &limits) {
                Ok(s) => s,
                Err(why) => {
                    self.shared.table.stats.refused(why);
                    tracing::debug!(peer = %peer.ip(), reason = ?why, "connection refused: connection cap reached");
                    drop(stream);
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let lane = lanes.pick();
            // A socket wakes the runtime it is registered with: on a lane it moves to the
            // lane's own reactor, or each of its reads would be a wake-up from this thread.
            let stream = match lane {
                None => Accepted::Here(stream),
                Some(_) => match stream.into_std() {
                    Ok(moved) => Accepted::Moved(moved),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot hand a connection to a lane");
                        self.shared.table.remove(&state);
                        continue;
                    }
                },
            };
            let (shared, app, builder, tls) = (self.shared.clone(), app.clone(), builder.clone(), self.tls.clone());
            let connection = async move {
                match stream.register() {
                    Ok(stream) => {
                        let ending = serve_one(stream, &state, &limits, tls.as_deref(), app, &builder, &shared.close).await;
                        if let Ending::Closed(why) = ending {
                            shared.table.stats.closed(why);
                            tracing::debug!(peer = %state.ip, reason = ?why, "connection closed by the gateway");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot register a connection on its lane"),
                }
                shared.table.remove(&state);
            };
            match lane {
                Some(lane) => drop(self.shared.tasks.spawn_on(connection, lane)),
                None => drop(self.shared.tasks.spawn(connection)),
            }
        }
        drop(token);
    }
}

/// An accepted socket: registered here, or on its way to a lane.
enum Accepted {
    Here(TcpStream),
    Moved(std::net::TcpStream),
}

impl Accepted {
    /// The socket, registered with the runtime this runs on.
    fn register(self) -> std::io::Result<TcpStream> {
        match self {
            Self::Here(s) => Ok(s),
            Self::Moved(s) => TcpStream::from_std(s),
        }
    }
}

async fn serve_one(
    stream: TcpStream,
    state: &Arc<ConnState>,
    limits: &ConnLimits,
    tls: Option<&TlsFront>,
    app: App,
    builder: &auto::Builder<TokioExecutor>,
    close: &conn::CloseAll,
) -> Ending {
    let service = Tracked { app, state: state.clone() };
    match tls {
        None => {
            let io = TokioIo::new(Watched::new(stream, state.clone(), true));
            conn::watch(builder.serve_connection(io, service), state, limits, close).await
        }
        Some(tls) => {
            // The handshake counts against the head timeout: a client that opens a TLS
            // connection and stalls is a slowloris too.
            let handshake = tls.acceptor().accept(Watched::new(stream, state.clone(), false));
            let stream = match tokio::time::timeout(limits.header_read_timeout, handshake).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %state.ip, error = %e, "TLS handshake failed");
                    return Ending::Closed(table::Closed::TlsHandshake);
                }
                Err(_) => return Ending::Closed(table::Closed::TlsHandshake),
            };
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                state.set_h2();
            }
            conn::watch(builder.serve_connection(TokioIo::new(stream), service), state, limits, close).await
        }
    }
}

impl<I, S, E> GracefulShutdown for auto::Connection<'_, I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: http_body::Body + Send + 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}
