//! `rate_limits:` as written in YAML, and every check serde cannot do (reported with the key
//! path and a fix).

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    /// Where the token buckets live.
    pub store: StoreKind,
    /// Every matching rule must have a token for a call to go ahead.
    pub rules: Vec<RuleConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// This replica's memory: each replica enforces the limits on its own.
    #[default]
    Local,
    /// The cluster's store (`cluster.store`), so that replicas together respect one limit.
    Shared,
}

/// What a bucket is keyed by; several may be combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyPart {
    /// Each caller (the verified token's subject) has a bucket.
    Subject,
    /// Each server has a bucket.
    Server,
    /// Each tool has a bucket.
    Tool,
}

impl KeyPart {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyPart::Subject => "subject",
            KeyPart::Server => "server",
            KeyPart::Tool => "tool",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Named in errors, metrics and audit lines; unique.
    pub name: String,
    /// Only calls to these servers (empty: every server).
    #[serde(default)]
    pub servers: Vec<String>,
    /// Only `tools/call` of these tools, by the backend's name (empty: every call-type
    /// request: tools/call, prompts/get, resources/read, completion/complete).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Only callers for whom this CEL expression over `claims` and `subject` is true (a group
    /// of callers). Without `subject` in `per`, the whole group shares one bucket.
    #[serde(default)]
    pub callers: Option<String>,
    /// What each bucket is keyed by (empty: one bucket for everything the rule covers).
    #[serde(default)]
    pub per: Vec<KeyPart>,
    /// Calls allowed per `interval`.
    pub limit: u32,
    #[serde(with = "humantime_field")]
    pub interval: Duration,
    /// Calls allowed at once after a quiet spell (default: `limit`).
    #[serde(default)]
    pub burst: Option<u32>,
    /// With the shared store: refuse the calls this rule covers while the store cannot be
    /// reached (default: let them through and count it).
    #[serde(default)]
    pub strict: bool,
}

mod humantime_field {
    pub use super::super::duration::deserialize;
}

/// Problems as `(key path, problem, fix)`.
pub fn check(c: &RateLimitsConfig, servers: &[String], has_cluster: bool) -> Vec<(String, String, String)> {
    let mut p = Vec::new();
    if c.store == StoreKind::Shared && !has_cluster {
        p.push((
            "rate_limits.store".to_owned(),
            "shared buckets live in the cluster's store, and there is no cluster section".to_owned(),
            "add cluster.store (docs/deployment.md), or use store: local".to_owned(),
        ));
    }
    let mut names = std::collections::HashSet::new();
    for (i, r) in c.rules.iter().enumerate() {
        let at = format!("rate_limits.rules[{i}]");
        if r.name.trim().is_empty() || r.name.len() > 64 || !r.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            p.push((format!("{at}.name"), format!("{:?} is not a rule name", r.name), "use 1-64 of A-Z a-z 0-9 - _ .".to_owned()));
        } else if !names.insert(r.name.as_str()) {
            p.push((format!("{at}.name"), format!("{:?} is used by another rule", r.name), "give every rule its own name".to_owned()));
        }
        if r.limit == 0 {
            p.push((format!("{at}.limit"), "must be at least 1".to_owned(), "to block calls, use permissions instead".to_owned()));
        }
        if r.interval.is_zero() {
            p.push((format!("{at}.interval"), "must be longer than zero".to_owned(), "write e.g. 1s, 1m or 1h".to_owned()));
        }
        if r.burst == Some(0) {
            p.push((format!("{at}.burst"), "must be at least 1".to_owned(), "leave it out to use limit".to_owned()));
        }
        for (j, s) in r.servers.iter().enumerate() {
            if !servers.contains(s) {
                p.push((format!("{at}.servers[{j}]"), format!("no server is named {s:?}"), "name a server from servers[]".to_owned()));
            }
        }
        let mut seen = Vec::new();
        for k in &r.per {
            if seen.contains(k) {
                p.push((format!("{at}.per"), format!("{} is listed twice", k.as_str()), "list each of subject, server, tool once".to_owned()));
            }
            seen.push(*k);
        }
        if let Some(expr) = &r.callers
            && let Err(e) = compile_callers(expr)
        {
            p.push((format!("{at}.callers"), e, "a CEL expression over claims and subject, e.g. '\"contractors\" in claims.groups'".to_owned()));
        }
    }
    p
}

/// Compiles a rule's `callers` expression; only `claims` and `subject` are defined.
pub fn compile_callers(expr: &str) -> Result<cel::Program, String> {
    let program = cel::Env::stdlib().compile(expr).map_err(|e| format!("does not compile: {e}"))?;
    let refs = program.references();
    let unknown: Vec<&str> = refs.variables().into_iter().filter(|v| !["claims", "subject"].contains(v)).collect();
    if !unknown.is_empty() {
        return Err(format!("unknown variable(s) {}; available: claims, subject", unknown.join(", ")));
    }
    Ok(program)
}
