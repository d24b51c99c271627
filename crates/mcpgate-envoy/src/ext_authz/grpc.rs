//! `envoy.service.auth.v3.Authorization/Check`: Envoy's `CheckRequest` in, a `CheckResponse`
//! out. The request's headers come from `header_map` (`encode_raw_headers`) or `headers`;
//! its body from `raw_body` (`pack_as_bytes`) or `body`.

use std::sync::Arc;

use envoy_types::pb::envoy::service::auth::v3::authorization_server::Authorization;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::rpc;
use tonic::{Request, Response, Status};

use super::{Check, Verdict, check};
use crate::gateway::Shared;
use crate::headers::{self, set_text};

pub use envoy_types::pb::envoy::service::auth::v3::authorization_server::AuthorizationServer;

/// gRPC status codes of a `CheckResponse`.
const OK: i32 = 0;
const PERMISSION_DENIED: i32 = 7;
const UNAUTHENTICATED: i32 = 16;

pub struct ExtAuthz {
    shared: Arc<Shared>,
}

impl ExtAuthz {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthz {
    async fn check(&self, request: Request<CheckRequest>) -> Result<Response<CheckResponse>, Status> {
        let req = request.into_inner();
        let Some(http) = req.attributes.and_then(|a| a.request).and_then(|r| r.http) else {
            return Err(Status::invalid_argument("CheckRequest without attributes.request.http"));
        };
        let parsed = if let Some(map) = http.header_map.as_ref().filter(|m| !m.headers.is_empty()) {
            headers::from_envoy(Some(map))
        } else {
            headers::from_pairs(http.headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())))
        };
        let mut parsed = match parsed {
            Ok(p) => p,
            Err(e) => return Err(Status::invalid_argument(e.to_string())),
        };
        if !http.host.is_empty()
            && !parsed.headers.contains_key(::http::header::HOST)
            && let Ok(v) = ::http::HeaderValue::from_str(&http.host)
        {
            parsed.headers.insert(::http::header::HOST, v);
        }
        let method = ::http::Method::from_bytes(http.method.as_bytes()).ok().or(parsed.method).unwrap_or(::http::Method::POST);
        let body = if !http.raw_body.is_empty() {
            Some(http.raw_body)
        } else if !http.body.is_empty() {
            Some(http.body.into_bytes())
        } else {
            None
        };
        let path = if http.path.is_empty() { parsed.path.unwrap_or_default() } else { http.path };
        let verdict = check(&self.shared, Check { method, path, headers: parsed.headers, body, partial: false }).await;
        Ok(Response::new(answer(verdict)))
    }
}

fn answer(v: Verdict) -> CheckResponse {
    match v {
        Verdict::Allow { set, remove } => CheckResponse {
            status: Some(rpc::Status { code: OK, ..Default::default() }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: set.iter().map(|(n, v)| set_text(n.as_str(), v.to_str().unwrap_or_default())).collect(),
                headers_to_remove: remove,
                ..Default::default()
            })),
            ..Default::default()
        },
        Verdict::Deny(answer) => {
            let code = if answer.status == ::http::StatusCode::UNAUTHORIZED { UNAUTHENTICATED } else { PERMISSION_DENIED };
            CheckResponse {
                status: Some(rpc::Status { code, ..Default::default() }),
                http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                    status: Some(HttpStatus { code: i32::from(answer.status.as_u16()) }),
                    headers: answer.headers.iter().map(|(n, v)| set_text(n.as_str(), v.to_str().unwrap_or_default())).collect(),
                    body: String::from_utf8_lossy(&answer.body).into_owned(),
                })),
                ..Default::default()
            }
        }
    }
}
