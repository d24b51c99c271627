//! Checks of the front door's connection limits and of every TLS setting (the listener's
//! `tls`, each server's `tls`). TLS files are read here, so `mcpgate check` names a broken
//! file by its key before the gateway starts. Never prints a file's content.

use std::time::Duration;

use mcpgate_tls::TlsProblem;

use super::types::{GatewayConfig, Transport};
use super::validate::Problem;

pub(super) fn check(c: &GatewayConfig, p: &mut Vec<Problem>) {
    let l = &c.limits;
    if l.max_connections == 0 {
        p.push(Problem::new("limits.max_connections", "must be at least 1", "raise it (default 10000)"));
    }
    for (key, d) in
        [("header_read_timeout", l.header_read_timeout), ("body_read_timeout", l.body_read_timeout), ("idle_connection_timeout", l.idle_connection_timeout)]
    {
        if d < Duration::from_millis(100) {
            p.push(Problem::new(format!("limits.{key}"), "must be at least 100ms", "use e.g. 10s"));
        }
    }
    if let Some(tls) = &c.tls
        && let Err(problems) = tls.load()
    {
        push(p, "tls", problems);
    }
    for (i, s) in c.servers.iter().enumerate() {
        let Some(tls) = &s.tls else { continue };
        let at = format!("servers[{i}].tls");
        let https = s.url.as_deref().and_then(|u| url::Url::parse(u).ok()).is_some_and(|u| u.scheme() == "https");
        if s.transport == Transport::Stdio || !https {
            p.push(Problem::new(&at, "TLS settings apply to https:// backends only", "use an https:// url or remove tls"));
        }
        if let Err(problems) = tls.check() {
            push(p, &at, problems);
        }
    }
}

pub(super) fn push(p: &mut Vec<Problem>, at: &str, problems: Vec<TlsProblem>) {
    p.extend(problems.into_iter().map(|t| Problem::new(format!("{at}.{}", t.key), t.problem, t.fix)));
}
