//! A time-limited cache whose concurrent misses share one fetch (single flight). Owns
//! expiry per entry and the coalescing of misses; never caches a failure (failures are
//! shared only with the callers that were already waiting for the same fetch).
//!
//! A fetch that is cancelled (its caller went away) does not strand the others: the next
//! waiter runs its own fetch.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

#[derive(Clone)]
struct Fresh<V> {
    value: V,
    until: Instant,
}

struct UntilExpiry;

impl<K, V> moka::Expiry<K, Fresh<V>> for UntilExpiry {
    fn expire_after_create(&self, _key: &K, value: &Fresh<V>, created_at: Instant) -> Option<Duration> {
        Some(value.until.saturating_duration_since(created_at))
    }
}

type Pending<V, E> = Arc<OnceCell<Result<V, E>>>;

pub(crate) struct Memo<K, V, E> {
    done: moka::sync::Cache<K, Fresh<V>>,
    pending: Mutex<HashMap<K, Pending<V, E>>>,
}

/// How a lookup was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// From the cache.
    Shared,
    /// From a fetch another caller had already started (a coalesced wait).
    Joined,
    /// This caller ran the fetch.
    Fetched,
}

/// Counts an answer that sent no request: a cache hit in `hits` (also for a coalesced wait,
/// which is counted in `coalesced_waits` as well).
pub(crate) fn count_shared(counters: &crate::stats::Counters, answer: Answer, hits: &std::sync::atomic::AtomicU64) {
    if answer != Answer::Fetched {
        crate::stats::bump(hits);
    }
    if answer == Answer::Joined {
        crate::stats::bump(&counters.coalesced_waits);
    }
}

impl<K, V, E> Memo<K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    pub fn new(capacity: u64) -> Self {
        Self { done: moka::sync::Cache::builder().max_capacity(capacity).expire_after(UntilExpiry).build(), pending: Mutex::new(HashMap::new()) }
    }

    /// The cached value for `key`, or the result of `fetch` (run by one caller at a time per
    /// key). `fetch` returns the value and how long to keep it (zero: not at all).
    pub async fn get_or_fetch<F, Fut>(&self, key: &K, fetch: F) -> (Result<V, E>, Answer)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(V, Duration), E>>,
    {
        if let Some(v) = self.fresh(key) {
            return (Ok(v), Answer::Shared);
        }
        let cell = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            // Checked again under the lock: a fetch that just finished cached its value
            // before leaving `pending`.
            if let Some(v) = self.fresh(key) {
                return (Ok(v), Answer::Shared);
            }
            let joined = pending.contains_key(key);
            (pending.entry(key.clone()).or_default().clone(), joined)
        };
        let (cell, joined) = cell;
        let ran = AtomicBool::new(false);
        let result = cell
            .get_or_init(|| async {
                ran.store(true, Ordering::Relaxed);
                let outcome = fetch().await;
                let result = match outcome {
                    Ok((value, ttl)) => {
                        if !ttl.is_zero() {
                            let until = Instant::now() + ttl;
                            self.done.insert(key.clone(), Fresh { value: value.clone(), until });
                        }
                        Ok(value)
                    }
                    Err(e) => Err(e),
                };
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                if pending.get(key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                    pending.remove(key);
                }
                result
            })
            .await
            .clone();
        let answer = match (ran.load(Ordering::Relaxed), joined) {
            (true, _) => Answer::Fetched,
            (false, true) => Answer::Joined,
            (false, false) => Answer::Shared,
        };
        (result, answer)
    }

    fn fresh(&self, key: &K) -> Option<V> {
        self.done.get(key).filter(|f| f.until > Instant::now()).map(|f| f.value)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_misses_share_one_fetch() {
        let memo: Arc<Memo<&'static str, u32, String>> = Arc::new(Memo::new(10));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (memo, calls) = (memo.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                memo.get_or_fetch(&"k", || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok((7, Duration::from_secs(10)))
                })
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task").0, Ok(7));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let memo: Memo<u8, u32, String> = Memo::new(10);
        let (r, a) = memo.get_or_fetch(&1, || async { Err("down".to_owned()) }).await;
        assert_eq!((r, a), (Err("down".to_owned()), Answer::Fetched));
        let (r, a) = memo.get_or_fetch(&1, || async { Ok((5, Duration::from_secs(1))) }).await;
        assert_eq!((r, a), (Ok(5), Answer::Fetched));
        let (r, a) = memo.get_or_fetch(&1, || async { Ok((6, Duration::from_secs(1))) }).await;
        assert_eq!((r, a), (Ok(5), Answer::Shared));
    }

    #[tokio::test]
    async fn entries_expire_after_their_own_ttl_and_zero_means_uncached() {
        let memo: Memo<u8, u32, String> = Memo::new(10);
        let _ = memo.get_or_fetch(&1, || async { Ok((1, Duration::from_millis(30))) }).await;
        let _ = memo.get_or_fetch(&2, || async { Ok((2, Duration::ZERO)) }).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        let (r, a) = memo.get_or_fetch(&1, || async { Ok((10, Duration::from_secs(1))) }).await;
        assert_eq!((r, a), (Ok(10), Answer::Fetched));
        let (_, a) = memo.get_or_fetch(&2, || async { Ok((20, Duration::ZERO)) }).await;
        assert_eq!(a, Answer::Fetched);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_fetch_lets_the_next_caller_fetch() {
        let memo: Arc<Memo<u8, u32, String>> = Arc::new(Memo::new(10));
        let m = memo.clone();
        let slow = tokio::spawn(async move {
            m.get_or_fetch(&1, || async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok((1, Duration::from_secs(1)))
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        slow.abort();
        let (r, _) =
            tokio::time::timeout(Duration::from_secs(2), memo.get_or_fetch(&1, || async { Ok((2, Duration::from_secs(1))) })).await.expect("not stuck");
        assert_eq!(r, Ok(2));
    }
}
