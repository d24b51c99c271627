//! Lanes: single-threaded runtimes, one per core, each on its own thread. The accept loop
//! hands each new connection to the next lane in turn, and everything that connection's
//! requests do (their backend calls on the lane's own pooled connections, their timers, the
//! tasks they spawn) stays on that thread: no work stealing, no wake-ups of another worker,
//! and memory freed on the thread that allocated it (docs/benchmarks.md, "Issue 16, tenth round").

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::runtime::Handle;

/// Every runtime serving once lanes started (the one that started them, if any, and the
/// lanes), and how many of them are lanes.
static RUNTIMES: OnceLock<Serving> = OnceLock::new();

struct Serving {
    all: Box<[Handle]>,
    lanes: usize,
}

/// The lanes connections are spread over; none: a connection runs where it was accepted.
#[derive(Clone, Default)]
pub struct Lanes {
    handles: Arc<[Handle]>,
    next: Arc<AtomicUsize>,
}

impl Lanes {
    /// Starts `n` lanes (threads `mcpgate-lane-1`…; none for 0). They live as long as the
    /// process.
    pub fn start(n: usize) -> std::io::Result<Self> {
        let mut handles = Vec::with_capacity(n);
        for i in 1..=n {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            handles.push(runtime.handle().clone());
            std::thread::Builder::new().name(format!("mcpgate-lane-{i}")).spawn(move || {
                mcpgate_upstream::enter_lane(i);
                runtime.block_on(std::future::pending::<()>());
            })?;
        }
        if n > 0 {
            let all = Handle::try_current().into_iter().chain(handles.iter().cloned()).collect();
            let _ = RUNTIMES.set(Serving { all, lanes: n });
        }
        Ok(Self { handles: handles.into(), next: Arc::default() })
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// The lane for the next connection (in turn), or none without lanes.
    pub(super) fn pick(&self) -> Option<&Handle> {
        if self.handles.is_empty() {
            return None;
        }
        Some(&self.handles[self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len()])
    }
}

/// Tasks alive in every runtime serving (without lanes: the current one).
pub fn alive_tasks() -> usize {
    match RUNTIMES.get() {
        Some(serving) => serving.all.iter().map(|h| h.metrics().num_alive_tasks()).sum(),
        None => Handle::try_current().map_or(0, |h| h.metrics().num_alive_tasks()),
    }
}

/// Lanes started in this process (what `/status` reports; the config asks for
/// `GatewayConfig::lane_count`).
pub fn lanes_running() -> usize {
    RUNTIMES.get().map_or(0, |serving| serving.lanes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_each_lane_in_turn() {
        let lanes = Lanes::start(3).expect("lanes");
        let picks: Vec<_> = (0..6).map(|_| lanes.pick().expect("a lane").id()).collect();
        assert_eq!(picks[..3], picks[3..], "the fourth connection goes where the first went");
        assert_ne!(picks[0], picks[1]);
        assert_ne!(picks[1], picks[2]);
        assert_ne!(picks[0], picks[2]);
        assert!(Lanes::default().pick().is_none(), "no lanes: the connection stays where it was accepted");
    }

    #[test]
    fn a_task_on_a_lane_runs_on_that_lanes_thread() {
        let lanes = Lanes::start(2).expect("lanes");
        let names: Vec<String> = (0..2)
            .map(|_| {
                let (tx, rx) = std::sync::mpsc::channel();
                lanes.pick().expect("a lane").spawn(async move {
                    tx.send(std::thread::current().name().unwrap_or_default().to_owned()).expect("send");
                });
                rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the lane ran the task")
            })
            .collect();
        assert_eq!(names, ["mcpgate-lane-1", "mcpgate-lane-2"]);
    }
}
