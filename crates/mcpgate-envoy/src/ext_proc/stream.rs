//! One ext_proc stream = one HTTP request through Envoy, in phases: request headers
//! (identity, or the 401 at once), request body (whole, then the router's plan: an immediate
//! answer, or routing headers plus the rewritten body), response headers and body (see
//! `response`). Every message gets exactly one answer; anything out of order or unknown is a
//! failure, answered by `envoy.failure_mode`.

use std::sync::Arc;

use bytes::Bytes;
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::BodySendMode;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_request::Request;
use envoy_types::pb::envoy::service::ext_proc::v3::{HttpBody, HttpHeaders, ProcessingRequest, ProcessingResponse};
use http::{Method, StatusCode};

use super::Inner;
use super::messages::{self, BodyChange, HeaderChanges, Kind, Side};
use super::response::Routed;
use crate::gateway::{self, Access, Answer, EnvoyConfig, FailureMode, Plan, Route};
use crate::headers::{self, Parsed};

/// What the body, once whole, is for.
enum Intent {
    /// A POST to the MCP endpoint: the router decides.
    Plan(Access),
    /// Anything else with a body: the front door answers.
    FrontDoor,
}

enum Phase {
    RequestHeaders,
    RequestBody(Intent),
    Response(Box<Routed>),
    /// `failure_mode: open` gave up on this request: every further message just continues.
    Passthrough,
    Done,
}

pub struct Stream {
    inner: Arc<Inner>,
    config: EnvoyConfig,
    phase: Phase,
    request: Parsed,
    /// Envoy's request body mode, from the stream's first message.
    body_mode: Option<i32>,
    body: Vec<u8>,
    chunks: usize,
    /// Chunks arrived before the end: Envoy routed on the client's headers already.
    streamed: bool,
}

/// The answer to one message, and whether the stream is over for us.
pub struct Step {
    pub response: Option<ProcessingResponse>,
    pub done: bool,
}

impl Step {
    fn reply(r: ProcessingResponse) -> Self {
        Self { response: Some(r), done: false }
    }

    fn last(r: ProcessingResponse) -> Self {
        Self { response: Some(r), done: true }
    }
}

impl Stream {
    pub fn new(inner: Arc<Inner>, config: EnvoyConfig) -> Self {
        Self { inner, config, phase: Phase::RequestHeaders, request: Parsed::default(), body_mode: None, body: Vec::new(), chunks: 0, streamed: false }
    }

    pub async fn on(&mut self, msg: ProcessingRequest) -> Step {
        if let Some(p) = msg.protocol_config {
            self.body_mode = Some(p.request_body_mode);
        }
        if msg.observability_mode {
            // Envoy does not wait for the answers in this mode: nothing the router decides
            // (a refusal, a route, the token removed) would be applied.
            let kind = msg.request.as_ref().map(Kind::of);
            return self.fail(kind, "observability_mode is not supported: the router must be able to refuse and route");
        }
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        match (phase, msg.request) {
            (Phase::Passthrough, Some(r)) => {
                self.phase = Phase::Passthrough;
                Step::reply(messages::continue_for(Kind::of(&r), HeaderChanges::default()))
            }
            (Phase::RequestHeaders, Some(Request::RequestHeaders(h))) => self.request_headers(h).await,
            (Phase::RequestBody(intent), Some(Request::RequestBody(b))) => self.request_body(intent, b).await,
            (Phase::Response(routed), Some(Request::ResponseHeaders(h))) => self.respond(routed, Kind::ResponseHeaders, |r, s| r.headers(s, &h)),
            (Phase::Response(routed), Some(Request::ResponseBody(b))) => self.respond(routed, Kind::ResponseBody, |r, s| r.body(s, &b)),
            (phase, Some(Request::RequestTrailers(_))) => {
                self.phase = phase;
                Step::reply(messages::trailers(Side::Request))
            }
            (phase, Some(Request::ResponseTrailers(_))) => {
                self.phase = phase;
                Step::reply(messages::trailers(Side::Response))
            }
            (_, None) => self.fail(None, "a message of a kind this service does not know (newer Envoy?)"),
            (_, Some(other)) => {
                let kind = Kind::of(&other);
                self.fail(Some(kind), &format!("{} arrived out of order", kind.name()))
            }
        }
    }

    async fn request_headers(&mut self, h: HttpHeaders) -> Step {
        self.request = match headers::from_envoy(h.headers.as_ref()) {
            Ok(p) => p,
            Err(e) => return self.fail(Some(Kind::RequestHeaders), &e.to_string()),
        };
        let (Some(method), Some(path)) = (self.request.method.clone(), self.request.path.clone()) else {
            return self.fail(Some(Kind::RequestHeaders), "request headers without :method or :path");
        };
        if matches!(self.body_mode, Some(m) if m >= BodySendMode::FullDuplexStreamed as i32) {
            return self.fail(Some(Kind::RequestHeaders), "request_body_mode is not supported: use BUFFERED (or STREAMED)");
        }
        let shared = &self.inner.shared;
        // With `expose_full_catalog: false` the main path is not routed here: the front door
        // answers it (404), as it does without Envoy. Virtual servers' paths always go there.
        let on_mcp = path.split('?').next() == Some(gateway::gateway_config(shared).mcp_path.as_str()) && shared.governance.load().expose_full_catalog;
        if on_mcp && method == Method::GET {
            // Envoy cannot merge backends' server-to-client streams; the spec allows 405.
            let body =
                mcpgate_protocol::RpcError::new(mcpgate_protocol::ErrorCode::InvalidRequest, "Method Not Allowed: no GET stream through Envoy; use POST")
                    .response(None);
            let mut answer = Answer::json(StatusCode::METHOD_NOT_ALLOWED, body);
            answer.headers.push((http::header::ALLOW, http::HeaderValue::from_static("POST, DELETE")));
            return Step::last(messages::immediate(&answer, "mcpgate_no_get_stream"));
        }
        let intent = if on_mcp && method == Method::POST {
            match gateway::admit(shared, &self.request.headers).await {
                Ok(access) => Intent::Plan(access),
                Err(answer) => return Step::last(messages::immediate(&answer, "mcpgate_unauthenticated")),
            }
        } else {
            Intent::FrontDoor
        };
        if h.end_of_stream {
            return self.front_door(Bytes::new()).await;
        }
        let mut changes = HeaderChanges::default();
        let mut mode_override = None;
        if self.body_mode == Some(BodySendMode::Streamed as i32) {
            // The headers go on before the body is seen: ask for it buffered (honoured with
            // the filter's allow_mode_override), and let nothing of the caller's pass meanwhile.
            mode_override = Some(ProcessingMode { request_body_mode: BodySendMode::Buffered as i32, ..Default::default() });
            if self.config.ext_proc.credentials {
                self.strip(&mut changes);
            }
        }
        self.phase = Phase::RequestBody(intent);
        Step::reply(messages::headers(Side::Request, changes, false, mode_override))
    }

    async fn request_body(&mut self, intent: Intent, b: HttpBody) -> Step {
        self.chunks += 1;
        let max = self.config.max_body(&gateway::gateway_config(&self.inner.shared));
        if self.body.len() + b.body.len() > max || self.chunks > self.config.max_body_chunks {
            return Step::last(messages::immediate(&gateway::too_large(max), "mcpgate_body_too_large"));
        }
        self.body.extend_from_slice(&b.body);
        if !b.end_of_stream {
            if self.body_mode == Some(BodySendMode::BufferedPartial as i32) {
                // Envoy's buffer filled before the body ended: the rest would pass unseen.
                return Step::last(messages::immediate(&gateway::too_large(self.body.len()), "mcpgate_body_too_large"));
            }
            // Streamed: hold every chunk back until the body is whole.
            self.streamed = true;
            self.phase = Phase::RequestBody(intent);
            return Step::reply(messages::body(Side::Request, HeaderChanges::default(), BodyChange::Clear, false));
        }
        let body = Bytes::from(std::mem::take(&mut self.body));
        let access = match intent {
            Intent::Plan(access) if !self.streamed => access,
            // Envoy has already routed a streamed body on the client's own headers, so the
            // router cannot route it: the gateway answers it itself.
            _ => return self.front_door(body).await,
        };
        let shared = self.inner.shared.clone();
        match gateway::plan(&shared, &self.inner.in_flight, &self.request.headers, &access, &body).await {
            Plan::FrontDoor => self.front_door(body).await,
            Plan::Answer(answer) => Step::last(messages::immediate(&answer, "mcpgate_answered")),
            Plan::Route(route) => self.route(*route),
        }
    }

    /// The routing headers and the rewritten body of a call Envoy forwards.
    fn route(&mut self, route: Route) -> Step {
        let h = &self.config.headers;
        let mut changes = HeaderChanges::default();
        self.strip(&mut changes);
        for name in &route.remove {
            changes.remove(name.as_str());
        }
        // A client's answer to a backend's request has no method.
        if route.method.is_empty() {
            changes.remove(&h.method);
        } else {
            changes.set(&h.method, route.method.as_bytes());
        }
        changes.set(&h.server, route.server.as_bytes());
        match &route.tool {
            Some(tool) => changes.set(&h.tool, tool.as_bytes()),
            None => changes.remove(&h.tool),
        }
        changes.set(&h.route, route.route_value.as_bytes());
        changes.set(":path", route.path.as_bytes());
        for (name, value) in &route.set {
            changes.set(name.as_str(), value.as_bytes());
        }
        changes.set("content-length", route.body.len().to_string().as_bytes());
        let response = messages::body(Side::Request, changes, BodyChange::Replace(route.body.clone()), true);
        self.phase = Phase::Response(Box::new(Routed::new(route, &self.config)));
        Step::reply(response)
    }

    /// Removes what a client must never pass on: internal headers, and (unless an ext_authz
    /// after the router needs it) its own token.
    fn strip(&self, changes: &mut HeaderChanges) {
        for name in gateway::internal_headers(&self.inner.shared) {
            if self.request.headers.contains_key(name.as_str()) {
                changes.remove(&name);
            }
        }
        if self.config.ext_proc.credentials && self.request.headers.contains_key(http::header::AUTHORIZATION) {
            changes.remove("authorization");
        }
    }

    async fn front_door(&mut self, body: Bytes) -> Step {
        let method = self.request.method.clone().unwrap_or(Method::POST);
        let path = self.request.path.clone().unwrap_or_else(|| "/".into());
        let answer = self.inner.front.answer(&self.inner.shared, &method, &path, &self.request.headers, body).await;
        Step::last(messages::immediate(&answer, "mcpgate_answered"))
    }

    fn respond(&mut self, mut routed: Box<Routed>, kind: Kind, f: impl FnOnce(&mut Routed, &EnvoyConfig) -> super::response::Outcome) -> Step {
        match f(&mut routed, &self.config) {
            super::response::Outcome::Continue(r) => {
                self.phase = Phase::Response(routed);
                Step::reply(r)
            }
            super::response::Outcome::Last(r) => Step::last(r),
            super::response::Outcome::Fail(why) => self.fail(Some(kind), &why),
        }
    }

    /// The service could not decide. Closed: the client gets an error and nothing passes.
    /// Open: the request goes on unprocessed, without the caller's token or internal headers.
    fn fail(&mut self, at: Option<Kind>, why: &str) -> Step {
        tracing::warn!(target: "mcpgate::envoy", "ext_proc: {why}");
        self.phase = Phase::Done;
        match (self.config.failure_mode, at) {
            (FailureMode::Open, Some(kind)) => {
                let mut changes = HeaderChanges::default();
                if kind.side() == Side::Request {
                    self.strip(&mut changes);
                    changes.remove("authorization");
                }
                self.phase = Phase::Passthrough;
                Step::reply(messages::continue_for(kind, changes))
            }
            // Nothing can be continued (an unknown message): end the stream; Envoy's own
            // failure_mode_allow decides.
            (FailureMode::Open, None) => Step { response: None, done: true },
            (FailureMode::Closed, _) => {
                let answer = Answer::service_error(StatusCode::INTERNAL_SERVER_ERROR, format!("mcpgate ext_proc: {why}"));
                Step::last(messages::immediate(&answer, "mcpgate_ext_proc_failure"))
            }
        }
    }
}
