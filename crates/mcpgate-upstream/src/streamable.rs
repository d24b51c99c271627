//! Streamable HTTP (legacy era): POST per message, JSON or SSE responses, `Mcp-Session-Id`.

use std::sync::Mutex;

use bytes::Bytes;
use futures::StreamExt;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use mcpgate_protocol::sse;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::error::{InvalidResponse, UpstreamError, content_type_of, content_type_starts, shown_content_type};
use crate::exchange::{ByteStream, Exchange};
use crate::h1::{self, Answer};

pub(crate) const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
pub(crate) const VERSION_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");
const ACCEPT_BOTH: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

pub(crate) struct HttpLink {
    client: reqwest::Client,
    url: url::Url,
    /// Plain-HTTP backends: the in-task client (see `h1`), and the request target.
    fast: Option<(std::sync::Arc<h1::Pool>, String)>,
    /// Headers sent on every request: the creator's, plus session id and version once known.
    headers: HeaderMap,
    has_session: bool,
    events: mpsc::Sender<Bytes>,
    get_task: Mutex<Option<AbortHandle>>,
}

impl HttpLink {
    /// POSTs `initialize` and returns the link with the backend's session id, plus the response.
    pub(crate) async fn connect(
        client: reqwest::Client,
        url: url::Url,
        mut headers: HeaderMap,
        init: Vec<u8>,
        events: mpsc::Sender<Bytes>,
    ) -> Result<(Self, Vec<u8>), UpstreamError> {
        headers.insert(ACCEPT, ACCEPT_BOTH);
        headers.insert(CONTENT_TYPE, JSON);
        let fast = h1::pool_for(&url).map(|p| (p, h1::target_of(&url)));
        let mut link = Self { client, url, fast, headers, has_session: false, events, get_task: Mutex::new(None) };
        let resp = link.post(init).await?;
        if let Some(sid) = resp.headers().get(SESSION_HEADER).cloned() {
            link.headers.insert(SESSION_HEADER, sid);
            link.has_session = true;
        }
        let response = link.exchange(0, resp).await?.response().await?;
        Ok((link, response.to_vec()))
    }

    /// A link on a session someone else initialised (another gateway replica): the backend
    /// knows it by `session_id`; nothing is sent until the first request.
    pub(crate) fn attach(
        client: reqwest::Client,
        url: url::Url,
        mut headers: HeaderMap,
        session_id: &str,
        events: mpsc::Sender<Bytes>,
    ) -> Result<Self, UpstreamError> {
        headers.insert(ACCEPT, ACCEPT_BOTH);
        headers.insert(CONTENT_TYPE, JSON);
        let sid = HeaderValue::from_str(session_id).map_err(|_| UpstreamError::Protocol("a stored backend session id is not a valid header value".into()))?;
        headers.insert(SESSION_HEADER, sid);
        let fast = h1::pool_for(&url).map(|p| (p, h1::target_of(&url)));
        Ok(Self { client, url, fast, headers, has_session: true, events, get_task: Mutex::new(None) })
    }

    /// The backend's id for this session (`Mcp-Session-Id`), when it gave one.
    pub(crate) fn session_id(&self) -> Option<&str> {
        self.headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn set_protocol_version(&mut self, version: &str) {
        if let Ok(v) = HeaderValue::from_str(version) {
            self.headers.insert(VERSION_HEADER, v);
        }
    }

    async fn post(&self, body: Vec<u8>) -> Result<Answer, UpstreamError> {
        self.post_with(body, None).await
    }

    /// POSTs `body` with the link's headers plus `extra` (a request's trace context).
    async fn post_with(&self, body: Vec<u8>, extra: Option<&HeaderMap>) -> Result<Answer, UpstreamError> {
        let mut headers = self.headers.clone();
        if let Some(extra) = extra {
            for (k, v) in extra {
                headers.insert(k, v.clone());
            }
        }
        let answer = match &self.fast {
            Some((pool, target)) => pool.post(target, headers, body).await?,
            None => {
                let resp = self.client.post(self.url.clone()).headers(headers).body(body).send().await.map_err(|e| UpstreamError::from_reqwest(&e))?;
                answer_of(resp).await?
            }
        };
        match answer.status() {
            s if s.is_success() => Ok(answer),
            StatusCode::NOT_FOUND if self.has_session => Err(UpstreamError::SessionExpired),
            s => Err(UpstreamError::Status { status: s.as_u16() }),
        }
    }

    async fn exchange(&self, id: u64, answer: Answer) -> Result<Exchange, UpstreamError> {
        match answer {
            Answer::Streaming { body, .. } => Ok(Exchange::sse(id, body)),
            Answer::Full { status, headers, body } => {
                if content_type_starts(&headers, "application/json") {
                    Ok(Exchange::single(id, body))
                } else if status == StatusCode::ACCEPTED {
                    Err(UpstreamError::Invalid(InvalidResponse::AcceptedWithoutAnswer))
                } else {
                    Err(UpstreamError::Invalid(InvalidResponse::ContentType(shown_content_type(&content_type_of(&headers)))))
                }
            }
        }
    }

    pub(crate) async fn request(&self, id: u64, body: Vec<u8>, extra: Option<&HeaderMap>) -> Result<Exchange, UpstreamError> {
        let resp = self.post_with(body, extra).await?;
        self.exchange(id, resp).await
    }

    /// POSTs a notification or response; the backend answers 202 (or 200) with no message.
    pub(crate) async fn post_no_reply(&self, body: Vec<u8>) -> Result<(), UpstreamError> {
        self.post(body).await.map(drop)
    }

    /// Opens the GET stream for messages outside any request (once). The returned receiver
    /// resolves when the backend has answered the GET (stream open, or refused with 405).
    pub(crate) fn open_event_stream(&self) -> tokio::sync::oneshot::Receiver<()> {
        let (answered, rx) = tokio::sync::oneshot::channel();
        let mut slot = self.get_task.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            let _ = answered.send(());
            return rx;
        }
        let req = self.client.get(self.url.clone()).headers(self.headers.clone()).header(ACCEPT, "text/event-stream");
        let events = self.events.clone();
        let task = tokio::spawn(async move {
            let resp = req.send().await;
            let _ = answered.send(());
            let Ok(resp) = resp else { return };
            let is_sse = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/event-stream"));
            if !resp.status().is_success() || !is_sse {
                return; // 405: the backend has no GET stream
            }
            let mut body = resp.bytes_stream();
            let mut decoder = sse::Decoder::new();
            while let Some(Ok(chunk)) = body.next().await {
                decoder.push(&chunk);
                while let Ok(Some(ev)) = decoder.next_event() {
                    // Waits while the queue is full: the backend's stream is slowed, not buffered.
                    if !ev.data.trim().is_empty() && events.send(Bytes::from(ev.data)).await.is_err() {
                        return;
                    }
                }
            }
        });
        *slot = Some(task.abort_handle());
        rx
    }

    pub(crate) async fn close(&self) {
        if let Some(t) = self.get_task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            t.abort();
        }
        if self.has_session {
            let _ = self.client.delete(self.url.clone()).headers(self.headers.clone()).send().await;
        }
    }
}

impl Drop for HttpLink {
    fn drop(&mut self) {
        if let Some(t) = self.get_task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            t.abort();
        }
    }
}

impl Answer {
    fn status(&self) -> StatusCode {
        match self {
            Answer::Full { status, .. } => *status,
            Answer::Streaming { .. } => StatusCode::OK,
        }
    }

    pub(crate) fn headers(&self) -> &HeaderMap {
        match self {
            Answer::Full { headers, .. } | Answer::Streaming { headers, .. } => headers,
        }
    }
}

/// A reqwest response as an [`Answer`]: an SSE body left streaming, anything else read.
pub(crate) async fn answer_of(resp: reqwest::Response) -> Result<Answer, UpstreamError> {
    let status = resp.status();
    let headers = resp.headers().clone();
    let is_sse = content_type_starts(&headers, "text/event-stream");
    if is_sse && status.is_success() {
        return Ok(Answer::Streaming { headers, body: byte_stream(resp) });
    }
    let body = resp.bytes().await.map_err(|e| UpstreamError::from_reqwest(&e))?;
    Ok(Answer::Full { status, headers, body })
}

/// A reqwest body as the byte stream an SSE [`Exchange`] reads.
pub(crate) fn byte_stream(resp: reqwest::Response) -> ByteStream {
    Box::pin(resp.bytes_stream().map(|r| r.map_err(|e| UpstreamError::from_reqwest(&e))))
}
