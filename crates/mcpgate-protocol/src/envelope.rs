//! Lossless JSON-RPC envelopes.
//!
//! An [`Envelope`] is a JSON object parsed one level deep: each member keeps its original bytes
//! and order. The gateway reads the few members it routes on (`method`, `id`, `params.name`, …)
//! and writes a new object with [`ObjectWriter`], replacing only what it must. Values it does
//! not touch are copied verbatim, so 30-digit integers, unknown fields and vendor `_meta` keys
//! reach the other side unchanged.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::dupkeys::{Key, StructureError};

mod strict;

/// What a JSON-RPC message is, judged by its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    Response,
}

/// A JSON object parsed one level deep, members in their original order.
///
/// Messages have a handful of members: they are kept in order (the first few inline) and found
/// by a scan, cheaper than hashing every key (a call reads several members of each message).
#[derive(Debug, Default, Clone)]
pub struct Envelope<'a> {
    members: Fields<'a>,
    /// The object member that the pass which read this object split too (a message's
    /// `params`, and in those `_meta`), so that reading it costs no second scan.
    split: Option<Arc<(&'static str, Envelope<'a>)>>,
}

/// The body is not a JSON object (or not JSON at all).
#[derive(Debug, thiserror::Error)]
#[error("expected a JSON object: {0}")]
pub struct NotAnObject(String);

impl<'a> Envelope<'a> {
    /// Parses `bytes` as an object. Duplicate keys are not refused here: parse untrusted input
    /// with [`Envelope::parse_checked`] (or [`crate::dupkeys::check`] first).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, NotAnObject> {
        // UTF-8 is checked once here, not again for every string and member value (what
        // parsing from bytes does); members parsed later (`parse_raw`) are not checked again.
        let text = std::str::from_utf8(bytes).map_err(|e| NotAnObject(format!("not UTF-8: {e}")))?;
        Self::parse_str(text)
    }

    /// Parses a raw member value that should itself be an object (e.g. `params`).
    ///
    /// A `RawValue` holds valid JSON (serde checked it while skipping it), so its members are
    /// found by a scan that does not validate them again, where serde would walk every nested
    /// value once more. An object with an escaped key, and anything that is not an object, go
    /// through [`Envelope::parse_str`], for serde's decoding and its error.
    pub fn parse_raw(raw: &'a RawValue) -> Result<Self, NotAnObject> {
        match members_of_valid(raw.get()) {
            Some(members) => Ok(Self { members, split: None }),
            None => Self::parse_str(raw.get()),
        }
    }

    /// Parses text as an object (what [`Envelope::parse`] does after its UTF-8 check).
    pub fn parse_str(text: &'a str) -> Result<Self, NotAnObject> {
        // The one-pass reader takes the common message; serde whatever it declines (and an
        // object with equal keys, of which serde keeps the last value).
        if let Ok(env) = strict::parse(text) {
            return Ok(env);
        }
        let Members(members) = serde_json::from_str(text).map_err(|e| NotAnObject(e.to_string()))?;
        Ok(Self { members, split: None })
    }

    /// Parses untrusted text as one object, refusing a duplicate key at any depth, in one
    /// validating pass. `None` when that pass cannot decide (see `strict`'s list): then call
    /// [`crate::dupkeys::check`] and [`Envelope::parse_str`], which answer for every text.
    pub fn parse_checked(text: &'a str) -> Option<Result<Self, StructureError>> {
        match strict::parse(text) {
            Ok(env) => Some(Ok(env)),
            Err(strict::Stop::Duplicate(key)) => Some(Err(StructureError::DuplicateKey(key.to_owned()))),
            Err(strict::Stop::Decline) => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
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
        self.object("params").map(|o| o.map(Cow::into_owned)).transpose()
    }

    /// The member `key` parsed as an object (`None` when absent): borrowed when the pass that
    /// read this object split it already.
    pub fn object(&self, key: &str) -> Option<Result<Cow<'_, Envelope<'a>>, NotAnObject>> {
        if let Some(split) = &self.split
            && split.0 == key
        {
            return Some(Ok(Cow::Borrowed(&split.1)));
        }
        self.get(key).map(|raw| Envelope::parse_raw(raw).map(Cow::Owned))
    }

    pub fn kind(&self) -> Option<Kind> {
        match (self.has("method"), self.id().is_some()) {
            (true, true) => Some(Kind::Request),
            (true, false) => Some(Kind::Notification),
            (false, true) if self.has("result") || self.has("error") => Some(Kind::Response),
            _ => None,
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.members.iter().any(|(k, _)| k == key)
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
            if let (false, Some(new)) = (self.has(k), v) {
                w.raw(k, new);
            }
        }
        w.finish()
    }

    fn byte_len(&self) -> usize {
        self.members.iter().map(|(k, v)| k.len() + v.get().len() + 4).sum()
    }
}

/// An object's members in order. Of two equal keys the last value wins, at the first one's
/// position (what a map would keep); untrusted input is refused earlier by
/// [`crate::dupkeys::check`].
struct Members<'a>(Fields<'a>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Fields::default();
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    let v: &'de RawValue = map.next_value()?;
                    members.insert(k, v);
                }
                members.dedupe_large();
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

type Field<'a> = (Cow<'a, str>, &'a RawValue);

/// Members, the first four inline: parsing a typical message allocates nothing. (No `Drop`
/// of its own, so an envelope's borrow of its bytes ends where it is last used.)
#[derive(Debug, Default, Clone)]
struct Fields<'a> {
    len: usize,
    inline: [Option<Field<'a>>; INLINE],
    spill: Vec<Field<'a>>,
    /// Past [`SMALL`] members, equal keys are looked for once at the end.
    unchecked: bool,
}

const INLINE: usize = 4;
/// Up to this many members, an insert looks for an equal key by a scan.
const SMALL: usize = 32;

impl<'a> Fields<'a> {
    fn iter(&self) -> impl Iterator<Item = &Field<'a>> {
        self.inline.iter().flatten().chain(self.spill.iter())
    }

    fn push(&mut self, f: Field<'a>) {
        if self.len < INLINE {
            self.inline[self.len] = Some(f);
        } else {
            self.spill.push(f);
        }
        self.len += 1;
    }

    fn insert(&mut self, key: Cow<'a, str>, value: &'a RawValue) {
        if self.len >= SMALL {
            self.unchecked = true;
            return self.push((key, value));
        }
        let inline = self.inline.iter_mut().flatten();
        match inline.chain(self.spill.iter_mut()).find(|(k, _)| *k == key) {
            Some(existing) => existing.1 = value,
            None => self.push((key, value)),
        }
    }

    /// Collapses equal keys of a large object through a hash map (linear, not quadratic).
    fn dedupe_large(&mut self) {
        if !self.unchecked {
            return;
        }
        let all: Vec<Field<'a>> = self.inline.iter_mut().filter_map(Option::take).chain(self.spill.drain(..)).collect();
        let mut first: std::collections::HashMap<&str, usize> = std::collections::HashMap::with_capacity(all.len());
        let mut out: Vec<Field<'a>> = Vec::with_capacity(all.len());
        for (k, v) in &all {
            match first.get(k.as_ref()) {
                Some(&at) => out[at].1 = v,
                None => {
                    first.insert(k.as_ref(), out.len());
                    out.push((k.clone(), v));
                }
            }
        }
        drop(first);
        *self = Fields::default();
        for f in out {
            self.push(f);
        }
    }
}

/// The members of `text`, which must be valid JSON, when it is an object whose keys have no
/// escapes (`None` otherwise). Equal keys: the last one wins, as in [`Envelope::parse_str`].
fn members_of_valid(text: &str) -> Option<Fields<'_>> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let mut members = Fields::default();
    if b.get(i) == Some(&b'}') {
        return Some(members);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let end = i + 1 + strict::special(&b[i + 1..])?;
        if b[end] != b'"' {
            return None;
        }
        let key = &text[i + 1..end];
        i = skip_ws(b, end + 1);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let from = skip_ws(b, i + 1);
        let to = value_end(b, from)?;
        members.insert(Cow::Borrowed(key), raw_of_valid(&text[from..to])?);
        i = skip_ws(b, to);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => break,
            _ => return None,
        }
    }
    members.dedupe_large();
    Some(members)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Where the valid JSON value that starts at `from` ends (exclusive).
fn value_end(b: &[u8], from: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = from;
    loop {
        match *b.get(i)? {
            b'"' => i = string_end(b, i + 1)? + 1,
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                i += 1;
            }
            // A number or a literal runs to the first delimiter.
            _ if depth == 0 => {
                while i < b.len() && !matches!(b[i], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    i += 1;
                }
                return Some(i);
            }
            _ => i += 1,
        }
        if depth == 0 {
            return Some(i);
        }
    }
}

/// Where the string whose text starts at `from` closes (its `"`).
fn string_end(b: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = from + strict::special(b.get(from..)?)?;
        if b[at] == b'"' {
            return Some(at);
        }
        // An escape: the byte after the backslash is never the end.
        from = at + 2;
    }
}

/// `text`, which must be one valid JSON value, as a `RawValue` without serde walking it again.
/// serde_json builds a borrowed `RawValue` from whatever deserializer hands it a borrowed string
/// under its raw-value name (the way its own `RawValue` deserializes); `None` if it ever stops
/// doing so, and then the caller parses with serde.
fn raw_of_valid(text: &str) -> Option<&RawValue> {
    use serde::de::value::{BorrowedStrDeserializer, Error, MapDeserializer};
    const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";
    let entry = std::iter::once((RAW_VALUE_TOKEN, BorrowedStrDeserializer::<Error>::new(text)));
    <&RawValue>::deserialize(MapDeserializer::<_, Error>::new(entry)).ok()
}

/// One JSON value's bytes, the whitespace around it dropped, with the span `at` (inside the
/// value, e.g. where a response's id sits) replaced by `raw`: an answer's id restored without
/// parsing the answer again.
pub fn splice(bytes: &[u8], at: std::ops::Range<usize>, raw: &str) -> Vec<u8> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(0).min(at.start);
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(bytes.len(), |e| e + 1).max(at.end);
    let mut out = Vec::with_capacity(end - start + raw.len());
    out.extend_from_slice(&bytes[start..at.start]);
    out.extend_from_slice(raw.as_bytes());
    out.extend_from_slice(&bytes[at.end..end]);
    out
}

/// Whether a raw `id` is one MCP allows: a string or an integer (no fraction, no exponent).
/// Objects, arrays, booleans, fractions and `1e3` are not ids, and neither is `null`.
pub fn is_valid_id(raw: &RawValue) -> bool {
    let text = raw.get().as_bytes();
    match text.first() {
        Some(b'"') => true,
        Some(_) => {
            let digits = text.strip_prefix(b"-").unwrap_or(text);
            !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
        }
        None => false,
    }
}

/// Reads a raw JSON value as a string, borrowing when it has no escapes.
pub fn raw_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    // A valid JSON string without a backslash is its own text between the quotes.
    if let Some(inner) = raw.get().strip_prefix('"').and_then(|t| t.strip_suffix('"'))
        && !inner.contains('\\')
    {
        return Some(Cow::Borrowed(inner));
    }
    #[derive(Deserialize)]
    struct S<'a>(#[serde(borrow)] Cow<'a, str>);
    serde_json::from_str::<S<'_>>(raw.get()).ok().map(|s| s.0)
}

/// A JSON fragment (such as `"error"`) the hot path looks for before parsing a message that
/// cannot hold it. Its searcher is built once.
pub struct Needle {
    bytes: &'static [u8],
    finder: OnceLock<memchr::memmem::Finder<'static>>,
}

impl Needle {
    pub const fn new(bytes: &'static [u8]) -> Self {
        Self { bytes, finder: OnceLock::new() }
    }

    /// Whether `haystack` may spell this fragment: `false` only when its bytes are absent and
    /// no escape could spell them another way.
    pub fn may_be_in(&self, haystack: &[u8]) -> bool {
        memchr::memchr(b'\\', haystack).is_some() || self.finder.get_or_init(|| memchr::memmem::Finder::new(self.bytes)).find(haystack).is_some()
    }
}

/// Appends `s` as a JSON string literal, without an intermediate string.
fn write_json_string(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else if serde_json::to_writer(&mut *buf, s).is_err() {
        buf.extend_from_slice(b"\"\"");
    }
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

    /// A JSON-RPC message: `"jsonrpc":"2.0"` written as one piece (every message starts so).
    pub fn jsonrpc(capacity: usize) -> Self {
        const START: &[u8] = br#"{"jsonrpc":"2.0""#;
        let mut buf = Vec::with_capacity(capacity.max(START.len() + 1));
        buf.extend_from_slice(START);
        Self { buf }
    }

    /// Appends `"key": <raw>`; `raw` must already be valid JSON.
    pub fn raw(&mut self, key: &str, raw: &str) -> &mut Self {
        self.key(key);
        self.buf.extend_from_slice(raw.as_bytes());
        self
    }

    pub fn string(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        write_json_string(&mut self.buf, value);
        self
    }

    /// Appends `"key": <n>`, written in place (without the formatting machinery).
    pub fn number(&mut self, key: &str, mut n: u64) -> &mut Self {
        self.key(key);
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.buf.extend_from_slice(&digits[at..]);
        self
    }

    fn key(&mut self, key: &str) {
        if self.buf.len() > 1 {
            self.buf.push(b',');
        }
        write_json_string(&mut self.buf, key);
        self.buf.push(b':');
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
    fn splice_replaces_only_the_span_and_drops_the_surrounding_whitespace() {
        let body = b"\n {\"jsonrpc\":\"2.0\",\"id\":42,\"result\":{\"id\":42}}\r\n";
        let at = 24..26;
        assert_eq!(&body[at.clone()], b"42");
        assert_eq!(splice(body, at, r#""client-7""#), br#"{"jsonrpc":"2.0","id":"client-7","result":{"id":42}}"#);
    }

    #[test]
    fn a_written_request_id_is_the_number_in_decimal() {
        for (n, text) in [(0, "0"), (7, "7"), (10, "10"), (1_000_000_007, "1000000007"), (u64::MAX, "18446744073709551615")] {
            let mut w = ObjectWriter::jsonrpc(8);
            w.number("id", n).string("method", "ping");
            let written = String::from_utf8(w.finish()).expect("UTF-8");
            assert_eq!(written, format!(r#"{{"jsonrpc":"2.0","id":{text},"method":"ping"}}"#));
            let env = Envelope::parse(written.as_bytes()).expect("parses");
            assert_eq!(env.get("id").map(RawValue::get), Some(text));
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_not_an_object() {
        let e = Envelope::parse(b"{\"method\":\"a\xffb\"}").expect_err("not UTF-8");
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }

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
    fn a_string_without_escapes_is_borrowed_and_one_with_escapes_decoded() {
        let env = Envelope::parse(br#"{"a":"plain text","b":"say \"hi\"\n","c":"\\","d":3,"e":"\u00e9"}"#).expect("object");
        assert!(matches!(env.str("a"), Some(Cow::Borrowed("plain text"))));
        assert_eq!(env.str("b").as_deref(), Some("say \"hi\"\n"));
        assert_eq!(env.str("c").as_deref(), Some("\\"));
        assert_eq!(env.str("d"), None);
        assert_eq!(env.str("e").as_deref(), Some("é"));
    }

    #[test]
    fn equal_keys_keep_the_first_position_and_the_last_value() {
        let env = Envelope::parse(br#"{"a":1,"b":2,"a":3}"#).expect("object");
        assert_eq!(env.get("a").map(RawValue::get), Some("3"));
        assert_eq!(String::from_utf8(env.rewrite(&[])).expect("utf8"), r#"{"a":3,"b":2}"#);
        // Past the small-object scan, the same rule through the hash map.
        let mut big = (0..100).map(|i| format!(r#""k{i}":{i}"#)).collect::<Vec<_>>();
        big.push(r#""k7":"last""#.to_owned());
        let big = format!("{{{}}}", big.join(","));
        let env = Envelope::parse(big.as_bytes()).expect("object");
        assert_eq!(env.members().count(), 100);
        assert_eq!(env.get("k7").map(RawValue::get), Some(r#""last""#));
        assert_eq!(env.members().nth(7).map(|(k, _)| k), Some("k7"));
    }

    /// Members as (key, raw text) pairs, for comparing two parses.
    fn pairs(env: &Envelope<'_>) -> Vec<(String, String)> {
        env.members().map(|(k, v)| (k.to_owned(), v.get().to_owned())).collect()
    }

    #[test]
    fn a_raw_object_is_split_without_serde_into_what_serde_finds() {
        let mut big = (0..40).map(|i| format!(r#""k{i}" : [{i}, {{"x":"}}"}}]"#)).collect::<Vec<_>>();
        big.push(r#""k3":null"#.to_owned());
        let big = format!("{{{}}}", big.join(","));
        let cases = [
            "{}",
            " { } ",
            CALL,
            r#"{"a":1,"b":2,"a":3}"#,
            "{\n \"a\" :\t-1.5e3 ,\r\"b\":true,\"c\":false,\"d\":null,\"e\":\"\"}",
            r#"{"s":"quote \" brace } bracket ] comma , colon :","t":"\\","u":"\u00e9\n"}"#,
            r#"{"deep":{"a":[[[{"b":[]}]],{}],"c":{"d":{"e":"}"}}},"after":[1,[2,[3]]]}"#,
            r#"{"long":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789\"x"}"#,
            &big,
        ];
        for text in cases {
            let raw: &RawValue = serde_json::from_str(text).expect("valid JSON");
            let split = members_of_valid(raw.get()).unwrap_or_else(|| panic!("{text} is split"));
            let by_serde = Envelope::parse_str(text).expect("object");
            assert_eq!(pairs(&Envelope { members: split, split: None }), pairs(&by_serde), "{text}");
            assert_eq!(pairs(&Envelope::parse_raw(raw).expect("object")), pairs(&by_serde), "{text}");
        }
    }

    #[test]
    fn a_raw_value_that_is_not_a_plain_object_goes_through_serde() {
        // An escaped key is decoded by serde; anything else gets serde's error.
        let raw: &RawValue = serde_json::from_str(r#"{"me\u0074hod":"x"}"#).expect("valid");
        assert_eq!(members_of_valid(raw.get()).map(|m| m.len), None);
        assert_eq!(Envelope::parse_raw(raw).expect("object").method().as_deref(), Some("x"));
        for text in ["[1]", "\"{}\"", "3", "null"] {
            let raw: &RawValue = serde_json::from_str(text).expect("valid");
            assert!(members_of_valid(raw.get()).is_none(), "{text}");
            let e = Envelope::parse_raw(raw).expect_err("not an object");
            assert!(e.to_string().contains("expected a JSON object"), "{text}: {e}");
        }
    }

    #[test]
    fn a_raw_value_of_a_member_is_its_own_text_not_a_copy() {
        let text = r#"{"a": {"b":[1, 2]} ,"c":"d"}"#;
        let raw = raw_of_valid(&text[6..18]).expect("serde_json accepts the borrowed text");
        assert_eq!(raw.get(), r#"{"b":[1, 2]}"#);
        assert_eq!(raw.get().as_ptr(), text[6..].as_ptr());
    }

    #[test]
    fn null_id_is_no_id() {
        let env = Envelope::parse(br#"{"jsonrpc":"2.0","id":null,"method":"x"}"#).expect("object");
        assert_eq!(env.kind(), Some(Kind::Notification));
    }

    #[test]
    fn only_strings_and_integers_are_ids() {
        let id_of = |body: &str| {
            let env = Envelope::parse(body.as_bytes()).expect("object");
            env.get("id").map(is_valid_id).expect("id present")
        };
        for ok in [r#""x""#, r#""""#, "0", "7", "-3", "123456789012345678901234567890"] {
            assert!(id_of(&format!(r#"{{"id":{ok}}}"#)), "{ok} is an id");
        }
        for bad in ["{}", r#"{"a":1}"#, "[1]", "[]", "true", "false", "1.5", "1e3", "-1E2", "1.0", "null"] {
            assert!(!id_of(&format!(r#"{{"id": {bad} }}"#)), "{bad} is not an id");
        }
    }

    #[test]
    fn non_objects_are_rejected() {
        assert!(Envelope::parse(b"[1,2]").is_err());
        assert!(Envelope::parse(b"\"x\"").is_err());
    }
}
