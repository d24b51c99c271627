//! The SSE decoder against the event-stream rules written out plainly, and the encoder against
//! the decoder.
//!
//! Properties:
//! - Fed any bytes in any chunking, the decoder yields the same events as a plain reference
//!   parser given the whole stream at once (`data` and `event` of each dispatched event; a
//!   trailing event without its blank line is not dispatched).
//! - `data` never holds a CR; lines are joined with LF only.
//! - Valid JSON messages, each encoded with `encode_message` and concatenated, decode back to
//!   one event per message whose data parses to the same JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpgate_protocol::sse::{Decoder, Event, encode_message};

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else { return };
    let expected = reference(stream);
    for chunking in [Chunking::Whole, Chunking::Bytes, Chunking::Seeded(seed)] {
        let got = decode(stream, chunking);
        assert_eq!(got, expected, "{chunking:?}");
    }
    for e in &expected {
        assert!(!e.data.contains('\r'), "data holds a CR");
    }

    // Messages separated by 0xFF (never inside UTF-8): each valid JSON one is encoded.
    let messages: Vec<&[u8]> = stream.split(|b| *b == 0xFF).filter(|m| serde_json::from_slice::<serde_json::Value>(m).is_ok()).collect();
    let encoded: Vec<u8> = messages.iter().flat_map(|m| encode_message(m)).collect();
    let events = decode(&encoded, Chunking::Seeded(seed));
    assert_eq!(events.len(), messages.len(), "one event per message");
    for (m, e) in messages.iter().zip(&events) {
        assert_eq!(e.event.as_deref(), Some("message"));
        let want: serde_json::Value = serde_json::from_slice(m).expect("valid");
        let got: serde_json::Value = serde_json::from_str(&e.data).expect("decoded data is the JSON message");
        assert_eq!(got, want);
    }
});

#[derive(Debug, Clone, Copy)]
enum Chunking {
    Whole,
    Bytes,
    Seeded(u8),
}

#[derive(Debug, PartialEq, Eq)]
struct Seen {
    event: Option<String>,
    data: String,
}

fn decode(stream: &[u8], chunking: Chunking) -> Vec<Seen> {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    let mut drain = |d: &mut Decoder| {
        while let Some(Event { event, data, .. }) = d.next_event().expect("inputs are far below the line limit") {
            out.push(Seen { event, data });
        }
    };
    match chunking {
        Chunking::Whole => {
            d.push(stream);
            drain(&mut d);
        }
        Chunking::Bytes => {
            for b in stream {
                d.push(std::slice::from_ref(b));
                drain(&mut d);
            }
        }
        Chunking::Seeded(seed) => {
            let mut rest = stream;
            let mut n = seed as usize;
            while !rest.is_empty() {
                n = (n * 31 + 7) % 13 + 1;
                let (chunk, tail) = rest.split_at(n.min(rest.len()));
                d.push(chunk);
                drain(&mut d);
                rest = tail;
            }
        }
    }
    out
}

/// The event-stream interpretation (HTML Living Standard, "Parsing an event stream"), for the
/// fields the gateway uses: one leading BOM is skipped; lines end at CRLF, LF or CR; `:`
/// starts a comment; `field: value` loses one leading space; `data` lines are joined with LF;
/// a blank line dispatches when data was given, and always resets the event type.
fn reference(stream: &[u8]) -> Vec<Seen> {
    let text = String::from_utf8_lossy(stream);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut lines = Vec::new();
    let mut rest = text;
    // Only complete lines count: the tail after the last line end is still being received.
    while let Some(end) = rest.find(['\r', '\n']) {
        lines.push(&rest[..end]);
        // A CR ends its line at once, even as the last byte so far (an LF after it is skipped).
        let skip = if rest[end..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[end + skip..];
    }
    let mut out = Vec::new();
    let (mut event, mut data): (Option<String>, Option<String>) = (None, None);
    for line in lines {
        if line.is_empty() {
            if let Some(d) = data.take() {
                out.push(Seen { event: event.take(), data: d });
            }
            event = None;
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (name, value) = match line.split_once(':') {
            Some((n, v)) => (n, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match name {
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            "event" => event = Some(value.to_owned()),
            _ => {}
        }
    }
    out
}
