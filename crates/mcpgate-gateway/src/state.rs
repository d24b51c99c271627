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
use crate::cluster::Cluster;
use crate::config::GatewayConfig;
use crate::discovery;
use crate::governance::Governance;
use crate::identity::Security;
use crate::pins::Pins;
use crate::reject::Reject;
use crate::session::keys::KeyRing;
use crate::session::{ClientSession, Refused, SessionCtx, Sessions};
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
    /// Retries of parked calls forwarded to the replica holding them.
    pub resumes: crate::session::parked::Resumes,
    /// Resource subscriptions at backends, shared by every client stream that watches the same
    /// resource with the same credential.
    pub subscriptions: crate::calls::subscriptions::Subscriptions,
    /// Open `subscriptions/listen` streams per principal.
    pub listeners: crate::session::quota::Quota,
    /// Which list changed (and on which endpoint), for `subscriptions/listen` streams.
    pub changes: tokio::sync::broadcast::Sender<ListChange>,
    /// Naming rules and virtual servers, compiled from the config.
    pub governance: ArcSwap<Governance>,
    /// Definition pins: the store, audit memory and counters.
    pub pins: Pins,
    /// Each caller's own listings of `catalog: per_user` servers.
    pub per_user: crate::per_user::PerUser,
    /// The front door's connection counters (written by `listener`, shown by `/status`).
    pub front_door: Arc<crate::listener::FrontDoorStats>,
    changed: mpsc::UnboundedSender<()>,
    /// The other replicas and the shared store, when this is one of several.
    pub cluster: Option<Arc<Cluster>>,
    /// The keys session ids (and the other ids clients carry back) are signed with.
    pub keys: ArcSwap<KeyRing>,
    /// Set on SIGTERM: `/readyz` answers 503 so load balancers stop sending.
    pub draining: std::sync::atomic::AtomicBool,
    /// Cancelled when the listener has closed: open streams end (their clients reconnect
    /// elsewhere).
    pub stopping: tokio_util::sync::CancellationToken,
    /// Every metric series (kept for the life of the process, across reloads).
    pub series: Arc<crate::observe::Series>,
    /// Token buckets (kept across reloads; the rules that use them are in `security`).
    pub buckets: crate::quota::Store,
    /// Where audit lines go.
    pub audit: crate::observe::audit::Audit,
}

impl Shared {
    /// Builds the state, starts discovery for every enabled backend and the background tasks.
    /// Must be called inside a tokio runtime. Fails when the auth machinery cannot be built
    /// (e.g. a key file that cannot be read).
    pub fn start(config: GatewayConfig, cluster: Option<Arc<Cluster>>) -> Result<Arc<Self>, Vec<String>> {
        Self::start_with(config, cluster, Arc::default())
    }

    /// [`Shared::start`] counting in `series` (made before, e.g. for the trace exporter).
    pub fn start_with(config: GatewayConfig, cluster: Option<Arc<Cluster>>, series: Arc<crate::observe::Series>) -> Result<Arc<Self>, Vec<String>> {
        let (changed, rx) = mpsc::unbounded_channel();
        // No proxies from the environment and no redirects: a redirect must never carry a
        // backend credential (e.g. X-API-Key) to another host.
        let http = mcpgate_tls::http_client(None, Default::default()).map_err(|e| vec![e])?;
        let security = Security::build(&config, &http, &series)?;
        let governance = Governance::build(&config)?;
        let audit = crate::observe::audit::Audit::open(&config.audit, series.clone()).map_err(|e| vec![e])?;
        warn_about_open_access(&config);
        let buckets = match (&cluster, config.rate_limits.store) {
            (Some(c), crate::quota::StoreKind::Shared) => crate::quota::Store::Shared(c.store.clone()),
            _ => crate::quota::Store::Local(Default::default()),
        };
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
            resumes: Default::default(),
            subscriptions: Default::default(),
            listeners: Default::default(),
            changes: tokio::sync::broadcast::channel(64).0,
            governance: ArcSwap::from_pointee(governance),
            pins: Pins::default(),
            per_user: Default::default(),
            front_door: Default::default(),
            changed,
            keys: ArcSwap::from_pointee(key_ring(&config)),
            cluster,
            draining: std::sync::atomic::AtomicBool::new(false),
            stopping: tokio_util::sync::CancellationToken::new(),
            series,
            buckets,
            audit,
        });
        // Before any listing arrives: in enforce mode nothing is served without the pins.
        shared.pins.configure(&config, &shared.changed, shared.cluster.as_ref())?;
        shared.apply_backends(&config, &config);
        tokio::spawn(rebuild_catalog(Arc::downgrade(&shared), rx));
        tokio::spawn(sweep_sessions(Arc::downgrade(&shared)));
        Ok(shared)
    }

    /// What new sessions of this process are made with.
    pub fn session_ctx(&self) -> SessionCtx {
        SessionCtx { keys: self.keys.load_full(), cluster: self.cluster.clone() }
    }

    /// The client session `id` (cached, or loaded from the shared store), as a request sees it.
    pub async fn find_session(&self, id: &str) -> Result<Arc<ClientSession>, Reject> {
        let limits = self.config.load().limits.sessions();
        self.sessions.find(id, &self.session_ctx(), &limits).await.map_err(refusal)
    }

    pub fn backend(&self, name: &ServerName) -> Option<Arc<Backend>> {
        self.backends.load().iter().find(|b| &b.name == name).cloned()
    }

    /// Applies a validated new config: unchanged backends keep their discovery and every
    /// client's sessions with them; changed or removed ones are stopped and their client
    /// sessions closed; new ones start discovery.
    pub async fn apply(&self, config: GatewayConfig) -> Result<(), Vec<String>> {
        let security = Security::build(&config, &self.http, &self.series)?;
        let governance = Governance::build(&config)?;
        if self.pins.configure(&config, &self.changed, self.cluster.as_ref())?
            && let Some(store) = self.pins.store()
        {
            // The same pin file: read it again (SIGHUP also picks up hand edits).
            store.refresh().await.map_err(|e| vec![format!("{e} (the running pins are kept)")])?;
        }
        let old = self.config.load_full();
        for (changed, what) in [
            (config.audit != old.audit, "audit"),
            (config.telemetry != old.telemetry, "telemetry"),
            (config.admin.as_ref().map(|a| &a.listen) != old.admin.as_ref().map(|a| &a.listen), "admin.listen"),
            (config.metrics.on_main_listener != old.metrics.on_main_listener, "metrics.on_main_listener"),
        ] {
            if changed {
                tracing::warn!("{what} changes take effect only after a restart");
            }
        }
        warn_about_open_access(&config);
        self.security.store(Arc::new(security));
        self.governance.store(Arc::new(governance));
        // A cluster's new keys sign from now on; ids signed with a key still listed stay valid.
        // A single process keeps its random key (its clients hold ids signed with it).
        let old_keys = old.cluster.as_ref().map(|c| c.keys.clone());
        if config.cluster.is_some() && config.cluster.as_ref().map(|c| c.keys.clone()) != old_keys {
            self.keys.store(Arc::new(key_ring(&config)));
        }
        self.config.store(Arc::new(config.clone()));
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
                    let b = Backend::new(sc, &self.series, &self.http);
                    let credentials = self.security.load().credentials.clone();
                    let task = tokio::spawn(discovery::run(b.clone(), b.http().clone(), config.catalog.clone(), self.changed.clone(), credentials));
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

/// A refusal of the session machinery, as the client is answered.
pub fn refusal(r: Refused) -> Reject {
    match r {
        Refused::Unknown => Reject::UnknownSession,
        Refused::Store(why) => Reject::StoreUnavailable(why),
        Refused::Full => Reject::TooManySessions,
        Refused::PrincipalQuota => Reject::PrincipalSessions(0),
    }
}

fn key_ring(config: &GatewayConfig) -> KeyRing {
    match &config.cluster {
        Some(c) => KeyRing::from_config(&c.keys),
        None => KeyRing::random(),
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
        shared.pins.after_build(&new.quarantined, &new.pin_report, &shared.audit);
        // A per-user server's lists are not in the catalog: when it announces a change, every
        // client is told (each one's own listing is fetched again on its next list).
        let mut per_user_changed = false;
        for b in shared.backends.load().iter().filter(|b| governance.per_user.iter().any(|(n, _)| n == b.name.as_str())) {
            let now = b.list_generation();
            per_user_changed |= per_user_seen.insert(b.name.clone(), now).is_some_and(|before| before != now);
        }
        let old = shared.catalog.swap(Arc::new(new));
        let new = shared.catalog.load();
        let mut announced = Vec::new();
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
                crate::observe::series::bump(&shared.series.list_changed[kind as usize]);
                let name = scope.map(|v| v.name.clone());
                let _ = shared.changes.send(ListChange { kind, scope: name.clone() });
                let msg = Bytes::from(notification(method, None));
                for s in shared.sessions.all().into_iter().filter(|s| s.virtual_server() == name.as_deref()) {
                    s.push(msg.clone());
                }
                announced.push((name, msg));
            }
        }
        // A change a backend announced to one client's own session reaches that client even when
        // the shared catalog looks the same (the backend may list per session or per user); once.
        for backend in shared.backends.load().iter() {
            for (client, msg) in backend.take_relist_waiters() {
                if let Some(client) = client.upgrade()
                    && !announced.iter().any(|(scope, m)| scope.as_deref() == client.scope() && *m == msg)
                {
                    client.deliver(msg);
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
        shared.buckets.sweep();
        for (s, ended) in shared.sessions.expire(limit).into_iter().chain(shared.stateless.expire(limit)) {
            if ended {
                tracing::info!(session = %crate::session::short(&s.id), "session expired after {limit:?} idle");
            }
            s.close(ended).await;
        }
        if let Some(cluster) = &shared.cluster {
            sweep_store(&shared, cluster, limit).await;
        }
    }
}

/// Claims the sessions the store says have expired (each replica sweeps; each session is
/// claimed by one) and ends them: their backend sessions, and every replica's cached copy.
async fn sweep_store(shared: &Shared, cluster: &Arc<Cluster>, limit: Duration) {
    let claimed = match cluster.store.claim_expired(limit.as_millis() as u64, crate::session::now_ms(), 200).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "could not sweep expired sessions");
            return;
        }
    };
    let ctx = shared.session_ctx();
    let backends = shared.backends.load_full();
    for (id, rec) in claimed {
        tracing::info!(session = %crate::session::short(&id), "session expired after {limit:?} idle");
        cluster.send(mcpgate_store::bus::To::All, &crate::cluster::BusMessage::Closed { session: id.clone() }).await;
        let stored = rec.backends.clone();
        let s = shared.sessions.get(&id).unwrap_or_else(|| ClientSession::from_record(&ctx, id, rec));
        s.end_everywhere(stored, &backends).await;
    }
}
