//! Every check serde cannot do, all reported at once with the key path and a fix.

use std::fmt;
use std::net::SocketAddr;

use mcpgate_protocol::names::{ServerName, is_valid_prefix};

use mcpgate_credentials::SourceConfig;

use super::types::{EraSetting, GatewayConfig, PrefixMode, ServerConfig, Transport};

/// One thing wrong with a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub problem: String,
    pub fix: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { path: path.into(), problem: problem.into(), fix: fix.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}: {} (fix: {})", self.path, self.problem, self.fix)
    }
}

pub fn validate(c: &GatewayConfig) -> Result<(), Vec<Problem>> {
    let mut p = Vec::new();
    if c.listen.parse::<SocketAddr>().is_err() {
        p.push(Problem::new("listen", format!("{:?} is not an address", c.listen), "write host:port, e.g. 127.0.0.1:8080"));
    }
    if c.lanes.is_some_and(|n| n > super::MAX_LANES) {
        p.push(Problem::new("lanes", format!("must be at most {}", super::MAX_LANES), "leave it out for one lane per CPU, or 0 for one work-stealing pool"));
    }
    if !c.mcp_path.starts_with('/') || c.mcp_path.len() < 2 || super::validate_governance::RESERVED_PATHS.contains(&c.mcp_path.as_str()) {
        p.push(Problem::new("mcp_path", format!("{:?} cannot be the MCP path", c.mcp_path), "use a path like /mcp"));
    }
    if c.limits.max_body_bytes < 1024 {
        p.push(Problem::new("limits.max_body_bytes", "must be at least 1024", "raise it (default 4194304)"));
    }
    if c.limits.max_sessions == 0 {
        p.push(Problem::new("limits.max_sessions", "must be at least 1", "raise it (default 10000)"));
    }
    if c.limits.max_sessions_per_principal == 0 {
        p.push(Problem::new("limits.max_sessions_per_principal", "must be at least 1", "raise it (default 100)"));
    }
    if c.limits.max_listen_streams_per_principal == 0 {
        p.push(Problem::new("limits.max_listen_streams_per_principal", "must be at least 1", "raise it (default 32)"));
    }
    if let Some(cluster) = &c.cluster {
        super::cluster::validate(cluster, &mut p);
    }
    if !(1..=10_000).contains(&c.catalog.page_size) {
        p.push(Problem::new("catalog.page_size", "must be between 1 and 10000", "use e.g. 500"));
    }
    for (i, o) in c.allowed_origins.iter().enumerate() {
        if !url::Url::parse(o).map(|u| u.origin().is_tuple()).unwrap_or(false) {
            p.push(Problem::new(
                format!("allowed_origins[{i}]"),
                format!("{o:?} is not an origin"),
                "write scheme://host[:port], e.g. https://app.example.com",
            ));
        }
    }
    for (i, s) in c.servers.iter().enumerate() {
        check_server(&format!("servers[{i}]"), s, &mut p);
    }
    check_names_and_prefixes(c, &mut p);
    super::validate_tls::check(c, &mut p);
    check_auth(c, &mut p);
    check_credentials(c, &mut p);
    check_observability(c, &mut p);
    super::validate_governance::check(c, &mut p);
    super::envoy::check(c, &mut p);
    if p.is_empty() { Ok(()) } else { Err(p) }
}

fn check_auth(c: &GatewayConfig, p: &mut Vec<Problem>) {
    let loopback = c.listen.parse::<SocketAddr>().is_ok_and(|a| a.ip().is_loopback());
    if c.unauthenticated() && !loopback && !c.allow_unauthenticated {
        p.push(Problem::new(
            "auth",
            format!("no bearer-token authentication is configured and listen {:?} is not a loopback address", c.listen),
            "add an auth section (docs/security.md), listen on 127.0.0.1, or set allow_unauthenticated: true",
        ));
    }
    if let Some(u) = &c.public_url
        && !url::Url::parse(u).map(|u| matches!(u.scheme(), "http" | "https")).unwrap_or(false)
    {
        p.push(Problem::new("public_url", format!("{u:?} is not an http(s) URL"), "write e.g. https://mcp.example.com/mcp"));
    }
    let Some(auth) = &c.auth else { return };
    let split = |msg: String| match msg.split_once(": ") {
        Some((path, what)) => Problem::new(path, what, "see docs/security.md"),
        None => Problem::new("auth", msg, "see docs/security.md"),
    };
    if let Err(errors) = auth.validate() {
        p.extend(errors.into_iter().map(split));
    }
    if let Err(errors) = mcpgate_auth::Policy::compile(&auth.permissions, &c.server_auth_infos()) {
        p.extend(errors.into_iter().map(split));
    }
}

fn check_observability(c: &GatewayConfig, p: &mut Vec<Problem>) {
    if let Some(a) = &c.admin {
        match a.listen.parse::<SocketAddr>() {
            Err(_) => p.push(Problem::new("admin.listen", format!("{:?} is not an address", a.listen), "write host:port, e.g. 127.0.0.1:9090")),
            Ok(_) if a.listen == c.listen => {
                p.push(Problem::new("admin.listen", "is the MCP listener's address", "give the admin listener its own port (or use metrics.on_main_listener)"))
            }
            // Open to anyone who can reach it, and pins can be read there: loopback only.
            Ok(addr) if a.token.is_none() && !addr.ip().is_loopback() => p.push(Problem::new(
                "admin.token",
                format!("the admin listener on non-loopback address {} needs a token", a.listen),
                "set admin.token (e.g. token: ${MCPGATE_ADMIN_TOKEN}) or listen on 127.0.0.1",
            )),
            Ok(_) => {}
        }
        if a.token.as_ref().is_some_and(|t| t.expose().len() < 16) {
            p.push(Problem::new("admin.token", "is shorter than 16 characters", "use a long random token, e.g. from `openssl rand -hex 32`"));
        }
    }
    if let Some(o) = &c.telemetry.otlp {
        if !url::Url::parse(&o.endpoint).map(|u| matches!(u.scheme(), "http" | "https")).unwrap_or(false) {
            p.push(Problem::new(
                "telemetry.otlp.endpoint",
                format!("{:?} is not an http(s) URL", o.endpoint),
                "write e.g. http://127.0.0.1:4317 (grpc) or http://127.0.0.1:4318/v1/traces (http)",
            ));
        }
        if !(0.0..=1.0).contains(&o.sampling_ratio) {
            p.push(Problem::new(
                "telemetry.otlp.sampling_ratio",
                format!("{} is not between 0 and 1", o.sampling_ratio),
                "write e.g. 0.1 for one trace in ten",
            ));
        }
        if o.queue_size == 0 || o.batch_size == 0 {
            p.push(Problem::new("telemetry.otlp.queue_size", "queue_size and batch_size must be at least 1", "leave them out for the defaults (2048, 512)"));
        }
        for (k, v) in &o.headers {
            if http::HeaderName::from_bytes(k.as_bytes()).is_err() || http::HeaderValue::from_str(v.expose()).is_err() {
                p.push(Problem::new(format!("telemetry.otlp.headers.{k}"), "is not a valid header", "use a header name and a printable value"));
            }
        }
    }
    if c.audit.sink == super::AuditSinkKind::File && c.audit.path.is_none() {
        p.push(Problem::new("audit.path", "missing (sink: file)", "give the audit file, e.g. /var/log/mcpgate/audit.log"));
    }
    if c.audit.max_bytes < 4096 {
        p.push(Problem::new("audit.max_bytes", "must be at least 4096", "leave it out for 100 MiB"));
    }
    let servers: Vec<String> = c.servers.iter().map(|s| s.name.clone()).collect();
    for (path, problem, fix) in super::rate_limits::check(&c.rate_limits, &servers, c.cluster.is_some()) {
        p.push(Problem::new(path, problem, fix));
    }
}

fn check_credentials(c: &GatewayConfig, p: &mut Vec<Problem>) {
    let split = |msg: String| match msg.split_once(": ") {
        Some((path, what)) => Problem::new(path, what, "see docs/configuration.md, \"Backend credentials\""),
        None => Problem::new("credentials", msg, "see docs/configuration.md, \"Backend credentials\""),
    };
    let per_user = |s: &ServerConfig| s.credentials.iter().any(|src| !matches!(src, SourceConfig::Static(_) | SourceConfig::ClientCredentials(_)));
    for (i, s) in c.servers.iter().enumerate() {
        if per_user(s) && c.unauthenticated() {
            p.push(Problem::new(
                format!("servers[{i}].credentials"),
                "per-user sources (vault, token_exchange, passthrough) need a verified caller, but no bearer token is required",
                "configure auth (with require_token) or use static / client_credentials sources",
            ));
        }
    }
    if c.servers.iter().all(|s| s.credentials.is_empty() && s.discovery_credentials.is_none()) && c.credentials.is_none() {
        return;
    }
    // Building the resolver checks templates, secret sources and the sections each chain needs.
    if let Err(errors) = mcpgate_credentials::Resolver::new(&c.credentials.clone().unwrap_or_default(), &c.credential_infos(), reqwest::Client::new()) {
        p.extend(errors.into_iter().map(split));
    }
}

fn check_server(at: &str, s: &ServerConfig, p: &mut Vec<Problem>) {
    if let Err(e) = ServerName::parse(&s.name) {
        p.push(Problem::new(format!("{at}.name"), e, "rename the server"));
    }
    match s.transport {
        Transport::StreamableHttp | Transport::Sse => {
            match s.url.as_deref().map(url::Url::parse) {
                None => p.push(Problem::new(format!("{at}.url"), "missing", "give the backend's MCP URL, e.g. http://127.0.0.1:9001/mcp")),
                Some(Err(e)) => p.push(Problem::new(format!("{at}.url"), format!("not a URL: {e}"), "write an absolute http(s) URL")),
                Some(Ok(u)) if !matches!(u.scheme(), "http" | "https") => {
                    p.push(Problem::new(format!("{at}.url"), format!("scheme {:?} is not http or https", u.scheme()), "write an http(s) URL"))
                }
                Some(Ok(_)) => {}
            }
            if s.command.is_some() || !s.args.is_empty() {
                p.push(Problem::new(format!("{at}.command"), "only stdio servers run a command", "remove command/args or set transport: stdio"));
            }
        }
        Transport::Stdio => {
            if s.command.as_deref().is_none_or(str::is_empty) {
                p.push(Problem::new(format!("{at}.command"), "missing", "give the program to run, e.g. command: python3"));
            }
            if s.url.is_some() {
                p.push(Problem::new(format!("{at}.url"), "stdio servers have no URL", "remove url or change transport"));
            }
        }
    }
    if s.era == EraSetting::Modern && s.transport != Transport::StreamableHttp {
        p.push(Problem::new(
            format!("{at}.era"),
            "the 2026-07-28 era is served over Streamable HTTP only",
            "use era: auto or legacy, or transport: streamable_http",
        ));
    }
    if let Some(prefix) = &s.prefix
        && !is_valid_prefix(prefix)
    {
        p.push(Problem::new(format!("{at}.prefix"), format!("{prefix:?} has characters tool names cannot contain"), "use only A-Z a-z 0-9 _ - ."));
    }
    for (name, value) in &s.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            p.push(Problem::new(format!("{at}.headers.{name}"), "not a valid header name", "use a token like X-Api-Key"));
        }
        if http::HeaderValue::from_str(value.expose()).is_err() {
            p.push(Problem::new(format!("{at}.headers.{name}"), "value has characters a header cannot carry", "remove newlines and control characters"));
        }
    }
    for (key, d) in [("connect", s.timeouts.connect), ("call", s.timeouts.call), ("discovery", s.timeouts.discovery)] {
        if d.is_zero() {
            p.push(Problem::new(format!("{at}.timeouts.{key}"), "must be more than zero", "use e.g. 10s"));
        }
    }
}

fn check_names_and_prefixes(c: &GatewayConfig, p: &mut Vec<Problem>) {
    for (i, a) in c.servers.iter().enumerate() {
        if c.servers[..i].iter().any(|b| b.name == a.name) {
            p.push(Problem::new(format!("servers[{i}].name"), format!("{:?} is used by another server", a.name), "give each server its own name"));
        }
    }
    // A server whose names are never prefixed takes part in no prefix comparison.
    let enabled: Vec<(usize, &ServerConfig)> = c.servers.iter().enumerate().filter(|(_, s)| s.enabled && s.prefix_mode != PrefixMode::Never).collect();
    let all_enabled = c.servers.iter().filter(|s| s.enabled).count();
    for &(i, a) in &enabled {
        let pa = a.effective_prefix();
        if pa.is_empty() && all_enabled > 1 {
            p.push(Problem::new(
                format!("servers[{i}].prefix"),
                "an empty prefix is only allowed when a single server is enabled",
                "give this server a prefix, use prefix_mode: never (names unprefixed, URIs still namespaced), or disable the others",
            ));
            continue;
        }
        for &(j, b) in &enabled {
            let pb = b.effective_prefix();
            if j < i && !pb.is_empty() && !pa.is_empty() && (pa.starts_with(&pb) || pb.starts_with(&pa)) {
                p.push(Problem::new(
                    format!("servers[{i}].prefix"),
                    format!("prefix {pa:?} of server {:?} collides with prefix {pb:?} of server {:?} (one starts with the other)", a.name, b.name),
                    "choose prefixes where neither starts with the other",
                ));
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::ConfigError;
    use super::super::parse_str;

    /// Every problem `yaml` gets, as `check` prints them (shared by the validation tests).
    pub(in crate::config) fn problems(yaml: &str) -> Vec<String> {
        match parse_str(yaml, &|_| None) {
            Ok(_) => vec![],
            Err(ConfigError::Invalid(p)) => p.into_iter().map(|p| p.to_string()).collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn minimal_config_is_valid() {
        assert!(problems("servers:\n  - name: a\n    url: http://127.0.0.1:1/mcp\n").is_empty());
    }

    #[test]
    fn prefix_that_starts_another_prefix_is_rejected() {
        let p = problems("servers:\n  - {name: a, url: 'http://x/mcp', prefix: a_}\n  - {name: b, url: 'http://y/mcp', prefix: a_b_}\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("error: servers[1].prefix:"), "{p:?}");
    }

    #[test]
    fn empty_prefix_needs_a_single_enabled_server() {
        let p = problems("servers:\n  - {name: a, url: 'http://x/mcp', prefix: ''}\n  - {name: b, url: 'http://y/mcp'}\n");
        assert!(p.iter().any(|l| l.contains("servers[0].prefix")), "{p:?}");
        let ok = problems("servers:\n  - {name: a, url: 'http://x/mcp', prefix: ''}\n  - {name: b, url: 'http://y/mcp', enabled: false}\n");
        assert!(ok.is_empty(), "{ok:?}");
    }

    #[test]
    fn the_modern_era_needs_streamable_http() {
        let p = problems("servers:\n  - {name: a, url: 'http://x/sse', transport: sse, era: modern}\n");
        assert!(p.len() == 1 && p[0].starts_with("error: servers[0].era:"), "{p:?}");
        assert!(problems("servers:\n  - {name: a, url: 'http://x/mcp', era: legacy}\n").is_empty());
        let bad = problems("servers:\n  - {name: a, url: 'http://x/mcp', era: newest}\n");
        assert!(bad[0].contains("era"), "{bad:?}");
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_path() {
        let p = problems("servers:\n  - name: a\n    urll: http://x/mcp\n");
        assert!(p[0].contains("servers[0]") && p[0].contains("urll"), "{p:?}");
    }

    #[test]
    fn every_problem_is_reported() {
        let p = problems("listen: nowhere\nservers:\n  - {name: Bad_Name, url: 'ftp://x'}\n  - {name: s, transport: stdio}\n");
        assert!(p.iter().any(|l| l.contains("error: listen:")), "{p:?}");
        assert!(p.iter().any(|l| l.contains("servers[0].name")), "{p:?}");
        assert!(p.iter().any(|l| l.contains("servers[0].url")), "{p:?}");
        assert!(p.iter().any(|l| l.contains("servers[1].command")), "{p:?}");
    }

    #[test]
    fn missing_environment_variable_names_key_and_variable() {
        let p = problems("servers:\n  - name: a\n    url: http://x/mcp\n    headers: {X-Api-Key: '${NOPE}'}\n");
        assert!(p[0].contains("servers[0].headers.X-Api-Key") && p[0].contains("NOPE"), "{p:?}");
    }

    #[test]
    fn durations_parse_and_bad_ones_are_explained() {
        assert!(problems("catalog: {refresh_interval: 90s}\n").is_empty());
        let p = problems("catalog: {refresh_interval: soon}\n");
        assert!(p[0].contains("catalog.refresh_interval"), "{p:?}");
    }
}
