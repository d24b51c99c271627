//! Duplicate-key detection for untrusted JSON.
//!
//! serde keeps the last of two equal keys (`{"name":"safe","name":"evil"}` reads as `evil`), so
//! a body that authorises one name and forwards another is possible unless duplicates are
//! refused outright. This walks the whole document once without building a value.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use smallvec::SmallVec;

/// Why a body failed the structural check.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StructureError {
    #[error("invalid JSON: {0}")]
    Syntax(String),
    #[error("duplicate key \"{0}\" in JSON object")]
    DuplicateKey(String),
}

/// Checks that `bytes` is one well-formed JSON value with no duplicate object keys at any depth.
pub fn check(bytes: &[u8]) -> Result<(), StructureError> {
    // Checked as text when it is UTF-8 (once, not string by string); from bytes otherwise, so
    // that the error says where the bad sequence is.
    let walked = match std::str::from_utf8(bytes) {
        Ok(text) => walk(&mut serde_json::Deserializer::from_str(text)),
        Err(_) => walk(&mut serde_json::Deserializer::from_slice(bytes)),
    };
    // The marker string is how a duplicate travels through serde's error type.
    match walked {
        Ok(()) => Ok(()),
        Err(e) => {
            let msg = e.to_string();
            match msg.strip_prefix(DUP_MARKER) {
                Some(rest) => Err(StructureError::DuplicateKey(rest.split(DUP_END).next().unwrap_or_default().to_owned())),
                None => Err(StructureError::Syntax(msg)),
            }
        }
    }
}

fn walk<'de, R: serde_json::de::Read<'de>>(de: &mut serde_json::Deserializer<R>) -> Result<(), serde_json::Error> {
    Walk.deserialize(&mut *de).and_then(|()| de.end())
}

/// Up to this many keys, an object's keys are compared by a scan.
const SMALL: usize = 32;

const DUP_MARKER: &str = "\u{1}dup:";
const DUP_END: char = '\u{1}';

struct Walk;

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Walk)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i128<E>(self, _: i128) -> Result<(), E> {
        Ok(())
    }
    fn visit_u128<E>(self, _: u128) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Walk)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // A scan for the few keys of most objects; a set once an object is large, so a body
        // of many keys costs linear time, not quadratic.
        let mut seen: SmallVec<[Cow<'de, str>; 8]> = SmallVec::new();
        let mut set: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let duplicate = if seen.len() < SMALL {
                seen.contains(&key)
            } else {
                if set.is_empty() {
                    set.extend(seen.iter().cloned());
                }
                set.contains(&key)
            };
            if duplicate {
                return Err(de::Error::custom(format!("{DUP_MARKER}{key}{DUP_END}")));
            }
            if seen.len() < SMALL {
                seen.push(key);
            } else {
                set.insert(key);
            }
            map.next_value_seed(Walk)?;
        }
        Ok(())
    }
}

/// An object key, borrowed from the input when it has no escapes.
#[derive(PartialEq, Eq, Hash)]
pub struct Key<'a>(pub Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_nested_objects_without_duplicates() {
        assert_eq!(check(br#"{"a":{"b":1,"c":[{"b":2},{"b":3}]},"b":true}"#), Ok(()));
    }

    #[test]
    fn rejects_top_level_duplicate() {
        assert_eq!(check(br#"{"name":"safe","name":"evil"}"#), Err(StructureError::DuplicateKey("name".into())));
    }

    #[test]
    fn rejects_nested_duplicate_even_when_escaped_differently() {
        assert_eq!(check(br#"{"params":{"name":"a","na\u006de":"b"}}"#), Err(StructureError::DuplicateKey("name".into())));
    }

    #[test]
    fn reports_syntax_errors_and_trailing_garbage() {
        assert!(matches!(check(b"{\"a\":"), Err(StructureError::Syntax(_))));
        assert!(matches!(check(b"{} x"), Err(StructureError::Syntax(_))));
    }

    #[test]
    fn large_objects_are_checked_too() {
        let keys = |n: usize| (0..n).map(|i| format!(r#""k{i}":{i}"#)).collect::<Vec<_>>();
        let many = keys(50_000);
        assert_eq!(check(format!("{{{}}}", many.join(",")).as_bytes()), Ok(()));
        // The duplicate of an early key, and of a late one, past the small-object scan.
        for dup in ["k3", "k40"] {
            let mut k = keys(100);
            k.push(format!(r#""{dup}":0"#));
            assert_eq!(check(format!("{{{}}}", k.join(",")).as_bytes()), Err(StructureError::DuplicateKey(dup.into())));
        }
    }

    /// The gateway's one-pass parse of a body, as `check` would answer it (`None`: declined).
    fn one_pass(text: &str) -> Option<Result<(), StructureError>> {
        crate::Envelope::parse_checked(text).map(|r| r.map(drop))
    }

    #[test]
    fn the_one_pass_parse_agrees_with_the_check() {
        for text in [
            r#"{"a":{"b":1,"c":[{"b":2},{"b":3}]},"b":true}"#,
            r#"{"name":"safe","name":"evil"}"#,
            r#"{"a":{"x":1,"y":{"x":2},"x":3}}"#,
            r#"{"l":[{"a":1},{"a":2},{"b":[{"a":1,"a":2}]}]}"#,
            r#" { "s" : "a \" quote, \\ and } ] , : inside" , "t":[1,-2.5,null,false,"x"] , "s" : 0 } "#,
            r#"{"v":"\"k\":1","k":2,"w":{"k":3}}"#,
            r#"{"a key longer than sixteen bytes":1,"x":"a value longer than sixteen bytes","a key longer than sixteen bytes":2}"#,
            r#"{"sixteen bytes..":"exactly sixteen!","seventeen bytes..":"\"quoted\" past sixteen bytes"}"#,
            // A duplicate before a syntax error is the answer, as in the check.
            r#"{"a":1,"a":2,}"#,
            "{}",
        ] {
            assert_eq!(one_pass(text), Some(check(text.as_bytes())), "{text}");
        }
    }

    #[test]
    fn the_one_pass_parse_leaves_what_it_cannot_decide_to_the_check() {
        assert_eq!(one_pass(r#"{"params":{"name":"a","na\u006de":"b"}}"#), None);
        let many = (0..40).map(|i| format!(r#""k{i}":{i}"#)).collect::<Vec<_>>().join(",");
        assert_eq!(one_pass(&format!("{{{many}}}")), None);
        assert_eq!(one_pass(&format!(r#"{{"a":{}{}}}"#, "[".repeat(64), "]".repeat(64))), None);
        // What the full check refuses and skipping a value does not: a lone surrogate, a
        // number out of f64's range.
        assert!(matches!(check(br#"{"a":"\udc00"}"#), Err(StructureError::Syntax(_))));
        assert_eq!(one_pass(r#"{"a":"\udc00"}"#), None);
        assert!(matches!(check(br#"{"a":1e400}"#), Err(StructureError::Syntax(_))));
        assert_eq!(one_pass(r#"{"a":1e400}"#), None);
        assert_eq!(one_pass(&format!(r#"{{"a":{}}}"#, "9".repeat(400))), None);
        // Not one object, or not JSON: the check and the envelope say which.
        for text in [r#""just a string""#, "12", r#"[{"a":1}]"#, r#"{"a":}"#] {
            assert_eq!(one_pass(text), None, "{text}");
        }
        // An escaped value is no reason to decline.
        assert_eq!(one_pass(r#"{"a":"\u0041","b":"\n"}"#), Some(Ok(())));
    }

    #[test]
    fn accepts_huge_integers() {
        assert_eq!(check(br#"{"n":123456789012345678901234567890}"#), Ok(()));
    }
}
