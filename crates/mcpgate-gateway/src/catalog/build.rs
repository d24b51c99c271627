//! Building a catalog from listings: each server's items read with their overrides and
//! pinning verdict (`expose`), names settled across servers (`names`), then sorted and indexed.

use std::sync::Arc;

use mcpgate_protocol::names::ServerName;

use super::ServerRules;
use super::{BackendCaps, Catalog, ItemKind, Listing, expose, names};
use crate::pins::PinSet;

/// A server as the catalog sees it: its name, prefix, naming/pinning rules and current
/// listing (if reachable).
pub struct ServerEntry {
    pub name: ServerName,
    pub prefix: String,
    pub listing: Option<Arc<Listing>>,
    pub rules: Arc<ServerRules>,
}

/// Builds the catalog from every server's listing, with `pins` deciding what pinning lets through.
pub fn build(servers: &[ServerEntry], pins: &PinSet) -> Catalog {
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
            cat.server_instructions.push((s.name.clone(), text.trim().to_owned()));
        }
    }
    for kind in ItemKind::ALL {
        let mut candidates = Vec::new();
        // A per-user server's items come from each caller's own listing, never the shared one.
        for s in servers.iter().filter(|s| !s.rules.per_user) {
            let Some(listing) = &s.listing else { continue };
            let mut withheld = Vec::new();
            expose::candidates(s, kind, listing, pins, &mut candidates, &mut withheld, &mut cat.pin_report);
            if !withheld.is_empty() {
                cat.withheld.entry(s.name.clone()).or_default().extend(withheld);
            }
        }
        let mut list = names::resolve(kind, candidates, &mut cat.withheld, &mut cat.quarantined);
        list.sort_by(|a, b| a.exposed.cmp(&b.exposed));
        *cat.items_mut(kind) = list;
    }
    for q in cat.quarantined.values_mut() {
        q.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn build_plain(servers: &[ServerEntry]) -> Catalog {
        build(servers, &PinSet::default())
    }

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
            rules: Default::default(),
        }
    }

    fn names(c: &Catalog) -> Vec<&str> {
        c.tools.iter().map(|e| e.exposed.as_str()).collect()
    }

    #[test]
    fn tools_are_prefixed_sorted_and_rewritten_losslessly() {
        let c = build_plain(&[
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
        let c = build_plain(&[server("a", "a_", &[r#"{"name":"has space"}"#, r#"{"name":"ok"}"#])]);
        assert_eq!(names(&c), ["a_ok"]);
        let w = &c.withheld[&ServerName::parse("a").expect("name")];
        assert_eq!(w[0].name, "has space");
        assert!(w[0].reason.contains("not 1-128"), "{w:?}");
    }

    #[test]
    fn duplicate_backend_names_are_withheld_not_overwritten() {
        let c = build_plain(&[server("a", "a_", &[r#"{"name":"x","v":1}"#, r#"{"name":"x","v":2}"#, r#"{"name":"y"}"#])]);
        assert_eq!(names(&c), ["a_y"]);
        assert_eq!(c.withheld[&ServerName::parse("a").expect("name")].len(), 1);
    }

    #[test]
    fn cross_server_collisions_withhold_both_regardless_of_order() {
        for order in [["a", "b"], ["b", "a"]] {
            let servers: Vec<_> = order.iter().map(|n| server(n, "", &[r#"{"name":"same"}"#, r#"{"name":"only"}"#])).collect();
            let mut servers = servers;
            servers[1].listing = Some(Arc::new(Listing { tools: vec![raw(r#"{"name":"same"}"#)], ..Default::default() }));
            let c = build_plain(&servers);
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
        let c = build_plain(&[s]);
        assert_eq!(c.resources[0].exposed, "files+file:///a");
        assert_eq!(c.templates[0].json.get(), r#"{"uriTemplate":"files+test://t/{id}","name":"t"}"#);
        let mut p = server("conf", "", &[]);
        p.listing = Some(Arc::new(Listing { resources: vec![raw(r#"{"uri":"test://x"}"#)], ..Default::default() }));
        assert_eq!(build_plain(&[p]).resources[0].exposed, "test://x");
    }

    #[test]
    fn instructions_are_combined_per_server() {
        let mut a = server("a", "a_", &[]);
        a.listing = Some(Arc::new(Listing { instructions: Some("Use a.".into()), ..Default::default() }));
        let c =
            build_plain(&[a, ServerEntry { name: ServerName::parse("down").expect("n"), prefix: "down_".into(), listing: None, rules: Default::default() }]);
        assert_eq!(c.instructions.as_deref(), Some("## a\nUse a."));
    }
}
