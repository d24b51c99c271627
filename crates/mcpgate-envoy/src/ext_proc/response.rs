//! The response phase of a routed message: the backend's status and session header, then
//! its body, translated as standalone translates it (`gateway::Reply`). SSE bodies are
//! translated event by event as chunks arrive (an incomplete event waits for the next
//! chunk); a JSON body that must change is held until whole. `content-length` is dropped
//! whenever the body may change length.

use envoy_types::pb::envoy::service::ext_proc::v3::{HttpBody, HttpHeaders, ProcessingResponse};
use mcpgate_protocol::sse::{Decoder, encode_message};

use super::messages::{self, BodyChange, HeaderChanges, Side};
use crate::gateway::{EnvoyConfig, Route};
use crate::headers;

/// What the stream does after a response-phase message.
pub enum Outcome {
    Continue(ProcessingResponse),
    /// An immediate response: the stream is over.
    Last(ProcessingResponse),
    Fail(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Not known yet (no response headers seen).
    Unknown,
    Sse,
    /// JSON (or anything else) passed through unchanged.
    Plain,
    /// JSON that must be rewritten: held until whole.
    Held,
}

pub struct Routed {
    /// Kept for the life of the exchange (the in-flight entry, the reply context).
    route: Route,
    body: Body,
    sse: Decoder,
    held: Vec<u8>,
    chunks: usize,
}

impl Routed {
    pub fn new(mut route: Route, _config: &EnvoyConfig) -> Self {
        route.body = Vec::new();
        Self { route, body: Body::Unknown, sse: Decoder::new(), held: Vec::new(), chunks: 0 }
    }

    pub fn headers(&mut self, _config: &EnvoyConfig, h: &HttpHeaders) -> Outcome {
        let parsed = match headers::from_envoy(h.headers.as_ref()) {
            Ok(p) => p,
            Err(e) => return Outcome::Fail(e.to_string()),
        };
        let Some(status) = parsed.status else { return Outcome::Fail("response headers without :status".into()) };
        if !(200..300).contains(&status) {
            let answer = self.route.reply.failed(status);
            return Outcome::Last(messages::immediate(&answer, "mcpgate_backend_failed"));
        }
        let mut changes = HeaderChanges::default();
        if parsed.headers.contains_key("mcp-session-id") {
            match self.route.reply.session_id() {
                Some(id) => changes.set("mcp-session-id", id.as_bytes()),
                None => changes.remove("mcp-session-id"),
            }
        }
        let content_type = parsed.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        self.body = if content_type.starts_with("text/event-stream") {
            Body::Sse
        } else if self.route.reply.rewrites_json() {
            Body::Held
        } else {
            Body::Plain
        };
        if self.body != Body::Plain && parsed.headers.contains_key(http::header::CONTENT_LENGTH) {
            changes.remove("content-length");
        }
        Outcome::Continue(messages::headers(Side::Response, changes, false, None))
    }

    pub fn body(&mut self, config: &EnvoyConfig, b: &HttpBody) -> Outcome {
        self.chunks += 1;
        if self.chunks > config.max_body_chunks.saturating_mul(64) {
            return Outcome::Fail("the backend's answer came in too many chunks".into());
        }
        let change = match self.body {
            Body::Unknown | Body::Plain => BodyChange::Keep,
            Body::Sse => match self.events(&b.body, config.max_response_body_bytes) {
                Ok(out) => BodyChange::Replace(out),
                Err(why) => return Outcome::Fail(why),
            },
            Body::Held => {
                if self.held.len() + b.body.len() > config.max_response_body_bytes {
                    return Outcome::Fail(format!("the backend's answer is larger than envoy.max_response_body_bytes ({})", config.max_response_body_bytes));
                }
                self.held.extend_from_slice(&b.body);
                if b.end_of_stream { BodyChange::Replace(self.route.reply.json(&self.held)) } else { BodyChange::Clear }
            }
        };
        Outcome::Continue(messages::body(Side::Response, HeaderChanges::default(), change, false))
    }

    /// The complete events of this chunk, translated; the rest waits for the next chunk.
    fn events(&mut self, chunk: &[u8], max: usize) -> Result<Vec<u8>, String> {
        self.sse.push(chunk);
        let mut out = Vec::new();
        loop {
            match self.sse.next_event() {
                Ok(Some(event)) => {
                    if let Some(msg) = self.route.reply.message(event.data.as_bytes()) {
                        out.extend_from_slice(&encode_message(&msg));
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        if out.len() > max {
            return Err(format!("an event is larger than envoy.max_response_body_bytes ({max})"));
        }
        Ok(out)
    }
}
