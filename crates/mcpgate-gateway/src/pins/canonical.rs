//! Canonical JSON, the form a definition is hashed in.
//!
//! - objects: members sorted by key (byte order of the UTF-8 key), each key once;
//! - no whitespace anywhere;
//! - strings: decoded, then written with only `"`, `\` and control characters escaped
//!   (`\b \f \n \r \t`, others as `\u00XX` in lower-case hex); everything else as UTF-8;
//! - numbers: exactly as the backend wrote them (no float conversion, so a 30-digit integer
//!   or `1.0` vs `1` is a change);
//! - `true`, `false`, `null` as themselves.
//!
//! Two definitions that differ only in key order or whitespace hash the same; any other
//! difference changes the hash. Never panics on input: invalid JSON is an error.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

/// Appends the canonical form of `raw` to `out`.
pub fn write(raw: &RawValue, out: &mut String) -> Result<(), serde_json::Error> {
    let text = raw.get().trim();
    match text.as_bytes().first() {
        Some(b'{') => {
            let members: BTreeMap<String, &RawValue> = serde_json::from_str(text)?;
            out.push('{');
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(k, out);
                out.push(':');
                write(v, out)?;
            }
            out.push('}');
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text)?;
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(v, out)?;
            }
            out.push(']');
        }
        Some(b'"') => {
            let s: String = serde_json::from_str(text)?;
            string(&s, out);
        }
        _ => {
            // A number or literal: validated, then kept as written.
            let _: serde::de::IgnoredAny = serde_json::from_str(text)?;
            out.push_str(text);
        }
    }
    Ok(())
}

/// The canonical form of `raw` as a new string.
pub fn to_string(raw: &RawValue) -> Result<String, serde_json::Error> {
    let mut out = String::with_capacity(raw.get().len());
    write(raw, &mut out)?;
    Ok(out)
}

/// Writes `s` as a canonical JSON string.
pub fn string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        to_string(&RawValue::from_string(s.to_owned()).expect("json")).expect("canonical")
    }

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        let a = canon(r#"{ "b": [1, {"y": true, "x": null}], "a": "s" }"#);
        let b = canon(r#"{"a":"s","b":[1,{"x":null,"y":true}]}"#);
        assert_eq!(a, b);
        assert_eq!(a, r#"{"a":"s","b":[1,{"x":null,"y":true}]}"#);
    }

    #[test]
    fn numbers_are_kept_as_written() {
        assert_eq!(canon(r#"{"n":123456789012345678901234567890}"#), r#"{"n":123456789012345678901234567890}"#);
        assert_ne!(canon(r#"{"n":1.0}"#), canon(r#"{"n":1}"#));
    }

    #[test]
    fn strings_are_decoded_and_minimally_escaped() {
        assert_eq!(canon(r#""\u00e9\/\u0001\n""#), "\"é/\\u0001\\n\"");
        assert_eq!(canon(r#""é/\u0001\n""#), "\"é/\\u0001\\n\"");
    }

    #[test]
    fn invalid_json_is_an_error_not_a_panic() {
        for bad in [r#"{"a":}"#, "[1,", "nul"] {
            assert!(RawValue::from_string(bad.to_owned()).is_err() || to_string(&RawValue::from_string(bad.to_owned()).expect("raw")).is_err());
        }
    }
}
