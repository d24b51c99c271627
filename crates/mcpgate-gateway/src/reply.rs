//! What handling a message produces, before it becomes an HTTP response.

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::reject::Reject;

pub enum Reply {
    /// 200 with one JSON-RPC message.
    Json(Vec<u8>),
    /// 200 with an SSE stream of JSON-RPC messages (the last one is the response).
    Stream(BoxStream<'static, Bytes>),
    /// 202: a notification or response was taken.
    Accepted,
    Rejected(Reject),
}

/// A JSON answer, built directly (every call's answer is one).
pub fn json_response(status: axum::http::StatusCode, body: Vec<u8>) -> axum::response::Response {
    use axum::http::header::{CONTENT_TYPE, HeaderValue};
    let mut resp = axum::response::Response::new(axum::body::Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The headers of every SSE answer: no caching, and no buffering by proxies in between.
pub fn sse_response(body: axum::body::Body) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::OK,
        [
            (axum::http::header::CONTENT_TYPE, "text/event-stream"),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
            (axum::http::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response()
}
