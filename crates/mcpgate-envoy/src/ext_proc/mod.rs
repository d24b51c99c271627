//! `envoy.service.ext_proc.v3.ExternalProcessor`: mcpgate as Envoy's MCP router.
//!
//! Each gRPC stream is one HTTP request; `stream` holds its phases, `response` the response
//! phase of a routed call, `messages` builds the answers. Decisions come from the gateway
//! through `crate::gateway`; this module only speaks Envoy's protocol. Every wait inside a
//! message's answer (IdP, Vault, a backend) is bounded by the backend's call timeout; between
//! messages the stream waits for Envoy, which owns the request's lifetime.

mod messages;
mod response;
mod stream;

use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::ExternalProcessor;
use envoy_types::pb::envoy::service::ext_proc::v3::{ProcessingRequest, ProcessingResponse};
use futures::Stream as FuturesStream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::gateway::{self, FrontDoor, InFlight, Shared};

pub use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::ExternalProcessorServer;

/// State shared by every stream.
pub struct Inner {
    pub shared: Arc<Shared>,
    pub front: FrontDoor,
    pub in_flight: Arc<InFlight>,
}

pub struct ExtProc {
    inner: Arc<Inner>,
}

impl ExtProc {
    pub fn new(shared: Arc<Shared>) -> Self {
        let front = FrontDoor::new(shared.clone());
        Self { inner: Arc::new(Inner { shared, front, in_flight: Arc::default() }) }
    }
}

type Out = Pin<Box<dyn FuturesStream<Item = Result<ProcessingResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalProcessor for ExtProc {
    type ProcessStream = Out;

    async fn process(&self, request: Request<Streaming<ProcessingRequest>>) -> Result<Response<Self::ProcessStream>, Status> {
        let Some(config) = gateway::envoy_config(&self.inner.shared) else {
            return Err(Status::unavailable("the envoy section was removed from mcpgate's config"));
        };
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let mut stream = stream::Stream::new(inner, config);
            loop {
                let msg = match inbound.message().await {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(target: "mcpgate::envoy", "ext_proc stream ended: {e}");
                        break;
                    }
                };
                let step = stream.on(msg).await;
                if let Some(r) = step.response
                    && tx.send(Ok(r)).await.is_err()
                {
                    break;
                }
                if step.done {
                    break;
                }
            }
        });
        let out = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(Box::pin(out)))
    }
}
