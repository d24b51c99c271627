//! The front door's TLS acceptor, reloaded without dropping the listener: the certificate,
//! key and client CA files are watched (their directories, so renames and Kubernetes secret
//! symlink swaps are seen) and re-read on SIGHUP; a new set is used for new handshakes only
//! when it loads completely, otherwise the previous one stays and the reason is logged.
//!
//! Never logs key material: messages name files and what is wrong with them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use mcpgate_tls::{ServerTls, TlsProblem};
use notify::RecursiveMode;
use notify_debouncer_full::new_debouncer;
use tokio::sync::mpsc;

/// Reload counters for `/status`.
#[derive(Debug, Default)]
pub(crate) struct TlsStats {
    enabled: std::sync::atomic::AtomicBool,
    reloads: AtomicU64,
    failed_reloads: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl TlsStats {
    pub fn to_json(&self) -> serde_json::Value {
        if !self.enabled.load(Ordering::Relaxed) {
            return serde_json::Value::Null;
        }
        // Counters and error are read under the lock they are written under: a failed reload
        // is never counted without its error.
        let last_error = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        serde_json::json!({
            "reloads": self.reloads.load(Ordering::Relaxed),
            "failed_reloads": self.failed_reloads.load(Ordering::Relaxed),
            "last_error": last_error.clone(),
        })
    }

    /// Records one reload's outcome: its error (or none) and its count, together, around `apply`
    /// (putting a new certificate in use), so that `/status` never shows one without the other.
    fn record(&self, error: Option<String>, apply: impl FnOnce()) {
        let mut last_error = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        apply();
        let counter = if error.is_some() { &self.failed_reloads } else { &self.reloads };
        counter.fetch_add(1, Ordering::Relaxed);
        *last_error = error;
    }
}

pub(crate) struct TlsFront {
    config: ServerTls,
    current: ArcSwap<rustls::ServerConfig>,
    stats: Arc<super::FrontDoorStats>,
}

/// The problems of a TLS section as one line per problem, prefixed with `tls.`.
pub(crate) fn describe(problems: &[TlsProblem]) -> String {
    problems.iter().map(|p| format!("tls.{p}")).collect::<Vec<_>>().join("; ")
}

impl TlsFront {
    pub fn load(config: &ServerTls, stats: Arc<super::FrontDoorStats>) -> Result<Arc<Self>, String> {
        let current = config.load().map_err(|p| describe(&p))?;
        stats.tls.enabled.store(true, Ordering::Relaxed);
        Ok(Arc::new(Self { config: config.clone(), current: ArcSwap::new(current), stats }))
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
    }

    /// Reads the files again; keeps the current certificate when they do not load.
    pub fn reload(&self, why: &str) {
        let tls = &self.stats.tls;
        match self.config.load() {
            Ok(next) => {
                tls.record(None, || self.current.store(next));
                tracing::info!(trigger = why, "TLS certificate reloaded; new connections use it");
            }
            Err(problems) => {
                let text = describe(&problems);
                tracing::error!(trigger = why, "TLS certificate reload failed, keeping the previous certificate: {text}");
                tls.record(Some(text), || ());
            }
        }
    }

    /// Reloads on changes to the files and on SIGHUP, for the life of the process.
    pub fn watch(self: &Arc<Self>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
        let files: Vec<PathBuf> = self.config.files();
        let mut dirs: Vec<PathBuf> = files.iter().map(|f| parent(f)).collect();
        dirs.sort();
        dirs.dedup();
        let names: Vec<_> = files.iter().filter_map(|f| f.file_name().map(|n| n.to_owned())).collect();
        let file_tx = tx.clone();
        let debouncer = new_debouncer(Duration::from_millis(300), None, move |res: notify_debouncer_full::DebounceEventResult| {
            let Ok(events) = res else { return };
            // Reading the files (as a reload does) is an event too: only writes, creations,
            // renames and removals count.
            let touches = events
                .iter()
                .filter(|e| !e.kind.is_access() && !e.kind.is_other())
                .any(|e| e.paths.iter().any(|p| p.file_name().is_some_and(|n| names.iter().any(|m| m == n)) || p.ends_with("..data")));
            if touches {
                let _ = file_tx.send("file change");
            }
        });
        match debouncer {
            Ok(mut d) => {
                for dir in &dirs {
                    if let Err(e) = d.watch(dir, RecursiveMode::NonRecursive) {
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the TLS files' directory; reload them with SIGHUP");
                    }
                }
                // The debouncer stops when dropped: keep it for the life of the process.
                std::mem::forget(d);
            }
            Err(e) => tracing::warn!(error = %e, "cannot watch the TLS files; reload them with SIGHUP"),
        }
        #[cfg(unix)]
        tokio::spawn(async move {
            let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
            while hup.recv().await.is_some() {
                let _ = tx.send("SIGHUP");
            }
        });
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(why) = rx.recv().await {
                let Some(me) = me.upgrade() else { return };
                me.reload(why);
            }
        });
    }
}

fn parent(file: &Path) -> PathBuf {
    file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
}
