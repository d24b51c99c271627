//! One request's traffic from a backend: related messages, then the response.

use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use mcpgate_protocol::envelope::{Envelope, Kind};
use mcpgate_protocol::sse;
use tokio::sync::mpsc;

use crate::error::UpstreamError;
use crate::mux::PendingGuard;

/// A message from the backend about one request. `is_final` marks the response itself.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub bytes: Bytes,
    pub is_final: bool,
}

pub(crate) type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send>>;

/// The backend's answer to one request, read message by message. Dropping it abandons the
/// request (the HTTP stream is closed; for multiplexed transports the slot is freed).
pub struct Exchange {
    id: u64,
    state: State,
}

enum State {
    Single(Option<Bytes>),
    Sse { body: ByteStream, decoder: sse::Decoder, done: bool },
    Channel { rx: mpsc::UnboundedReceiver<Bytes>, _guard: PendingGuard, done: bool },
}

impl Exchange {
    pub(crate) fn single(id: u64, body: Bytes) -> Self {
        Self { id, state: State::Single(Some(body)) }
    }

    pub(crate) fn sse(id: u64, body: ByteStream) -> Self {
        Self { id, state: State::Sse { body, decoder: sse::Decoder::new(), done: false } }
    }

    pub(crate) fn channel(id: u64, rx: mpsc::UnboundedReceiver<Bytes>, guard: PendingGuard) -> Self {
        Self { id, state: State::Channel { rx, _guard: guard, done: false } }
    }

    /// Whether the response has been read (nothing more will come).
    pub fn is_finished(&self) -> bool {
        match &self.state {
            State::Single(body) => body.is_none(),
            State::Sse { done, .. } | State::Channel { done, .. } => *done,
        }
    }

    /// The id the gateway gave this request on the backend session.
    pub fn backend_id(&self) -> u64 {
        self.id
    }

    /// The next message, or `None` once the response has been returned.
    pub async fn next(&mut self) -> Result<Option<Inbound>, UpstreamError> {
        let id = self.id;
        match &mut self.state {
            State::Single(body) => match body.take() {
                None => Ok(None),
                Some(bytes) => {
                    if is_response_to(&bytes, id) {
                        Ok(Some(Inbound { bytes, is_final: true }))
                    } else {
                        Err(UpstreamError::Protocol("JSON body is not the response to the request".into()))
                    }
                }
            },
            State::Sse { body, decoder, done } => {
                if *done {
                    return Ok(None);
                }
                loop {
                    match decoder.next_event() {
                        Err(e) => return Err(UpstreamError::Protocol(e.to_string())),
                        Ok(Some(ev)) => {
                            if ev.data.trim().is_empty() {
                                continue; // priming event for resumability
                            }
                            let bytes = Bytes::from(ev.data);
                            let is_final = is_response_to(&bytes, id);
                            *done = is_final;
                            return Ok(Some(Inbound { bytes, is_final }));
                        }
                        Ok(None) => match body.next().await {
                            Some(Ok(chunk)) => decoder.push(&chunk),
                            Some(Err(e)) => return Err(e),
                            None => return Err(UpstreamError::Closed),
                        },
                    }
                }
            }
            State::Channel { rx, done, .. } => {
                if *done {
                    return Ok(None);
                }
                let bytes = rx.recv().await.ok_or(UpstreamError::Closed)?;
                let is_final = is_response_to(&bytes, id);
                *done = is_final;
                Ok(Some(Inbound { bytes, is_final }))
            }
        }
    }

    /// Reads until the response and returns it, dropping anything else.
    pub async fn response(mut self) -> Result<Bytes, UpstreamError> {
        while let Some(m) = self.next().await? {
            if m.is_final {
                return Ok(m.bytes);
            }
        }
        Err(UpstreamError::Closed)
    }
}

pub(crate) fn is_response_to(bytes: &[u8], id: u64) -> bool {
    match Envelope::parse(bytes) {
        Ok(env) => env.kind() == Some(Kind::Response) && env.id().is_some_and(|v| v.get() == id.to_string()),
        Err(_) => false,
    }
}
