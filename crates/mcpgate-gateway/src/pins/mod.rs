//! Definition pinning against rug-pulls: a tool's or prompt's definition (as its backend sent
//! it) is hashed ([`definition`]) and compared with the approved one ([`set`]) at catalog build,
//! never per call. In `enforce` mode an unapproved or changed item is quarantined by the
//! catalog; in `record` mode it is served, and the change audited and counted.
//!
//! [`Pins`] is the run-time side: the store (a file today, [`store::PinStore`] for others),
//! audit lines once per new definition, counters, and the watcher that picks up approvals made
//! with `mcpgate pins` on the file. Never logs a definition's content, only hashes and names.

pub mod canonical;
pub mod definition;
pub mod diff;
pub mod file;
mod report;
pub mod set;
mod shared;
pub mod store;
mod watch;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use mcpgate_protocol::names::ServerName;
use tokio::sync::mpsc;

pub use definition::Definition;
pub use file::PinFileError;
pub use report::{ChangedServed, PinReport, Quarantined};
pub use set::{Applied, Approved, Change, Observation, PinKind, PinSet, Selection, Verdict};
pub use shared::SharedStore;
pub use store::{FileStore, PinStore};

use crate::cluster::Cluster;
use crate::config::{GatewayConfig, PinMode};
use crate::observe::audit::{Audit, DefinitionDecision, Event};

/// Pins at run time: the store, audit memory and counters.
#[derive(Default)]
pub struct Pins {
    store: RwLock<Option<(PathBuf, Arc<dyn PinStore>)>>,
    /// Definitions already audited: (server, kind, name, hash).
    reported: Mutex<HashSet<(String, &'static str, String, String)>>,
    /// Record mode: changed definitions served (each new definition counted once).
    changes_served: AtomicU64,
    /// Enforce mode: definitions quarantined (each new definition counted once).
    quarantines: AtomicU64,
    watcher: Mutex<Option<watch::Watcher>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pins {
    /// Opens the store the config names, or keeps the open one when the file is the same
    /// (true: the caller should `refresh` it). Fails when the file is unreadable or malformed:
    /// the gateway must not serve unpinned tools. `changed` is told whenever the pins change
    /// (catalog rebuild). In a cluster the pins live in the cluster store (`shared`), the file
    /// seeding it. Must run inside a tokio runtime.
    pub fn configure(&self, config: &GatewayConfig, changed: &mpsc::UnboundedSender<()>, cluster: Option<&Arc<Cluster>>) -> Result<bool, Vec<String>> {
        let Some(pins) = &config.pins else {
            *self.store.write().unwrap_or_else(|p| p.into_inner()) = None;
            *lock(&self.watcher) = None;
            return Ok(false);
        };
        if self.store.read().unwrap_or_else(|p| p.into_inner()).as_ref().is_some_and(|(path, _)| *path == pins.file) {
            return Ok(true);
        }
        let store: Arc<dyn PinStore> = match cluster {
            Some(c) => SharedStore::open(c.clone(), &pins.file).map_err(|e| vec![e.to_string()])?,
            None => Arc::new(FileStore::open(&pins.file).map_err(|e| vec![e.to_string()])?),
        };
        if cluster.is_none() && !pins.file.exists() {
            let enforced = config.servers.iter().filter(|s| s.enabled && s.pinning == PinMode::Enforce).count();
            tracing::warn!(file = %pins.file.display(), enforced, "the pin file does not exist yet: no definition is approved; items of servers with pinning: enforce stay quarantined until approved");
        }
        for server in store.snapshot().servers.keys().filter(|s| !config.servers.iter().any(|c| &c.name == *s)) {
            tracing::warn!(file = %pins.file.display(), server = %server, "the pin file names a server that is not configured (`mcpgate check` reports it)");
        }
        watch::forward_changes(store.clone(), changed.clone());
        // In a cluster, edits of the file are not the pins: approvals go through the admin endpoint.
        *lock(&self.watcher) = if cluster.is_none() { watch::Watcher::start(&pins.file, store.clone()) } else { None };
        tracing::info!(store = %store.describe(), "pin store opened");
        *self.store.write().unwrap_or_else(|p| p.into_inner()) = Some((pins.file.clone(), store));
        Ok(false)
    }

    pub fn store(&self) -> Option<Arc<dyn PinStore>> {
        self.store.read().unwrap_or_else(|p| p.into_inner()).as_ref().map(|(_, s)| s.clone())
    }

    /// The pins the next catalog is built with (empty without a store).
    pub fn snapshot(&self) -> Arc<PinSet> {
        self.store().map_or_else(Default::default, |s| s.snapshot())
    }

    pub fn changes_served(&self) -> u64 {
        self.changes_served.load(Ordering::Relaxed)
    }

    pub fn quarantines(&self) -> u64 {
        self.quarantines.load(Ordering::Relaxed)
    }

    /// After a catalog build: audit lines and counters for definitions not seen before, and
    /// the observed definitions written to the store (in the background).
    pub fn after_build(&self, quarantined: &HashMap<ServerName, Vec<Quarantined>>, report: &PinReport, audit: &Audit) {
        for q in quarantined.iter().flat_map(|(server, items)| items.iter().map(move |q| (server, q))) {
            let (server, q) = q;
            if self.first_report(server.as_str(), q.kind, &q.name, &q.hash) {
                self.quarantines.fetch_add(1, Ordering::Relaxed);
                audit.record(Event::Definition {
                    server: server.as_str(),
                    kind: q.kind,
                    name: &q.name,
                    hash: &q.hash,
                    approved: q.approved.as_deref().unwrap_or("-"),
                    decision: DefinitionDecision::Quarantine,
                    reason: q.reason,
                });
            }
        }
        for c in &report.changed_served {
            if self.first_report(&c.server, c.kind, &c.name, &c.hash) {
                self.changes_served.fetch_add(1, Ordering::Relaxed);
                audit.record(Event::Definition {
                    server: &c.server,
                    kind: c.kind,
                    name: &c.name,
                    hash: &c.hash,
                    approved: &c.approved,
                    decision: DefinitionDecision::ServeChanged,
                    reason: "changed since approval",
                });
            }
        }
        let Some(store) = self.store() else { return };
        if report.observations.is_empty() {
            return;
        }
        let change = Change::Observe(report.observations.clone());
        if !store.snapshot().would_change(&change) {
            return;
        }
        tokio::spawn(async move {
            if let Err(e) = store.update(change).await {
                tracing::error!("cannot record observed definitions: {e}");
            }
        });
    }

    fn first_report(&self, server: &str, kind: &'static str, name: &str, hash: &str) -> bool {
        lock(&self.reported).insert((server.to_owned(), kind, name.to_owned(), hash.to_owned()))
    }
}

/// A pin-file problem for `mcpgate check`: (key path, problem, fix).
pub type CheckProblem = (String, String, String);

/// Checks the pin file a config names: unreadable, malformed, or naming servers the config
/// does not have. Empty when there is nothing to check or nothing wrong.
pub fn check_file(config: &GatewayConfig) -> Vec<CheckProblem> {
    let Some(pins) = &config.pins else { return Vec::new() };
    let at = |path: &str| format!("pins.file ({}): {path}", pins.file.display());
    match file::read(&pins.file) {
        Err(PinFileError::Invalid { problems, .. }) => {
            problems.into_iter().map(|(path, what)| (at(&path), what, "fix the pin file (or restore it from version control)".to_owned())).collect()
        }
        Err(e) => vec![("pins.file".to_owned(), e.to_string(), "make the file readable by the gateway, or point pins.file elsewhere".to_owned())],
        Ok(set) => set
            .servers
            .keys()
            .filter(|s| !config.servers.iter().any(|c| &c.name == *s))
            .map(|s| {
                (at(&format!("servers.{s}")), format!("server {s:?} is not configured"), "remove its pins from the file, or fix the server's name".to_owned())
            })
            .collect(),
    }
}
