//! The `ProcessingResponse` messages the router answers with, built in one place: continue a
//! phase (with header and body mutations), an immediate response, a trailers answer.

use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;
use envoy_types::pb::envoy::service::ext_proc::v3::body_mutation::Mutation;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_request::Request;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_response::Response;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    BodyMutation, BodyResponse, CommonResponse, HeaderMutation, HeadersResponse, ImmediateResponse, ProcessingResponse, TrailersResponse,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;

use crate::gateway::Answer;
use crate::headers::set_raw;

/// Which direction a phase belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

/// The six phases a message can belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    RequestHeaders,
    RequestBody,
    RequestTrailers,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
}

impl Kind {
    pub fn of(r: &Request) -> Self {
        match r {
            Request::RequestHeaders(_) => Kind::RequestHeaders,
            Request::RequestBody(_) => Kind::RequestBody,
            Request::RequestTrailers(_) => Kind::RequestTrailers,
            Request::ResponseHeaders(_) => Kind::ResponseHeaders,
            Request::ResponseBody(_) => Kind::ResponseBody,
            Request::ResponseTrailers(_) => Kind::ResponseTrailers,
        }
    }

    pub fn side(self) -> Side {
        match self {
            Kind::RequestHeaders | Kind::RequestBody | Kind::RequestTrailers => Side::Request,
            _ => Side::Response,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::RequestHeaders => "request_headers",
            Kind::RequestBody => "request_body",
            Kind::RequestTrailers => "request_trailers",
            Kind::ResponseHeaders => "response_headers",
            Kind::ResponseBody => "response_body",
            Kind::ResponseTrailers => "response_trailers",
        }
    }
}

/// The answer that lets the phase of `kind` go on with `changes`.
pub fn continue_for(kind: Kind, changes: HeaderChanges) -> ProcessingResponse {
    match kind {
        Kind::RequestHeaders | Kind::ResponseHeaders => headers(kind.side(), changes, false, None),
        Kind::RequestBody | Kind::ResponseBody => body(kind.side(), changes, BodyChange::Keep, false),
        Kind::RequestTrailers | Kind::ResponseTrailers => trailers(kind.side()),
    }
}

/// Header changes for one phase.
#[derive(Debug, Default)]
pub struct HeaderChanges {
    pub set: Vec<HeaderValueOption>,
    pub remove: Vec<String>,
}

impl HeaderChanges {
    pub fn set(&mut self, name: &str, value: &[u8]) {
        self.remove.retain(|r| r != name);
        self.set.retain(|o| o.header.as_ref().is_none_or(|h| h.key != name));
        self.set.push(set_raw(name, value));
    }

    pub fn remove(&mut self, name: &str) {
        if !self.set.iter().any(|o| o.header.as_ref().is_some_and(|h| h.key == name)) && !self.remove.iter().any(|r| r == name) {
            self.remove.push(name.to_owned());
        }
    }

    fn into_proto(self) -> Option<HeaderMutation> {
        (!self.set.is_empty() || !self.remove.is_empty()).then_some(HeaderMutation { set_headers: self.set, remove_headers: self.remove })
    }
}

/// What to do with the body of this phase.
#[derive(Debug)]
pub enum BodyChange {
    Keep,
    /// Replace the (chunk of the) body.
    Replace(Vec<u8>),
    /// Drop this chunk (streamed bodies held back until they are whole).
    Clear,
}

/// Continue the headers phase of `side`.
pub fn headers(side: Side, mutation: HeaderChanges, clear_route_cache: bool, mode_override: Option<ProcessingMode>) -> ProcessingResponse {
    let common = CommonResponse { header_mutation: mutation.into_proto(), clear_route_cache, ..Default::default() };
    let r = HeadersResponse { response: Some(common) };
    ProcessingResponse {
        response: Some(match side {
            Side::Request => Response::RequestHeaders(r),
            Side::Response => Response::ResponseHeaders(r),
        }),
        mode_override,
        ..Default::default()
    }
}

/// Continue the body phase of `side`.
pub fn body(side: Side, mutation: HeaderChanges, change: BodyChange, clear_route_cache: bool) -> ProcessingResponse {
    let body_mutation = match change {
        BodyChange::Keep => None,
        BodyChange::Replace(b) => Some(BodyMutation { mutation: Some(Mutation::Body(b)) }),
        BodyChange::Clear => Some(BodyMutation { mutation: Some(Mutation::ClearBody(true)) }),
    };
    let common = CommonResponse { header_mutation: mutation.into_proto(), body_mutation, clear_route_cache, ..Default::default() };
    let r = BodyResponse { response: Some(common) };
    ProcessingResponse {
        response: Some(match side {
            Side::Request => Response::RequestBody(r),
            Side::Response => Response::ResponseBody(r),
        }),
        ..Default::default()
    }
}

pub fn trailers(side: Side) -> ProcessingResponse {
    let r = TrailersResponse { header_mutation: None };
    ProcessingResponse {
        response: Some(match side {
            Side::Request => Response::RequestTrailers(r),
            Side::Response => Response::ResponseTrailers(r),
        }),
        ..Default::default()
    }
}

/// Envoy answers the client with `answer` itself; nothing reaches a backend. `details` goes
/// to Envoy's access log (`%RESPONSE_CODE_DETAILS%`).
pub fn immediate(answer: &Answer, details: &str) -> ProcessingResponse {
    let mut headers = HeaderChanges::default();
    for (name, value) in &answer.headers {
        headers.set(name.as_str(), value.as_bytes());
    }
    let r = ImmediateResponse {
        status: Some(HttpStatus { code: i32::from(answer.status.as_u16()) }),
        headers: headers.into_proto(),
        body: answer.body.to_vec(),
        grpc_status: None,
        details: details.to_owned(),
    };
    ProcessingResponse { response: Some(Response::ImmediateResponse(r)), ..Default::default() }
}
