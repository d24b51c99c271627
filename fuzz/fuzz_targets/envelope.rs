//! The lossless envelope: what `Envelope` reads from any bytes must equal what serde_json
//! reads, and what `rewrite` writes must parse back to exactly the members asked for.
//!
//! Properties (panics are failures):
//! - `Envelope::parse` accepts exactly the JSON objects serde_json accepts, and its members
//!   (order, keys, raw values) equal an order-preserving map's (`IndexMap`: of equal keys the
//!   last value at the first position).
//! - `method`, `id`, `kind`, `str` agree with a reading through `serde_json::Value`.
//! - `rewrite` with no changes round-trips the members byte for byte; with replacements,
//!   removals and appends it yields valid JSON without duplicate keys whose members are the
//!   expected ones, in the expected order.
//! - The hot path's `Needle` never says "absent" for a member that is there.
//! - `Envelope::parse_raw`, which splits a raw value by a scan instead of serde's parse, finds
//!   the same members as `Envelope::parse_str` of its text (or both refuse it): for the whole
//!   input and for every member value.
//! - What a parse splits ahead (`params`, and in them `_meta`) has the members `parse_raw`
//!   finds in its text.
#![no_main]

use indexmap::IndexMap;
use libfuzzer_sys::fuzz_target;
use mcpgate_protocol::envelope::{Envelope, Kind, Needle, raw_str};
use mcpgate_protocol::{ObjectWriter, dupkeys};
use serde_json::Value;
use serde_json::value::RawValue;

static ERROR: Needle = Needle::new(br#""error""#);

fuzz_target!(|data: &[u8]| {
    let reference = serde_json::from_slice::<IndexMap<String, Box<RawValue>>>(data);
    let env = Envelope::parse(data);
    let (env, reference) = match (env, reference) {
        (Ok(e), Ok(r)) => (e, r),
        (Err(_), Err(_)) => return,
        (e, r) => panic!("envelope and serde_json disagree: envelope ok={} serde ok={}", e.is_ok(), r.is_ok()),
    };
    let members: Vec<(&str, &RawValue)> = env.members().collect();
    assert_eq!(members.len(), reference.len(), "member count");
    for ((k, v), (rk, rv)) in members.iter().zip(reference.iter()) {
        assert_eq!(*k, rk.as_str(), "key order");
        assert_eq!(v.get(), rv.get(), "raw value of {k:?}");
    }

    check_accessors(&env, data);
    same_as_split_on_demand(&env, 0);
    if env.has("error") {
        assert!(ERROR.may_be_in(data), "Needle missed an \"error\" member");
    }

    // No changes: the same members, byte for byte.
    let same = env.rewrite(&[]);
    let again = Envelope::parse(&same).expect("rewrite(&[]) is an object");
    assert!(again.members().map(|(k, v)| (k, v.get())).eq(env.members().map(|(k, v)| (k, v.get()))), "rewrite(&[]) changed members");
    let clean = dupkeys::check(data).is_ok();
    if clean {
        assert_eq!(dupkeys::check(&same), Ok(()), "rewrite(&[]) of a clean body has duplicates");
    }

    check_rewrites(&env, &members, clean);
    if let Ok(whole) = serde_json::from_slice::<&RawValue>(data) {
        split_as_serde_parses(whole);
    }
    for (_, v) in &members {
        split_as_serde_parses(v);
        if let Ok(inner) = Envelope::parse_raw(v) {
            check_accessors(&inner, v.get().as_bytes());
        }
    }
});

fn check_accessors(env: &Envelope<'_>, data: &[u8]) {
    let Ok(Value::Object(value)) = serde_json::from_slice::<Value>(data) else {
        // Accepted as members of raw values, but not representable as a Value (e.g. a number
        // beyond f64): nothing more to compare.
        return;
    };
    let method = value.get("method").and_then(Value::as_str);
    assert_eq!(env.method().as_deref(), method, "method");
    let id = value.get("id").filter(|v| !v.is_null());
    assert_eq!(env.id().is_some(), id.is_some(), "id presence");
    if let (Some(raw), Some(v)) = (env.id(), id) {
        assert_eq!(&serde_json::from_str::<Value>(raw.get()).expect("raw id is JSON"), v, "id value");
    }
    let kind = match (value.contains_key("method"), id.is_some()) {
        (true, true) => Some(Kind::Request),
        (true, false) => Some(Kind::Notification),
        (false, true) if value.contains_key("result") || value.contains_key("error") => Some(Kind::Response),
        _ => None,
    };
    assert_eq!(env.kind(), kind, "kind");
    for (k, v) in env.members() {
        assert_eq!(raw_str(v).as_deref(), value.get(k).and_then(Value::as_str), "string member {k:?}");
    }
}

/// Replaces the first member with the last one's value, removes the second, appends a new
/// key (with escapes) carrying the first member's value: the result must read back exactly.
fn check_rewrites(env: &Envelope<'_>, members: &[(&str, &RawValue)], clean: bool) {
    let Some(((first, first_value), (_, last_value))) = members.first().zip(members.last()) else {
        assert_eq!(env.rewrite(&[("k", Some("1"))]), br#"{"k":1}"#);
        return;
    };
    let second = members.get(1).map(|(k, _)| *k);
    let appended = "new\"key\\\u{1}é";
    let mut replace: Vec<(&str, Option<&str>)> = vec![(first, Some(last_value.get()))];
    if let Some(s) = second {
        replace.push((s, None));
    }
    if !members.iter().any(|(k, _)| *k == appended) {
        replace.push((appended, Some(first_value.get())));
    }
    let out = env.rewrite(&replace);
    let reread: IndexMap<String, Box<RawValue>> = serde_json::from_slice(&out).expect("rewrite output is a JSON object");
    let mut expected: Vec<(String, String)> = Vec::new();
    for (k, v) in members {
        match replace.iter().find(|(rk, _)| rk == k) {
            Some((_, Some(new))) => expected.push(((*k).to_owned(), (*new).to_owned())),
            Some((_, None)) => {}
            None => expected.push(((*k).to_owned(), v.get().to_owned())),
        }
    }
    for (k, v) in &replace {
        if let (false, Some(new)) = (members.iter().any(|(mk, _)| mk == k), v) {
            expected.push(((*k).to_owned(), (*new).to_owned()));
        }
    }
    let got: Vec<(String, String)> = reread.iter().map(|(k, v)| (k.clone(), v.get().to_owned())).collect();
    assert_eq!(got, expected, "rewrite result");
    if clean {
        assert_eq!(dupkeys::check(&out), Ok(()), "rewrite wrote a duplicate key");
    }

    // The writer used on its own escapes keys and strings so they read back.
    let mut w = ObjectWriter::new();
    w.string(appended, first).raw("v", first_value.get());
    let built: IndexMap<String, Box<RawValue>> = serde_json::from_slice(&w.finish()).expect("ObjectWriter output is JSON");
    assert_eq!(built.get(appended).and_then(|v| raw_str(v)).as_deref(), Some(*first));
}

/// The object members a parse split ahead (a message's `params`, and their `_meta`) have the
/// members a scan of their text finds when asked for later, at every level.
fn same_as_split_on_demand(env: &Envelope<'_>, depth: usize) {
    for key in ["params", "_meta"] {
        let (Some(object), Some(raw)) = (env.object(key), env.get(key)) else { continue };
        match (object, Envelope::parse_raw(raw)) {
            (Ok(object), Ok(scanned)) => {
                assert!(object.members().map(|(k, v)| (k, v.get())).eq(scanned.members().map(|(k, v)| (k, v.get()))), "{key} split ahead differs from its scan");
                if depth < 3 {
                    same_as_split_on_demand(&object, depth + 1);
                }
            }
            (Err(_), Err(_)) => {}
            (o, s) => panic!("{key}: split ahead ok={} scan ok={}", o.is_ok(), s.is_ok()),
        }
    }
}

/// `parse_raw` (a scan of text known valid) and `parse_str` (serde) agree on `raw`.
fn split_as_serde_parses(raw: &RawValue) {
    match (Envelope::parse_raw(raw), Envelope::parse_str(raw.get())) {
        (Ok(split), Ok(parsed)) => {
            assert!(
                split.members().map(|(k, v)| (k, v.get())).eq(parsed.members().map(|(k, v)| (k, v.get()))),
                "parse_raw and parse_str disagree on {:?}",
                raw.get()
            );
        }
        (Err(_), Err(_)) => {}
        (split, parsed) => panic!("parse_raw ok={} but parse_str ok={} on {:?}", split.is_ok(), parsed.is_ok(), raw.get()),
    }
}
