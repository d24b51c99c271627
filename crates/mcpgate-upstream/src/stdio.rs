//! Backends run as child processes speaking newline-delimited JSON-RPC on stdin/stdout.
//!
//! The child gets a clean environment: PATH, HOME, LANG and TMPDIR from the gateway plus the
//! configured `env`, so gateway secrets in the environment never reach it. It is killed when
//! its connection is closed or dropped (`kill_on_drop`), and tokio reaps it.

use std::process::Stdio;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::error::UpstreamError;
use crate::mux::{Mux, MuxLink, Writer};
use crate::spec::StdioSpec;

const INHERITED: &[&str] = &["PATH", "HOME", "LANG", "TMPDIR"];

pub(crate) fn spawn(name: &str, spec: &StdioSpec, events: mpsc::Sender<Bytes>) -> Result<MuxLink, UpstreamError> {
    let mut cmd = Command::new(&spec.command);
    cmd.args(&spec.args)
        .env_clear()
        .envs(INHERITED.iter().filter_map(|k| std::env::var(k).ok().map(|v| (*k, v))))
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    let mut child = cmd.spawn().map_err(|e| UpstreamError::Connect(format!("cannot start {:?}: {e}", spec.command)))?;
    let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take()) else {
        return Err(UpstreamError::Connect("child has no pipes".into()));
    };
    let mux = Mux::new(events);
    let reader_mux = mux.clone();
    let reader = tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if !line.trim().is_empty() {
                reader_mux.dispatch(Bytes::from(line)).await;
            }
        }
        reader_mux.close_all();
    });
    let server = name.to_owned();
    let logger = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::debug!(server = %server, "stderr: {line}");
        }
    });
    Ok(MuxLink {
        mux,
        writer: Writer::Stdin(tokio::sync::Mutex::new(stdin)),
        tasks: vec![reader.abort_handle(), logger.abort_handle()],
        child: Some(Mutex::new(child)),
    })
}
