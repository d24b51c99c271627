//! The services as Envoy's tonic clients see them, in process: a gateway with no backends
//! and no auth, the gRPC services on a free port. The full behaviour (routing, credentials,
//! the seed story) is tested against the real binary in tests/integration/test_envoy_*.py.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, attribute_context};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_request::Request;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_response::Response;
use envoy_types::pb::envoy::service::ext_proc::v3::{HttpBody, HttpHeaders, ProcessingRequest, ProcessingResponse};
use mcpgate_gateway::Shared;

const SECRET: &str = "a-long-enough-test-secret";

async fn start(extra: &str) -> std::net::SocketAddr {
    let yaml = format!("servers: []\nenvoy:\n  grpc_listen: 127.0.0.1:0\n{extra}");
    let config = mcpgate_gateway::config::parse_str(&yaml, &|_| None).expect("config");
    let shared = Shared::start(config, None).expect("shared");
    mcpgate_envoy::start(shared).await.expect("listen").expect("envoy section").grpc
}

fn headers(pairs: &[(&str, &str)]) -> Option<HeaderMap> {
    Some(HeaderMap { headers: pairs.iter().map(|(k, v)| HeaderValue { key: (*k).into(), value: String::new(), raw_value: v.as_bytes().to_vec() }).collect() })
}

async fn exchange(addr: std::net::SocketAddr, messages: Vec<ProcessingRequest>) -> Vec<ProcessingResponse> {
    let mut client = ExternalProcessorClient::connect(format!("http://{addr}")).await.expect("connect");
    let n = messages.len();
    let mut inbound = client.process(futures::stream::iter(messages)).await.expect("process").into_inner();
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(10), inbound.message()).await.expect("an answer in time") {
            Ok(Some(m)) => out.push(m),
            _ => break,
        }
    }
    out
}

fn immediate(r: &ProcessingResponse) -> (i32, Vec<u8>) {
    match &r.response {
        Some(Response::ImmediateResponse(i)) => (i.status.as_ref().map_or(0, |s| s.code), i.body.clone()),
        other => panic!("expected an immediate response, got {other:?}"),
    }
}

#[tokio::test]
async fn initialize_through_ext_proc_is_answered_with_a_gateway_session() {
    let addr = start("").await;
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let hdrs = headers(&[
        (":method", "POST"),
        (":path", "/mcp"),
        (":authority", "mcp.local"),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ]);
    let answers = exchange(
        addr,
        vec![
            ProcessingRequest {
                request: Some(Request::RequestHeaders(HttpHeaders { headers: hdrs, end_of_stream: false, ..Default::default() })),
                ..Default::default()
            },
            ProcessingRequest {
                request: Some(Request::RequestBody(HttpBody { body: body.to_vec(), end_of_stream: true, ..Default::default() })),
                ..Default::default()
            },
        ],
    )
    .await;
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert!(matches!(answers[0].response, Some(Response::RequestHeaders(_))));
    let (status, body) = immediate(&answers[1]);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["result"]["serverInfo"]["name"], "mcpgate");
    let Some(Response::ImmediateResponse(i)) = &answers[1].response else { unreachable!() };
    let session = i.headers.as_ref().and_then(|m| m.set_headers.iter().find(|h| h.header.as_ref().is_some_and(|h| h.key == "mcp-session-id")));
    assert!(session.is_some(), "the gateway's session id is in the immediate response");
}

#[tokio::test]
async fn a_get_stream_is_refused_with_405() {
    let addr = start("").await;
    let hdrs = headers(&[(":method", "GET"), (":path", "/mcp"), (":authority", "mcp.local"), ("accept", "text/event-stream")]);
    let answers = exchange(
        addr,
        vec![ProcessingRequest {
            request: Some(Request::RequestHeaders(HttpHeaders { headers: hdrs, end_of_stream: true, ..Default::default() })),
            ..Default::default()
        }],
    )
    .await;
    assert_eq!(immediate(&answers[0]).0, 405);
}

#[tokio::test]
async fn an_empty_message_fails_closed() {
    let addr = start("").await;
    let answers = exchange(addr, vec![ProcessingRequest::default()]).await;
    let (status, body) = immediate(&answers[0]);
    assert_eq!(status, 500);
    assert!(String::from_utf8_lossy(&body).contains("does not know"), "{}", String::from_utf8_lossy(&body));
}

fn check_request() -> CheckRequest {
    let http = attribute_context::HttpRequest {
        method: "GET".into(),
        path: "/.well-known/oauth-protected-resource".into(),
        host: "mcp.local".into(),
        ..Default::default()
    };
    CheckRequest {
        attributes: Some(AttributeContext { request: Some(attribute_context::Request { http: Some(http), ..Default::default() }), ..Default::default() }),
    }
}

#[tokio::test]
async fn ext_authz_allows_the_public_metadata_path() {
    let addr = start("").await;
    let mut client = AuthorizationClient::connect(format!("http://{addr}")).await.expect("connect");
    let r = client.check(check_request()).await.expect("check").into_inner();
    assert_eq!(r.status.expect("status").code, 0);
    assert!(matches!(r.http_response, Some(HttpResponse::OkResponse(_))));
}

#[tokio::test]
async fn without_the_shared_secret_nothing_is_answered() {
    let addr = start(&format!("  shared_secret: {SECRET}\n")).await;
    let mut client = AuthorizationClient::connect(format!("http://{addr}")).await.expect("connect");
    let err = client.check(check_request()).await.expect_err("refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let mut req = tonic::Request::new(check_request());
    req.metadata_mut().insert(mcpgate_envoy::SECRET_HEADER, SECRET.parse().expect("ascii"));
    assert_eq!(client.check(req).await.expect("allowed").into_inner().status.expect("status").code, 0);
}
