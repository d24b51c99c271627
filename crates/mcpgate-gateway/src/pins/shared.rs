//! Pins in the cluster store, shared by every replica (used whenever `cluster:` is set).
//!
//! The store holds the pin document (the pin file's format) and a version; a change is read,
//! applied and written back with a compare-and-set on the version, retried when another
//! replica wrote first, so concurrent approvals on different replicas never lose a pin. After
//! a change the writer tells every replica (`BusMessage::PinsChanged`) to re-read; a periodic
//! re-read covers a missed message. The configured pin file only seeds an empty store: in a
//! cluster, approve through a replica's admin endpoint.
//!
//! Until the store has been read, a replica starts from its own pin file (enforce mode then
//! quarantines rather than serves: an empty set approves nothing). A stored document that does
//! not parse keeps the last good pins.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use mcpgate_store::bus::To;
use tokio::sync::watch;

use super::file::{self, PinFileError};
use super::set::{Applied, Change, PinSet};
use super::store::{PinStore, now};
use crate::cluster::{BusMessage, Cluster};

/// How often a replica re-reads the pins without being told.
const REREAD_EVERY: Duration = Duration::from_secs(30);
/// Compare-and-set attempts before a change is reported as failed.
const ATTEMPTS: usize = 16;

pub struct SharedStore {
    cluster: Arc<Cluster>,
    snapshot: ArcSwap<PinSet>,
    version: watch::Sender<u64>,
}

fn store_error(e: impl std::fmt::Display) -> PinFileError {
    PinFileError::Write { path: "the cluster store".to_owned(), source: std::io::Error::other(e.to_string()) }
}

fn parse(text: &str) -> Result<PinSet, PinFileError> {
    file::parse(text).map_err(|problems| PinFileError::Invalid { path: "the cluster store".to_owned(), problems })
}

impl SharedStore {
    /// Starts from `seed` (the pin file; unreadable or malformed: error), then seeds the store
    /// when it holds no pins and re-reads it, in the background.
    pub fn open(cluster: Arc<Cluster>, seed: &Path) -> Result<Arc<Self>, PinFileError> {
        let seed = file::read(seed)?;
        let store = Arc::new(Self { cluster, snapshot: ArcSwap::from_pointee(seed), version: watch::channel(0).0 });
        let weak = Arc::downgrade(&store);
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let Some(store) = weak.upgrade() else { return };
                if first {
                    store.seed().await;
                    first = false;
                }
                match store.refresh().await {
                    Ok(true) => tracing::info!("pins changed in the cluster store"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!("{e}; keeping the pins read before"),
                }
                drop(store);
                tokio::time::sleep(REREAD_EVERY).await;
            }
        });
        Ok(store)
    }

    /// Writes this replica's starting pins when the store has none yet.
    async fn seed(&self) {
        let text = file::render_set(&self.snapshot.load());
        match self.cluster.store.load_pins().await {
            Ok((None, version)) => {
                if let Err(e) = self.cluster.store.replace_pins(version, &text).await {
                    tracing::warn!(error = %e, "could not seed the cluster store with the pin file");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not read the pins in the cluster store"),
        }
    }

    fn replace(&self, set: PinSet) -> bool {
        if *self.snapshot.load_full() == set {
            return false;
        }
        self.snapshot.store(Arc::new(set));
        self.version.send_modify(|v| *v += 1);
        true
    }

    async fn apply(&self, change: &Change) -> Result<Applied, PinFileError> {
        for _ in 0..ATTEMPTS {
            let (text, version) = self.cluster.store.load_pins().await.map_err(store_error)?;
            let mut set = match &text {
                Some(t) => parse(t)?,
                None => (**self.snapshot.load()).clone(),
            };
            let applied = set.apply(change, &now())?;
            if !applied.changed {
                self.replace(set);
                return Ok(applied);
            }
            if self.cluster.store.replace_pins(version, &file::render_set(&set)).await.map_err(store_error)? {
                self.replace(set);
                self.cluster.send(To::All, &BusMessage::PinsChanged).await;
                return Ok(applied);
            }
        }
        Err(store_error(format!("the pins kept changing under {ATTEMPTS} attempts; try again")))
    }
}

impl PinStore for SharedStore {
    fn snapshot(&self) -> Arc<PinSet> {
        self.snapshot.load_full()
    }

    fn update(&self, change: Change) -> BoxFuture<'_, Result<Applied, PinFileError>> {
        Box::pin(async move { self.apply(&change).await })
    }

    fn refresh(&self) -> BoxFuture<'_, Result<bool, PinFileError>> {
        Box::pin(async move {
            match self.cluster.store.load_pins().await.map_err(store_error)? {
                (Some(text), _) => Ok(self.replace(parse(&text)?)),
                (None, _) => Ok(false),
            }
        })
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    fn describe(&self) -> String {
        "the cluster store (shared by every replica)".to_owned()
    }
}
