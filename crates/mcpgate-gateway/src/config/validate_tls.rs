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

#[cfg(test)]
mod tests {
    use super::super::parse_str;
    use super::super::validate::tests::problems;

    #[test]
    fn connection_limits_have_sane_defaults_and_refuse_zero() {
        let c = parse_str("servers: []\n", &|_| None).expect("valid");
        assert_eq!((c.limits.max_connections, c.limits.max_connections_per_ip), (10_000, 1_000));
        assert_eq!(c.limits.header_read_timeout, std::time::Duration::from_secs(10));
        let p = problems("limits: {max_connections: 0, header_read_timeout: 0s, idle_connection_timeout: 10ms}\nservers: []\n");
        assert!(p.iter().any(|l| l.starts_with("error: limits.max_connections:")), "{p:?}");
        assert!(p.iter().any(|l| l.starts_with("error: limits.header_read_timeout:")), "{p:?}");
        assert!(p.iter().any(|l| l.starts_with("error: limits.idle_connection_timeout:")), "{p:?}");
        assert!(problems("limits: {max_connections_per_ip: 0}\nservers: []\n").is_empty(), "0 turns the per-IP cap off");
    }

    #[test]
    fn tls_settings_name_their_keys() {
        let p = problems(
            "tls: {cert_file: /nonexistent/c.pem, key_file: /nonexistent/k.pem}\nservers:\n  - {name: a, url: 'http://x/mcp', tls: {ca_file: /nonexistent/ca.pem}}\n",
        );
        assert!(p.iter().any(|l| l.starts_with("error: tls.cert_file: cannot read /nonexistent/c.pem")), "{p:?}");
        assert!(p.iter().any(|l| l.starts_with("error: tls.key_file:")), "{p:?}");
        assert!(p.iter().any(|l| l.starts_with("error: servers[0].tls: TLS settings apply to https:// backends only")), "{p:?}");
        assert!(p.iter().any(|l| l.starts_with("error: servers[0].tls.ca_file: cannot read")), "{p:?}");
        let unknown = problems("tls: {cert: a.pem}\nservers: []\n");
        assert!(unknown[0].contains("tls") && unknown[0].contains("cert"), "{unknown:?}");
    }
}
