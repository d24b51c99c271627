//! The audit sink: one record per access decision, credential-source decision, rate-limit
//! refusal and config reload. `log` (default) writes them as `mcpgate::audit` events in the
//! log stream; `stderr` and `file` as JSON lines of their own schema (docs/observability.md),
//! written by a background thread so a slow disk never slows a call; a full queue drops the
//! line and counts it. Files rotate by size.
//!
//! Never holds a token or a secret: records carry names, decisions and reason codes only.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use mcpgate_protocol::ObjectWriter;

use super::series::{Series, bump};
use crate::config::{AuditConfig, AuditSinkKind};

/// Lines waiting for the writer at most.
const QUEUE: usize = 8192;

/// One audited event.
pub enum Event<'a> {
    /// A call-type request was permitted or denied.
    Access { subject: &'a str, server: &'a str, kind: &'a str, name: &'a str, allowed: bool, reason: &'a str, request_id: &'a str },
    /// A list was filtered for a restricted caller.
    List { subject: &'a str, kind: &'a str, visible: usize, total: usize, request_id: &'a str },
    /// Which credential source served a call, or why none did.
    Credential { subject: &'a str, server: &'a str, source: &'a str, allowed: bool, reason: &'a str, request_id: &'a str },
    /// A rate limit refused a call.
    RateLimit { subject: &'a str, server: &'a str, name: &'a str, rule: &'a str, request_id: &'a str },
    /// A config reload was applied or rejected.
    Reload { trigger: &'a str, applied: bool, reason: &'a str },
    /// Pinning about one tool or prompt definition: `Quarantine` (enforce), `ServeChanged`
    /// (record) or `Approve` (admin endpoint). `approved` is the approved hash (`-`: none).
    Definition { server: &'a str, kind: &'a str, name: &'a str, hash: &'a str, approved: &'a str, decision: DefinitionDecision, reason: &'a str },
}

/// What pinning did with a definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefinitionDecision {
    Quarantine,
    ServeChanged,
    Approve,
}

impl DefinitionDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            DefinitionDecision::Quarantine => "quarantine",
            DefinitionDecision::ServeChanged => "serve_changed",
            DefinitionDecision::Approve => "approve",
        }
    }
}

pub struct Audit {
    sink: Sink,
    series: Arc<Series>,
}

enum Sink {
    Off,
    Log,
    Lines(SyncSender<Vec<u8>>),
}

impl Audit {
    pub fn open(cfg: &AuditConfig, series: Arc<Series>) -> Result<Self, String> {
        let sink = match cfg.sink {
            AuditSinkKind::Off => Sink::Off,
            AuditSinkKind::Log => Sink::Log,
            AuditSinkKind::Stderr => Sink::Lines(spawn_writer(Writer::Stderr, series.clone())),
            AuditSinkKind::File => {
                let path = cfg.path.clone().ok_or("audit.path: needed with sink: file")?;
                let file = Rotating::open(path, cfg.max_bytes, cfg.keep).map_err(|e| format!("audit.path: {e}"))?;
                Sink::Lines(spawn_writer(Writer::File(file), series.clone()))
            }
        };
        Ok(Self { sink, series })
    }

    pub fn record(&self, event: Event<'_>) {
        match &self.sink {
            Sink::Off => {}
            Sink::Log => log(&event),
            Sink::Lines(tx) => {
                let mut line = to_json(&event);
                line.push(b'\n');
                match tx.try_send(line) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => bump(&self.series.audit_lines_dropped),
                }
            }
        }
    }
}

fn decision(allowed: bool) -> &'static str {
    if allowed { "allow" } else { "deny" }
}

fn log(e: &Event<'_>) {
    let trace_id = super::trace::current_trace_id();
    let trace_id = trace_id.as_deref().unwrap_or("");
    match *e {
        Event::Access { subject, server, kind, name, allowed, reason, request_id } => {
            tracing::info!(target: "mcpgate::audit", subject, server, kind, name, decision = decision(allowed), reason, request_id, trace_id, "access decision")
        }
        Event::List { subject, kind, visible, total, request_id } => {
            tracing::info!(target: "mcpgate::audit", subject, kind, visible, total, request_id, trace_id, "list filtered")
        }
        Event::Credential { subject, server, source, allowed, reason, request_id } => {
            tracing::info!(target: "mcpgate::audit", subject, server, source, decision = decision(allowed), reason, request_id, trace_id, "credential decision")
        }
        Event::RateLimit { subject, server, name, rule, request_id } => {
            tracing::info!(target: "mcpgate::audit", subject, server, name, decision = "deny", reason = "rate_limited", rule, request_id, trace_id, "rate limited")
        }
        Event::Reload { trigger, applied, reason } => {
            tracing::info!(target: "mcpgate::audit", trigger, decision = if applied { "applied" } else { "rejected" }, reason, "config reload")
        }
        Event::Definition { server, kind, name, hash, approved, decision, reason } => {
            // Displayed (not quoted): `name=echo hash=sha256:…`, as operators grep for them.
            let (server, kind, name, hash, approved, d) = (
                tracing::field::display(server),
                tracing::field::display(kind),
                tracing::field::display(name),
                tracing::field::display(hash),
                tracing::field::display(approved),
                decision.as_str(),
            );
            match decision {
                DefinitionDecision::Quarantine => {
                    tracing::warn!(target: "mcpgate::audit", server, kind, name, hash, approved, decision = d, reason, "definition quarantined (pinning: enforce)")
                }
                DefinitionDecision::ServeChanged => tracing::warn!(
                    target: "mcpgate::audit", server, kind, name, hash, approved, decision = d, reason,
                    "definition changed since it was pinned (pinning: record): served"
                ),
                DefinitionDecision::Approve => {
                    tracing::info!(target: "mcpgate::audit", server, kind, name, hash, decision = d, by = reason, "definition approved")
                }
            }
        }
    }
}

/// The line of the audit schema (docs/observability.md, "Audit lines").
pub fn to_json(e: &Event<'_>) -> Vec<u8> {
    let mut w = ObjectWriter::new();
    w.string("ts", &humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string());
    match *e {
        Event::Access { subject, server, kind, name, allowed, reason, request_id } => {
            w.string("event", "access").string("subject", subject).string("server", server).string("kind", kind).string("name", name);
            w.string("decision", decision(allowed)).string("reason", reason).raw("request_id", request_id);
        }
        Event::List { subject, kind, visible, total, request_id } => {
            w.string("event", "list").string("subject", subject).string("kind", kind);
            w.raw("visible", &visible.to_string()).raw("total", &total.to_string()).raw("request_id", request_id);
        }
        Event::Credential { subject, server, source, allowed, reason, request_id } => {
            w.string("event", "credential").string("subject", subject).string("server", server).string("source", source);
            w.string("decision", decision(allowed)).string("reason", reason).raw("request_id", request_id);
        }
        Event::RateLimit { subject, server, name, rule, request_id } => {
            w.string("event", "rate_limit").string("subject", subject).string("server", server).string("name", name);
            w.string("decision", "deny").string("reason", "rate_limited").string("rule", rule).raw("request_id", request_id);
        }
        Event::Reload { trigger, applied, reason } => {
            w.string("event", "reload").string("trigger", trigger).string("decision", if applied { "applied" } else { "rejected" }).string("reason", reason);
        }
        Event::Definition { server, kind, name, hash, approved, decision, reason } => {
            w.string("event", "definition").string("server", server).string("kind", kind).string("name", name).string("hash", hash);
            w.string("approved", approved).string("decision", decision.as_str()).string("reason", reason);
        }
    }
    if let Some(t) = super::trace::current_trace_id() {
        w.string("trace_id", &t);
    }
    w.finish()
}

enum Writer {
    Stderr,
    File(Rotating),
}

fn spawn_writer(mut out: Writer, series: Arc<Series>) -> SyncSender<Vec<u8>> {
    let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
    let spawned = std::thread::Builder::new().name("mcpgate-audit".into()).spawn(move || {
        while let Ok(line) = rx.recv() {
            let ok = match &mut out {
                Writer::Stderr => std::io::stderr().lock().write_all(&line).is_ok(),
                Writer::File(f) => f.write(&line).is_ok(),
            };
            if !ok {
                bump(&series.audit_lines_dropped);
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the audit writer: {e}");
    }
    tx
}

/// A file that is renamed to `<path>.1` (and older ones shifted up to `<path>.<keep>`) when
/// the next line would take it past `max_bytes`.
struct Rotating {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    keep: usize,
}

impl Rotating {
    fn open(path: PathBuf, max_bytes: u64, keep: usize) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self { path, file, size, max_bytes, keep })
    }

    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        let numbered = |n: usize| -> PathBuf { with_suffix(&self.path, n) };
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(numbered(self.keep));
            for n in (1..self.keep).rev() {
                let _ = std::fs::rename(numbered(n), numbered(n + 1));
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn with_suffix(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_line_has_the_schema_and_no_more() {
        let line = to_json(&Event::Access {
            subject: "user-alice",
            server: "github",
            kind: "tool",
            name: "delete_repo",
            allowed: false,
            reason: "not_granted",
            request_id: "7",
        });
        let v: serde_json::Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(v["event"], "access");
        assert_eq!(v["decision"], "deny");
        assert_eq!(v["request_id"], 7);
        let mut keys: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["decision", "event", "kind", "name", "reason", "request_id", "server", "subject", "ts"], "and no trace_id without tracing");
    }

    #[test]
    fn files_rotate_by_size_and_keep_as_many_as_configured() {
        let dir = std::env::temp_dir().join(format!("mcpgate-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("audit.log");
        let mut f = Rotating::open(path.clone(), 10, 2).expect("open");
        for line in ["aaaaaa\n", "bbbbbb\n", "cccccc\n", "dddddd\n"] {
            f.write(line.as_bytes()).expect("write");
        }
        assert_eq!(std::fs::read_to_string(&path).expect("current"), "dddddd\n");
        assert_eq!(std::fs::read_to_string(with_suffix(&path, 1)).expect(".1"), "cccccc\n");
        assert_eq!(std::fs::read_to_string(with_suffix(&path, 2)).expect(".2"), "bbbbbb\n");
        assert!(!with_suffix(&path, 3).exists(), "only `keep` rotated files");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
