//! Building a catalog from listings: prefixing, validating, detecting collisions, sorting.

use std::collections::HashMap;
use std::sync::Arc;

use mcpgate_protocol::envelope::{Envelope, json_string, raw_str};
use mcpgate_protocol::modern::param_headers;
use mcpgate_protocol::names::{ServerName, expose_uri, is_valid_exposed_name};
use serde_json::value::RawValue;

use super::{BackendCaps, Catalog, Entry, ItemKind, Listing, Withheld};

/// A server as the catalog sees it: its name, prefix and current listing (if reachable).
pub struct ServerEntry {
    pub name: ServerName,
    pub prefix: String,
    pub listing: Option<Arc<Listing>>,
}

pub fn build(servers: &[ServerEntry]) -> Catalog {
    static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let mut cat = Catalog { generation: GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed), ..Default::default() };
    let mut instructions = Vec::new();
    for s in servers {
        let Some(listing) = &s.listing else { continue };
        merge_caps(&mut cat.caps, listing.caps);
        cat.backend_private |= listing.private;
        if let Some(ttl) = listing.ttl_ms {
            cat.backend_ttl_ms = Some(cat.backend_ttl_ms.map_or(ttl, |t| t.min(ttl)));
        }
        if let Some(text) = listing.instructions.as_deref().filter(|t| !t.trim().is_empty()) {
            instructions.push(format!("## {}\n{}", s.name, text.trim()));
        }
        let mut withheld = Vec::new();
        for kind in ItemKind::ALL {
            expose_items(s, kind, listing.items(kind), cat.items_mut(kind), &mut withheld);
        }
        if !withheld.is_empty() {
            cat.withheld.insert(s.name.clone(), withheld);
        }
    }
    for kind in ItemKind::ALL {
        let mut list = std::mem::take(cat.items_mut(kind));
        withhold_collisions(kind, &mut list, &mut cat.withheld);
        list.sort_by(|a, b| a.exposed.cmp(&b.exposed));
        *cat.items_mut(kind) = list;
    }
    cat.instructions = (!instructions.is_empty()).then(|| instructions.join("\n\n"));
    cat.index()
}

fn merge_caps(into: &mut BackendCaps, c: BackendCaps) {
    into.tools |= c.tools;
    into.prompts |= c.prompts;
    into.resources |= c.resources;
    into.subscribe |= c.subscribe;
    into.logging |= c.logging;
    into.completions |= c.completions;
    into.tasks |= c.tasks;
}

fn expose_items(s: &ServerEntry, kind: ItemKind, items: &[Box<RawValue>], out: &mut Vec<Entry>, withheld: &mut Vec<Withheld>) {
    let key = kind.name_key();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut staged: Vec<Entry> = Vec::new();
    for item in items {
        let Some((name, env)) = Envelope::parse_raw(item).ok().and_then(|e| Some((e.get(key).and_then(raw_str)?.into_owned(), e))) else {
            withheld.push(Withheld { kind: kind.as_str(), name: "(unnamed)".into(), reason: format!("item has no string \"{key}\"") });
            continue;
        };
        let exposed = match kind {
            ItemKind::Tool | ItemKind::Prompt => format!("{}{name}", s.prefix),
            ItemKind::Resource | ItemKind::ResourceTemplate if s.prefix.is_empty() => name.clone(),
            ItemKind::Resource | ItemKind::ResourceTemplate => expose_uri(&s.name, &name),
        };
        if matches!(kind, ItemKind::Tool | ItemKind::Prompt) && !is_valid_exposed_name(&exposed) {
            tracing::warn!(server = %s.name, kind = kind.as_str(), name = %name, "withheld: exposed name {exposed:?} is not a valid MCP name");
            withheld.push(Withheld { kind: kind.as_str(), name, reason: format!("exposed name {exposed:?} is not 1-128 characters of A-Z a-z 0-9 _ - .") });
            continue;
        }
        *seen.entry(name.clone()).or_default() += 1;
        let json = env.rewrite(&[(key, Some(&json_string(&exposed)))]);
        let json = String::from_utf8(json).ok().and_then(|j| RawValue::from_string(j).ok());
        let Some(json) = json else { continue };
        let annotations = env.get("annotations").filter(|_| kind == ItemKind::Tool).and_then(|a| serde_json::from_str(a.get()).ok());
        let param_headers = if kind == ItemKind::Tool {
            let schema = env.get("inputSchema").and_then(|raw| serde_json::from_str(raw.get()).ok()).unwrap_or(serde_json::Value::Null);
            match param_headers(&schema) {
                Ok(h) => h,
                Err(reason) => {
                    // A client must drop such a tool (SEP-2243); so does the gateway.
                    tracing::warn!(server = %s.name, name = %name, "withheld: {reason}");
                    withheld.push(Withheld { kind: kind.as_str(), name, reason });
                    continue;
                }
            }
        } else {
            Vec::new()
        };
        staged.push(Entry { exposed, server: s.name.clone(), backend_name: name, json, annotations, param_headers, series: Default::default() });
    }
    for e in staged {
        if seen.get(&e.backend_name).copied().unwrap_or(0) > 1 {
            if !withheld.iter().any(|w| w.name == e.backend_name && w.kind == kind.as_str()) {
                tracing::warn!(server = %s.name, kind = kind.as_str(), name = %e.backend_name, "withheld: the backend lists this name more than once");
                withheld.push(Withheld { kind: kind.as_str(), name: e.backend_name.clone(), reason: "the backend lists this name more than once".into() });
            }
            continue;
        }
        out.push(e);
    }
}

/// Two servers producing the same exposed name: both are withheld, whatever their order.
fn withhold_collisions(kind: ItemKind, list: &mut Vec<Entry>, withheld: &mut HashMap<ServerName, Vec<Withheld>>) {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for e in list.iter() {
        *count.entry(e.exposed.as_str()).or_default() += 1;
    }
    let colliding: Vec<String> = count.into_iter().filter(|(_, n)| *n > 1).map(|(k, _)| k.to_owned()).collect();
    if colliding.is_empty() {
        return;
    }
    list.retain(|e| {
        if !colliding.contains(&e.exposed) {
            return true;
        }
        tracing::warn!(server = %e.server, kind = kind.as_str(), name = %e.backend_name, "withheld: exposed name {:?} collides with another server's", e.exposed);
        withheld.entry(e.server.clone()).or_default().push(Withheld {
            kind: kind.as_str(),
            name: e.backend_name.clone(),
            reason: format!("exposed name {:?} collides with another server's", e.exposed),
        });
        false
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).expect("json")
    }

    fn server(name: &str, prefix: &str, tools: &[&str]) -> ServerEntry {
        ServerEntry {
            name: ServerName::parse(name).expect("name"),
            prefix: prefix.into(),
            listing: Some(Arc::new(Listing {
                tools: tools.iter().map(|t| raw(t)).collect(),
                caps: BackendCaps { tools: true, ..Default::default() },
                ..Default::default()
            })),
        }
    }

    fn names(c: &Catalog) -> Vec<&str> {
        c.tools.iter().map(|e| e.exposed.as_str()).collect()
    }

    #[test]
    fn tools_are_prefixed_sorted_and_rewritten_losslessly() {
        let c = build(&[
            server("b", "b_", &[r#"{"name":"zeta","x-vendor":{"n":123456789012345678901234567890}}"#]),
            server("a", "a_", &[r#"{"name":"echo","inputSchema":{"type":"object"}}"#]),
        ]);
        assert_eq!(names(&c), ["a_echo", "b_zeta"]);
        assert_eq!(c.tools[1].json.get(), r#"{"name":"b_zeta","x-vendor":{"n":123456789012345678901234567890}}"#);
        let route = c.tool("b_zeta").expect("routed");
        assert_eq!((route.server.as_str(), route.backend_name.as_str()), ("b", "zeta"));
    }

    #[test]
    fn invalid_exposed_names_are_withheld_with_a_reason() {
        let c = build(&[server("a", "a_", &[r#"{"name":"has space"}"#, r#"{"name":"ok"}"#])]);
        assert_eq!(names(&c), ["a_ok"]);
        let w = &c.withheld[&ServerName::parse("a").expect("name")];
        assert_eq!(w[0].name, "has space");
        assert!(w[0].reason.contains("not 1-128"), "{w:?}");
    }

    #[test]
    fn duplicate_backend_names_are_withheld_not_overwritten() {
        let c = build(&[server("a", "a_", &[r#"{"name":"x","v":1}"#, r#"{"name":"x","v":2}"#, r#"{"name":"y"}"#])]);
        assert_eq!(names(&c), ["a_y"]);
        assert_eq!(c.withheld[&ServerName::parse("a").expect("name")].len(), 1);
    }

    #[test]
    fn cross_server_collisions_withhold_both_regardless_of_order() {
        for order in [["a", "b"], ["b", "a"]] {
            let servers: Vec<_> = order.iter().map(|n| server(n, "", &[r#"{"name":"same"}"#, r#"{"name":"only"}"#])).collect();
            let mut servers = servers;
            servers[1].listing = Some(Arc::new(Listing { tools: vec![raw(r#"{"name":"same"}"#)], ..Default::default() }));
            let c = build(&servers);
            assert_eq!(names(&c), ["only"], "order {order:?}");
        }
    }

    #[test]
    fn resources_are_namespaced_by_server_unless_passthrough() {
        let mut s = server("files", "files_", &[]);
        s.listing = Some(Arc::new(Listing {
            resources: vec![raw(r#"{"uri":"file:///a","name":"a"}"#)],
            templates: vec![raw(r#"{"uriTemplate":"test://t/{id}","name":"t"}"#)],
            ..Default::default()
        }));
        let c = build(&[s]);
        assert_eq!(c.resources[0].exposed, "files+file:///a");
        assert_eq!(c.templates[0].json.get(), r#"{"uriTemplate":"files+test://t/{id}","name":"t"}"#);
        let mut p = server("conf", "", &[]);
        p.listing = Some(Arc::new(Listing { resources: vec![raw(r#"{"uri":"test://x"}"#)], ..Default::default() }));
        assert_eq!(build(&[p]).resources[0].exposed, "test://x");
    }

    #[test]
    fn instructions_are_combined_per_server() {
        let mut a = server("a", "a_", &[]);
        a.listing = Some(Arc::new(Listing { instructions: Some("Use a.".into()), ..Default::default() }));
        let c = build(&[a, ServerEntry { name: ServerName::parse("down").expect("n"), prefix: "down_".into(), listing: None }]);
        assert_eq!(c.instructions.as_deref(), Some("## a\nUse a."));
    }
}
