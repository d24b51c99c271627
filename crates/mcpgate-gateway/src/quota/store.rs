//! Token buckets and where they live: [`LocalBuckets`] in this process, or the cluster's store
//! (`mcpgate_store::buckets`, one atomic Lua take), which gives the same answer for the same
//! [`BucketKey`] on every replica.
//!
//! Never keeps who a key belongs to: the local store keeps a keyed hash of the key's parts.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One bucket's identity: the rule and the parts it is keyed by (absent parts are shared).
#[derive(Debug, Clone, Copy)]
pub struct BucketKey<'a> {
    pub rule: &'a str,
    pub subject: Option<&'a str>,
    pub server: Option<&'a str>,
    pub tool: Option<&'a str>,
}

/// A rule's rate: `capacity` tokens, refilled at `per_sec` tokens per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub capacity: f64,
    pub per_sec: f64,
}

impl Rate {
    pub fn new(limit: u32, interval: Duration, burst: Option<u32>) -> Self {
        Self { capacity: f64::from(burst.unwrap_or(limit)), per_sec: f64::from(limit) / interval.as_secs_f64() }
    }
}

/// The answer to taking one token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Take {
    Allowed,
    /// No token: one will be there after this long.
    Limited {
        retry_after: Duration,
    },
}

/// The store could not answer (shared store down or too slow).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the rate-limit store is unavailable: {0}")]
pub struct StoreError(pub String);

/// Where buckets live: this process, or the cluster's store (every replica shares a bucket).
// One per process (in `Shared`): the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Store {
    Local(LocalBuckets),
    Shared(mcpgate_store::RedisStore),
}

impl Store {
    /// Takes one token from the bucket `key`, creating it full when new.
    pub async fn take(&self, key: &BucketKey<'_>, rate: Rate) -> Result<Take, StoreError> {
        match self {
            Store::Local(l) => Ok(l.take(key, rate, Instant::now())),
            Store::Shared(s) => {
                let t = s.take_token(&shared_name(key), rate.capacity, rate.per_sec).await.map_err(|e| StoreError(e.to_string()))?;
                Ok(if t.allowed { Take::Allowed } else { Take::Limited { retry_after: Duration::from_millis(t.retry_after_ms) } })
            }
        }
    }

    /// Buckets held in this process.
    pub fn len(&self) -> usize {
        match self {
            Store::Local(l) => l.len(),
            Store::Shared(_) => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets buckets that have refilled completely (they behave like new ones; shared ones
    /// expire in the store by themselves).
    pub fn sweep(&self) {
        match self {
            Store::Local(l) => l.sweep(Instant::now()),
            Store::Shared(_) => {}
        }
    }
}

/// A shared bucket's name: the rule (as a hash tag) and a digest of the other parts, so the
/// store never holds a caller's name and every replica computes the same one.
fn shared_name(k: &BucketKey<'_>) -> String {
    let mut d = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [k.subject, k.server, k.tool] {
        match part {
            Some(p) => {
                d.update(b"1");
                d.update(&(p.len() as u64).to_be_bytes());
                d.update(p.as_bytes());
            }
            None => d.update(b"0"),
        }
    }
    let hex: String = d.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{{{}}}:{hex}", k.rule)
}

const SHARDS: usize = 16;

struct Bucket {
    tokens: f64,
    at: Instant,
    /// When the bucket is full again if nothing takes from it.
    full_at: Instant,
}

/// Buckets in this process's memory, in shards so that concurrent calls rarely wait on the
/// same lock. A take is one keyed hash, one short lock and arithmetic: no allocation once
/// the bucket exists.
#[derive(Default)]
pub struct LocalBuckets {
    shards: [Mutex<HashMap<u64, Bucket>>; SHARDS],
    hasher: std::collections::hash_map::RandomState,
}

impl LocalBuckets {
    fn key(&self, k: &BucketKey<'_>) -> u64 {
        self.hasher.hash_one((k.rule, k.subject, k.server, k.tool))
    }

    pub fn take(&self, key: &BucketKey<'_>, rate: Rate, now: Instant) -> Take {
        let k = self.key(key);
        let mut shard = self.shards[(k as usize) % SHARDS].lock().unwrap_or_else(|p| p.into_inner());
        let b = shard.entry(k).or_insert(Bucket { tokens: rate.capacity, at: now, full_at: now });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        let tokens = (b.tokens + elapsed * rate.per_sec).min(rate.capacity);
        b.at = now;
        if tokens >= 1.0 {
            b.tokens = tokens - 1.0;
            b.full_at = now + Duration::from_secs_f64((rate.capacity - b.tokens) / rate.per_sec);
            Take::Allowed
        } else {
            b.tokens = tokens;
            Take::Limited { retry_after: Duration::from_secs_f64((1.0 - tokens) / rate.per_sec) }
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn sweep(&self, now: Instant) {
        for s in &self.shards {
            s.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, b| b.full_at > now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(subject: &'a str) -> BucketKey<'a> {
        BucketKey { rule: "r", subject: Some(subject), server: Some("github"), tool: None }
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let b = LocalBuckets::default();
        let rate = Rate::new(2, Duration::from_secs(1), Some(3));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(b.take(&key("alice"), rate, t0), Take::Allowed);
        }
        let Take::Limited { retry_after } = b.take(&key("alice"), rate, t0) else { panic!("the fourth call must be limited") };
        assert_eq!(retry_after, Duration::from_millis(500), "one token every 500 ms");
        assert_eq!(b.take(&key("alice"), rate, t0 + Duration::from_millis(500)), Take::Allowed);
        assert!(matches!(b.take(&key("alice"), rate, t0 + Duration::from_millis(500)), Take::Limited { .. }));
    }

    #[test]
    fn each_key_has_its_own_bucket() {
        let b = LocalBuckets::default();
        let rate = Rate::new(1, Duration::from_secs(3600), None);
        let t0 = Instant::now();
        assert_eq!(b.take(&key("alice"), rate, t0), Take::Allowed);
        assert!(matches!(b.take(&key("alice"), rate, t0), Take::Limited { .. }));
        assert_eq!(b.take(&key("bob"), rate, t0), Take::Allowed, "bob is not limited by alice's calls");
        let other_server = BucketKey { server: Some("weather"), ..key("alice") };
        assert_eq!(b.take(&other_server, rate, t0), Take::Allowed);
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let b = LocalBuckets::default();
        let rate = Rate::new(10, Duration::from_secs(1), None);
        let t0 = Instant::now();
        b.take(&key("alice"), rate, t0);
        b.sweep(t0);
        assert_eq!(b.len(), 1, "not yet full");
        b.sweep(t0 + Duration::from_millis(101));
        assert_eq!(b.len(), 0);
    }
}
