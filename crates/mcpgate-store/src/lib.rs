//! The shared store of a scaled-out gateway: a Redis (or Valkey) server that every replica
//! talks to, for what cannot be sealed into what clients carry.
//!
//! - [`sessions`]: legacy-era client session records (identity binding, negotiated version,
//!   client capabilities, log level, the backend session ids per backend and credential), the
//!   session pool's accounting (global and per-principal counts, idle eviction) and expiry.
//! - [`buckets`]: rate-limit token buckets shared by the replicas (one atomic Lua take).
//! - `pins`: the approved tool and prompt definitions (one document, compare-and-set).
//! - [`bus`]: the replicas' message bus (Redis pub/sub): one channel per replica and one for
//!   all. Used only for rare cross-replica events, never per call.
//!
//! A single process without a store section uses none of this. The crate never sees a
//! client's token or a backend credential; it stores only ids, fingerprints and the raw JSON a
//! client declared about itself. It never logs the store password.

pub mod buckets;
pub mod bus;
mod error;
mod pins;
mod redis_store;
pub mod sessions;

pub use error::StoreError;
pub use redis_store::{ConnectOptions, RedisStore};
