//! mcpgate as the MCP brain of an Envoy in front of it (docs/envoy.md).
//!
//! Two services, started by `mcpgate serve` when the config has an `envoy:` section:
//! - [`ext_proc`]: Envoy's external processor as the MCP **router**. It reads each
//!   JSON-RPC message, answers what Envoy cannot forward to one backend (initialize, lists,
//!   discovery, refusals) with an immediate response, and for a call sets `x-mcp-method`,
//!   `x-mcp-toolname`, `x-mcp-servername`, the route target and the backend's path, the
//!   backend session and credential, and rewrites the body to the backend's names; on the
//!   way back it translates what standalone translates.
//! - [`ext_authz`]: Envoy's external authorization (gRPC and HTTP modes) as the **policy**
//!   step: identity, permission, credential and wristband, decided by the gateway's code.
//!
//! `gateway` is the one module that names the gateway's internals; everything the services
//! decide comes from there. Neither service logs a token, a credential or a header value.

pub mod ext_authz;
pub mod ext_proc;
mod gateway;
mod headers;

use std::net::SocketAddr;
use std::sync::Arc;

use gateway::{EnvoyConfig, Shared};
use tonic::{Request, Status};

/// The header (gRPC metadata for the gRPC services) carrying `envoy.shared_secret`.
pub const SECRET_HEADER: &str = "x-mcpgate-envoy-secret";

/// Where the services listen, once bound.
#[derive(Debug, Clone)]
pub struct Listening {
    pub grpc: SocketAddr,
    pub http_authz: Option<SocketAddr>,
}

/// Binds the configured addresses and serves both services in the background. Does
/// nothing (and returns `None`) when the config has no `envoy:` section.
pub async fn start(shared: Arc<Shared>) -> std::io::Result<Option<Listening>> {
    let Some(config) = shared.config.load().envoy.clone() else { return Ok(None) };
    if config.shared_secret.is_none() && config.allow_without_secret {
        tracing::warn!(target: "mcpgate::envoy", "envoy.allow_without_secret: anyone who can reach the Envoy services can ask for backend credentials; restrict the network");
    }
    let grpc = mcpgate_gateway::listener::bind_tcp(&config.grpc_listen).await?;
    let grpc_addr = grpc.local_addr()?;
    let http_authz = match &config.http_authz_listen {
        Some(addr) => Some(mcpgate_gateway::listener::bind_tcp(addr).await?),
        None => None,
    };
    let http_addr = http_authz.as_ref().map(|l| l.local_addr()).transpose()?;
    let limit = message_limit(&shared, &config);
    let interceptor = SecretCheck { shared: shared.clone() };
    let ext_proc =
        ext_proc::ExternalProcessorServer::new(ext_proc::ExtProc::new(shared.clone())).max_decoding_message_size(limit).max_encoding_message_size(limit);
    let ext_authz = ext_authz::grpc::AuthorizationServer::new(ext_authz::grpc::ExtAuthz::new(shared.clone()))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let router = tonic::transport::Server::builder()
        .add_service(tonic::service::interceptor::InterceptedService::new(ext_proc, interceptor.clone()))
        .add_service(tonic::service::interceptor::InterceptedService::new(ext_authz, interceptor));
    let incoming = tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true));
    tokio::spawn(async move {
        if let Err(e) = router.serve_with_incoming(incoming).await {
            tracing::error!(target: "mcpgate::envoy", "the Envoy gRPC services stopped: {e}");
        }
    });
    tracing::info!(target: "mcpgate::envoy", "Envoy ext_proc and ext_authz (gRPC) listening on {grpc_addr}");
    if let Some(listener) = http_authz {
        let app = ext_authz::http::router(shared.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(target: "mcpgate::envoy", "the Envoy ext_authz HTTP service stopped: {e}");
            }
        });
        if let Some(a) = http_addr {
            tracing::info!(target: "mcpgate::envoy", "Envoy ext_authz (HTTP) listening on {a}");
        }
    }
    Ok(Some(Listening { grpc: grpc_addr, http_authz: http_addr }))
}

/// The largest gRPC message either way: a whole body plus its headers.
fn message_limit(shared: &Shared, config: &EnvoyConfig) -> usize {
    config.max_body(&shared.config.load()).max(config.max_response_body_bytes) + 64 * 1024
}

/// Only Envoy may ask: with `envoy.shared_secret`, every call must carry it.
#[derive(Clone)]
struct SecretCheck {
    shared: Arc<Shared>,
}

impl tonic::service::Interceptor for SecretCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let config = self.shared.config.load();
        let given = request.metadata().get(SECRET_HEADER).map(|v| v.as_bytes());
        if secret_ok(config.envoy.as_ref(), given) { Ok(request) } else { Err(Status::unauthenticated("x-mcpgate-envoy-secret is missing or wrong")) }
    }
}

/// Whether `given` matches the configured secret (always, when none is configured).
/// Compared in constant time.
pub(crate) fn secret_ok(config: Option<&EnvoyConfig>, given: Option<&[u8]>) -> bool {
    let Some(expected) = config.and_then(|c| c.shared_secret.as_ref()) else { return true };
    let Some(given) = given else { return false };
    let expected = expected.expose().as_bytes();
    let mut diff = expected.len() ^ given.len();
    for (i, b) in expected.iter().enumerate() {
        diff |= usize::from(b ^ given.get(i).copied().unwrap_or(0));
    }
    diff == 0
}
