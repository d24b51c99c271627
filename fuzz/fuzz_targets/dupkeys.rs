//! The duplicate-key check against a plain reference: parse the document into a tree that
//! keeps every member (keys decoded, so `"na\u006de"` equals `"name"`), then look for the
//! first repeated key in document order.
//!
//! Properties: `check` says `Ok` exactly when the reference parses and finds no repeat; it
//! names the same duplicate key the reference finds first; a syntax error is reported only for
//! input serde_json refuses too; the gateway's one-pass parse of a body
//! (`Envelope::parse_checked`) gives `check`'s answer or declines, and the members it reads are
//! serde_json's.
#![no_main]

use std::collections::HashSet;
use std::fmt;

use libfuzzer_sys::fuzz_target;
use indexmap::IndexMap;
use mcpgate_protocol::Envelope;
use mcpgate_protocol::dupkeys::{StructureError, check};
use serde::de::{self, Deserializer as _, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON value with every object member kept, in order.
enum Tree {
    Object(Vec<(String, Tree)>),
    Array(Vec<Tree>),
    Scalar,
}

impl<'de> de::Deserialize<'de> for Tree {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Tree, E> {
        Ok(Tree::Scalar)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Tree, E> {
        Ok(Tree::Scalar)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Tree, E> {
        Ok(Tree::Scalar)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Tree, E> {
        Ok(Tree::Scalar)
    }
    fn visit_str<E>(self, _: &str) -> Result<Tree, E> {
        Ok(Tree::Scalar)
    }
    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Scalar)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(t) = seq.next_element::<Tree>()? {
            items.push(t);
        }
        Ok(Tree::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut members = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            members.push((k, map.next_value::<Tree>()?));
        }
        Ok(Tree::Object(members))
    }
}

/// The first key that repeats within one object, in document order.
fn first_duplicate(t: &Tree) -> Option<&str> {
    match t {
        Tree::Scalar => None,
        Tree::Array(items) => items.iter().find_map(first_duplicate),
        Tree::Object(members) => {
            let mut seen = HashSet::new();
            for (k, v) in members {
                if !seen.insert(k.as_str()) {
                    return Some(k);
                }
                if let Some(d) = first_duplicate(v) {
                    return Some(d);
                }
            }
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let got = check(data);
    let mut de = serde_json::Deserializer::from_slice(data);
    let reference = de.deserialize_any(TreeVisitor).and_then(|t| de.end().map(|()| t));
    // The one-pass parse answers exactly as the check does, or declines; what it accepts,
    // serde_json reads as the same members.
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(parsed) = Envelope::parse_checked(text)
    {
        assert_eq!(parsed.as_ref().map(drop).map_err(Clone::clone), got, "the one-pass parse disagrees with the check");
        if let Ok(env) = parsed {
            // Read as values too: the strictest reading (numbers in range, surrogates paired).
            serde_json::from_str::<serde_json::Value>(text).expect("serde_json reads what the one-pass parse accepts");
            let reference: IndexMap<String, Box<RawValue>> = serde_json::from_str(text).expect("an object");
            assert!(env.members().map(|(k, v)| (k, v.get())).eq(reference.iter().map(|(k, v)| (k.as_str(), v.get()))), "members differ from serde_json's");
        }
    }
    match reference {
        Ok(tree) => match first_duplicate(&tree) {
            None => assert_eq!(got, Ok(()), "reference finds no duplicate"),
            Some(k) => assert_eq!(got, Err(StructureError::DuplicateKey(k.to_owned()))),
        },
        // Invalid JSON: a syntax error, or a duplicate met before the syntax error.
        Err(_) => assert!(got.is_err(), "check accepted what serde_json refuses"),
    }
});
