//! Where pins live: the [`PinStore`] trait, and its file implementation.
//!
//! A store holds one [`PinSet`] for every replica of the gateway. What an implementation must
//! provide (the file one does it with a lock and an atomic rename; a shared one, e.g. on
//! Redis, with a transaction or compare-and-set):
//! - `snapshot`: the last known set, without I/O (read on every catalog rebuild);
//! - `update`: apply a [`Change`] atomically against the newest stored set (read-modify-write
//!   that never loses a concurrent writer's change), then refresh the snapshot;
//! - `refresh`: re-read the stored set (after a change notification), keeping the last good
//!   snapshot when the stored one is unreadable;
//! - `subscribe`: a notification whenever the snapshot changes (by this replica or another),
//!   so the catalog is rebuilt and quarantines lifted or imposed everywhere.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use tokio::sync::watch;

use super::file::{self, PinFileError};
use super::set::{Applied, Change, PinSet};

/// A pin store shared by everything in this process (and, for shared stores, by replicas).
pub trait PinStore: Send + Sync {
    fn snapshot(&self) -> Arc<PinSet>;
    fn update(&self, change: Change) -> BoxFuture<'_, Result<Applied, PinFileError>>;
    /// Re-reads the stored set; true when the snapshot changed.
    fn refresh(&self) -> BoxFuture<'_, Result<bool, PinFileError>>;
    fn subscribe(&self) -> watch::Receiver<u64>;
    /// For logs and `/status`: where the pins are.
    fn describe(&self) -> String;
}

/// Pins in a YAML file (see `file`).
pub struct FileStore {
    path: PathBuf,
    snapshot: ArcSwap<PinSet>,
    version: watch::Sender<u64>,
}

impl FileStore {
    /// Opens the store: the file is read now (missing: empty; unreadable or malformed: error).
    pub fn open(path: &Path) -> Result<Self, PinFileError> {
        let set = file::read(path)?;
        Ok(Self { path: path.to_owned(), snapshot: ArcSwap::from_pointee(set), version: watch::channel(0).0 })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn replace(&self, set: PinSet) -> bool {
        if *self.snapshot.load_full() == set {
            return false;
        }
        self.snapshot.store(Arc::new(set));
        self.version.send_modify(|v| *v += 1);
        true
    }
}

/// The current time as RFC 3339 (UTC, seconds).
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl PinStore for FileStore {
    fn snapshot(&self) -> Arc<PinSet> {
        self.snapshot.load_full()
    }

    fn update(&self, change: Change) -> BoxFuture<'_, Result<Applied, PinFileError>> {
        Box::pin(async move {
            let path = self.path.clone();
            let (set, applied) = tokio::task::spawn_blocking(move || file::update(&path, &change, &now()))
                .await
                .map_err(|e| PinFileError::Write { path: self.path.display().to_string(), source: std::io::Error::other(e.to_string()) })??;
            self.replace(set);
            Ok(applied)
        })
    }

    fn refresh(&self) -> BoxFuture<'_, Result<bool, PinFileError>> {
        Box::pin(async move {
            let path = self.path.clone();
            let set = tokio::task::spawn_blocking(move || file::read(&path))
                .await
                .map_err(|e| PinFileError::Read { path: self.path.display().to_string(), source: std::io::Error::other(e.to_string()) })??;
            Ok(self.replace(set))
        })
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}
