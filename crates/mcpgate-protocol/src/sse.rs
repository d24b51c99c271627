//! Server-sent events: an incremental decoder for backend streams and an encoder for clients.

use bytes::{Buf, BytesMut};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
    pub id: Option<String>,
}

/// Feeds bytes in, takes whole events out. Handles LF, CRLF and CR line ends, multi-line
/// `data:` fields and `:` comments.
#[derive(Default)]
pub struct Decoder {
    buf: BytesMut,
    current: Event,
    has_data: bool,
}

/// The longest line accepted before the stream is treated as garbage.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("SSE line longer than {MAX_LINE} bytes")]
pub struct LineTooLong;

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, if the buffered bytes hold one.
    pub fn next_event(&mut self) -> Result<Option<Event>, LineTooLong> {
        loop {
            let Some(end) = self.buf.iter().position(|b| *b == b'\n' || *b == b'\r') else {
                if self.buf.len() > MAX_LINE {
                    return Err(LineTooLong);
                }
                return Ok(None);
            };
            // A CR at the very end may be the first half of CRLF: wait for more bytes.
            if self.buf[end] == b'\r' && end + 1 == self.buf.len() {
                return Ok(None);
            }
            let line = self.buf.split_to(end);
            let crlf = self.buf[0] == b'\r' && self.buf.get(1) == Some(&b'\n');
            self.buf.advance(if crlf { 2 } else { 1 });
            if line.is_empty() {
                if self.has_data {
                    self.has_data = false;
                    return Ok(Some(std::mem::take(&mut self.current)));
                }
                self.current = Event::default();
                continue;
            }
            self.field(&line);
        }
    }

    fn field(&mut self, line: &[u8]) {
        if line[0] == b':' {
            return;
        }
        let line = String::from_utf8_lossy(line);
        let (name, value) = match line.split_once(':') {
            Some((n, v)) => (n, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match name {
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.current.event = Some(value.to_owned()),
            "id" => self.current.id = Some(value.to_owned()),
            _ => {}
        }
    }
}

/// Encodes one JSON message as an SSE `message` event.
pub fn encode_message(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 24);
    out.extend_from_slice(b"event: message\ndata: ");
    // JSON text never needs a raw newline; replace any so one message stays one event.
    for &b in json {
        out.push(if b == b'\n' || b == b'\r' { b' ' } else { b });
    }
    out.extend_from_slice(b"\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[&[u8]]) -> Vec<Event> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for chunk in input {
            d.push(chunk);
            while let Some(e) = d.next_event().expect("line length") {
                out.push(e);
            }
        }
        out
    }

    #[test]
    fn decodes_events_split_across_chunks() {
        let evs = all(&[b"event: mess", b"age\ndata: {\"a\"", b":1}\n", b"\n: keepalive\n\ndata: x\r\n\r\n"]);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].event.as_deref(), Some("message"));
        assert_eq!(evs[0].data, "{\"a\":1}");
        assert_eq!(evs[1].data, "x");
    }

    #[test]
    fn joins_multiline_data_and_keeps_ids() {
        let evs = all(&[b"id: 7\ndata: a\ndata: b\n\n"]);
        assert_eq!(evs, vec![Event { event: None, data: "a\nb".into(), id: Some("7".into()) }]);
    }

    #[test]
    fn crlf_split_between_chunks() {
        let evs = all(&[b"data: y\r", b"\n\r", b"\n"]);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].data, "y");
    }

    #[test]
    fn endpoint_events_have_names() {
        let evs = all(&[b"event: endpoint\ndata: /messages?session_id=abc\n\n"]);
        assert_eq!(evs[0].event.as_deref(), Some("endpoint"));
        assert_eq!(evs[0].data, "/messages?session_id=abc");
    }

    #[test]
    fn encoder_round_trips_through_decoder() {
        let enc = encode_message(br#"{"jsonrpc":"2.0","method":"x"}"#);
        let evs = all(&[&enc]);
        assert_eq!(evs[0].data, r#"{"jsonrpc":"2.0","method":"x"}"#);
    }
}
