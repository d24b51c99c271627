//! One pass over untrusted JSON text: it validates the text as serde_json does, finds
//! duplicate keys at any depth, and keeps the top-level object's members (and those of its
//! `params` and their `_meta`, which the gateway reads next).
//!
//! It reads only the common shape of a message. On anything it cannot decide alone it
//! declines, and the caller takes the serde path (which gives every body the answer it always
//! had). It declines on: a top level that is not an object, an escaped key, an object of more
//! than [`SMALL`] keys, nesting past [`MAX_DEPTH`], a `\u` escape of a surrogate, a number
//! with an exponent or past 40 characters, and any syntax error (so serde names the error).
//! The `envelope` and `dupkeys` fuzz targets hold it to serde's answers.

use std::borrow::Cow;
use std::sync::Arc;

use smallvec::SmallVec;

use super::{Envelope, raw_of_valid};

/// Why the pass stopped without members.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Stop<'a> {
    /// The pass cannot decide: take the serde path.
    Decline,
    /// Valid up to this key, which repeats an earlier key of its object.
    Duplicate(&'a str),
}

/// Deeper than this, the pass declines (serde_json's own limit is 128).
const MAX_DEPTH: usize = 64;
/// Past this many keys in one object, the pass declines (serde's path hashes them).
const SMALL: usize = 32;
/// Longer numbers may leave f64's range, which a full parse refuses and skipping does not.
const MAX_NUMBER: usize = 40;

/// `text` as an envelope when it is one JSON object, valid, without a duplicate key at any
/// depth.
pub(super) fn parse(text: &str) -> Result<Envelope<'_>, Stop<'_>> {
    let mut r = Reader { text, b: text.as_bytes(), i: 0 };
    r.ws();
    if r.b.get(r.i) != Some(&b'{') {
        return Err(Stop::Decline);
    }
    r.i += 1;
    let mut env = Envelope::default();
    r.object(1, Some((Level::Message, &mut env)))?;
    r.ws();
    if r.i != r.b.len() {
        return Err(Stop::Decline);
    }
    Ok(env)
}

/// An object whose members the pass keeps: a message, its `params`, and their `_meta`.
#[derive(Clone, Copy)]
enum Level {
    Message,
    Params,
    Meta,
}

impl Level {
    /// The member of an object at this level that is split too, if an object, and its level.
    fn split(self) -> Option<(&'static str, Level)> {
        match self {
            Level::Message => Some(("params", Level::Params)),
            Level::Params => Some(("_meta", Level::Meta)),
            Level::Meta => None,
        }
    }
}

struct Reader<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// Past the `{` of an object at `depth`: reads it through its `}`, keeping its members in
    /// `keep`'s envelope when there is one.
    fn object(&mut self, depth: usize, mut keep: Option<(Level, &mut Envelope<'a>)>) -> Result<(), Stop<'a>> {
        let mut keys: SmallVec<[&'a str; 8]> = SmallVec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            if self.b.get(self.i) != Some(&b'"') || keys.len() == SMALL {
                return Err(Stop::Decline);
            }
            let from = self.i + 1;
            if self.string()? {
                return Err(Stop::Decline);
            }
            let key = &self.text[from..self.i - 1];
            if keys.contains(&key) {
                return Err(Stop::Duplicate(key));
            }
            keys.push(key);
            self.ws();
            if self.b.get(self.i) != Some(&b':') {
                return Err(Stop::Decline);
            }
            self.i += 1;
            self.ws();
            let from = self.i;
            match keep.as_ref().and_then(|(level, _)| level.split()) {
                Some((name, level)) if name == key && depth < MAX_DEPTH && self.b.get(self.i) == Some(&b'{') => {
                    self.i += 1;
                    let mut inner = Envelope::default();
                    self.object(depth + 1, Some((level, &mut inner)))?;
                    if let Some((_, env)) = keep.as_mut() {
                        env.split = Some(Arc::new((name, inner)));
                    }
                }
                _ => self.value(depth)?,
            }
            if let Some((_, env)) = keep.as_mut() {
                env.members.push((Cow::Borrowed(key), raw_of_valid(&self.text[from..self.i]).ok_or(Stop::Decline)?));
            }
            if self.next_or_close(b'}')? {
                return Ok(());
            }
        }
    }

    /// Past the `[` of an array at `depth`: reads it through its `]`.
    fn array(&mut self, depth: usize) -> Result<(), Stop<'a>> {
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.value(depth)?;
            if self.next_or_close(b']')? {
                return Ok(());
            }
        }
    }

    /// After a member or an element: past a `,` (`false`) or past the container's `close`
    /// (`true`); anything else declines.
    fn next_or_close(&mut self, close: u8) -> Result<bool, Stop<'a>> {
        self.ws();
        match self.b.get(self.i) {
            Some(b',') => {
                self.i += 1;
                self.ws();
                Ok(false)
            }
            Some(&c) if c == close => {
                self.i += 1;
                Ok(true)
            }
            _ => Err(Stop::Decline),
        }
    }

    /// One value starting at `self.i`, inside a container at `depth`.
    fn value(&mut self, depth: usize) -> Result<(), Stop<'a>> {
        let Some(&c) = self.b.get(self.i) else { return Err(Stop::Decline) };
        match c {
            b'"' => self.string().map(drop),
            b'{' | b'[' if depth == MAX_DEPTH => Err(Stop::Decline),
            b'{' => {
                self.i += 1;
                self.object(depth + 1, None)
            }
            b'[' => {
                self.i += 1;
                self.array(depth + 1)
            }
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => Err(Stop::Decline),
        }
    }

    /// A string from its opening `"` through its closing one; whether it has escapes.
    fn string(&mut self) -> Result<bool, Stop<'a>> {
        let mut escaped = false;
        self.i += 1;
        loop {
            let at = self.i + special(&self.b[self.i..]).ok_or(Stop::Decline)?;
            match self.b[at] {
                b'"' => {
                    self.i = at + 1;
                    return Ok(escaped);
                }
                b'\\' => {
                    escaped = true;
                    let escape_len = match self.b.get(at + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => 2,
                        Some(b'u') => {
                            let hex = self.b.get(at + 2..at + 6).ok_or(Stop::Decline)?;
                            // A surrogate must pair with the next escape: serde decides that.
                            if !hex.iter().all(u8::is_ascii_hexdigit) || matches!(hex[0], b'd' | b'D') && hex[1] >= b'8' {
                                return Err(Stop::Decline);
                            }
                            6
                        }
                        _ => return Err(Stop::Decline),
                    };
                    self.i = at + escape_len;
                }
                // A control character, which JSON strings may not hold raw.
                _ => return Err(Stop::Decline),
            }
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)?`; an exponent declines.
    fn number(&mut self) -> Result<(), Stop<'a>> {
        let from = self.i;
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(Stop::Decline),
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            let fraction = self.i;
            self.digits();
            if self.i == fraction {
                return Err(Stop::Decline);
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) || self.i - from > MAX_NUMBER {
            return Err(Stop::Decline);
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Stop<'a>> {
        if !self.b[self.i..].starts_with(word) {
            return Err(Stop::Decline);
        }
        self.i += word.len();
        Ok(())
    }
}

/// Where the first byte of `s` that ends a string's plain run is: `"`, `\` or a control
/// character (in text already known valid, only the first two occur). Eight bytes at a time
/// (the lowest flag marks the first match exactly: a borrow only reaches higher bytes), then a
/// vector search for the end past 64 bytes.
pub(super) fn special(s: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const TOPS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Flags the bytes below `n` (for `n` up to 0x80).
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & TOPS;
    let zero_bytes = |x: u64| below(x, 1);
    let mut at = 0;
    while let Some(chunk) = s.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().ok()?);
        let found = zero_bytes(word ^ (ONES * u64::from(b'"'))) | zero_bytes(word ^ (ONES * u64::from(b'\\'))) | below(word, 0x20);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
        if at >= 64 {
            let end = at + memchr::memchr2(b'"', b'\\', &s[at..])?;
            // The run up to it, checked for control characters in one vectorised pass.
            return Some(s[at..end].iter().position(|&c| c < 0x20).map_or(end, |p| at + p));
        }
    }
    s[at..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20).map(|p| at + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Result<Vec<(String, String)>, Stop<'_>> {
        parse(text).map(|env| pairs(&env))
    }

    fn pairs(env: &Envelope<'_>) -> Vec<(String, String)> {
        env.members().map(|(k, v)| (k.to_owned(), v.get().to_owned())).collect()
    }

    fn members(text: &str) -> Result<Envelope<'_>, Stop<'_>> {
        parse(text)
    }

    #[test]
    fn a_message_is_read_in_one_pass_into_its_members() {
        let text = r#" {"jsonrpc":"2.0", "id" : 7,"method":"tools/call","params":{"name":"a\"b","arguments":{"x":[1,-2.5,true,null,"é"]}}} "#;
        let got = keys(text).expect("members");
        let names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["jsonrpc", "id", "method", "params"]);
        assert_eq!(got[1].1, "7");
        assert_eq!(got[3].1, r#"{"name":"a\"b","arguments":{"x":[1,-2.5,true,null,"é"]}}"#);
    }

    #[test]
    fn params_and_their_meta_come_split_as_a_scan_of_their_text_splits_them() {
        let text = r#"{"id":1,"params":{"name":"t","arguments":{"_meta":{"x":1}},"_meta":{"v":"2026-07-28","c":{}}},"_meta":{"y":2}}"#;
        let env = parse(text).expect("parsed");
        let params = env.params_object().expect("an object").expect("present");
        let by_scan = Envelope::parse_raw(env.params().expect("params")).expect("an object");
        assert_eq!(pairs(&params), pairs(&by_scan));
        let meta = params.object("_meta").expect("present").expect("an object");
        assert_eq!(pairs(&meta), [("v".to_owned(), r#""2026-07-28""#.to_owned()), ("c".to_owned(), "{}".to_owned())]);
        // Only those two are split ahead; any other object member is parsed when asked for.
        assert!(params.object("arguments").expect("present").expect("an object").split.is_none());
        assert_eq!(pairs(&env.object("_meta").expect("present").expect("an object")), [("y".to_owned(), "2".to_owned())]);
        // Params that are not an object are left to whoever reads them.
        let env = parse(r#"{"params":[1,{"a":1}]}"#).expect("parsed");
        assert!(env.split.is_none() && env.params_object().is_err());
    }

    #[test]
    fn a_duplicate_at_any_depth_is_named() {
        assert_eq!(members(r#"{"a":1,"a":2}"#).err(), Some(Stop::Duplicate("a")));
        assert_eq!(members(r#"{"p":{"q":[{"name":"x","name":"y"}]}}"#).err(), Some(Stop::Duplicate("name")));
        // Equal keys in different objects are not duplicates.
        assert!(members(r#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#).is_ok());
    }

    #[test]
    fn what_serde_refuses_or_decides_alone_is_declined() {
        let long = format!(r#"{{"n":{}}}"#, "1".repeat(41));
        let deep = format!(r#"{{"a":{}1{}}}"#, "[".repeat(64), "]".repeat(64));
        let many = format!("{{{}}}", (0..33).map(|i| format!(r#""k{i}":1"#)).collect::<Vec<_>>().join(","));
        for text in [
            "[1]",
            r#"{"a":1} x"#,
            r#"{"a":1,}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":1e3}"#,
            r#"{"a":tru}"#,
            r#"{"a":"x
y"}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\u12"}"#,
            r#"{"n\u0061me":1}"#,
            r#"{"a":1"#,
            r#"{"a" 1}"#,
            &long,
            &deep,
            &many,
        ] {
            assert_eq!(members(text).err(), Some(Stop::Decline), "{text}");
        }
        // Just inside each limit, it reads.
        assert!(members(&format!(r#"{{"n":{}}}"#, "1".repeat(40))).is_ok());
        assert!(members(&format!(r#"{{"a":{}1{}}}"#, "[".repeat(63), "]".repeat(63))).is_ok());
    }

    #[test]
    fn the_string_end_is_found_at_every_position_and_length() {
        for len in 0..150 {
            for at in 0..=len {
                for mark in [b'"', b'\\'] {
                    // Bytes one off either mark and with the top bit set, around the mark.
                    let mut s: Vec<u8> = (0..len).map(|i| [b'!', b'#', b'[', b']', 0xa2, b'a'][i % 6]).collect();
                    if at < len {
                        s[at] = mark;
                    }
                    let want = s.iter().position(|&c| c == b'"' || c == b'\\');
                    assert_eq!(special(&s), want, "len {len} at {at}");
                }
            }
        }
    }

    #[test]
    fn the_end_of_a_run_is_found_at_every_offset_and_length() {
        for len in 0..200 {
            for stop in [b'"', b'\\', 0x1f, 0x00] {
                let mut s = vec![b'a'; len];
                s.push(stop);
                s.extend_from_slice(b"\"tail");
                assert_eq!(special(&s), Some(len), "len {len} stop {stop:#x}");
            }
            // Bytes just above the control range, and multi-byte UTF-8, are plain.
            let plain: Vec<u8> = " é~\x7f".bytes().cycle().take(len).collect();
            assert_eq!(special(&plain), None, "len {len}");
        }
    }
}
