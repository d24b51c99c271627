//! Server-sent events: an incremental decoder for backend streams and an encoder for clients.

use bytes::{Buf, BytesMut};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
    pub id: Option<String>,
}

/// Feeds bytes in, takes whole events out. Handles LF, CRLF and CR line ends (a CR ends its
/// line at once, even as the last byte received so far), multi-line `data:` fields, `:`
/// comments and a leading byte-order mark.
#[derive(Default)]
pub struct Decoder {
    buf: BytesMut,
    /// Bytes at the start of `buf` already searched for a line end (none found): a long line
    /// arriving in small chunks is searched once, not once per chunk.
    scanned: usize,
    /// The last line ended with a CR at the end of the bytes received: an LF arriving next
    /// belongs to that line end.
    after_cr: bool,
    /// Whether the start of the stream has been checked for a byte-order mark.
    started: bool,
    current: Event,
    has_data: bool,
}

/// The longest line accepted before the stream is treated as garbage.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

const BOM: &[u8] = "\u{feff}".as_bytes();

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
        if !self.started {
            // One leading byte-order mark is not part of the first line.
            if self.buf.len() < BOM.len() && BOM.starts_with(&self.buf) {
                return Ok(None);
            }
            if self.buf.starts_with(BOM) {
                self.buf.advance(BOM.len());
            }
            self.started = true;
        }
        loop {
            if self.after_cr && !self.buf.is_empty() {
                if self.buf[0] == b'\n' {
                    self.buf.advance(1);
                }
                self.after_cr = false;
            }
            let Some(found) = memchr::memchr2(b'\n', b'\r', &self.buf[self.scanned..]) else {
                self.scanned = self.buf.len();
                if self.buf.len() > MAX_LINE {
                    return Err(LineTooLong);
                }
                return Ok(None);
            };
            let end = self.scanned + found;
            self.scanned = 0;
            let line = self.buf.split_to(end);
            let cr = self.buf[0] == b'\r';
            self.buf.advance(1);
            if cr {
                match self.buf.first() {
                    Some(b'\n') => self.buf.advance(1),
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
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
    fn a_cr_ending_the_bytes_so_far_ends_the_event_at_once() {
        // A server using CR line ends: the final blank line must not wait for a byte that may
        // never come.
        assert_eq!(all(&[b"data: a\r\r"]).len(), 1);
        let evs = all(&[b"data: a\r", b"\ndata: b\r", b"\r"]);
        assert_eq!(evs, vec![Event { event: None, data: "a\nb".into(), id: None }]);
    }

    #[test]
    fn a_leading_byte_order_mark_is_skipped_even_when_split() {
        // The first event of a stream starting with a BOM used to be lost.
        let evs = all(&[b"\xEF", b"\xBB\xBFdata: x\n\n"]);
        assert_eq!(evs, vec![Event { event: None, data: "x".into(), id: None }]);
        // Only at the very start.
        assert_eq!(all(&[b"data: x\n\n\xEF\xBB\xBFdata: y\n\n"]).len(), 1);
    }

    #[test]
    fn a_long_line_in_small_chunks_is_decoded() {
        let mut d = Decoder::new();
        d.push(b"data: ");
        for _ in 0..10_000 {
            d.push(b"xx");
            assert!(d.next_event().expect("short").is_none());
        }
        d.push(b"\n\n");
        assert_eq!(d.next_event().expect("short").map(|e| e.data.len()), Some(20_000));
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
