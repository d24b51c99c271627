//! Rate-limit token buckets shared by every replica: one atomic Lua script (`take.lua`) refills
//! by the store's own clock and takes a token, so replicas with skewed clocks still share one
//! bucket. Keys carry no caller in clear: the gateway passes a digest of the bucket's parts.

use redis::Script;

use crate::error::StoreError;
use crate::redis_store::RedisStore;

const TAKE: &str = include_str!("take.lua");

/// The answer to taking one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub allowed: bool,
    /// When a token will be there again (0 when allowed).
    pub retry_after_ms: u64,
}

impl RedisStore {
    /// Takes one token from bucket `bucket` (created full), holding `capacity` tokens refilled
    /// at `per_sec` a second.
    pub async fn take_token(&self, bucket: &str, capacity: f64, per_sec: f64) -> Result<Taken, StoreError> {
        let script = Script::new(TAKE);
        let mut inv = script.key(self.key(&format!("rl:{bucket}")));
        inv.arg(capacity).arg(per_sec).arg(1);
        let (allowed, retry_after_ms, _left): (i64, i64, i64) = self.script(inv).await?;
        Ok(Taken { allowed: allowed == 1, retry_after_ms: retry_after_ms.max(0) as u64 })
    }
}
