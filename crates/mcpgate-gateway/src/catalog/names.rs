//! The second step of a catalog build, across servers: each candidate's exposed name settled
//! (prefix modes, `on_collision` decided against every other server's names), invalid and
//! ambiguous names withheld (never overwritten, never resolved by order), quarantined items
//! set aside, and the rest written as entries with their name and overrides in the JSON.

use std::collections::{HashMap, HashSet};

use mcpgate_protocol::envelope::json_string;
use mcpgate_protocol::names::{ServerName, is_valid_exposed_name};
use serde_json::value::RawValue;

use super::expose::{Candidate, Naming};
use super::{Entry, ItemKind, Quarantined, Withheld};

/// Turns every server's candidates of one kind into entries; quarantined and withheld ones
/// are reported per server.
pub(super) fn resolve(
    kind: ItemKind,
    candidates: Vec<Candidate<'_>>,
    withheld: &mut HashMap<ServerName, Vec<Withheld>>,
    quarantined: &mut HashMap<ServerName, Vec<Quarantined>>,
) -> Vec<Entry> {
    let candidates = drop_duplicates(kind, candidates, withheld);
    let prefixed = on_collision_prefixed(&candidates);
    let named: Vec<(String, Candidate<'_>)> = candidates
        .into_iter()
        .zip(prefixed)
        .map(|(mut c, prefixed)| {
            let exposed = match std::mem::replace(&mut c.naming, Naming::Fixed(String::new())) {
                Naming::Fixed(n) => n,
                Naming::OnCollision { prefixed: p, .. } if prefixed => p,
                Naming::OnCollision { bare, .. } => bare,
            };
            (exposed, c)
        })
        .collect();
    let mut count: HashMap<&str, usize> = HashMap::with_capacity(named.len());
    for (exposed, _) in &named {
        *count.entry(exposed.as_str()).or_default() += 1;
    }
    let shared: HashSet<String> = count.into_iter().filter(|(_, n)| *n > 1).map(|(k, _)| k.to_owned()).collect();
    let mut out = Vec::with_capacity(named.len());
    for (exposed, c) in named {
        let withhold = |reason: String| {
            tracing::warn!(server = %c.server, kind = kind.as_str(), name = %c.backend_name, "withheld: {reason}");
            Withheld { kind: kind.as_str(), name: c.backend_name.clone(), reason }
        };
        if matches!(kind, ItemKind::Tool | ItemKind::Prompt) && !is_valid_exposed_name(&exposed) {
            let w = withhold(format!("exposed name {exposed:?} is not 1-128 characters of A-Z a-z 0-9 _ - ."));
            withheld.entry(c.server.clone()).or_default().push(w);
            continue;
        }
        if shared.contains(&exposed) {
            let w = withhold(format!("exposed name {exposed:?} collides with another item's"));
            withheld.entry(c.server.clone()).or_default().push(w);
            continue;
        }
        if let Some(q) = c.quarantined(kind, &exposed) {
            quarantined.entry(c.server.clone()).or_default().push(q);
            continue;
        }
        if let Some(entry) = entry(kind, exposed, c) {
            out.push(entry);
        }
    }
    out
}

/// For each candidate: whether its `on_collision` name must be prefixed because another
/// server claims the same bare name (a fixed name or another `on_collision` bare name).
fn on_collision_prefixed(candidates: &[Candidate<'_>]) -> Vec<bool> {
    if !candidates.iter().any(|c| matches!(c.naming, Naming::OnCollision { .. })) {
        return vec![false; candidates.len()];
    }
    // Per claimed name: the first server claiming it, and whether another server does too.
    let mut claims: HashMap<&str, (&ServerName, bool)> = HashMap::with_capacity(candidates.len());
    for c in candidates {
        let name = match &c.naming {
            Naming::Fixed(n) => n.as_str(),
            Naming::OnCollision { bare, .. } => bare.as_str(),
        };
        let claim = claims.entry(name).or_insert((&c.server, false));
        claim.1 |= claim.0 != &c.server;
    }
    candidates.iter().map(|c| matches!(&c.naming, Naming::OnCollision { bare, .. } if claims.get(bare.as_str()).is_some_and(|(_, several)| *several))).collect()
}

/// A backend listing one name twice: every copy is withheld (neither is picked).
fn drop_duplicates<'a>(kind: ItemKind, candidates: Vec<Candidate<'a>>, withheld: &mut HashMap<ServerName, Vec<Withheld>>) -> Vec<Candidate<'a>> {
    let mut seen: HashMap<(&ServerName, &str), usize> = HashMap::with_capacity(candidates.len());
    for c in &candidates {
        *seen.entry((&c.server, c.backend_name.as_str())).or_default() += 1;
    }
    if seen.values().all(|n| *n == 1) {
        return candidates;
    }
    let dup: HashSet<(ServerName, String)> = seen.into_iter().filter(|(_, n)| *n > 1).map(|((s, n), _)| (s.clone(), n.to_owned())).collect();
    for (server, name) in &dup {
        tracing::warn!(server = %server, kind = kind.as_str(), name = %name, "withheld: the backend lists this name more than once");
        withheld.entry(server.clone()).or_default().push(Withheld {
            kind: kind.as_str(),
            name: name.clone(),
            reason: "the backend lists this name more than once".into(),
        });
    }
    candidates.into_iter().filter(|c| !dup.contains(&(c.server.clone(), c.backend_name.clone()))).collect()
}

/// The entry for a candidate under its exposed name, overrides written into its JSON.
fn entry(kind: ItemKind, exposed: String, c: Candidate<'_>) -> Option<Entry> {
    let name = json_string(&exposed);
    let description = c.description.as_deref().map(json_string);
    let annotations = c.annotations.as_ref().filter(|_| c.annotations_overridden).and_then(|a| serde_json::to_string(a).ok());
    let mut replace: Vec<(&str, Option<&str>)> = vec![(kind.name_key(), Some(&name))];
    if let Some(d) = &description {
        replace.push(("description", Some(d)));
    }
    if let Some(a) = &annotations {
        replace.push(("annotations", Some(a)));
    }
    let json = String::from_utf8(c.env.rewrite(&replace)).ok().and_then(|j| RawValue::from_string(j).ok())?;
    Some(Entry {
        exposed,
        server: c.server,
        backend_name: c.backend_name,
        json,
        annotations: c.annotations,
        param_headers: c.param_headers,
        series: Default::default(),
    })
}
