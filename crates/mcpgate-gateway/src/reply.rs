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
