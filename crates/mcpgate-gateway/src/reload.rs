//! Config reload on file change (the directory is watched, so editors' renames and Kubernetes
//! ConfigMap symlink swaps are seen) and on SIGHUP. A new config is parsed and validated
//! first; an invalid one is logged and the running config kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::new_debouncer;
use tokio::sync::mpsc;

use crate::config::{ConfigError, load_file};
use crate::state::Shared;

/// Starts watching `path`; runs until the process ends.
pub fn watch(path: PathBuf, shared: Arc<Shared>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let file_tx = tx.clone();
    let watched = path.clone();
    let debouncer = new_debouncer(Duration::from_millis(300), None, move |res: notify_debouncer_full::DebounceEventResult| {
        if let Ok(events) = res {
            // Reading the file (as every reload does) is an event too; counting it would
            // re-read the config every debounce period forever.
            let touches = events
                .iter()
                .filter(|e| !e.kind.is_access() && !e.kind.is_other())
                .any(|e| e.paths.iter().any(|p| p.file_name() == watched.file_name() || p.ends_with("..data")));
            if touches {
                let _ = file_tx.send("file change");
            }
        }
    });
    match debouncer {
        Ok(mut d) => match d.watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                // The debouncer stops when dropped: keep it for the life of the process.
                std::mem::forget(d);
            }
            Err(e) => tracing::warn!(error = %e, "cannot watch the config directory; reload with SIGHUP"),
        },
        Err(e) => tracing::warn!(error = %e, "cannot watch the config file; reload with SIGHUP"),
    }
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
        while hup.recv().await.is_some() {
            let _ = tx.send("SIGHUP");
        }
    });
    tokio::spawn(async move {
        while let Some(why) = rx.recv().await {
            reload(&path, &shared, why).await;
        }
    });
}

pub async fn reload(path: &Path, shared: &Shared, why: &str) {
    match load_file(path) {
        Ok(new) => {
            let old = shared.config.load_full();
            if *old == new {
                // The config is the same, but the pin file may have been edited by hand.
                if let Some(store) = shared.pins.store()
                    && let Err(e) = store.refresh().await
                {
                    tracing::error!(trigger = why, "{e}; keeping the pins read before");
                }
                return;
            }
            if old.listen != new.listen || old.mcp_path != new.mcp_path || old.tls != new.tls || old.lanes != new.lanes {
                // The TLS files themselves are reloaded by the listener; the section's paths are not.
                tracing::warn!("listen, lanes, mcp_path and tls changes take effect only after a restart");
            }
            match shared.apply(new).await {
                Ok(()) => {
                    tracing::info!(trigger = why, "config reloaded");
                    reloaded(shared, why, true, "applied");
                }
                Err(errors) => {
                    for e in errors {
                        tracing::error!(trigger = why, "config reload rejected: {e}");
                    }
                    reloaded(shared, why, false, "invalid");
                }
            }
        }
        Err(ConfigError::Invalid(problems)) => {
            for p in &problems {
                tracing::error!(trigger = why, "config reload rejected: {p}");
            }
            tracing::error!("keeping the running config");
            reloaded(shared, why, false, "invalid");
        }
        Err(e) => {
            tracing::error!(trigger = why, "config reload failed: {e}; keeping the running config");
            reloaded(shared, why, false, "unreadable");
        }
    }
}

fn reloaded(shared: &Shared, trigger: &str, applied: bool, reason: &str) {
    crate::observe::series::bump(&shared.series.reloads[usize::from(!applied)]);
    shared.audit.record(crate::observe::audit::Event::Reload { trigger, applied, reason });
}
