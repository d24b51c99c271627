//! One request's measurements, shared by the stages that contribute to them: the front door
//! starts a [`RequestMeter`] when the request arrives and finishes it with the outcome; the
//! core marks which item was routed to and why a call failed on the gateway's side; the
//! backend-era adapters mark when the backend was sent the call and when it answered.
//!
//! A disabled meter (metrics off) is `None` inside: every mark is one branch.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::labels::{CallError, Era, Outcome};
use super::series::{ItemSeries, Series, bump, record_call, request_index};

#[derive(Clone, Default)]
pub struct RequestMeter(Option<Arc<Cell>>);

struct Cell {
    series: Arc<Series>,
    received: Instant,
    item: OnceLock<Arc<ItemSeries>>,
    /// Nanoseconds after `received`, plus one (0: not yet).
    upstream_sent: AtomicU64,
    upstream_answered: AtomicU64,
    /// A failure the gateway decided itself (`CallError` code + 1; 0: none).
    failed: AtomicU8,
    finished: AtomicU8,
}

impl RequestMeter {
    pub fn start(series: &Arc<Series>) -> Self {
        Self(Some(Arc::new(Cell {
            series: series.clone(),
            received: Instant::now(),
            item: OnceLock::new(),
            upstream_sent: AtomicU64::new(0),
            upstream_answered: AtomicU64::new(0),
            failed: AtomicU8::new(0),
            finished: AtomicU8::new(0),
        })))
    }

    pub fn disabled() -> Self {
        Self(None)
    }

    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }

    /// When the request arrived (now, when metrics are off).
    pub fn received(&self) -> Instant {
        self.0.as_ref().map_or_else(Instant::now, |c| c.received)
    }

    pub fn series(&self) -> Option<&Arc<Series>> {
        self.0.as_ref().map(|c| &c.series)
    }

    /// The call was routed and permitted: its durations go to `item`.
    pub fn routed(&self, item: impl FnOnce(&Series) -> Arc<ItemSeries>) {
        if let Some(c) = &self.0 {
            let _ = c.item.set(item(&c.series));
        }
    }

    /// The call is being sent to its backend (the first time, for calls of several rounds).
    pub fn upstream_sent(&self) {
        if let Some(c) = &self.0 {
            let _ = c.upstream_sent.compare_exchange(0, since(c.received), Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// The backend's final answer arrived.
    pub fn upstream_answered(&self) {
        if let Some(c) = &self.0 {
            c.upstream_answered.store(since(c.received), Ordering::Relaxed);
        }
    }

    /// The gateway refused or failed the call itself (credential, rate limit).
    pub fn failed(&self, e: CallError) {
        if let Some(c) = &self.0 {
            c.failed.store(code_of(e), Ordering::Relaxed);
        }
    }

    /// Records the request, once: `answer` is how its final message ended (`None` for
    /// outcomes without one: rejected, unauthenticated, cancelled, accepted).
    pub fn finish(&self, method: u8, era: Era, outcome: Outcome, rpc_error: Option<CallError>) {
        let Some(c) = &self.0 else { return };
        if c.finished.swap(1, Ordering::Relaxed) != 0 {
            return;
        }
        bump(&c.series.requests[request_index(method, era as usize, outcome as usize)]);
        let Some(item) = c.item.get() else { return };
        let now = Instant::now();
        let sent = c.upstream_sent.load(Ordering::Relaxed);
        let answered = c.upstream_answered.load(Ordering::Relaxed);
        let upstream = (sent != 0 && answered >= sent).then(|| Duration::from_nanos(answered - sent));
        let error = self.error_type(outcome, rpc_error);
        let gateway = now - c.received;
        match error {
            None => record_call(&item.ok, gateway, upstream),
            Some(e) => record_call(&item.failed(e), gateway, upstream),
        }
    }
}

impl RequestMeter {
    /// Why a call failed, as `error_type` says it: a failure the gateway decided itself, the
    /// backend's own JSON-RPC code, or the gateway giving up on the backend.
    pub fn error_type(&self, outcome: Outcome, rpc_error: Option<CallError>) -> Option<CallError> {
        let (failed, sent, answered) = match &self.0 {
            Some(c) => (c.failed.load(Ordering::Relaxed), c.upstream_sent.load(Ordering::Relaxed), c.upstream_answered.load(Ordering::Relaxed)),
            None => (0, 0, 1),
        };
        match outcome {
            Outcome::Ok => None,
            Outcome::Cancelled => Some(CallError::Cancelled),
            _ => Some(match decode(failed) {
                Some(e) => e,
                // The backend's own error answer (the gateway's own give-up answers are -32603).
                None if answered != 0 || rpc_error.is_some_and(|e| e != CallError::rpc("-32603")) => rpc_error.unwrap_or(CallError::Gateway),
                // Sent, never answered: the gateway gave up on the backend.
                None if sent != 0 => CallError::BackendUnavailable,
                None => CallError::Gateway,
            }),
        }
    }
}

fn since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
}

fn code_of(e: CallError) -> u8 {
    match e {
        CallError::Rpc(_) => 1,
        CallError::BackendUnavailable => 2,
        CallError::CredentialRefused => 3,
        CallError::RateLimited => 4,
        CallError::Cancelled => 5,
        CallError::Gateway => 6,
    }
}

fn decode(code: u8) -> Option<CallError> {
    match code {
        2 => Some(CallError::BackendUnavailable),
        3 => Some(CallError::CredentialRefused),
        4 => Some(CallError::RateLimited),
        5 => Some(CallError::Cancelled),
        6 => Some(CallError::Gateway),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::labels::method_index;

    fn call(series: &Arc<Series>) -> (RequestMeter, Arc<ItemSeries>) {
        let m = RequestMeter::start(series);
        let item = series.item(method_index("tools/call"), "github", Some("list_repos"));
        m.routed(|_| item.clone());
        (m, item)
    }

    #[test]
    fn a_call_is_counted_once_with_its_gateway_and_backend_parts() {
        let series = Arc::new(Series::default());
        let (m, item) = call(&series);
        m.upstream_sent();
        m.upstream_answered();
        m.finish(method_index("tools/call"), Era::Legacy, Outcome::Ok, None);
        m.finish(method_index("tools/call"), Era::Legacy, Outcome::Error, None);
        assert_eq!(item.ok.gateway.snapshot().count, 1, "finished once");
        assert_eq!(item.ok.upstream.snapshot().count, 1);
        assert!(item.errors.lock().unwrap_or_else(|p| p.into_inner()).is_empty());
    }

    #[test]
    fn a_failure_is_filed_under_why_it_failed() {
        let series = Arc::new(Series::default());
        let (m, item) = call(&series);
        m.failed(CallError::RateLimited);
        m.finish(method_index("tools/call"), Era::Modern, Outcome::Error, Some(CallError::rpc("-32029")));
        assert_eq!(item.failed(CallError::RateLimited).gateway.snapshot().count, 1);
        assert_eq!(item.failed(CallError::RateLimited).upstream.snapshot().count, 0, "never reached the backend");

        let (m, item) = call(&series);
        m.upstream_sent();
        m.finish(method_index("tools/call"), Era::Legacy, Outcome::Error, Some(CallError::rpc("-32603")));
        assert_eq!(item.failed(CallError::BackendUnavailable).gateway.snapshot().count, 1, "sent, never answered: the gateway gave up");

        let (m, item) = call(&series);
        m.upstream_sent();
        m.upstream_answered();
        m.finish(method_index("tools/call"), Era::Legacy, Outcome::Error, Some(CallError::rpc("-32602")));
        assert_eq!(item.failed(CallError::rpc("-32602")).gateway.snapshot().count, 1, "the backend's own code");
    }

    #[test]
    fn a_disabled_meter_records_nothing() {
        let m = RequestMeter::disabled();
        m.routed(|_| unreachable!("never asked for a series"));
        m.finish(0, Era::Legacy, Outcome::Ok, None);
        assert_eq!(m.error_type(Outcome::Error, Some(CallError::rpc("-32602"))), Some(CallError::rpc("-32602")));
    }
}
