//! Lossless JSON-RPC envelopes.
//!
//! An [`Envelope`] is a JSON object parsed one level deep: each member keeps its original bytes
//! and order. The gateway reads the few members it routes on (`method`, `id`, `params.name`, …)
//! and writes a new object with [`ObjectWriter`], replacing only what it must. Values it does
//! not touch are copied verbatim, so 30-digit integers, unknown fields and vendor `_meta` keys
//! reach the other side unchanged.

use std::borrow::Cow;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::dupkeys::Key;

/// What a JSON-RPC message is, judged by its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    Response,
}

/// A JSON object parsed one level deep, members in their original order.
#[derive(Debug, Default)]
pub struct Envelope<'a> {
    members: IndexMap<Cow<'a, str>, &'a RawValue>,
}

/// The body is not a JSON object (or not JSON at all).
#[derive(Debug, thiserror::Error)]
#[error("expected a JSON object: {0}")]
pub struct NotAnObject(String);

impl<'a> Envelope<'a> {
    /// Parses `bytes` as an object. Duplicate keys are not detected here: call
    /// [`crate::dupkeys::check`] first on untrusted input.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, NotAnObject> {
        let map: IndexMap<Key<'a>, &'a RawValue> =
            serde_json::from_slice(bytes).map_err(|e| NotAnObject(e.to_string()))?;
        Ok(Self { members: map.into_iter().map(|(k, v)| (k.0, v)).collect() })
    }

    /// Parses a raw member value that should itself be an object (e.g. `params`).
    pub fn parse_raw(raw: &'a RawValue) -> Result<Self, NotAnObject> {
        Self::parse(raw.get().as_bytes())
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.members.get(key).copied()
    }

    /// A member that must be a JSON string; `None` when absent or not a string.
    pub fn str(&self, key: &str) -> Option<Cow<'a, str>> {
        self.get(key).and_then(raw_str)
    }

    pub fn method(&self) -> Option<Cow<'a, str>> {
        self.str("method")
    }

    pub fn id(&self) -> Option<&'a RawValue> {
        self.get("id").filter(|v| v.get() != "null")
    }

    pub fn params(&self) -> Option<&'a RawValue> {
        self.get("params")
    }

    /// Parses `params` as an envelope; `Ok(None)` when there are no params.
    pub fn params_object(&self) -> Result<Option<Envelope<'a>>, NotAnObject> {
        self.params().map(Envelope::parse_raw).transpose()
    }

    pub fn kind(&self) -> Option<Kind> {
        match (self.members.contains_key("method"), self.id().is_some()) {
            (true, true) => Some(Kind::Request),
            (true, false) => Some(Kind::Notification),
            (false, true) if self.has("result") || self.has("error") => Some(Kind::Response),
            _ => None,
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.members.contains_key(key)
    }

    pub fn members(&self) -> impl Iterator<Item = (&str, &'a RawValue)> {
        self.members.iter().map(|(k, v)| (k.as_ref(), *v))
    }

    /// Writes this object back with some members replaced (by key, keeping their position)
    /// and others appended. `None` as a replacement value removes the member.
    pub fn rewrite(&self, replace: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut w = ObjectWriter::with_capacity(self.byte_len() + 16);
        for (k, v) in self.members() {
            match replace.iter().find(|(rk, _)| *rk == k) {
                Some((_, Some(new))) => {
                    w.raw(k, new);
                }
                Some((_, None)) => {}
                None => {
                    w.raw(k, v.get());
                }
            }
        }
        for (k, v) in replace {
            if let (false, Some(new)) = (self.members.contains_key(*k), v) {
                w.raw(k, new);
            }
        }
        w.finish()
    }

    fn byte_len(&self) -> usize {
        self.members.iter().map(|(k, v)| k.len() + v.get().len() + 4).sum()
    }
}

/// Reads a raw JSON value as a string, borrowing when it has no escapes.
pub fn raw_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    #[derive(Deserialize)]
    struct S<'a>(#[serde(borrow)] Cow<'a, str>);
    serde_json::from_str::<S<'_>>(raw.get()).ok().map(|s| s.0)
}

/// Encodes `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// Builds a JSON object from raw member values, in the order written.
#[derive(Default)]
pub struct ObjectWriter {
    buf: Vec<u8>,
}

impl ObjectWriter {
    pub fn with_capacity(n: usize) -> Self {
        let mut buf = Vec::with_capacity(n);
        buf.push(b'{');
        Self { buf }
    }

    pub fn new() -> Self {
        Self::with_capacity(128)
    }

    /// Appends `"key": <raw>`; `raw` must already be valid JSON.
    pub fn raw(&mut self, key: &str, raw: &str) -> &mut Self {
        if self.buf.len() > 1 {
            self.buf.push(b',');
        }
        self.buf.extend_from_slice(json_string(key).as_bytes());
        self.buf.push(b':');
        self.buf.extend_from_slice(raw.as_bytes());
        self
    }

    pub fn string(&mut self, key: &str, value: &str) -> &mut Self {
        self.raw(key, &json_string(value))
    }

    pub fn finish(mut self) -> Vec<u8> {
        if self.buf.is_empty() {
            self.buf.push(b'{');
        }
        self.buf.push(b'}');
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"a_echo","arguments":{"z":1,"a":123456789012345678901234567890},"_meta":{"x-vendor":{"k":[1,2]}}}}"#;

    #[test]
    fn classifies_messages() {
        let kind = |s: &str| Envelope::parse(s.as_bytes()).ok().and_then(|e| e.kind());
        assert_eq!(kind(CALL), Some(Kind::Request));
        assert_eq!(kind(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#), Some(Kind::Notification));
        assert_eq!(kind(r#"{"jsonrpc":"2.0","id":"x","result":{}}"#), Some(Kind::Response));
        assert_eq!(kind(r#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m"}}"#), Some(Kind::Response));
        assert_eq!(kind(r#"{"jsonrpc":"2.0","id":1}"#), None);
    }

    #[test]
    fn rewriting_name_keeps_every_other_byte() {
        let env = Envelope::parse(CALL.as_bytes()).expect("object");
        let params = env.params_object().expect("params").expect("present");
        assert_eq!(params.str("name").as_deref(), Some("a_echo"));
        let new_params = params.rewrite(&[("name", Some(&json_string("echo")))]);
        let new_params = String::from_utf8(new_params).expect("utf8");
        let out = env.rewrite(&[("id", Some("42")), ("params", Some(&new_params))]);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"echo","arguments":{"z":1,"a":123456789012345678901234567890},"_meta":{"x-vendor":{"k":[1,2]}}}}"#
        );
    }

    #[test]
    fn rewrite_can_remove_and_append() {
        let env = Envelope::parse(br#"{"a":1,"b":2}"#).expect("object");
        let out = env.rewrite(&[("a", None), ("c", Some("3"))]);
        assert_eq!(out, br#"{"b":2,"c":3}"#);
    }

    #[test]
    fn escaped_keys_and_values_are_read() {
        let env = Envelope::parse(br#"{"me\u0074hod":"tools\/list"}"#).expect("object");
        assert_eq!(env.method().as_deref(), Some("tools/list"));
    }

    #[test]
    fn null_id_is_no_id() {
        let env = Envelope::parse(br#"{"jsonrpc":"2.0","id":null,"method":"x"}"#).expect("object");
        assert_eq!(env.kind(), Some(Kind::Notification));
    }

    #[test]
    fn non_objects_are_rejected() {
        assert!(Envelope::parse(b"[1,2]").is_err());
        assert!(Envelope::parse(b"\"x\"").is_err());
    }
}
