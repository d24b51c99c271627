//! Which connections are open: the global and per-IP caps, fair eviction when the global cap
//! is reached, and the counters `/status` shows. Locked only when a connection opens or
//! closes; per-request state lives in each connection's atomics (`conn::ConnState`).
//!
//! Never refuses a connection to make room for another while a request is in flight on it:
//! only idle connections (none in flight) are evicted, the longest idle first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::ConnLimits;
use super::conn::ConnState;

/// Why a new connection was not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    OverLimit,
    OverPerIpLimit,
}

/// Why a connection was closed by the gateway rather than by its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// No complete request head within `limits.header_read_timeout`.
    HeaderTimeout,
    /// Idle longer than `limits.idle_connection_timeout`.
    Idle,
    /// Idle, and the global cap needed its slot for a new connection.
    Evicted,
    /// The TLS handshake failed or did not finish within `limits.header_read_timeout`.
    TlsHandshake,
}

/// Counters for `/status` (monotonic except `open`).
#[derive(Debug, Default)]
pub struct FrontDoorStats {
    open: AtomicU64,
    refused_over_limit: AtomicU64,
    refused_over_per_ip_limit: AtomicU64,
    closed_header_timeout: AtomicU64,
    closed_idle: AtomicU64,
    evicted: AtomicU64,
    tls_handshake_failed: AtomicU64,
    pub(crate) tls: super::tls::TlsStats,
}

impl FrontDoorStats {
    pub(crate) fn refused(&self, why: Refusal) {
        let c = match why {
            Refusal::OverLimit => &self.refused_over_limit,
            Refusal::OverPerIpLimit => &self.refused_over_per_ip_limit,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self, why: Closed) {
        let c = match why {
            Closed::HeaderTimeout => &self.closed_header_timeout,
            Closed::Idle => &self.closed_idle,
            Closed::Evicted => &self.evicted,
            Closed::TlsHandshake => &self.tls_handshake_failed,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Open connections now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// The `/status` view.
    pub fn to_json(&self, limits: &ConnLimits) -> serde_json::Value {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "open": n(&self.open),
            "max_connections": limits.max_connections,
            "max_connections_per_ip": limits.max_connections_per_ip,
            "refused": {"over_limit": n(&self.refused_over_limit), "over_per_ip_limit": n(&self.refused_over_per_ip_limit)},
            "closed": {
                "header_timeout": n(&self.closed_header_timeout),
                "idle": n(&self.closed_idle),
                "evicted": n(&self.evicted),
                "tls_handshake": n(&self.tls_handshake_failed),
            },
            "tls": self.tls.to_json(),
        })
    }
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    conns: HashMap<u64, Arc<ConnState>>,
    /// Connections asked to close for room, not yet gone: they no longer count.
    evicting: usize,
    per_ip: HashMap<IpAddr, usize>,
}

pub(crate) struct Table {
    inner: Mutex<Inner>,
    pub stats: Arc<FrontDoorStats>,
}

impl Table {
    pub fn new(stats: Arc<FrontDoorStats>) -> Self {
        Self { inner: Mutex::default(), stats }
    }

    /// Registers a new connection from `ip`, or says why not. At the global cap, the longest
    /// idle connection is asked to close to make room (it leaves the table when it has).
    pub fn admit(&self, ip: IpAddr, limits: &ConnLimits) -> Result<Arc<ConnState>, Refusal> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let from_ip = inner.per_ip.get(&ip).copied().unwrap_or(0);
        if limits.max_connections_per_ip > 0 && from_ip >= limits.max_connections_per_ip {
            return Err(Refusal::OverPerIpLimit);
        }
        if inner.conns.len() - inner.evicting >= limits.max_connections {
            // Only at the cap: a scan of the table, cheaper than keeping an idle-ordered index
            // up to date on every request.
            let victim = inner.conns.values().filter(|c| c.is_idle() && !c.is_evicted()).min_by_key(|c| c.last_active()).cloned();
            match victim {
                Some(v) => {
                    v.evict();
                    inner.evicting += 1;
                }
                None => return Err(Refusal::OverLimit),
            }
        }
        inner.next_id += 1;
        let state = Arc::new(ConnState::new(inner.next_id, ip));
        inner.conns.insert(state.id, state.clone());
        *inner.per_ip.entry(ip).or_insert(0) += 1;
        self.stats.open.fetch_add(1, Ordering::Relaxed);
        Ok(state)
    }

    /// Forgets a closed connection.
    pub fn remove(&self, state: &ConnState) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.conns.remove(&state.id).is_none() {
            return;
        }
        if state.is_evicted() {
            inner.evicting -= 1;
        }
        if let Some(n) = inner.per_ip.get_mut(&state.ip) {
            *n -= 1;
            if *n == 0 {
                inner.per_ip.remove(&state.ip);
            }
        }
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use super::*;
    use crate::listener::conn::Busy;

    fn limits(max: usize, per_ip: usize) -> ConnLimits {
        ConnLimits { max_connections: max, max_connections_per_ip: per_ip, header_read_timeout: Duration::from_secs(10), idle_timeout: Duration::from_secs(60) }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    #[test]
    fn the_connection_idle_longest_is_the_one_evicted() {
        let table = Table::new(Arc::default());
        let l = limits(2, 0);
        let first = table.admit(ip(1), &l).expect("first");
        let second = table.admit(ip(2), &l).expect("second");
        // The first connection serves a request after the second opened; the second has been
        // idle since it opened. (The pause only orders the two instants.)
        std::thread::sleep(Duration::from_millis(2));
        drop(Busy::begin(&first));
        table.admit(ip(3), &l).expect("room made");
        assert!(second.is_evicted() && !first.is_evicted());
    }

    #[test]
    fn one_address_holds_at_most_its_cap_and_others_are_unaffected() {
        let table = Table::new(Arc::default());
        let l = limits(100, 2);
        let first = table.admit(ip(2), &l).expect("first");
        table.admit(ip(2), &l).expect("second");
        assert_eq!(table.admit(ip(2), &l).err(), Some(Refusal::OverPerIpLimit));
        table.admit(ip(1), &l).expect("another address");
        table.remove(&first);
        table.admit(ip(2), &l).expect("room again after a close");
        assert_eq!(table.stats.open(), 3);
    }

    #[test]
    fn at_the_cap_the_longest_idle_connection_makes_room_and_busy_ones_never_do() {
        let table = Table::new(Arc::default());
        let l = limits(2, 0);
        let older = table.admit(ip(1), &l).expect("a");
        let busy = table.admit(ip(1), &l).expect("b");
        let _in_flight = Busy::begin(&busy);

        let newcomer = table.admit(ip(1), &l).expect("room made");
        assert!(older.is_evicted() && !busy.is_evicted(), "the idle one goes, the busy one stays");

        let _also_busy = Busy::begin(&newcomer);
        assert_eq!(table.admit(ip(1), &l).err(), Some(Refusal::OverLimit), "every live connection is busy");
        table.remove(&older);
        assert_eq!(table.admit(ip(1), &l).err(), Some(Refusal::OverLimit), "the evicted one no longer counted, and no other is idle");
    }
}
