//! Noticing pin changes: the pin file's directory is watched (approvals written by
//! `mcpgate pins approve --file` rename a new file into place), and every change of the
//! store's snapshot, from here or from the file, asks for a catalog rebuild.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc;

use super::store::PinStore;

/// Keeps the directory watch alive; dropping it stops watching.
pub struct Watcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

impl Watcher {
    /// Watches `path`'s directory and refreshes `store` when the file changes. `None` (with a
    /// warning) when the platform refuses: approvals then need SIGHUP or the admin endpoint.
    pub fn start(path: &Path, store: Arc<dyn PinStore>) -> Option<Self> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        let name = path.file_name().map(|n| n.to_os_string());
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let debouncer = new_debouncer(Duration::from_millis(200), None, move |res: notify_debouncer_full::DebounceEventResult| {
            if let Ok(events) = res
                && events.iter().any(|e| e.paths.iter().any(|p| p.file_name().map(|n| n.to_os_string()) == name))
            {
                let _ = tx.send(());
            }
        });
        let mut debouncer = match debouncer {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the pin file; reload pins with SIGHUP or approve through the admin endpoint");
                return None;
            }
        };
        if let Err(e) = debouncer.watch(&dir, RecursiveMode::NonRecursive) {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the pin file's directory; reload pins with SIGHUP");
            return None;
        }
        tokio::spawn(async move {
            while rx.recv().await.is_some() {
                while rx.try_recv().is_ok() {}
                match store.refresh().await {
                    Ok(true) => tracing::info!(store = %store.describe(), "pins changed on disk"),
                    Ok(false) => {}
                    // A broken edit must not lift or impose quarantines: the last good pins stay.
                    Err(e) => tracing::error!("{e}; keeping the pins read before"),
                }
            }
        });
        Some(Self { _debouncer: debouncer })
    }
}

/// Asks for a catalog rebuild whenever `store`'s snapshot changes; ends with the gateway.
pub fn forward_changes(store: Arc<dyn PinStore>, changed: mpsc::UnboundedSender<()>) {
    let mut rx = store.subscribe();
    drop(store);
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            if changed.send(()).is_err() {
                return;
            }
        }
    });
}
