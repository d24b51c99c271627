//! The configuration tree as written in YAML. Defaults live here; checks live in `validate`.

use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;

use mcpgate_auth::Secret;

pub use super::governance::*;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Serve HTTPS on `listen` with this certificate (reloaded when its files change), and
    /// optionally require client certificates (mTLS).
    #[serde(default)]
    pub tls: Option<mcpgate_tls::ServerTls>,
    /// Threads serving client connections, each a single-threaded runtime; new connections
    /// go to them in turn. Absent: one per CPU the process may use. 0: one work-stealing pool
    /// instead (see docs/configuration.md, "Lanes").
    #[serde(default)]
    pub lanes: Option<usize>,
    /// Path of the MCP endpoint.
    #[serde(default = "default_mcp_path")]
    pub mcp_path: String,
    #[serde(default)]
    pub limits: Limits,
    /// Browser origins allowed to call the gateway. Empty: loopback origins only.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub catalog: CatalogConfig,
    #[serde(default)]
    pub servers: Vec<ServerConfig>,
    /// Identity and permissions (see docs/security.md). Without it every caller may see and
    /// call everything, which is allowed only on a loopback `listen` address unless
    /// `allow_unauthenticated` says otherwise.
    #[serde(default)]
    pub auth: Option<mcpgate_auth::AuthConfig>,
    /// Serve without authentication on a non-loopback address. Not recommended.
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// The URL clients use for the MCP endpoint, published in OAuth Protected Resource
    /// Metadata. Default `http://<listen><mcp_path>`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// How the gateway reaches Vault, the IdP's token endpoint and its own OAuth client, for
    /// the servers' credential chains (see docs/configuration.md, "Backend credentials").
    #[serde(default)]
    pub credentials: Option<mcpgate_credentials::CredentialsConfig>,
    /// Where approved tool and prompt definitions are kept (servers with `pinning`).
    #[serde(default)]
    pub pins: Option<PinsConfig>,
    /// Extra MCP paths, each exposing a chosen subset of the catalog.
    #[serde(default)]
    pub virtual_servers: Vec<VirtualServerConfig>,
    /// Serve the full catalog on `mcp_path`. `false`: that path answers 404 and clients use
    /// virtual servers only.
    #[serde(default = "yes")]
    pub expose_full_catalog: bool,
    /// Several replicas behind a load balancer, sharing session state through a store (see
    /// docs/deployment.md). Absent: one process, everything in memory.
    #[serde(default)]
    pub cluster: Option<super::ClusterConfig>,
    /// How the process leaves on SIGTERM.
    #[serde(default)]
    pub shutdown: super::ShutdownConfig,
    /// A second listener for operators (`/metrics`).
    #[serde(default)]
    pub admin: Option<super::AdminConfig>,
    #[serde(default)]
    pub metrics: super::MetricsConfig,
    /// Traces over OTLP (off by default).
    #[serde(default)]
    pub telemetry: super::TelemetryConfig,
    /// Where audit lines go (access decisions, credential decisions, reloads).
    #[serde(default)]
    pub audit: super::AuditConfig,
    /// Token buckets per caller, server, tool or group of callers (docs/observability.md).
    #[serde(default)]
    pub rate_limits: super::rate_limits::RateLimitsConfig,
    /// Serve Envoy's ext_proc and ext_authz (see docs/envoy.md). Off when absent.
    #[serde(default)]
    pub envoy: Option<super::envoy::EnvoyConfig>,
}

/// The session pool's limits, as the session registry applies them (from `limits:`).
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub max_total: usize,
    /// Per authenticated principal (sessions without a principal count only towards the total).
    pub max_per_principal: usize,
    pub evict_idle_after: Duration,
    /// A session unused this long is gone.
    pub idle_timeout: Duration,
}

impl Limits {
    pub fn sessions(&self) -> SessionLimits {
        SessionLimits {
            max_total: self.max_sessions,
            max_per_principal: self.max_sessions_per_principal,
            evict_idle_after: self.evict_idle_after,
            idle_timeout: self.session_idle_timeout,
        }
    }
}

impl GatewayConfig {
    /// Whether requests are served without a verified identity.
    pub fn unauthenticated(&self) -> bool {
        self.auth.as_ref().is_none_or(|a| !a.require_token)
    }

    /// The servers as the permission policy knows them (name plus the ids claims use for it).
    pub fn server_auth_infos(&self) -> Vec<mcpgate_auth::ServerAuthInfo> {
        self.servers.iter().map(|s| mcpgate_auth::ServerAuthInfo::new(&s.name, s.url.as_deref(), s.auth.as_ref())).collect()
    }

    /// The servers as the credential resolver knows them (name, host, chain).
    pub fn credential_infos(&self) -> Vec<mcpgate_credentials::ServerInfo> {
        self.servers
            .iter()
            .map(|s| {
                let chain = mcpgate_credentials::ServerCredentials { credentials: s.credentials.clone(), discovery: s.discovery_credentials.clone() };
                mcpgate_credentials::ServerInfo::new(&s.name, s.url.as_deref(), chain)
            })
            .collect()
    }

    /// How many lanes serve client connections (0: none, one work-stealing pool).
    pub fn lane_count(&self) -> usize {
        self.lanes.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_LANES))
    }

    pub fn resource_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.public_url.clone().unwrap_or_else(|| format!("{scheme}://{}{}", self.listen, self.mcp_path))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Most client sessions held at once (503 for new ones above, unless an idle one can make
    /// room).
    pub max_sessions: usize,
    /// Most sessions one authenticated principal may hold (429 above, unless one of its own is
    /// idle long enough to make room). Unauthenticated sessions count only towards `max_sessions`.
    pub max_sessions_per_principal: usize,
    /// A session idle at least this long may be closed to make room for a new one when a limit
    /// is reached: the newcomer's principal's own first, else one of the principal holding the
    /// most sessions.
    #[serde(with = "humantime_field")]
    pub evict_idle_after: Duration,
    /// Refuse `initialize` (403) from callers whose permissions let them see no tool, prompt or
    /// resource at all.
    pub refuse_sessions_without_access: bool,
    /// A session unused this long is closed with its backend sessions.
    #[serde(with = "humantime_field")]
    pub session_idle_timeout: Duration,
    /// Most `subscriptions/listen` streams one principal may hold open at once (429 above).
    pub max_listen_streams_per_principal: usize,
    /// Most client connections open at once. At the cap, the longest idle connection is
    /// closed to make room; with none idle, new connections are refused.
    pub max_connections: usize,
    /// Most client connections open at once from one IP address; 0 for no per-IP cap (e.g.
    /// behind a load balancer whose few addresses carry every client).
    pub max_connections_per_ip: usize,
    /// Time a client has to send a complete request head: from accepting the connection (TLS
    /// handshake included), and from the first byte of each later request.
    #[serde(with = "humantime_field")]
    pub header_read_timeout: Duration,
    /// Time a client has to send a complete request body (408 and the connection closed).
    #[serde(with = "humantime_field")]
    pub body_read_timeout: Duration,
    /// A connection with no request in flight is closed after this long.
    #[serde(with = "humantime_field")]
    pub idle_connection_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            max_sessions: 10_000,
            max_sessions_per_principal: 100,
            evict_idle_after: Duration::from_secs(120),
            refuse_sessions_without_access: false,
            session_idle_timeout: Duration::from_secs(30 * 60),
            max_listen_streams_per_principal: 32,
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_connection_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// How often every backend's lists are fetched again (besides list_changed).
    #[serde(with = "humantime_field")]
    pub refresh_interval: Duration,
    /// How often an idle discovery session is pinged to notice a dead backend.
    #[serde(with = "humantime_field")]
    pub health_interval: Duration,
    /// Items per page of a list response.
    pub page_size: usize,
    /// `ttlMs` the gateway puts on modern list and discovery results (capped by the smallest
    /// ttl a modern backend gives).
    #[serde(with = "humantime_field")]
    pub cache_ttl: Duration,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self { refresh_interval: Duration::from_secs(300), health_interval: Duration::from_secs(10), page_size: 500, cache_ttl: Duration::from_secs(60) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EraSetting {
    #[default]
    Auto,
    Legacy,
    Modern,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    #[default]
    StreamableHttp,
    Sse,
    Stdio,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub name: String,
    /// Backend URL (streamable_http and sse).
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub transport: Transport,
    /// Which protocol era to speak to it: `auto` (probe 2026-07-28, fall back to
    /// `initialize`), `legacy` (sessions only) or `modern` (2026-07-28 only).
    #[serde(default)]
    pub era: EraSetting,
    /// Prepended to tool and prompt names. Default `<name>_`.
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Static headers sent to this backend (values may hold secrets via `${VAR}`).
    #[serde(default)]
    pub headers: IndexMap<String, Secret>,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// stdio: program to run.
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: IndexMap<String, Secret>,
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// How this server is named in callers' permission claims (default: its name and its
    /// URL's host), e.g. `auth: {client_ids: [codereview.local]}`.
    #[serde(default)]
    pub auth: Option<mcpgate_auth::ServerAuthConfig>,
    /// Per-call credential chain: sources tried in order, the first credential wins. Empty:
    /// calls carry only the static `headers`.
    #[serde(default)]
    pub credentials: Vec<mcpgate_credentials::SourceConfig>,
    /// The gateway-owned credential used to list the server's catalog (static or
    /// client_credentials); never a caller's.
    #[serde(default)]
    pub discovery_credentials: Option<mcpgate_credentials::DiscoverySourceConfig>,
    /// When `prefix` is put before tool and prompt names: `always`, `never`, `on_collision`.
    #[serde(default)]
    pub prefix_mode: PrefixMode,
    /// Definition pinning of this server's tools and prompts: `off`, `record`, `enforce`.
    #[serde(default)]
    pub pinning: PinMode,
    /// Overrides per tool, keyed by the backend's own tool name.
    #[serde(default)]
    pub tools: IndexMap<String, ItemOverride>,
    /// Overrides per prompt, keyed by the backend's own prompt name.
    #[serde(default)]
    pub prompts: IndexMap<String, ItemOverride>,
    /// `shared` (listed once by discovery) or `per_user` (listed per caller credential).
    #[serde(default)]
    pub catalog: CatalogMode,
    /// How long a caller's own listing of a `per_user` server is reused.
    #[serde(default = "super::governance::default_catalog_ttl", with = "humantime_field")]
    pub catalog_ttl: Duration,
    /// TLS towards an `https` backend: a CA bundle trusted instead of the system's roots,
    /// and a client certificate (mTLS).
    #[serde(default)]
    pub tls: Option<mcpgate_tls::ClientTls>,
}

impl ServerConfig {
    /// Whether `other` differs only in how items are named, overridden or pinned: such a
    /// change rebuilds the catalog but keeps discovery and every client's backend sessions.
    pub fn same_connection(&self, other: &ServerConfig) -> bool {
        let strip = |s: &ServerConfig| ServerConfig {
            prefix_mode: PrefixMode::default(),
            pinning: PinMode::default(),
            tools: IndexMap::new(),
            prompts: IndexMap::new(),
            ..s.clone()
        };
        strip(self) == strip(other)
    }
}

impl ServerConfig {
    /// The key under which wristbands this gateway signs list the server: the first
    /// configured client id, else the URL's host, else the name.
    pub fn wristband_key(&self) -> String {
        if let Some(id) = self.auth.as_ref().and_then(|a| a.client_ids.as_ref()).and_then(|ids| ids.first()) {
            return id.clone();
        }
        self.url.as_deref().and_then(|u| url::Url::parse(u).ok()).and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_else(|| self.name.clone())
    }
}

impl ServerConfig {
    pub fn effective_prefix(&self) -> String {
        self.prefix.clone().unwrap_or_else(|| format!("{}_", self.name))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    #[serde(with = "humantime_field")]
    pub connect: Duration,
    #[serde(with = "humantime_field")]
    pub call: Duration,
    #[serde(with = "humantime_field")]
    pub discovery: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { connect: Duration::from_secs(5), call: Duration::from_secs(30), discovery: Duration::from_secs(10) }
    }
}

/// The most lanes a config may ask for.
pub const MAX_LANES: usize = 256;

fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}

fn default_mcp_path() -> String {
    "/mcp".to_owned()
}

fn yes() -> bool {
    true
}

mod humantime_field {
    pub use super::super::duration::deserialize;
}
