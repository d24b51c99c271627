//! How a request ended, read from its final message: a result, or an error with which code.
//! JSON answers are classified where they are made; SSE answers are watched as they stream,
//! and their end (or the client going away) is reported once.
//!
//! Reads only the message's outer members; never keeps a message.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use futures::stream::BoxStream;
use mcpgate_protocol::envelope::{Envelope, Needle};

use super::labels::CallError;

/// What a final message said: `Ok(())` for a result, `Err(e)` for an error answer.
pub type Answered = Result<(), CallError>;

/// Classifies a JSON-RPC response. `None` when the message is no response (a request or a
/// notification). Gateway-written answers and most backends put `jsonrpc` and `id` first,
/// then `result` or `error`: those are told apart without reading the rest of the message.
pub fn classify(msg: &[u8]) -> Option<Answered> {
    if let Some(answer) = classify_prefix(msg) {
        return Some(answer);
    }
    static ERROR: Needle = Needle::new(b"\"error\"");
    static RESULT: Needle = Needle::new(b"\"result\"");
    // A member named "error" can only be spelled with these bytes or with an escape.
    if !ERROR.may_be_in(msg) {
        return RESULT.may_be_in(msg).then_some(Ok(()));
    }
    let env = Envelope::parse(msg).ok()?;
    if let Some(err) = env.get("error") {
        return Some(Err(error_of(err.get().as_bytes())));
    }
    env.has("result").then_some(Ok(()))
}

fn classify_prefix(msg: &[u8]) -> Option<Answered> {
    let rest = msg.strip_prefix(b"{\"jsonrpc\":\"2.0\",\"id\":").map(skip_id).unwrap_or(Some(msg.strip_prefix(b"{")?))?;
    let rest = rest.strip_prefix(b",").unwrap_or(rest);
    if rest.starts_with(b"\"result\":") {
        return Some(Ok(()));
    }
    if let Some(err) = rest.strip_prefix(b"\"error\":") {
        return Some(Err(error_of(err)));
    }
    None
}

/// The bytes after a JSON-RPC id (a number or a string).
fn skip_id(s: &[u8]) -> Option<&[u8]> {
    if let Some(body) = s.strip_prefix(b"\"") {
        let mut escaped = false;
        for (i, b) in body.iter().enumerate() {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => return Some(&body[i + 1..]),
                _ => {}
            }
        }
        return None;
    }
    let end = s.iter().position(|b| !(b.is_ascii_digit() || *b == b'-'))?;
    Some(&s[end..])
}

/// The `error_type` of an error object (the start of it is enough).
fn error_of(obj: &[u8]) -> CallError {
    let code = Envelope::parse(obj).ok().and_then(|e| e.get("code").map(|c| c.get().to_owned()));
    match code {
        Some(c) => CallError::rpc(&c),
        None => {
            // A prefix of an object: find `"code":` and the integer after it.
            let Some(at) = obj.windows(7).position(|w| w == b"\"code\":") else { return CallError::rpc("") };
            let digits: Vec<u8> = obj[at + 7..].iter().skip_while(|b| **b == b' ').take_while(|b| b.is_ascii_digit() || **b == b'-').copied().collect();
            CallError::rpc(std::str::from_utf8(&digits).unwrap_or(""))
        }
    }
}

/// How a watched SSE answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Answered(Answered),
    /// It stopped before its final message (the client went away, or the call broke off).
    Cancelled,
}

type OnEnd = Box<dyn FnOnce(End) + Send>;

/// The handle through which whoever turns an answer into HTTP learns how its stream ended.
#[derive(Clone, Default)]
pub struct Watch(Arc<Mutex<Option<OnEnd>>>);

impl Watch {
    /// Runs `f` once when the watched stream ends or is dropped.
    pub fn on_end(&self, f: impl FnOnce(End) + Send + 'static) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(f));
    }

    fn end(&self, end: End) {
        let f = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(f) = f {
            f(end);
        }
    }
}

/// Wraps a stream of JSON-RPC messages whose last one is the final answer.
pub fn watch(inner: BoxStream<'static, Bytes>) -> (BoxStream<'static, Bytes>, Watch) {
    let w = Watch::default();
    (Box::pin(Watched { inner, last: None, watch: w.clone(), done: false }), w)
}

struct Watched {
    inner: BoxStream<'static, Bytes>,
    last: Option<Bytes>,
    watch: Watch,
    done: bool,
}

impl Stream for Watched {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(b)) => {
                self.last = Some(b.clone());
                Poll::Ready(Some(b))
            }
            Poll::Ready(None) => {
                if !self.done {
                    self.done = true;
                    let end = self.last.as_deref().and_then(classify).map_or(End::Cancelled, End::Answered);
                    self.watch.end(end);
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if !self.done {
            // The final answer may have been sent and the stream dropped before its end was
            // polled: a response as the last message still counts as answered.
            let end = self.last.as_deref().and_then(classify).map_or(End::Cancelled, End::Answered);
            self.watch.end(end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> Option<Answered> {
        classify(s.as_bytes())
    }

    #[test]
    fn results_and_errors_are_told_apart_in_any_member_order() {
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#), Some(Ok(())));
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":"a\"b","error":{"code":-32602,"message":"x"}}"#), Some(Err(CallError::rpc("-32602"))));
        assert_eq!(code(r#"{"result":{"isError":false},"jsonrpc":"2.0","id":1}"#), Some(Ok(())));
        assert_eq!(code(r#"{"id":1,"error":{"message":"m","code":-32001},"jsonrpc":"2.0"}"#), Some(Err(CallError::rpc("-32001"))));
        assert_eq!(code(r#"{"id":1,"jsonrpc":"2.0","error":{"code":-1234,"message":"m"}}"#).map(|r| r.map_err(|e| e.as_str())), Some(Err("_OTHER")));
    }

    #[test]
    fn a_result_mentioning_error_is_still_a_result() {
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"\"error\""}],"error":0}}"#), Some(Ok(())));
        assert_eq!(code(r#"{"id":1,"result":{"status":"error"},"jsonrpc":"2.0"}"#), Some(Ok(())));
    }

    #[test]
    fn requests_and_notifications_are_no_answers() {
        assert_eq!(code(r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#), None);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":"mcpgate-1","method":"sampling/createMessage"}"#), None);
        assert_eq!(code("not json"), None);
    }

    #[tokio::test]
    async fn a_stream_reports_its_final_answer_or_that_it_broke_off() {
        use futures::StreamExt;
        let msgs = vec![
            Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#),
            Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"x"}}"#),
        ];
        let (s, w) = watch(futures::stream::iter(msgs.clone()).boxed());
        let seen = Arc::new(Mutex::new(None));
        let into = seen.clone();
        w.on_end(move |e| *into.lock().unwrap_or_else(|p| p.into_inner()) = Some(e));
        assert_eq!(s.collect::<Vec<_>>().await.len(), 2);
        assert_eq!(*seen.lock().unwrap_or_else(|p| p.into_inner()), Some(End::Answered(Err(CallError::rpc("-32603")))));

        let (mut s, w) = watch(futures::stream::iter(msgs).boxed());
        let seen = Arc::new(Mutex::new(None));
        let into = seen.clone();
        w.on_end(move |e| *into.lock().unwrap_or_else(|p| p.into_inner()) = Some(e));
        let _first = s.next().await;
        drop(s);
        assert_eq!(*seen.lock().unwrap_or_else(|p| p.into_inner()), Some(End::Cancelled));
    }
}
