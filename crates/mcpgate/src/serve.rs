//! `mcpgate serve` and `mcpgate check`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use mcpgate_gateway::config::{ConfigError, GatewayConfig, ServerConfig, Transport, load_file, validate};
use std::time::Duration;

use mcpgate_gateway::cluster::Cluster;
use mcpgate_gateway::listener::{ConnLimits, FrontDoor, Lanes, LimitsSource};
use mcpgate_gateway::{Shared, front, reload, replicas};

use mcpgate_gateway::observe::Series;
use mcpgate_gateway::observe::otel::Telemetry;

use crate::cli::{LogFormat, ServeArgs};

pub async fn serve(args: ServeArgs, log: LogFormat) -> ExitCode {
    let config = match config_from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            crate::cli::init_logging(log, None);
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let series = Arc::new(Series::default());
    let telemetry = match &config.telemetry.otlp {
        None => None,
        Some(otlp) => {
            let http = reqwest::Client::builder().no_proxy().build().unwrap_or_default();
            match Telemetry::start(otlp, series.clone(), http) {
                Ok(t) => Some(t),
                Err(e) => {
                    crate::cli::init_logging(log, None);
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    crate::cli::init_logging(log, telemetry.as_ref().map(|t| t.tracer.clone()));
    if let Some(otlp) = &config.telemetry.otlp {
        tracing::info!(protocol = ?otlp.protocol, sampling_ratio = otlp.sampling_ratio, "exporting traces over OTLP");
    }
    let cluster = match &config.cluster {
        Some(c) => match Cluster::connect(c, STORE_PATIENCE).await {
            Ok(cluster) => Some(cluster),
            Err(e) => {
                eprintln!("error: cluster.store: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let shared = match Shared::start_with(config.clone(), cluster.clone(), series) {
        Ok(s) => s,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    if let Some(cluster) = &cluster {
        match cluster.store.subscribe_bus(&cluster.replica).await {
            Ok(inbox) => replicas::listen(&shared, inbox),
            Err(e) => {
                eprintln!("error: cluster.store: cannot subscribe to the replicas' bus: {e}");
                return ExitCode::FAILURE;
            }
        }
        tracing::info!(replica = %cluster.replica, "joined the cluster");
    }
    if let Some(path) = &args.config {
        reload::watch(path.clone(), shared.clone());
    }
    if let Err(e) = mcpgate_envoy::start(shared.clone()).await {
        eprintln!("error: envoy: cannot listen: {e}");
        return ExitCode::FAILURE;
    }
    let result = run(shared, &config).await;
    if let Some(t) = &telemetry {
        t.flush(std::time::Duration::from_secs(2)).await;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How long a starting replica waits for the session store.
const STORE_PATIENCE: Duration = Duration::from_secs(30);

/// Serves until SIGINT/SIGTERM, then leaves gracefully: `/readyz` answers 503 at once, the
/// listener keeps accepting for `shutdown.grace` (load balancers notice and stop sending), then
/// closes; in-flight calls get `shutdown.drain` to finish, and open streams are ended so their
/// clients reconnect to another replica.
pub async fn run(shared: Arc<Shared>, config: &GatewayConfig) -> Result<(), String> {
    if let Some(admin) = &config.admin {
        let listener = mcpgate_gateway::listener::bind_tcp(&admin.listen).await.map_err(|e| format!("admin.listen {}: {e}", admin.listen))?;
        tracing::info!("admin listener on http://{} (/metrics, /admin/pins)", listener.local_addr().map_err(|e| e.to_string())?);
        let router = front::admin::admin_router(shared.clone());
        // Up until the listener closes: metrics stay readable while the replica drains.
        let stopping = shared.stopping.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(async move { stopping.cancelled().await }).await {
                tracing::error!("admin listener failed: {e}");
            }
        });
    }
    let live = shared.clone();
    let limits: LimitsSource = Arc::new(move || ConnLimits::from(&live.config.load().limits));
    let door = FrontDoor::bind(config, shared.front_door.clone(), limits).await?;
    let addr: SocketAddr = door.local_addr().map_err(|e| e.to_string())?;
    raise_open_file_limit(config.limits.max_connections);
    tracing::info!("listening on {}://{addr}{}", door.scheme(), config.mcp_path);
    let handle = door.handle();
    let lanes = Lanes::start(config.lane_count()).map_err(|e| format!("cannot start the lanes: {e}"))?;
    match lanes.len() {
        0 => tracing::info!("serving connections on one work-stealing pool (lanes: 0)"),
        n => tracing::info!("serving connections on {n} lane(s)"),
    }
    let serving = tokio::spawn(door.serve(front::app(shared.clone()), lanes));
    shutdown().await;
    let settings = config.shutdown;
    shared.draining.store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(grace = ?settings.grace, "draining: /readyz is 503; still accepting for the grace period");
    tokio::time::sleep(settings.grace).await;
    handle.stop_accepting();
    handle.close_connections();
    tracing::info!(drain = ?settings.drain, "listener closed; ending open streams, waiting for calls");
    shared.stopping.cancel();
    if tokio::time::timeout(settings.drain, handle.wait_closed()).await.is_err() {
        // The drain timeout passed with connections still open: they are cut.
        tracing::warn!("drain timeout reached; closing the remaining connections");
    }
    serving.abort();
    Ok(())
}

/// Each connection is a file descriptor. The soft open-file limit is raised to the hard one
/// (as Go's runtime does): many systems start processes at 1024, fewer than
/// `limits.max_connections`. A warning says when the cap still cannot be reached.
fn raise_open_file_limit(max_connections: usize) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum
        && let Err(e) = setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum })
    {
        tracing::debug!(error = %e, "cannot raise the open-file limit");
    }
    // Room for backend connections, the config, logs and the runtime besides clients.
    let wanted = max_connections as u64 + 256;
    if let Some(soft) = getrlimit(Resource::Nofile).current
        && soft < wanted
    {
        tracing::warn!(
            open_files = soft,
            max_connections,
            "the open-file limit is below limits.max_connections (plus room for backends): raise it (ulimit -n) or lower the cap"
        );
    }
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

fn config_from_args(args: &ServeArgs) -> Result<GatewayConfig, String> {
    let mut config = match &args.config {
        Some(path) => load_file(path).map_err(render)?,
        None => quick_start(&args.server)?,
    };
    if let Some(listen) = &args.listen {
        config.listen = listen.clone();
        validate(&config).map_err(|p| render(ConfigError::Invalid(p)))?;
    }
    Ok(config)
}

/// A config from `--server NAME=URL` flags.
fn quick_start(servers: &[String]) -> Result<GatewayConfig, String> {
    let mut yaml = String::from("servers: []\n");
    if servers.is_empty() {
        tracing::warn!("no --server given: the gateway starts with no backends");
    }
    let mut config: GatewayConfig = mcpgate_gateway::config::parse_str(&std::mem::take(&mut yaml), &|_| None).map_err(render)?;
    for (i, s) in servers.iter().enumerate() {
        let (name, url) =
            s.split_once('=').ok_or_else(|| format!("error: --server {s:?}: expected NAME=URL (fix: e.g. --server weather=http://127.0.0.1:9001/mcp)"))?;
        let (transport, url) = match url.strip_prefix("sse+") {
            Some(u) => (Transport::Sse, u),
            None => (Transport::StreamableHttp, url),
        };
        let mut sc: ServerConfig = yaml_server(name, url).map_err(|e| format!("error: --server #{}: {e}", i + 1))?;
        sc.transport = transport;
        config.servers.push(sc);
    }
    validate(&config).map_err(|p| render(ConfigError::Invalid(p)))?;
    Ok(config)
}

fn yaml_server(name: &str, url: &str) -> Result<ServerConfig, String> {
    let text =
        format!("servers:\n  - name: {}\n    url: {}\n", serde_json::to_string(name).unwrap_or_default(), serde_json::to_string(url).unwrap_or_default());
    let mut c = mcpgate_gateway::config::parse_str(&text, &|_| None).map_err(render)?;
    c.servers.pop().ok_or_else(|| "no server".to_owned())
}

fn render(e: ConfigError) -> String {
    e.to_string()
}

pub fn check(path: &Path) -> ExitCode {
    match load_file(path) {
        Ok(c) => {
            let pin_problems = mcpgate_gateway::pins::check_file(&c);
            if !pin_problems.is_empty() {
                for (at, problem, fix) in pin_problems {
                    println!("error: {at}: {problem} (fix: {fix})");
                }
                return ExitCode::FAILURE;
            }
            let enabled = c.servers.iter().filter(|s| s.enabled).count();
            println!("config OK: {} server(s), {enabled} enabled, listening on {}{}", c.servers.len(), c.listen, c.mcp_path);
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{e}");
            ExitCode::FAILURE
        }
    }
}
