//! Backends run as child processes speaking newline-delimited JSON-RPC on stdin/stdout.
//!
//! The child gets a clean environment: PATH, HOME, LANG and TMPDIR from the gateway plus the
//! configured `env`, so gateway secrets in the environment never reach it. It is killed when
//! its connection is closed or dropped (`kill_on_drop`), and tokio reaps it. A line longer
//! than [`MAX_LINE`] is skipped, never held whole in memory.

use std::process::Stdio;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::error::UpstreamError;
use crate::mux::{Mux, MuxLink, Writer};
use crate::spec::StdioSpec;

const INHERITED: &[&str] = &["PATH", "HOME", "LANG", "TMPDIR"];

/// The longest message line read from a child (as for event-stream lines).
pub(crate) const MAX_LINE: usize = mcpgate_protocol::sse::MAX_LINE;

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
    let server = name.to_owned();
    let reader = tokio::spawn(async move {
        let mut stdout = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            match next_line(&mut stdout, &mut line, MAX_LINE).await {
                Line::Message => {
                    if !line.trim_ascii().is_empty() {
                        reader_mux.dispatch(Bytes::from(std::mem::take(&mut line))).await;
                    }
                }
                Line::TooLong => tracing::warn!(server = %server, "skipped a line longer than {MAX_LINE} bytes from the backend"),
                Line::End => break,
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

/// What [`next_line`] read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A line (without its newline) is in the buffer.
    Message,
    /// A line longer than the limit went by; its bytes were dropped as they came.
    TooLong,
    /// The stream ended (a partial last line is dropped).
    End,
}

/// Reads the next newline-terminated line into `line` (cleared first), keeping at most `max`
/// bytes of it in memory.
pub(crate) async fn next_line<R: AsyncBufRead + Unpin>(reader: &mut R, line: &mut Vec<u8>, max: usize) -> Line {
    line.clear();
    let mut too_long = false;
    loop {
        let buf = match reader.fill_buf().await {
            Ok(b) if !b.is_empty() => b,
            _ => return Line::End,
        };
        let end = buf.iter().position(|b| *b == b'\n');
        let part = &buf[..end.unwrap_or(buf.len())];
        if !too_long && line.len() + part.len() > max {
            too_long = true;
            *line = Vec::new();
        }
        if !too_long {
            line.extend_from_slice(part);
        }
        let used = end.map_or(buf.len(), |i| i + 1);
        reader.consume(used);
        if end.is_some() {
            return if too_long { Line::TooLong } else { Line::Message };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_line_over_the_limit_is_skipped_without_being_kept() {
        let mut input: Vec<u8> = b"{\"a\":1}\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 5_000));
        input.extend_from_slice(b"\n{\"b\":2}\npartial");
        let mut reader = BufReader::with_capacity(64, input.as_slice());
        let mut line = Vec::new();
        assert_eq!(next_line(&mut reader, &mut line, 1_000).await, Line::Message);
        assert_eq!(line, b"{\"a\":1}");
        assert_eq!(next_line(&mut reader, &mut line, 1_000).await, Line::TooLong);
        assert!(line.capacity() <= 1_000, "the long line was not kept");
        assert_eq!(next_line(&mut reader, &mut line, 1_000).await, Line::Message);
        assert_eq!(line, b"{\"b\":2}");
        assert_eq!(next_line(&mut reader, &mut line, 1_000).await, Line::End);
    }
}
