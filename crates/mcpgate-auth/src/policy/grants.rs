//! What a source grants: per server (or per client id, for wristbands), per kind, a set of
//! unprefixed item names. Ordered collections so equal grants hash equally. Owns no policy:
//! it only stores and answers membership.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The kind of an MCP item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Tool,
    Prompt,
    /// A resource or resource template, named by URI (template).
    Resource,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Tool => "tool",
            Kind::Prompt => "prompt",
            Kind::Resource => "resource",
        }
    }

    fn index(self) -> usize {
        match self {
            Kind::Tool => 0,
            Kind::Prompt => 1,
            Kind::Resource => 2,
        }
    }
}

/// Item names per server (or client id) and kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Grants {
    by_server: BTreeMap<String, [BTreeSet<String>; 3]>,
}

impl Grants {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, server: &str, kind: Kind, name: &str) {
        let sets = self.by_server.entry(server.to_owned()).or_default();
        sets[kind.index()].insert(name.to_owned());
    }

    pub fn contains(&self, server: &str, kind: Kind, name: &str) -> bool {
        self.by_server.get(server).is_some_and(|sets| sets[kind.index()].contains(name))
    }

    pub fn is_empty(&self) -> bool {
        self.by_server.values().all(|sets| sets.iter().all(BTreeSet::is_empty))
    }

    /// Servers (or client ids) with at least one entry.
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        self.by_server.iter().filter(|(_, s)| s.iter().any(|set| !set.is_empty())).map(|(k, _)| k.as_str())
    }

    /// Names granted on `server` for `kind`, sorted.
    pub fn names(&self, server: &str, kind: Kind) -> impl Iterator<Item = &str> {
        self.by_server.get(server).into_iter().flat_map(move |sets| sets[kind.index()].iter().map(String::as_str))
    }

    /// Everything in `other` added to `self`.
    pub fn extend(&mut self, other: &Grants) {
        for (server, sets) in &other.by_server {
            let mine = self.by_server.entry(server.clone()).or_default();
            for (m, o) in mine.iter_mut().zip(sets) {
                m.extend(o.iter().cloned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_separate() {
        let mut g = Grants::new();
        g.insert("weather", Kind::Tool, "get_forecast");
        assert!(g.contains("weather", Kind::Tool, "get_forecast"));
        assert!(!g.contains("weather", Kind::Prompt, "get_forecast"));
        assert!(!g.contains("github", Kind::Tool, "get_forecast"));
    }
}
