//! Rate limits and quotas: token buckets keyed by any of caller, server and tool, for all
//! callers or a CEL-selected group. Checked after permission and before the credential:
//! a denied call takes no token, a limited call never reaches its backend, and lists are
//! never limited.
//!
//! `config` is the YAML, `callers` the CEL groups, `store` the buckets (the seam for the
//! cluster's shared store). Never records who called in a label or an error.

mod callers;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use mcpgate_protocol::envelope::json_string;
use mcpgate_protocol::{ErrorCode, RpcError};

pub use crate::config::rate_limits::{KeyPart, RateLimitsConfig, RuleConfig, StoreKind};
pub use store::{BucketKey, LocalBuckets, Rate, Store, StoreError, Take};

use crate::observe::series::{RuleSeries, Series, bump};

struct Rule {
    name: Arc<str>,
    servers: Vec<String>,
    tools: Vec<String>,
    callers: Option<callers::Callers>,
    per: Vec<KeyPart>,
    limit: u32,
    interval: Duration,
    rate: Rate,
    strict: bool,
    series: Arc<RuleSeries>,
}

/// The compiled rules of one config.
#[derive(Default)]
pub struct Quotas {
    rules: Vec<Rule>,
}

/// What is being called, as the rules see it.
pub struct Call<'a> {
    pub method: &'a str,
    pub server: &'a str,
    /// The backend's tool name (tools/call only).
    pub tool: Option<&'a str>,
}

impl Quotas {
    /// Compiles validated rules (`config::check` has reported every problem already).
    pub fn build(cfg: &RateLimitsConfig, series: &Series) -> Result<Self, Vec<String>> {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        for (i, r) in cfg.rules.iter().enumerate() {
            let callers = match r.callers.as_deref().map(callers::Callers::compile).transpose() {
                Ok(c) => c,
                Err(e) => {
                    errors.push(format!("rate_limits.rules[{i}].callers: {e}"));
                    continue;
                }
            };
            rules.push(Rule {
                name: Arc::from(r.name.as_str()),
                servers: r.servers.clone(),
                tools: r.tools.clone(),
                callers,
                per: r.per.clone(),
                limit: r.limit,
                interval: r.interval,
                rate: Rate::new(r.limit, r.interval, r.burst),
                strict: r.strict,
                series: series.rule(&r.name),
            });
        }
        if errors.is_empty() { Ok(Self { rules }) } else { Err(errors) }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Takes a token from every rule that covers this call, in order; the first rule without
    /// one refuses it (tokens already taken by earlier rules for it are not given back).
    pub async fn admit(&self, store: &Store, identity: Option<&mcpgate_auth::VerifiedIdentity>, subject: &str, call: &Call<'_>) -> Result<(), Limited> {
        for rule in &self.rules {
            if !rule.covers(call) || rule.callers.as_ref().is_some_and(|c| !c.contains(identity)) {
                continue;
            }
            let has = |k: KeyPart| rule.per.contains(&k);
            let key = BucketKey {
                rule: &rule.name,
                subject: has(KeyPart::Subject).then_some(subject),
                server: has(KeyPart::Server).then_some(call.server),
                tool: has(KeyPart::Tool).then_some(call.tool.unwrap_or("")),
            };
            match store.take(&key, rule.rate).await {
                Ok(Take::Allowed) => {}
                Ok(Take::Limited { retry_after }) => {
                    bump(&rule.series.rejected);
                    return Err(Limited { rule: rule.describe(), retry_after, store_down: false });
                }
                Err(e) => {
                    bump(&rule.series.store_errors);
                    tracing::warn!(rule = %rule.name, error = %e, strict = rule.strict, "rate limit not checked");
                    if rule.strict {
                        bump(&rule.series.rejected);
                        return Err(Limited { rule: rule.describe(), retry_after: Duration::from_secs(1), store_down: true });
                    }
                }
            }
        }
        Ok(())
    }
}

impl Rule {
    fn covers(&self, call: &Call<'_>) -> bool {
        // Letting go of a subscription is never limited.
        if call.method == "resources/unsubscribe" {
            return false;
        }
        if !self.servers.is_empty() && !self.servers.iter().any(|s| s == call.server) {
            return false;
        }
        if self.tools.is_empty() {
            return true;
        }
        call.method == "tools/call" && call.tool.is_some_and(|t| self.tools.iter().any(|x| x == t))
    }

    fn describe(&self) -> RuleInfo {
        RuleInfo { name: self.name.clone(), limit: self.limit, interval: self.interval, burst: self.rate.capacity as u32, per: self.per.clone() }
    }
}

/// The limit that was hit, as the client is told.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleInfo {
    pub name: Arc<str>,
    pub limit: u32,
    pub interval: Duration,
    pub burst: u32,
    pub per: Vec<KeyPart>,
}

/// A call refused by a rate limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Limited {
    pub rule: RuleInfo,
    pub retry_after: Duration,
    /// Refused because the shared store could not be asked and the rule is strict.
    pub store_down: bool,
}

impl Limited {
    /// The JSON-RPC error both eras get: code -32029, the limit in `error.data.rateLimit`,
    /// when to retry in `error.data.retryAfterMs`.
    pub fn to_rpc(&self) -> RpcError {
        let r = &self.rule;
        let retry_ms = self.retry_after.as_millis().max(1);
        let per: Vec<String> = r.per.iter().map(|k| json_string(k.as_str())).collect();
        let message = if self.store_down {
            format!("rate limit '{}' cannot be checked right now; retry in {retry_ms} ms", r.name)
        } else {
            format!("rate limit exceeded: '{}' allows {} calls per {}; retry in {retry_ms} ms", r.name, r.limit, humantime::format_duration(r.interval))
        };
        let data = format!(
            r#"{{"rateLimit":{{"rule":{},"limit":{},"intervalMs":{},"burst":{},"per":[{}]}},"retryAfterMs":{retry_ms}{}}}"#,
            json_string(&r.name),
            r.limit,
            r.interval.as_millis(),
            r.burst,
            per.join(","),
            if self.store_down { r#","reason":"store_unavailable""# } else { "" },
        );
        RpcError::new(ErrorCode::LimitReached, message).with_data(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(yaml: &str) -> Quotas {
        let cfg: RateLimitsConfig = yaml_serde::from_str(yaml).expect("yaml");
        Quotas::build(&cfg, &Series::default()).expect("rules")
    }

    fn call<'a>(server: &'a str, tool: &'a str) -> Call<'a> {
        Call { method: "tools/call", server, tool: Some(tool) }
    }

    #[tokio::test]
    async fn a_per_user_rule_limits_each_user_on_its_server_only() {
        let q = quotas("rules: [{name: gh, servers: [github], per: [subject], limit: 2, interval: 1h}]");
        let store = Store::Local(LocalBuckets::default());
        for _ in 0..2 {
            assert!(q.admit(&store, None, "alice", &call("github", "list_repos")).await.is_ok());
        }
        let limited = q.admit(&store, None, "alice", &call("github", "delete_repo")).await.expect_err("third call");
        assert_eq!(&*limited.rule.name, "gh");
        assert!(limited.retry_after > Duration::from_secs(1700), "a token every 30 minutes");
        assert!(q.admit(&store, None, "bob", &call("github", "list_repos")).await.is_ok(), "bob has his own bucket");
        assert!(q.admit(&store, None, "alice", &call("weather", "get_forecast")).await.is_ok(), "other servers are not covered");
    }

    #[tokio::test]
    async fn a_tool_rule_covers_only_that_tool_and_only_calls() {
        let q = quotas("rules: [{name: del, tools: [delete_repo], per: [subject], limit: 1, interval: 1h}]");
        let store = Store::Local(LocalBuckets::default());
        assert!(q.admit(&store, None, "alice", &call("github", "delete_repo")).await.is_ok());
        assert!(q.admit(&store, None, "alice", &call("github", "delete_repo")).await.is_err());
        assert!(q.admit(&store, None, "alice", &call("github", "list_repos")).await.is_ok());
        let read = Call { method: "resources/read", server: "github", tool: None };
        assert!(q.admit(&store, None, "alice", &read).await.is_ok());
    }

    #[test]
    fn the_error_names_the_limit_and_when_to_retry() {
        let q = quotas("rules: [{name: gh, per: [subject, server], limit: 10, interval: 1s, burst: 20}]");
        let e = Limited { rule: q.rules[0].describe(), retry_after: Duration::from_millis(100), store_down: false }.to_rpc();
        assert_eq!(e.code.code(), -32029);
        assert_eq!(
            e.data.as_deref(),
            Some(r#"{"rateLimit":{"rule":"gh","limit":10,"intervalMs":1000,"burst":20,"per":["subject","server"]},"retryAfterMs":100}"#)
        );
        assert!(e.message.contains("'gh' allows 10 calls per 1s"), "{}", e.message);
    }

    #[test]
    fn bad_rules_are_named_with_their_key_and_a_fix() {
        let cfg: RateLimitsConfig = yaml_serde::from_str(
            "{store: shared, rules: [{name: a, servers: [nope], limit: 0, interval: 1s}, {name: a, limit: 1, interval: 1s, callers: 'claims.x ==', per: [tool, tool]}]}",
        )
        .expect("yaml");
        let problems: Vec<String> = crate::config::rate_limits::check(&cfg, &["github".to_owned()], false).into_iter().map(|(k, _, _)| k).collect();
        assert_eq!(
            problems,
            [
                "rate_limits.store",
                "rate_limits.rules[0].limit",
                "rate_limits.rules[0].servers[0]",
                "rate_limits.rules[1].name",
                "rate_limits.rules[1].per",
                "rate_limits.rules[1].callers"
            ]
        );
    }
}
