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
            // Keys borrowed from the input when they have no escapes (the common case).
            match serde_json::from_str::<BTreeMap<&str, &RawValue>>(text) {
                Ok(members) => object(members.iter().map(|(k, v)| (*k, *v)), out)?,
                Err(_) => {
                    let members: BTreeMap<String, &RawValue> = serde_json::from_str(text)?;
                    object(members.iter().map(|(k, v)| (k.as_str(), *v)), out)?;
                }
            }
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
        Some(b'"') => match serde_json::from_str::<&str>(text) {
            // No escapes in the input: the borrowed text is the decoded string.
            Ok(s) => string(s, out),
            Err(_) => string(&serde_json::from_str::<String>(text)?, out),
        },
        // A number or literal, kept as written (a `RawValue` is valid JSON already).
        _ => out.push_str(text),
    }
    Ok(())
}

fn object<'a>(members: impl Iterator<Item = (&'a str, &'a RawValue)>, out: &mut String) -> Result<(), serde_json::Error> {
    out.push('{');
    for (i, (k, v)) in members.enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(k, out);
        out.push(':');
        write(v, out)?;
    }
    out.push('}');
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
    // Runs of characters that need no escape are copied at once.
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            b if b < 0x20 => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
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
