//! The `envoy:` section: mcpgate as the MCP brain of an Envoy in front of it (ext_proc router
//! and ext_authz decision service, served by the `mcpgate-envoy` crate). Types with their
//! defaults and every check serde cannot do. Nothing here touches the network.

use std::net::SocketAddr;

use indexmap::IndexMap;
use serde::Deserialize;

use mcpgate_auth::Secret;

use super::types::GatewayConfig;
use super::validate::Problem;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvoyConfig {
    /// Where the gRPC services listen (ext_proc `ExternalProcessor` and ext_authz
    /// `Authorization`, both on this port), e.g. `127.0.0.1:9100`.
    pub grpc_listen: String,
    /// Where the ext_authz HTTP mode listens (Envoy's `http_service`). Off when absent.
    #[serde(default)]
    pub http_authz_listen: Option<String>,
    /// The `path_prefix` of Envoy's `http_service`, stripped before deciding.
    #[serde(default)]
    pub http_authz_path_prefix: String,
    /// A value Envoy must send in `x-mcpgate-envoy-secret` (gRPC `initial_metadata`, HTTP
    /// `headers_to_add`). Required when a listen address is not loopback: an OK answer
    /// carries backend credentials, so only Envoy may ask.
    #[serde(default)]
    pub shared_secret: Option<Secret>,
    /// Serve a non-loopback address without `shared_secret`, because the network itself lets
    /// only Envoy reach it (a mesh policy, a NetworkPolicy). Logged as a warning at start.
    #[serde(default)]
    pub allow_without_secret: bool,
    #[serde(default)]
    pub headers: EnvoyHeaders,
    /// The route target value per server (what goes into `headers.route`). Default: the
    /// server's first `auth.client_ids` entry, else its URL's host, else its name.
    #[serde(default)]
    pub routes: IndexMap<String, String>,
    /// What the services answer when they cannot decide (internal error, an Envoy message
    /// they do not support): `closed` (default) refuses, `open` lets the request continue
    /// with the caller's token and internal headers removed. Decisions (401, denied items,
    /// bad input) are never affected.
    #[serde(default)]
    pub failure_mode: FailureMode,
    /// Largest request body accepted (413 above). Default: `limits.max_body_bytes`.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// Most body chunks one request or response may arrive in (streamed mode; 413 above).
    #[serde(default = "default_max_chunks")]
    pub max_body_chunks: usize,
    /// Largest response body held for rewriting (`resources/read` in streamed mode; 502 above).
    #[serde(default = "default_max_response")]
    pub max_response_body_bytes: usize,
    #[serde(default)]
    pub ext_proc: ExtProcConfig,
    #[serde(default)]
    pub ext_authz: ExtAuthzConfig,
}

/// Header names the router sets (seed defaults) and where the route target goes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvoyHeaders {
    pub method: String,
    pub tool: String,
    pub server: String,
    /// `:authority` (default; Envoy then needs `allow_all_routing`) or a plain header such
    /// as `x-mcp-cluster` that routes match on.
    pub route: String,
}

impl Default for EnvoyHeaders {
    fn default() -> Self {
        Self { method: "x-mcp-method".into(), tool: "x-mcp-toolname".into(), server: "x-mcp-servername".into(), route: ":authority".into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    #[default]
    Closed,
    Open,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExtProcConfig {
    /// Set the backend credential (and remove the caller's token) on routed calls. Turn off
    /// only when an ext_authz filter after the router does it (it needs the caller's token).
    pub credentials: bool,
}

impl Default for ExtProcConfig {
    fn default() -> Self {
        Self { credentials: true }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExtAuthzConfig {
    /// Add the backend credential for requests whose route target is a backend.
    pub credentials: bool,
    /// Add the signed wristband (needs `auth.wristband_issue`).
    pub wristband: bool,
}

impl Default for ExtAuthzConfig {
    fn default() -> Self {
        Self { credentials: true, wristband: true }
    }
}

fn default_max_chunks() -> usize {
    1024
}

fn default_max_response() -> usize {
    16 * 1024 * 1024
}

impl EnvoyConfig {
    pub fn max_body(&self, c: &GatewayConfig) -> usize {
        self.max_body_bytes.unwrap_or(c.limits.max_body_bytes)
    }

    /// The route target value of a server (see `routes`).
    pub fn route_value(&self, c: &GatewayConfig, server: &str) -> Option<String> {
        if let Some(v) = self.routes.get(server) {
            return Some(v.clone());
        }
        c.servers.iter().find(|s| s.name == server).map(|s| s.wristband_key())
    }
}

pub(super) fn check(c: &GatewayConfig, p: &mut Vec<Problem>) {
    let Some(e) = &c.envoy else { return };
    let mut loopback = true;
    for (key, addr) in [("envoy.grpc_listen", Some(&e.grpc_listen)), ("envoy.http_authz_listen", e.http_authz_listen.as_ref())] {
        let Some(addr) = addr else { continue };
        match addr.parse::<SocketAddr>() {
            Ok(a) => {
                loopback &= a.ip().is_loopback();
                if addr == &c.listen {
                    p.push(Problem::new(key, "is the same address as listen", "give the Envoy services a port of their own, e.g. 127.0.0.1:9100"));
                }
            }
            Err(_) => p.push(Problem::new(key, format!("{addr:?} is not an address"), "write host:port, e.g. 127.0.0.1:9100")),
        }
    }
    if e.http_authz_listen.is_some() && e.http_authz_listen.as_ref() == Some(&e.grpc_listen) {
        p.push(Problem::new("envoy.http_authz_listen", "is the same address as envoy.grpc_listen", "use another port"));
    }
    match &e.shared_secret {
        Some(s) if s.expose().len() < 16 => {
            p.push(Problem::new("envoy.shared_secret", "is shorter than 16 characters", "use a long random value, e.g. from ${MCPGATE_ENVOY_SECRET}"))
        }
        None if !loopback && !e.allow_without_secret => p.push(Problem::new(
            "envoy.shared_secret",
            "is required when an Envoy service listens on a non-loopback address (its answers carry backend credentials)",
            "set envoy.shared_secret and send it from Envoy as x-mcpgate-envoy-secret, listen on 127.0.0.1, or (network-restricted) set envoy.allow_without_secret: true",
        )),
        _ => {}
    }
    if !e.http_authz_path_prefix.is_empty() && (!e.http_authz_path_prefix.starts_with('/') || e.http_authz_path_prefix.ends_with('/')) {
        p.push(Problem::new(
            "envoy.http_authz_path_prefix",
            format!("{:?} is not a path prefix", e.http_authz_path_prefix),
            "write e.g. /authz (no trailing /)",
        ));
    }
    let h = &e.headers;
    for (key, name) in [("method", &h.method), ("tool", &h.tool), ("server", &h.server)] {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() || name.bytes().any(|b| b.is_ascii_uppercase()) {
            p.push(Problem::new(format!("envoy.headers.{key}"), format!("{name:?} is not a lower-case header name"), "write e.g. x-mcp-toolname"));
        }
    }
    if h.route != ":authority" && (http::HeaderName::from_bytes(h.route.as_bytes()).is_err() || h.route.bytes().any(|b| b.is_ascii_uppercase())) {
        p.push(Problem::new(
            "envoy.headers.route",
            format!("{:?} is neither :authority nor a lower-case header name", h.route),
            "write :authority or e.g. x-mcp-cluster",
        ));
    }
    for (server, value) in &e.routes {
        if !c.servers.iter().any(|s| &s.name == server) {
            p.push(Problem::new(format!("envoy.routes.{server}"), "names no configured server", "use a name from servers[].name"));
        }
        if value.is_empty() || http::HeaderValue::from_str(value).is_err() {
            p.push(Problem::new(format!("envoy.routes.{server}"), format!("{value:?} is not a header value"), "write a host name such as codereview.local"));
        }
    }
    let mut seen: IndexMap<String, &str> = IndexMap::new();
    for s in c.servers.iter().filter(|s| s.enabled) {
        let Some(value) = e.route_value(c, &s.name) else { continue };
        if let Some(other) = seen.insert(value.to_ascii_lowercase(), &s.name) {
            p.push(Problem::new(
                format!("envoy.routes.{}", s.name),
                format!("route value {value:?} is also the route value of server {other:?}: Envoy could not tell them apart"),
                "give each server its own value in envoy.routes",
            ));
        }
    }
    if e.max_body(c) < 1024 {
        p.push(Problem::new("envoy.max_body_bytes", "must be at least 1024", "raise it (default: limits.max_body_bytes)"));
    }
    if e.max_body_chunks == 0 {
        p.push(Problem::new("envoy.max_body_chunks", "must be at least 1", "raise it (default 1024)"));
    }
    if e.max_response_body_bytes < 1024 {
        p.push(Problem::new("envoy.max_response_body_bytes", "must be at least 1024", "raise it (default 16777216)"));
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse_str;

    fn problems(yaml: &str) -> String {
        match parse_str(yaml, &|_| None) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    const SERVERS: &str = "servers:\n  - {name: a, url: http://127.0.0.1:9001/mcp}\n  - {name: b, url: http://127.0.0.1:9002/mcp}\n";

    #[test]
    fn a_loopback_section_with_defaults_is_valid() {
        let one = "servers:\n  - {name: a, url: http://127.0.0.1:9001/mcp}\n  - {name: b, url: http://b.internal:9002/mcp, auth: {client_ids: [b.local]}}\n";
        let c = parse_str(&format!("{one}envoy:\n  grpc_listen: 127.0.0.1:9100\n"), &|_| None).expect("valid");
        let e = c.envoy.as_ref().expect("section");
        assert_eq!(
            (e.headers.method.as_str(), e.headers.tool.as_str(), e.headers.server.as_str(), e.headers.route.as_str()),
            ("x-mcp-method", "x-mcp-toolname", "x-mcp-servername", ":authority")
        );
        assert_eq!(e.route_value(&c, "a").as_deref(), Some("127.0.0.1"), "the URL's host when no client id is configured");
        assert_eq!(e.route_value(&c, "b").as_deref(), Some("b.local"), "else the first client id");
        assert!(e.ext_proc.credentials && e.ext_authz.credentials && e.ext_authz.wristband);
    }

    #[test]
    fn a_non_loopback_listener_needs_a_secret_or_an_explicit_opt_out() {
        let base = format!("{SERVERS}allow_unauthenticated: true\nenvoy:\n  grpc_listen: 0.0.0.0:9100\n  routes: {{a: a.local, b: b.local}}\n");
        assert!(problems(&base).contains("error: envoy.shared_secret: is required"), "{}", problems(&base));
        assert_eq!(problems(&format!("{base}  shared_secret: 0123456789abcdef0\n")), "");
        assert_eq!(problems(&format!("{base}  allow_without_secret: true\n")), "");
        assert!(problems(&format!("{base}  shared_secret: short\n")).contains("shorter than 16"));
    }

    #[test]
    fn route_values_must_tell_servers_apart_and_name_real_servers() {
        let same = problems(&format!("{SERVERS}envoy:\n  grpc_listen: 127.0.0.1:9100\n"));
        assert!(same.contains("route value \"127.0.0.1\" is also the route value of server \"a\""), "{same}");
        let unknown = problems(&format!("{SERVERS}envoy:\n  grpc_listen: 127.0.0.1:9100\n  routes: {{a: a.local, b: b.local, c: c.local}}\n"));
        assert!(unknown.contains("error: envoy.routes.c: names no configured server"), "{unknown}");
    }

    #[test]
    fn header_names_and_addresses_are_checked() {
        let bad =
            problems(&format!("{SERVERS}envoy:\n  grpc_listen: nowhere\n  routes: {{a: a.local, b: b.local}}\n  headers: {{tool: X-Tool, route: ':path'}}\n"));
        assert!(bad.contains("envoy.grpc_listen: \"nowhere\" is not an address"), "{bad}");
        assert!(bad.contains("envoy.headers.tool: \"X-Tool\" is not a lower-case header name"), "{bad}");
        assert!(bad.contains("envoy.headers.route: \":path\" is neither :authority nor a lower-case header name"), "{bad}");
    }
}
