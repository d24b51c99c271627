//! The gateway's shared run-time state and its background tasks: discovery per backend, the
//! catalog builder, the idle-session sweeper, and applying a (re)loaded config.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use mcpgate_protocol::errors::notification;
use mcpgate_protocol::names::ServerName;
use tokio::sync::mpsc;

use crate::backend::Backend;
use crate::catalog::{self, Catalog, ItemKind, ServerEntry};
use crate::config::GatewayConfig;
use crate::discovery;
use crate::governance::Governance;
use crate::identity::Security;
use crate::pins::Pins;
use crate::session::Sessions;
use crate::visible::Views;

/// A list that changed, and where: the main endpoint (`scope: None`) or a virtual server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListChange {
    pub kind: ItemKind,
    pub scope: Option<Arc<str>>,
}

pub struct Shared {
    pub config: ArcSwap<GatewayConfig>,
    /// Enabled backends in config order.
    pub backends: ArcSwap<Vec<Arc<Backend>>>,
    pub catalog: ArcSwap<Catalog>,
    pub sessions: Sessions,
    pub security: ArcSwap<Security>,
    pub views: Views,
    pub http: reqwest::Client,
    /// The gateway's backend sessions for stateless (modern) callers of legacy backends.
    pub stateless: Sessions,
    /// Calls parked for a modern client's `input_required` round trip.
    pub bridges: crate::session::parked::Bridges,
    /// Tasks created by modern backends, under the ids clients see.
    pub tasks: crate::session::tasks::Tasks,
    /// Which list changed (and on which endpoint), for `subscriptions/listen` streams.
    pub changes: tokio::sync::broadcast::Sender<ListChange>,
    /// Naming rules and virtual servers, compiled from the config.
    pub governance: ArcSwap<Governance>,
    /// Definition pins: the store, audit memory and counters.
    pub pins: Pins,
    /// Each caller's own listings of `catalog: per_user` servers.
    pub per_user: crate::per_user::PerUser,
    changed: mpsc::UnboundedSender<()>,
}

impl Shared {
    /// Builds the state, starts discovery for every enabled backend and the background tasks.
    /// Must be called inside a tokio runtime. Fails when the auth machinery cannot be built
    /// (e.g. a key file that cannot be read).
    pub fn start(config: GatewayConfig) -> Result<Arc<Self>, Vec<String>> {
        let (changed, rx) = mpsc::unbounded_channel();
        // No proxies from the environment and no redirects: a redirect must never carry a
        // backend credential (e.g. X-API-Key) to another host.
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let security = Security::build(&config, &http)?;
        let governance = Governance::build(&config)?;
        warn_about_open_access(&config);
        let shared = Arc::new(Self {
            config: ArcSwap::from_pointee(config.clone()),
            backends: ArcSwap::from_pointee(Vec::new()),
            catalog: ArcSwap::from_pointee(Catalog::default()),
            sessions: Sessions::default(),
            security: ArcSwap::from_pointee(security),
            views: Views::default(),
            http,
            stateless: Sessions::default(),
            bridges: Default::default(),
            tasks: Default::default(),
            changes: tokio::sync::broadcast::channel(64).0,
            governance: ArcSwap::from_pointee(governance),
            pins: Pins::default(),
            per_user: Default::default(),
            changed,
        });
        // Before any listing arrives: in enforce mode nothing is served without the pins.
        shared.pins.configure(&config, &shared.changed)?;
        shared.apply_backends(&config, &config);
        tokio::spawn(rebuild_catalog(Arc::downgrade(&shared), rx));
        tokio::spawn(sweep_sessions(Arc::downgrade(&shared)));
        Ok(shared)
    }

    pub fn backend(&self, name: &ServerName) -> Option<Arc<Backend>> {
        self.backends.load().iter().find(|b| &b.name == name).cloned()
    }

    /// Applies a validated new config: unchanged backends keep their discovery and every
    /// client's sessions with them; changed or removed ones are stopped and their client
    /// sessions closed; new ones start discovery.
    pub async fn apply(&self, config: GatewayConfig) -> Result<(), Vec<String>> {
        let security = Security::build(&config, &self.http)?;
        let governance = Governance::build(&config)?;
        if self.pins.configure(&config, &self.changed)?
            && let Some(store) = self.pins.store()
        {
            // The same pin file: read it again (SIGHUP also picks up hand edits).
            store.refresh().await.map_err(|e| vec![format!("{e} (the running pins are kept)")])?;
        }
        warn_about_open_access(&config);
        self.security.store(Arc::new(security));
        self.governance.store(Arc::new(governance));
        let old = self.config.swap(Arc::new(config.clone()));
        let removed = self.apply_backends(&config, &old);
        for name in removed {
            self.per_user.forget(&name);
            for s in self.sessions.all().into_iter().chain(self.stateless.all()) {
                s.drop_backend(&name).await;
            }
        }
        Ok(())
    }

    /// Starts, keeps or stops backends for `config` (`previous` is the config they run with).
    fn apply_backends(&self, config: &GatewayConfig, previous: &GatewayConfig) -> Vec<ServerName> {
        let old = self.backends.load_full();
        // Discovery holds the resolver it started with: a new credentials section restarts it.
        let same_credentials = previous.credentials == config.credentials;
        let mut next = Vec::new();
        for sc in config.servers.iter().filter(|s| s.enabled) {
            // Naming, overrides and pinning only rebuild the catalog: discovery and sessions stay.
            match old.iter().find(|b| b.config.same_connection(sc) && same_credentials) {
                Some(b) => next.push(b.clone()),
                None => {
                    let b = Backend::new(sc);
                    let credentials = self.security.load().credentials.clone();
                    let task = tokio::spawn(discovery::run(b.clone(), self.http.clone(), config.catalog.clone(), self.changed.clone(), credentials));
                    b.set_task(task.abort_handle());
                    next.push(b);
                }
            }
        }
        let removed: Vec<ServerName> = old
            .iter()
            .filter(|b| !next.iter().any(|n| Arc::ptr_eq(n, b)))
            .map(|b| {
                b.stop();
                b.name.clone()
            })
            .collect();
        self.backends.store(Arc::new(next));
        let _ = self.changed.send(());
        removed
    }
}

fn warn_about_open_access(config: &GatewayConfig) {
    if config.auth.is_none() {
        tracing::warn!("no auth section: every caller may see and call every tool (allowed on loopback or with allow_unauthenticated)");
    } else if config.unauthenticated() {
        tracing::warn!("auth.require_token is false: callers are not authenticated; permissions come from wristbands only");
    }
}

async fn rebuild_catalog(shared: Weak<Shared>, mut rx: mpsc::UnboundedReceiver<()>) {
    // The list generation of each per-user server, as last told to clients.
    let mut per_user_seen: std::collections::HashMap<ServerName, u64> = Default::default();
    while rx.recv().await.is_some() {
        while rx.try_recv().is_ok() {}
        let Some(shared) = shared.upgrade() else { return };
        let governance = shared.governance.load_full();
        let entries: Vec<ServerEntry> = shared
            .backends
            .load()
            .iter()
            .map(|b| ServerEntry { name: b.name.clone(), prefix: b.prefix.clone(), listing: b.health().listing, rules: governance.rules(b.name.as_str()) })
            .collect();
        let new = catalog::build(&entries, &shared.pins.snapshot());
        shared.pins.after_build(&new);
        // A per-user server's lists are not in the catalog: when it announces a change, every
        // client is told (each one's own listing is fetched again on its next list).
        let mut per_user_changed = false;
        for b in shared.backends.load().iter().filter(|b| governance.per_user.iter().any(|(n, _)| n == b.name.as_str())) {
            let now = b.list_generation();
            per_user_changed |= per_user_seen.insert(b.name.clone(), now).is_some_and(|before| before != now);
        }
        let old = shared.catalog.swap(Arc::new(new));
        let new = shared.catalog.load();
        // Each endpoint is told only about its own lists: the main one, and every virtual server.
        let scopes = std::iter::once(None).chain(governance.virtual_servers.iter().map(Some));
        for scope in scopes {
            for (kind, method) in [
                (ItemKind::Tool, "notifications/tools/list_changed"),
                (ItemKind::Prompt, "notifications/prompts/list_changed"),
                (ItemKind::Resource, "notifications/resources/list_changed"),
            ] {
                let fp = |c: &Catalog, k| fingerprint(c, k, scope.map(|v| &**v));
                let changed = per_user_changed
                    || fp(&old, kind) != fp(&new, kind)
                    || (kind == ItemKind::Resource && fp(&old, ItemKind::ResourceTemplate) != fp(&new, ItemKind::ResourceTemplate));
                if !changed {
                    continue;
                }
                let name = scope.map(|v| v.name.clone());
                let _ = shared.changes.send(ListChange { kind, scope: name.clone() });
                let msg = Bytes::from(notification(method, None));
                for s in shared.sessions.all().into_iter().filter(|s| s.virtual_server() == name.as_deref()) {
                    s.push(msg.clone());
                }
            }
        }
    }
}

/// A digest of what an endpoint lists of `kind` (a virtual server: only what it selects).
fn fingerprint(c: &Catalog, kind: ItemKind, scope: Option<&crate::governance::VirtualServer>) -> u64 {
    let mut h = DefaultHasher::new();
    for e in c.items(kind).iter().filter(|e| scope.is_none_or(|v| v.admits_entry(kind, e))) {
        e.json.get().hash(&mut h);
    }
    h.finish()
}

async fn sweep_sessions(shared: Weak<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(15));
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        let limit = shared.config.load().limits.session_idle_timeout;
        for s in shared.sessions.expire(limit).into_iter().chain(shared.stateless.expire(limit)) {
            tracing::info!(session = %crate::session::short(&s.id), "session expired after {limit:?} idle");
            s.close().await;
        }
    }
}
