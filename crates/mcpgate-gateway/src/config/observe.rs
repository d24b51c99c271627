//! The operational sections of the config: the admin listener, metrics, telemetry (OTLP
//! traces) and the audit sink. Defaults live here; checks in `validate`.

use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;

use mcpgate_auth::Secret;

/// A second listener for operators (`/metrics`), so the MCP port can be public while these
/// stay private.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin listener, e.g. `127.0.0.1:9090`.
    pub listen: String,
    /// When set, every admin request needs `Authorization: Bearer <token>`.
    #[serde(default)]
    pub token: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Count requests and calls (a few atomic additions per request).
    pub enabled: bool,
    /// Also serve `/metrics` on the MCP listener, to anyone who can reach it (tool and
    /// server names are in the series). Prefer `admin.listen`.
    pub on_main_listener: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { enabled: true, on_main_listener: false }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Export traces over OTLP. Without it, no span is created for export and no trace
    /// context is sent anywhere.
    pub otlp: Option<OtlpConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    /// OTLP/gRPC (usually port 4317).
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (usually port 4318, path `/v1/traces`).
    Http,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// gRPC: `http://collector:4317`; http: the full traces URL,
    /// `http://collector:4318/v1/traces`.
    pub endpoint: String,
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// Sent with every export (e.g. an API key); values may use `${VAR}`.
    #[serde(default)]
    pub headers: IndexMap<String, Secret>,
    /// Share of new traces recorded (0.0–1.0). A client's sampled `traceparent` is followed
    /// whatever this says (parent-based sampling).
    #[serde(default = "one")]
    pub sampling_ratio: f64,
    /// Resource attributes, e.g. `service.name`, `deployment.environment`.
    #[serde(default)]
    pub resource: IndexMap<String, String>,
    /// Spans waiting for export at most; more are dropped and counted.
    #[serde(default = "default_queue")]
    pub queue_size: usize,
    /// Largest batch sent at once.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// How often a partial batch is sent.
    #[serde(default = "default_interval", with = "humantime_field")]
    pub export_interval: Duration,
    /// One export at most this long.
    #[serde(default = "default_timeout", with = "humantime_field")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditSinkKind {
    /// As `mcpgate::audit` events in the log stream (JSON objects with `--log-format json`).
    #[default]
    Log,
    /// One JSON line of the audit schema per event on stderr, beside the log.
    Stderr,
    /// A file of JSON lines, rotated by size.
    File,
    /// No audit lines.
    Off,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    pub sink: AuditSinkKind,
    /// The audit file (`sink: file`).
    pub path: Option<PathBuf>,
    /// Rotate when the file would grow past this.
    pub max_bytes: u64,
    /// Rotated files kept (`audit.log.1` … `audit.log.<keep>`).
    pub keep: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { sink: AuditSinkKind::Log, path: None, max_bytes: 100 * 1024 * 1024, keep: 5 }
    }
}

fn one() -> f64 {
    1.0
}

fn default_queue() -> usize {
    2048
}

fn default_batch() -> usize {
    512
}

fn default_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

mod humantime_field {
    pub use super::super::duration::deserialize;
}
