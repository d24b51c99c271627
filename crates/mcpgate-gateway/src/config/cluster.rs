//! `cluster:` (several replicas sharing sessions through a store) and `shutdown:` (how a
//! replica leaves). Without `cluster`, one process keeps everything in memory, as before.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use mcpgate_auth::Secret;

use super::duration::deserialize as humantime_field;
use super::validate::Problem;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This replica's name on the bus and in `/status` (default: the host name and process id).
    /// On Kubernetes, the pod name.
    #[serde(default)]
    pub replica_id: Option<String>,
    pub store: StoreConfig,
    /// Keys shared by every replica: session ids, `requestState`s, task ids and server-request
    /// ids are signed with the first and accepted with any (two keys live while rotating).
    pub keys: Vec<ClusterKey>,
    /// Add `x-mcpgate-replica: <replica_id>` to every response (debugging, tests).
    #[serde(default)]
    pub expose_replica: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `redis://host:port/db`, or `rediss://` for TLS. Redis 6+ or Valkey.
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// Prefix of every key and channel (several gateways may share one store).
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// Bound on each store operation; a request that needs the store fails with a clear
    /// error after it, nothing waits longer.
    #[serde(default = "default_timeout", deserialize_with = "humantime_field")]
    pub timeout: Duration,
    /// PEM CA bundle for `rediss://` (default: the system's roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key for a store that requires mutual TLS.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterKey {
    /// Short name carried in what it signs (1-16 of A-Z a-z 0-9 -).
    pub id: String,
    /// At least 32 bytes; e.g. `${MCPGATE_CLUSTER_KEY}` from a Kubernetes Secret.
    pub secret: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// After SIGTERM, `/readyz` answers 503 at once and new connections are still accepted
    /// this long, so load balancers stop sending before the listener closes.
    #[serde(deserialize_with = "humantime_field")]
    pub grace: Duration,
    /// Then the listener closes; in-flight calls get this long to finish, and open streams are
    /// ended (clients reconnect to another replica).
    #[serde(deserialize_with = "humantime_field")]
    pub drain: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self { grace: Duration::from_secs(5), drain: Duration::from_secs(25) }
    }
}

fn default_prefix() -> String {
    "mcpgate:".to_owned()
}

fn default_timeout() -> Duration {
    Duration::from_millis(500)
}

/// Checks of the cluster section, with key paths.
pub(super) fn validate(c: &ClusterConfig, p: &mut Vec<Problem>) {
    if !(c.store.url.starts_with("redis://") || c.store.url.starts_with("rediss://")) {
        p.push(Problem::new("cluster.store.url", "must start with redis:// or rediss://", "write e.g. redis://redis:6379/0"));
    }
    if c.store.timeout.is_zero() || c.store.timeout > Duration::from_secs(30) {
        p.push(Problem::new("cluster.store.timeout", "must be between 1ms and 30s", "use e.g. 500ms"));
    }
    if c.store.cert_file.is_some() != c.store.key_file.is_some() {
        p.push(Problem::new("cluster.store.cert_file", "cert_file and key_file go together", "set both or neither"));
    }
    if c.keys.is_empty() {
        p.push(Problem::new("cluster.keys", "at least one key is required", "add {id: k1, secret: ${MCPGATE_CLUSTER_KEY}} (32+ random bytes)"));
    }
    for (i, k) in c.keys.iter().enumerate() {
        if k.id.is_empty() || k.id.len() > 16 || !k.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            p.push(Problem::new(format!("cluster.keys[{i}].id"), format!("{:?} is not a key id", k.id), "use 1-16 of A-Z a-z 0-9 -"));
        }
        if k.secret.expose().len() < 32 {
            p.push(Problem::new(format!("cluster.keys[{i}].secret"), "is shorter than 32 bytes", "generate one: openssl rand -base64 48"));
        }
        if c.keys[..i].iter().any(|o| o.id == k.id) {
            p.push(Problem::new(format!("cluster.keys[{i}].id"), format!("{:?} is used twice", k.id), "give every key its own id"));
        }
    }
    if let Some(id) = &c.replica_id
        && (id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
    {
        p.push(Problem::new("cluster.replica_id", format!("{id:?} is not a replica id"), "use 1-64 of A-Z a-z 0-9 - _ ."));
    }
}
