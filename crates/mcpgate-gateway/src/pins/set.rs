//! The pin set: approved definitions and definitions observed but not yet approved, per
//! server, kind and backend name; and the changes every store applies the same way.
//!
//! This is the content of the pin file (YAML, see docs/governance.md) and what a shared store
//! must hold. Pure data: no I/O here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::kind::ItemKind;

/// Everything pinned or pending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinSet {
    /// Format version (1).
    #[serde(default = "one")]
    pub version: u32,
    #[serde(default)]
    pub servers: BTreeMap<String, ServerPins>,
}

impl Default for PinSet {
    fn default() -> Self {
        Self { version: 1, servers: BTreeMap::new() }
    }
}

/// One server's pins.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerPins {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tools: BTreeMap<String, PinEntry>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prompts: BTreeMap<String, PinEntry>,
}

/// One item: what was approved, and a different definition waiting for approval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved: Option<Pin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pin>,
}

/// One definition: its hash, when and by whom it was approved (or first seen), and the
/// pinned fields for review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// `sha256:<64 hex digits>` over the canonical definition (docs/governance.md).
    pub hash: String,
    /// RFC 3339 time of approval (or of first sight, for a pending definition).
    pub at: String,
    /// Who approved it (`first-use`, `cli`, `admin`), or `gateway` for a pending definition.
    pub by: String,
    /// The pinned fields (description, inputSchema, ...), for review and `pins diff`.
    #[serde(default)]
    pub definition: serde_json::Value,
}

fn one() -> u32 {
    1
}

/// How an observed definition compares with the pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Approved,
    /// Never approved.
    Unpinned,
    /// Differs from the approved definition (whose hash is given).
    Changed {
        approved: String,
    },
}

/// A definition the gateway sees now.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub server: String,
    pub kind: ItemKind,
    pub name: String,
    pub hash: String,
    pub definition: serde_json::Value,
    /// Record mode: pin it as approved if nothing is approved yet (trust on first use).
    pub first_use: bool,
}

/// Which items an approval covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "select")]
pub enum Selection {
    One { server: String, kind: PinKind, name: String },
    Server { server: String },
    All,
}

/// The pinned kinds, as written in the pin file and on the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinKind {
    Tool,
    Prompt,
}

impl PinKind {
    pub fn of(kind: ItemKind) -> Option<Self> {
        match kind {
            ItemKind::Tool => Some(PinKind::Tool),
            ItemKind::Prompt => Some(PinKind::Prompt),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PinKind::Tool => "tool",
            PinKind::Prompt => "prompt",
        }
    }
}

/// A change to the pin set.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Definitions the gateway sees: each different one becomes pending (or approved on first
    /// use in record mode); one equal to its approved pin clears the pending one.
    Observe(Vec<Observation>),
    /// Pending definitions become approved. With `hash`, only a pending definition with
    /// exactly that hash is approved (what the operator reviewed).
    Approve { selection: Selection, hash: Option<String>, by: String },
}

/// One approval that happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approved {
    pub server: String,
    pub kind: PinKind,
    pub name: String,
    pub hash: String,
}

/// Why a change could not be applied (nothing was changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("{kind} {name} of server {server} has no definition waiting for approval{}", if *.approved { " (its approved definition is current)" } else { "; the gateway has not seen it" })]
    NothingPending { server: String, kind: &'static str, name: String, approved: bool },
    #[error("the pending definition of {kind} {name} of server {server} is {actual}, not {expected}: review it again (`mcpgate pins diff`)")]
    HashMismatch { server: String, kind: &'static str, name: String, expected: String, actual: String },
}

impl PinSet {
    pub fn entry(&self, server: &str, kind: PinKind, name: &str) -> Option<&PinEntry> {
        let s = self.servers.get(server)?;
        match kind {
            PinKind::Tool => s.tools.get(name),
            PinKind::Prompt => s.prompts.get(name),
        }
    }

    fn entry_mut(&mut self, server: &str, kind: PinKind, name: &str) -> &mut PinEntry {
        let s = self.servers.entry(server.to_owned()).or_default();
        let map = match kind {
            PinKind::Tool => &mut s.tools,
            PinKind::Prompt => &mut s.prompts,
        };
        map.entry(name.to_owned()).or_default()
    }

    /// How `hash` compares with the approved definition of the item.
    pub fn verdict(&self, server: &str, kind: PinKind, name: &str, hash: &str) -> Verdict {
        match self.entry(server, kind, name).and_then(|e| e.approved.as_ref()) {
            None => Verdict::Unpinned,
            Some(p) if p.hash == hash => Verdict::Approved,
            Some(p) => Verdict::Changed { approved: p.hash.clone() },
        }
    }

    /// Every item, in order: (server, kind, name, entry).
    pub fn items(&self) -> impl Iterator<Item = (&str, PinKind, &str, &PinEntry)> {
        self.servers.iter().flat_map(|(s, p)| {
            let tools = p.tools.iter().map(move |(n, e)| (s.as_str(), PinKind::Tool, n.as_str(), e));
            let prompts = p.prompts.iter().map(move |(n, e)| (s.as_str(), PinKind::Prompt, n.as_str(), e));
            tools.chain(prompts)
        })
    }

    /// Whether applying `change` would alter the set (so a store can skip the write).
    pub fn would_change(&self, change: &Change) -> bool {
        let mut copy = self.clone();
        matches!(copy.apply(change, "-"), Ok(a) if a.changed)
    }

    /// Applies `change` at time `now` (RFC 3339). On error nothing is changed.
    pub fn apply(&mut self, change: &Change, now: &str) -> Result<Applied, ChangeError> {
        match change {
            Change::Observe(observations) => {
                let mut changed = false;
                for o in observations {
                    let Some(kind) = PinKind::of(o.kind) else { continue };
                    let pin = |by: &str| Pin { hash: o.hash.clone(), at: now.to_owned(), by: by.to_owned(), definition: o.definition.clone() };
                    let entry = self.entry_mut(&o.server, kind, &o.name);
                    match &entry.approved {
                        None if o.first_use => {
                            entry.approved = Some(pin("first-use"));
                            entry.pending = None;
                            changed = true;
                        }
                        Some(a) if a.hash == o.hash => changed |= entry.pending.take().is_some(),
                        _ if entry.pending.as_ref().is_some_and(|p| p.hash == o.hash) => {}
                        _ => {
                            entry.pending = Some(pin("gateway"));
                            changed = true;
                        }
                    }
                }
                Ok(Applied { changed, approved: Vec::new() })
            }
            Change::Approve { selection, hash, by } => self.approve(selection, hash.as_deref(), by, now),
        }
    }

    fn approve(&mut self, selection: &Selection, hash: Option<&str>, by: &str, now: &str) -> Result<Applied, ChangeError> {
        if let Selection::One { server, kind, name } = selection {
            let entry = self.entry(server, *kind, name);
            let Some(pending) = entry.and_then(|e| e.pending.as_ref()) else {
                let approved = entry.is_some_and(|e| e.approved.is_some());
                return Err(ChangeError::NothingPending { server: server.clone(), kind: kind.as_str(), name: name.clone(), approved });
            };
            if let Some(expected) = hash.filter(|h| *h != pending.hash) {
                return Err(ChangeError::HashMismatch {
                    server: server.clone(),
                    kind: kind.as_str(),
                    name: name.clone(),
                    expected: expected.to_owned(),
                    actual: pending.hash.clone(),
                });
            }
        }
        let selected = |s: &str, k: PinKind, n: &str| match selection {
            Selection::One { server, kind, name } => server == s && *kind == k && name == n,
            Selection::Server { server } => server == s,
            Selection::All => true,
        };
        let mut approved = Vec::new();
        for (server, pins) in self.servers.iter_mut() {
            for (kind, map) in [(PinKind::Tool, &mut pins.tools), (PinKind::Prompt, &mut pins.prompts)] {
                for (name, entry) in map.iter_mut() {
                    if !selected(server, kind, name) {
                        continue;
                    }
                    let Some(mut pin) = entry.pending.take() else { continue };
                    pin.at = now.to_owned();
                    pin.by = by.to_owned();
                    approved.push(Approved { server: server.clone(), kind, name: name.clone(), hash: pin.hash.clone() });
                    entry.approved = Some(pin);
                }
            }
        }
        Ok(Applied { changed: !approved.is_empty(), approved })
    }

    /// Checks what serde cannot: hashes well formed. Problems carry their key path.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.version != 1 {
            problems.push(("version".to_owned(), format!("{} is not a known pin file version (1)", self.version)));
        }
        for (server, kind, name, entry) in self.items() {
            for (which, pin) in [("approved", &entry.approved), ("pending", &entry.pending)] {
                if let Some(pin) = pin
                    && !is_hash(&pin.hash)
                {
                    problems
                        .push((format!("servers.{server}.{}s.{name}.{which}.hash", kind.as_str()), format!("{:?} is not sha256:<64 hex digits>", pin.hash)));
                }
            }
        }
        problems
    }
}

/// What a change did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    pub changed: bool,
    pub approved: Vec<Approved>,
}

fn is_hash(h: &str) -> bool {
    h.strip_prefix("sha256:").is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(name: &str, hash: &str, first_use: bool) -> Observation {
        Observation { server: "a".into(), kind: ItemKind::Tool, name: name.into(), hash: hash.into(), definition: serde_json::json!({}), first_use }
    }

    fn h(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn approve_one(name: &str) -> Change {
        Change::Approve { selection: Selection::One { server: "a".into(), kind: PinKind::Tool, name: name.into() }, hash: None, by: "cli".into() }
    }

    #[test]
    fn enforce_flow_pending_then_approved_then_changed() {
        let mut set = PinSet::default();
        assert!(set.apply(&Change::Observe(vec![obs("echo", &h('1'), false)]), "t1").expect("observe").changed);
        assert_eq!(set.verdict("a", PinKind::Tool, "echo", &h('1')), Verdict::Unpinned);
        let applied = set.apply(&approve_one("echo"), "t2").expect("approve");
        assert_eq!(applied.approved.len(), 1);
        assert_eq!(set.verdict("a", PinKind::Tool, "echo", &h('1')), Verdict::Approved);
        assert_eq!(set.verdict("a", PinKind::Tool, "echo", &h('2')), Verdict::Changed { approved: h('1') });
        // Seeing the approved definition again changes nothing.
        assert!(!set.would_change(&Change::Observe(vec![obs("echo", &h('1'), false)])));
    }

    #[test]
    fn record_mode_pins_on_first_use_only() {
        let mut set = PinSet::default();
        set.apply(&Change::Observe(vec![obs("echo", &h('1'), true)]), "t1").expect("observe");
        assert_eq!(set.verdict("a", PinKind::Tool, "echo", &h('1')), Verdict::Approved);
        set.apply(&Change::Observe(vec![obs("echo", &h('2'), true)]), "t2").expect("observe");
        assert_eq!(set.verdict("a", PinKind::Tool, "echo", &h('2')), Verdict::Changed { approved: h('1') });
        assert_eq!(set.entry("a", PinKind::Tool, "echo").and_then(|e| e.pending.as_ref()).map(|p| p.hash.clone()), Some(h('2')));
    }

    #[test]
    fn approving_with_a_stale_hash_or_nothing_pending_is_refused() {
        let mut set = PinSet::default();
        set.apply(&Change::Observe(vec![obs("echo", &h('1'), false)]), "t1").expect("observe");
        let stale = Change::Approve {
            selection: Selection::One { server: "a".into(), kind: PinKind::Tool, name: "echo".into() },
            hash: Some(h('9')),
            by: "cli".into(),
        };
        assert!(matches!(set.apply(&stale, "t2"), Err(ChangeError::HashMismatch { .. })));
        assert!(matches!(set.apply(&approve_one("nope"), "t2"), Err(ChangeError::NothingPending { approved: false, .. })));
        assert_eq!(set.verdict("a", PinKind::Tool, "echo", &h('1')), Verdict::Unpinned, "nothing changed");
    }

    #[test]
    fn approve_all_and_per_server() {
        let mut set = PinSet::default();
        let mut b = obs("x", &h('3'), false);
        b.server = "b".into();
        set.apply(&Change::Observe(vec![obs("echo", &h('1'), false), obs("add", &h('2'), false), b]), "t1").expect("observe");
        let per_server = Change::Approve { selection: Selection::Server { server: "a".into() }, hash: None, by: "admin".into() };
        assert_eq!(set.apply(&per_server, "t2").expect("approve").approved.len(), 2);
        assert_eq!(set.verdict("b", PinKind::Tool, "x", &h('3')), Verdict::Unpinned);
        let all = Change::Approve { selection: Selection::All, hash: None, by: "admin".into() };
        assert_eq!(set.apply(&all, "t3").expect("approve").approved.len(), 1);
    }

    #[test]
    fn malformed_hashes_are_reported_with_their_path() {
        let mut set = PinSet::default();
        set.apply(&Change::Observe(vec![obs("echo", "md5:abc", true)]), "t1").expect("observe");
        let problems = set.check();
        assert_eq!(problems[0].0, "servers.a.tools.echo.approved.hash", "{problems:?}");
    }
}
