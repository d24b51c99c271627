//! SEP-2243 header values: the `=?base64?…?=` sentinel encoding and its decoder.
//!
//! Properties:
//! - Any string encodes to bytes a header may carry (visible ASCII, inner spaces and tabs,
//!   never leading or trailing blanks that HTTP would strip) and decodes back to itself.
//! - Any bytes either decode or are refused with a reason, never a panic; a decoded value
//!   encodes and decodes back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpgate_protocol::modern::{decode_header_value, encode_header_value};

fn header_safe(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.iter().all(|c| *c == b' ' || *c == b'\t' || (0x21..=0x7e).contains(c))
        && !matches!(b.first(), Some(b' ' | b'\t'))
        && !matches!(b.last(), Some(b' ' | b'\t'))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let encoded = encode_header_value(&text);
    assert!(header_safe(&encoded), "encoded value {encoded:?} is not a safe header value");
    assert_eq!(decode_header_value(encoded.as_bytes()).as_deref(), Ok(text.as_ref()), "round trip of {text:?}");

    if let Ok(decoded) = decode_header_value(data) {
        let again = encode_header_value(&decoded);
        assert_eq!(decode_header_value(again.as_bytes()).as_deref(), Ok(decoded.as_ref()));
    }
});
