//! One request's traffic from a backend: related messages, then the response.

use std::ops::Range;
use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use mcpgate_protocol::envelope::{Envelope, Kind};
use mcpgate_protocol::sse;
use tokio::sync::mpsc;

use crate::error::{InvalidResponse, UpstreamError};
use crate::mux::PendingGuard;

/// A message from the backend about one request. `is_final` marks the response itself.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub bytes: Bytes,
    pub is_final: bool,
    /// For the response: where its `id` value sits in `bytes` (it was parsed to be recognised,
    /// so whoever restores the client's id need not parse it again).
    pub id_at: Option<Range<usize>>,
}

impl Inbound {
    /// A message that is not the response (a notification or a server request).
    pub fn related(bytes: Bytes) -> Self {
        Self { bytes, is_final: false, id_at: None }
    }
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
    Channel { rx: mpsc::Receiver<Bytes>, _guard: PendingGuard, done: bool },
}

impl Exchange {
    pub(crate) fn single(id: u64, body: Bytes) -> Self {
        Self { id, state: State::Single(Some(body)) }
    }

    pub(crate) fn sse(id: u64, body: ByteStream) -> Self {
        Self { id, state: State::Sse { body, decoder: sse::Decoder::new(), done: false } }
    }

    pub(crate) fn channel(id: u64, rx: mpsc::Receiver<Bytes>, guard: PendingGuard) -> Self {
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
                Some(bytes) => match single_response(&bytes, id) {
                    Ok(at) => Ok(Some(Inbound { bytes, is_final: true, id_at: Some(at) })),
                    Err(why) => Err(UpstreamError::Invalid(why)),
                },
            },
            State::Sse { body, decoder, done } => {
                if *done {
                    return Ok(None);
                }
                loop {
                    match decoder.next_event() {
                        Err(_) => return Err(UpstreamError::Invalid(InvalidResponse::LineTooLong)),
                        Ok(Some(ev)) => {
                            if ev.data.trim().is_empty() {
                                continue; // priming event for resumability
                            }
                            let bytes = Bytes::from(ev.data);
                            let id_at = response_to(&bytes, id);
                            *done = id_at.is_some();
                            return Ok(Some(Inbound { bytes, is_final: *done, id_at }));
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
                let id_at = response_to(&bytes, id);
                *done = id_at.is_some();
                Ok(Some(Inbound { bytes, is_final: *done, id_at }))
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

/// Whether a JSON body is exactly one JSON-RPC response to request `id` (and if so, where its
/// id sits), and if not, what it is instead. Strict: a body holding the response plus anything
/// else is refused, not mined for the response (docs/protocol.md, "Backend answers", says why).
pub(crate) fn single_response(bytes: &[u8], id: u64) -> Result<Range<usize>, InvalidResponse> {
    if let Ok(env) = Envelope::parse(bytes) {
        return match env.kind() {
            Some(Kind::Response) => id_span(bytes, &env, id).ok_or(InvalidResponse::WrongId),
            _ => Err(InvalidResponse::NotAResponse),
        };
    }
    // Not one object: say what it is (only on this failure path; the answer above is parsed once).
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<serde::de::IgnoredAny>();
    let mut count = 0;
    loop {
        match values.next() {
            None => break,
            Some(Ok(_)) => count += 1,
            Some(Err(_)) => return Err(InvalidResponse::NotJson),
        }
    }
    match count {
        0 => Err(InvalidResponse::NotJson),
        1 => Err(InvalidResponse::NotAnObject),
        n => Err(InvalidResponse::SeveralMessages(n)),
    }
}

/// Where the id sits when `bytes` is a response to request `id`.
pub(crate) fn response_to(bytes: &[u8], id: u64) -> Option<Range<usize>> {
    let env = Envelope::parse(bytes).ok()?;
    (env.kind() == Some(Kind::Response)).then(|| id_span(bytes, &env, id))?
}

/// The span of the response's id in `bytes` when it is the integer `id`. (A valid JSON
/// integer has no leading zeros or sign, so it is `id` exactly when it reads as `id`.)
fn id_span(bytes: &[u8], env: &Envelope<'_>, id: u64) -> Option<Range<usize>> {
    let raw = env.id()?.get();
    if raw.parse::<u64>() != Ok(id) {
        return None;
    }
    let start = (raw.as_ptr() as usize).checked_sub(bytes.as_ptr() as usize)?;
    let at = start..start + raw.len();
    (bytes.get(at.clone()) == Some(raw.as_bytes())).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_response_to_the_request_is_the_answer_and_its_id_is_found() {
        for body in [&br#"{"jsonrpc":"2.0","id":5,"result":{}}"#[..], b"{\"jsonrpc\":\"2.0\", \"id\" :  5 ,\"error\":{\"code\":1,\"message\":\"m\"}}\n"] {
            let at = single_response(body, 5).expect("the response");
            assert_eq!(&body[at], b"5");
        }
        let body = br#"{"result":{"id":7},"id":12345678901234,"jsonrpc":"2.0"}"#;
        assert_eq!(&body[response_to(body, 12345678901234).expect("the response")], b"12345678901234");
        assert_eq!(response_to(body, 7), None);
    }

    #[test]
    fn an_id_that_only_looks_like_the_request_is_not_its_response() {
        for body in
            [&br#"{"jsonrpc":"2.0","id":"5","result":{}}"#[..], br#"{"jsonrpc":"2.0","id":50,"result":{}}"#, br#"{"jsonrpc":"2.0","id":-5,"result":{}}"#]
        {
            assert_eq!(single_response(body, 5), Err(InvalidResponse::WrongId), "{}", String::from_utf8_lossy(body));
            assert_eq!(response_to(body, 5), None);
        }
    }

    #[test]
    fn each_malformed_json_answer_is_named() {
        let cases: [(&[u8], InvalidResponse); 9] = [
            (br#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}{"jsonrpc":"2.0","id":5,"result":{}}"#, InvalidResponse::SeveralMessages(2)),
            (b"{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}\n{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}\n", InvalidResponse::SeveralMessages(2)),
            (br#"{"jsonrpc":"2.0","id":5,"result":{}} trailing"#, InvalidResponse::NotJson),
            (br#"{"jsonrpc":"2.0","id":5,"result":{"#, InvalidResponse::NotJson),
            (b"<html>502 Bad Gateway</html>", InvalidResponse::NotJson),
            (b"", InvalidResponse::NotJson),
            (b"[1,2]", InvalidResponse::NotAnObject),
            (br#"{"jsonrpc":"2.0","id":6,"result":{}}"#, InvalidResponse::WrongId),
            (br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#, InvalidResponse::NotAResponse),
        ];
        for (body, want) in cases {
            assert_eq!(single_response(body, 5), Err(want), "{}", String::from_utf8_lossy(body));
        }
    }

    #[tokio::test]
    async fn a_single_body_that_is_not_the_answer_is_an_invalid_response() {
        let mut ex = Exchange::single(5, Bytes::from_static(br#"{"jsonrpc":"2.0","id":5,"result":{}}{"jsonrpc":"2.0","id":5,"result":{}}"#));
        assert!(matches!(ex.next().await, Err(UpstreamError::Invalid(InvalidResponse::SeveralMessages(2)))));
    }
}
