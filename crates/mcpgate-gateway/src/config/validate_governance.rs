//! Checks of the governance keys (pinning, virtual servers, naming rules),
//! every problem with its key path and a fix.

use std::collections::HashMap;

use mcpgate_protocol::names::{ServerName, is_valid_exposed_name};

use super::types::{CatalogMode, GatewayConfig, ItemOverride, PinMode, PrefixMode, Selector, SelectorKind, ServerConfig, VirtualServerConfig};
use super::validate::Problem;

/// Paths the gateway serves itself; no virtual server may take one.
pub(crate) const RESERVED_PATHS: [&str; 6] = ["/healthz", "/readyz", "/status", "/metrics", "/authorize", "/.well-known"];

pub(crate) fn check(c: &GatewayConfig, p: &mut Vec<Problem>) {
    check_pins(c, p);
    for (i, s) in c.servers.iter().enumerate() {
        check_naming(&format!("servers[{i}]"), s, p);
        check_catalog_mode(&format!("servers[{i}]"), s, p);
    }
    check_exposed_names(c, p);
    check_virtual_servers(c, p);
}

fn check_pins(c: &GatewayConfig, p: &mut Vec<Problem>) {
    if c.pins.is_none() {
        for (i, s) in c.servers.iter().enumerate().filter(|(_, s)| s.pinning != PinMode::Off) {
            p.push(Problem::new(
                format!("servers[{i}].pinning"),
                format!("pinning: {} needs a pin file", if s.pinning == PinMode::Record { "record" } else { "enforce" }),
                "add `pins: {file: /var/lib/mcpgate/pins.yaml}` at the top level",
            ));
        }
    }
    if let Some(pins) = &c.pins
        && pins.file.as_os_str().is_empty()
    {
        p.push(Problem::new("pins.file", "is empty", "give the path of the pin file, e.g. /var/lib/mcpgate/pins.yaml"));
    }
}

fn check_naming(at: &str, s: &ServerConfig, p: &mut Vec<Problem>) {
    match (s.prefix_mode, s.prefix.as_deref()) {
        (PrefixMode::Never, Some(prefix)) if !prefix.is_empty() => {
            p.push(Problem::new(format!("{at}.prefix"), "is never used with prefix_mode: never", "remove prefix, or use prefix_mode: always or on_collision"))
        }
        (PrefixMode::OnCollision, Some("")) => {
            p.push(Problem::new(format!("{at}.prefix"), "prefix_mode: on_collision needs a non-empty prefix", "remove prefix: \"\" (default <name>_)"))
        }
        _ => {}
    }
    for (kind, items) in [("tools", &s.tools), ("prompts", &s.prompts)] {
        for (name, o) in items {
            check_override(&format!("{at}.{kind}.{name}"), kind, o, p);
        }
    }
}

fn check_override(at: &str, kind: &str, o: &ItemOverride, p: &mut Vec<Problem>) {
    if let Some(exposed) = &o.expose_as {
        if !is_valid_exposed_name(exposed) {
            p.push(Problem::new(format!("{at}.expose_as"), format!("{exposed:?} is not a valid name"), "use 1-128 characters of A-Z a-z 0-9 _ - ."));
        }
        if o.hide {
            p.push(Problem::new(format!("{at}.expose_as"), "a hidden item is not exposed under any name", "remove expose_as or hide"));
        }
    }
    if kind == "prompts" && o.annotations.is_some() {
        p.push(Problem::new(format!("{at}.annotations"), "prompts have no annotations", "remove annotations from this prompt"));
    }
    if o.description.as_deref().is_some_and(|d| d.trim().is_empty()) {
        p.push(Problem::new(format!("{at}.description"), "is empty", "write the description clients should see, or remove the key"));
    }
}

fn check_catalog_mode(at: &str, s: &ServerConfig, p: &mut Vec<Problem>) {
    if s.catalog != CatalogMode::PerUser {
        return;
    }
    if s.credentials.is_empty() {
        p.push(Problem::new(
            format!("{at}.catalog"),
            "per_user lists the server with each caller's own credential, but the server has no credentials chain",
            "add a per-user credentials chain (vault, token_exchange) or use catalog: shared",
        ));
    }
    if s.catalog_ttl.is_zero() {
        p.push(Problem::new(format!("{at}.catalog_ttl"), "must be more than zero", "use e.g. 60s"));
    }
}

/// `expose_as` names must be unique per kind, and must not start with another server's
/// always-used prefix (they would collide with that server's names).
fn check_exposed_names(c: &GatewayConfig, p: &mut Vec<Problem>) {
    let enabled: Vec<(usize, &ServerConfig)> = c.servers.iter().enumerate().filter(|(_, s)| s.enabled).collect();
    for kind in ["tools", "prompts"] {
        let mut seen: HashMap<&str, String> = HashMap::new();
        for &(i, s) in &enabled {
            let items = if kind == "tools" { &s.tools } else { &s.prompts };
            for (name, o) in items {
                let Some(exposed) = o.expose_as.as_deref() else { continue };
                let at = format!("servers[{i}].{kind}.{name}.expose_as");
                if let Some(first) = seen.get(exposed) {
                    p.push(Problem::new(&at, format!("{exposed:?} is already the exposed name at {first}"), "give each renamed item its own name"));
                    continue;
                }
                seen.insert(exposed, at.clone());
                for &(j, other) in &enabled {
                    let prefix = other.effective_prefix();
                    if j != i && other.prefix_mode == PrefixMode::Always && !prefix.is_empty() && exposed.starts_with(&prefix) {
                        p.push(Problem::new(
                            &at,
                            format!("{exposed:?} starts with prefix {prefix:?} of server {:?} and could collide with its names", other.name),
                            "choose a name outside other servers' prefixes",
                        ));
                    }
                }
            }
        }
    }
}

fn check_virtual_servers(c: &GatewayConfig, p: &mut Vec<Problem>) {
    if !c.expose_full_catalog && c.virtual_servers.is_empty() {
        p.push(Problem::new("expose_full_catalog", "false leaves no MCP endpoint at all", "add virtual_servers, or set expose_full_catalog: true"));
    }
    let mut paths: HashMap<String, usize> = HashMap::new();
    for (i, v) in c.virtual_servers.iter().enumerate() {
        let at = format!("virtual_servers[{i}]");
        if let Err(e) = ServerName::parse(&v.name) {
            p.push(Problem::new(format!("{at}.name"), e, "rename the virtual server"));
        }
        if c.virtual_servers[..i].iter().any(|o| o.name == v.name) {
            p.push(Problem::new(format!("{at}.name"), format!("{:?} is used by another virtual server", v.name), "give each virtual server its own name"));
        }
        check_path(&at, c, v, &mut paths, i, p);
        for (list, selectors) in [("include", &v.include), ("exclude", &v.exclude)] {
            for (j, s) in selectors.iter().enumerate() {
                check_selector(&format!("{at}.{list}[{j}]"), c, s, p);
            }
        }
        if v.include.is_empty() {
            p.push(Problem::new(
                format!("{at}.include"),
                "is empty: the virtual server would show nothing",
                "add selectors, e.g. include: [{server: weather}]",
            ));
        }
        if let Some(u) = &v.public_url
            && !url::Url::parse(u).map(|u| matches!(u.scheme(), "http" | "https")).unwrap_or(false)
        {
            p.push(Problem::new(format!("{at}.public_url"), format!("{u:?} is not an http(s) URL"), "write e.g. https://mcp.example.com/mcp/team"));
        }
        check_virtual_auth(&at, c, v, p);
    }
}

fn check_path(at: &str, c: &GatewayConfig, v: &VirtualServerConfig, paths: &mut HashMap<String, usize>, i: usize, p: &mut Vec<Problem>) {
    let path = v.effective_path();
    let valid = path.starts_with('/')
        && path.len() > 1
        && !path.ends_with('/')
        && path.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'?' | b'#' | b'{' | b'}' | b'*'));
    if !valid {
        p.push(Problem::new(
            format!("{at}.path"),
            format!("{path:?} is not a usable path"),
            "write an absolute path without a trailing slash, e.g. /mcp/team-a",
        ));
    } else if path == c.mcp_path || RESERVED_PATHS.iter().any(|r| path == *r || path.starts_with(&format!("{r}/"))) {
        p.push(Problem::new(format!("{at}.path"), format!("{path:?} is already served by the gateway"), "choose another path, e.g. /mcp/<name>"));
    } else if let Some(first) = paths.insert(path.clone(), i) {
        p.push(Problem::new(format!("{at}.path"), format!("{path:?} is also the path of virtual_servers[{first}]"), "give each virtual server its own path"));
    }
}

fn check_selector(at: &str, c: &GatewayConfig, s: &Selector, p: &mut Vec<Problem>) {
    if let Some(server) = &s.server
        && !c.servers.iter().any(|sc| &sc.name == server)
    {
        p.push(Problem::new(format!("{at}.server"), format!("no server is named {server:?}"), "use the name of a configured server"));
    }
    if let Some(re) = &s.regex
        && let Err(e) = regex::Regex::new(re)
    {
        p.push(Problem::new(format!("{at}.regex"), format!("not a valid regular expression: {e}"), "fix the expression (Rust regex syntax)"));
    }
    if s.name.as_deref().is_some_and(str::is_empty) {
        p.push(Problem::new(format!("{at}.name"), "is empty", "write a glob such as weather_* or remove the key"));
    }
    if s.annotations.is_some() && matches!(s.kind, Some(SelectorKind::Prompt | SelectorKind::Resource)) {
        p.push(Problem::new(format!("{at}.annotations"), "only tools have annotations", "use kind: tool, or remove annotations"));
    }
}

fn check_virtual_auth(at: &str, c: &GatewayConfig, v: &VirtualServerConfig, p: &mut Vec<Problem>) {
    let Some(auth) = &v.auth else { return };
    let Some(gateway_auth) = c.auth.as_ref().filter(|a| a.require_token) else {
        p.push(Problem::new(
            format!("{at}.auth"),
            "requirements on tokens need the gateway to verify tokens",
            "configure auth with require_token: true, or remove this auth section",
        ));
        return;
    };
    for (k, aud) in auth.audiences.iter().enumerate() {
        let accepted = gateway_auth.audiences.contains(aud) || gateway_auth.issuers.iter().any(|i| i.audiences.as_ref().is_some_and(|a| a.contains(aud)));
        if !accepted {
            p.push(Problem::new(
                format!("{at}.auth.audiences[{k}]"),
                format!("{aud:?} is not an audience the gateway accepts, so no token could carry it"),
                "add it to auth.audiences (or the issuer's audiences)",
            ));
        }
    }
    if auth.required_scopes.iter().any(|s| s.is_empty() || s.contains(char::is_whitespace)) {
        p.push(Problem::new(format!("{at}.auth.required_scopes"), "a scope is empty or contains spaces", "list each scope on its own"));
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_str;
    use super::super::validate::tests::problems;

    fn has(p: &[String], prefix: &str) -> bool {
        p.iter().any(|l| l.starts_with(&format!("error: {prefix}")))
    }

    const TWO: &str = "servers:\n  - {name: a, url: 'http://x/mcp'}\n  - {name: b, url: 'http://y/mcp'}\n";

    #[test]
    fn pinning_needs_a_pin_file() {
        let p = problems("servers:\n  - {name: a, url: 'http://x/mcp', pinning: enforce}\n");
        assert!(has(&p, "servers[0].pinning: pinning: enforce needs a pin file"), "{p:?}");
        assert!(problems("pins: {file: /var/lib/mcpgate/pins.yaml}\nservers:\n  - {name: a, url: 'http://x/mcp', pinning: record}\n").is_empty());
        let bad = problems("servers:\n  - {name: a, url: 'http://x/mcp', pinning: strict}\n");
        assert!(bad[0].contains("servers[0].pinning") || bad[0].contains("servers[0]"), "{bad:?}");
    }

    #[test]
    fn the_admin_listener_needs_a_token_off_loopback() {
        let p = problems("admin: {listen: '0.0.0.0:9091'}\n");
        assert!(has(&p, "admin.token: the admin listener on non-loopback address"), "{p:?}");
        assert!(problems("admin: {listen: '127.0.0.1:9091'}\n").is_empty(), "loopback without token is allowed (read-only)");
        assert!(has(&problems("admin: {listen: '0.0.0.0:9091', token: short}\n"), "admin.token: is shorter"));
        assert!(has(&problems("admin: {listen: nowhere}\n"), "admin.listen:"));
        assert!(has(&problems("listen: '127.0.0.1:9000'\nadmin: {listen: '127.0.0.1:9000'}\n"), "admin.listen: is the MCP listener"));
    }

    #[test]
    fn expose_as_must_be_valid_unique_and_outside_other_prefixes() {
        let bad_name = problems("servers:\n  - {name: a, url: 'http://x/mcp'}\n  - {name: b, url: 'http://y/mcp', tools: {echo: {expose_as: 'say hello'}}}\n");
        assert!(has(&bad_name, "servers[1].tools.echo.expose_as: \"say hello\" is not a valid name"), "{bad_name:?}");
        let yaml = "servers:\n  - {name: a, url: 'http://x/mcp', tools: {echo: {expose_as: say}}}\n  - {name: b, url: 'http://y/mcp', tools: {ping: {expose_as: say}, add: {expose_as: a_plus}}}\n";
        let p = problems(yaml);
        assert!(has(&p, "servers[1].tools.ping.expose_as: \"say\" is already the exposed name at servers[0].tools.echo.expose_as"), "{p:?}");
        assert!(has(&p, "servers[1].tools.add.expose_as: \"a_plus\" starts with prefix \"a_\" of server \"a\""), "{p:?}");
        let hidden =
            problems("servers:\n  - {name: a, url: 'http://x/mcp', tools: {echo: {expose_as: say, hide: true}}, prompts: {greet: {annotations: {x: 1}}}}\n");
        assert!(has(&hidden, "servers[0].tools.echo.expose_as: a hidden item"), "{hidden:?}");
        assert!(has(&hidden, "servers[0].prompts.greet.annotations: prompts have no annotations"), "{hidden:?}");
    }

    #[test]
    fn prefix_modes_are_checked_against_prefix() {
        let p = problems("servers:\n  - {name: a, url: 'http://x/mcp', prefix_mode: never, prefix: x_}\n");
        assert!(has(&p, "servers[0].prefix: is never used with prefix_mode: never"), "{p:?}");
        // `never` on several servers is fine (collisions are withheld at run time).
        assert!(
            problems("servers:\n  - {name: a, url: 'http://x/mcp', prefix_mode: never}\n  - {name: b, url: 'http://y/mcp', prefix_mode: never}\n").is_empty()
        );
    }

    #[test]
    fn virtual_servers_are_checked() {
        let yaml = format!(
            "{TWO}virtual_servers:\n  - {{name: t, path: /status, include: [{{server: zz}}]}}\n  - {{name: t, include: [{{regex: '('}}]}}\n  - {{name: u, path: /mcp/t, include: [{{kind: prompt, annotations: {{readOnlyHint: true}}}}], auth: {{required_scopes: [x]}}}}\n"
        );
        let p = problems(&yaml);
        for prefix in [
            "virtual_servers[0].path: \"/status\" is already served",
            "virtual_servers[0].include[0].server: no server is named \"zz\"",
            "virtual_servers[1].name: \"t\" is used by another",
            "virtual_servers[1].include[0].regex: not a valid regular expression",
            "virtual_servers[2].path: \"/mcp/t\" is also the path of virtual_servers[1]",
            "virtual_servers[2].include[0].annotations: only tools have annotations",
            "virtual_servers[2].auth: requirements on tokens need the gateway to verify tokens",
        ] {
            assert!(has(&p, prefix), "missing {prefix:?} in {p:?}");
        }
        assert!(has(&problems(&format!("{TWO}expose_full_catalog: false\n")), "expose_full_catalog: false leaves no MCP endpoint"));
        assert!(problems(&format!("{TWO}expose_full_catalog: false\nvirtual_servers: [{{name: t, include: [{{server: a}}]}}]\n")).is_empty());
    }

    #[test]
    fn the_governance_example_is_valid() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/governance.yaml")).expect("example");
        let config = parse_str(&text, &|k| (k == "MCPGATE_ADMIN_TOKEN").then(|| "example-admin-token-0123456789".to_owned())).expect("valid example");
        assert_eq!(config.virtual_servers.len(), 2);
        assert!(config.servers[0].tools["delete_repo"].hide);
    }

    #[test]
    fn per_user_catalogs_need_a_credential_chain() {
        let p = problems("servers:\n  - {name: a, url: 'http://x/mcp', catalog: per_user}\n");
        assert!(has(&p, "servers[0].catalog: per_user lists the server with each caller's own credential"), "{p:?}");
    }
}
