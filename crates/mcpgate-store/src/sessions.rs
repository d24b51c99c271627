//! Legacy-era client sessions in the store, shared by every replica.
//!
//! Key layout (under the store's prefix):
//! - `s:{id}`: a hash, one session. Fields: `p` principal, `v` protocol version, `c` client
//!   capabilities (raw JSON), `i` clientInfo (raw JSON), `l` log level, `t` created (ms), `g`
//!   the replica holding the client's GET stream, `pz` the key of its principal's set, `x:{name}`
//!   other gateway fields, and `b:{server}:{fingerprint}` = `"{protocol version} {backend
//!   session id}"`, one per backend session the client has (backend session ids are visible
//!   ASCII without spaces, so the split is unambiguous). Its TTL is the idle timeout plus a grace
//!   period, so an expired session's backend sessions can still be ended by the sweeper.
//! - `sessions`: a sorted set of every live session id, scored by last use (ms). A session is
//!   alive while its score is within the idle timeout; this set is also the pool's count.
//! - `pz:{principal key}`: the same, per principal (the key is a digest, never the subject).
//!
//! Every change of more than one key is one Lua script, so nothing is ever half-written.

use std::collections::BTreeMap;

use redis::{Script, Value};

use crate::error::StoreError;
use crate::redis_store::RedisStore;

/// How long a session's hash outlives its idleness, for the sweeper to find its backend sessions.
const GRACE_MS: u64 = 10 * 60 * 1000;

/// A legacy-era client session as the store keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionRecord {
    pub principal: Option<String>,
    pub protocol_version: String,
    /// Raw JSON the client declared.
    pub capabilities: String,
    pub client_info: String,
    pub log_level: Option<String>,
    pub created_ms: u64,
    /// The replica holding the client's GET stream, if one is open.
    pub stream_holder: Option<String>,
    /// Other fields the gateway keeps with the session.
    pub extra: BTreeMap<String, String>,
    /// (server, credential fingerprint) → the client's backend session there.
    pub backends: BTreeMap<(String, u64), BackendSession>,
}

/// A client's session with one backend, as any replica can resume it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSession {
    pub session_id: String,
    pub protocol_version: String,
}

impl BackendSession {
    fn encode(&self) -> String {
        format!("{} {}", self.protocol_version, self.session_id)
    }

    fn decode(raw: &str) -> Option<Self> {
        let (v, id) = raw.split_once(' ')?;
        Some(Self { session_id: id.to_owned(), protocol_version: v.to_owned() })
    }
}

/// The session pool's limits, applied atomically at creation.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    pub max_total: u64,
    pub max_per_principal: u64,
    pub idle_ms: u64,
    /// A session idle at least this long may be evicted to make room.
    pub evict_after_ms: u64,
}

/// What creating a session came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    /// Stored; an idle session may have been evicted to make room (its id and record, for its
    /// backend sessions to be ended).
    Stored { evicted: Option<Box<(String, SessionRecord)>> },
    /// The pool is full and nothing is idle long enough.
    Full,
    /// The principal holds its quota and none of its sessions is idle long enough.
    PrincipalQuota,
}

/// A field that changes during a session's life.
#[derive(Debug, Clone)]
pub enum Field {
    LogLevel,
    StreamHolder,
    Extra(String),
}

impl Field {
    fn name(&self) -> String {
        match self {
            Field::LogLevel => "l".into(),
            Field::StreamHolder => "g".into(),
            Field::Extra(n) => format!("x:{n}"),
        }
    }
}

fn backend_field(server: &str, fingerprint: u64) -> String {
    format!("b:{server}:{fingerprint}")
}

const CREATE: &str = r#"
local now, idle, max_total, max_pp, evict_after, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local id, prefix = ARGV[7], ARGV[8]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - idle)
local victim = false
if KEYS[2] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - idle)
  if redis.call('ZCARD', KEYS[2]) >= max_pp then
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    if oldest[1] and tonumber(oldest[2]) <= now - evict_after then victim = oldest[1] else return {'quota'} end
  end
end
if not victim and redis.call('ZCARD', KEYS[1]) >= max_total then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if oldest[1] and tonumber(oldest[2]) <= now - evict_after then victim = oldest[1] else return {'full'} end
end
local out = {'ok'}
if victim then
  local vkey = prefix .. 's:' .. victim
  local fields = redis.call('HGETALL', vkey)
  local vpz = redis.call('HGET', vkey, 'pz')
  redis.call('DEL', vkey)
  redis.call('ZREM', KEYS[1], victim)
  if vpz then redis.call('ZREM', prefix .. vpz, victim) end
  table.insert(out, victim)
  for _, f in ipairs(fields) do table.insert(out, f) end
end
redis.call('HSET', KEYS[3], unpack(ARGV, 9))
redis.call('PEXPIRE', KEYS[3], ttl)
redis.call('ZADD', KEYS[1], now, id)
if KEYS[2] ~= '' then
  redis.call('ZADD', KEYS[2], now, id)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return out
"#;

const LOAD: &str = r#"
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) < tonumber(ARGV[2]) then return {} end
return redis.call('HGETALL', KEYS[1])
"#;

const TOUCH: &str = r#"
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) < tonumber(ARGV[3]) or redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], 'XX', ARGV[2], ARGV[1])
local pz = redis.call('HGET', KEYS[1], 'pz')
if pz then
  redis.call('ZADD', ARGV[5] .. pz, 'XX', ARGV[2], ARGV[1])
  redis.call('PEXPIRE', ARGV[5] .. pz, ARGV[4])
end
return 1
"#;

const DELETE: &str = r#"
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) return fields end
local pz = redis.call('HGET', KEYS[1], 'pz')
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if pz then redis.call('ZREM', ARGV[2] .. pz, ARGV[1]) end
return fields
"#;

const CLAIM_EXPIRED: &str = r#"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local key = ARGV[3] .. 's:' .. id
  local fields = redis.call('HGETALL', key)
  local pz = redis.call('HGET', key, 'pz')
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], id)
  if pz then redis.call('ZREM', ARGV[3] .. pz, id) end
  table.insert(out, id)
  table.insert(out, #fields)
  for _, f in ipairs(fields) do table.insert(out, f) end
end
return out
"#;

/// Sets a backend session field when it holds `expected` (`""`: when absent); returns what
/// is in force afterwards (ours, or the one another replica stored first).
const PUT_BACKEND: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (not cur and ARGV[3] == '') or cur == ARGV[3] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return ARGV[2]
end
return cur
"#;

const SET_FIELD: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"#;

const CLEAR_FIELD_IF: &str = r#"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) return 1 end
return 0
"#;

impl RedisStore {
    fn session_key(&self, id: &str) -> String {
        self.key(&format!("s:{id}"))
    }

    fn pool_key(&self) -> String {
        self.key("sessions")
    }

    /// Stores a new session within `limits` (see [`Created`]).
    pub async fn create_session(
        &self,
        id: &str,
        rec: &SessionRecord,
        principal_key: Option<&str>,
        limits: &PoolLimits,
        now_ms: u64,
    ) -> Result<Created, StoreError> {
        let pz = principal_key.map(|k| format!("pz:{k}"));
        let script = Script::new(CREATE);
        let mut inv = script.key(self.pool_key());
        inv.key(pz.as_ref().map(|k| self.key(k)).unwrap_or_default()).key(self.session_key(id));
        inv.arg(now_ms).arg(limits.idle_ms).arg(limits.max_total).arg(limits.max_per_principal).arg(limits.evict_after_ms).arg(limits.idle_ms + GRACE_MS);
        inv.arg(id).arg(&self.prefix);
        for (k, v) in encode(rec) {
            inv.arg(k).arg(v);
        }
        if let Some(pz) = &pz {
            inv.arg("pz").arg(pz);
        }
        let out: Vec<Value> = self.script(inv).await?;
        let strings = strings(&out)?;
        match strings.first().map(String::as_str) {
            Some("ok") if strings.len() == 1 => Ok(Created::Stored { evicted: None }),
            Some("ok") => Ok(Created::Stored { evicted: Some(Box::new((strings[1].clone(), decode(&strings[2..])))) }),
            Some("full") => Ok(Created::Full),
            Some("quota") => Ok(Created::PrincipalQuota),
            _ => Err(StoreError::Protocol("unexpected answer to session create".into())),
        }
    }

    /// The session, if it exists and has been used within `idle_ms`.
    pub async fn load_session(&self, id: &str, idle_ms: u64, now_ms: u64) -> Result<Option<SessionRecord>, StoreError> {
        let script = Script::new(LOAD);
        let mut inv = script.key(self.session_key(id));
        inv.key(self.pool_key()).arg(id).arg(now_ms.saturating_sub(idle_ms));
        let out: Vec<Value> = self.script(inv).await?;
        let fields = strings(&out)?;
        Ok((!fields.is_empty()).then(|| decode(&fields)))
    }

    /// Marks the session used now; false when it is gone (deleted, expired).
    pub async fn touch_session(&self, id: &str, idle_ms: u64, now_ms: u64) -> Result<bool, StoreError> {
        let script = Script::new(TOUCH);
        let mut inv = script.key(self.session_key(id));
        inv.key(self.pool_key()).arg(id).arg(now_ms).arg(now_ms.saturating_sub(idle_ms)).arg(idle_ms + GRACE_MS).arg(&self.prefix);
        let n: i64 = self.script(inv).await?;
        Ok(n == 1)
    }

    /// Removes the session; its record (for its backend sessions to be ended), if it existed.
    pub async fn delete_session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let script = Script::new(DELETE);
        let mut inv = script.key(self.session_key(id));
        inv.key(self.pool_key()).arg(id).arg(&self.prefix);
        let out: Vec<Value> = self.script(inv).await?;
        let fields = strings(&out)?;
        Ok((!fields.is_empty()).then(|| decode(&fields)))
    }

    /// Takes up to `limit` sessions idle longer than `idle_ms` out of the store (each is
    /// claimed by exactly one caller), with their records.
    pub async fn claim_expired(&self, idle_ms: u64, now_ms: u64, limit: usize) -> Result<Vec<(String, SessionRecord)>, StoreError> {
        let script = Script::new(CLAIM_EXPIRED);
        let mut inv = script.key(self.pool_key());
        inv.arg(now_ms.saturating_sub(idle_ms)).arg(limit).arg(&self.prefix);
        let out: Vec<Value> = self.script(inv).await?;
        let items = strings(&out)?;
        let mut claimed = Vec::new();
        let mut i = 0;
        while i + 1 < items.len() {
            let id = items[i].clone();
            let n: usize = items[i + 1].parse().map_err(|_| StoreError::Protocol("bad field count".into()))?;
            let end = (i + 2 + n).min(items.len());
            claimed.push((id, decode(&items[i + 2..end])));
            i = end;
        }
        Ok(claimed)
    }

    /// Live sessions in the pool.
    pub async fn session_count(&self, idle_ms: u64, now_ms: u64) -> Result<u64, StoreError> {
        let mut cmd = redis::cmd("ZCOUNT");
        cmd.arg(self.pool_key()).arg(now_ms.saturating_sub(idle_ms)).arg("+inf");
        self.run(&cmd).await
    }

    /// The client's backend session at (`server`, `fingerprint`), if one was stored.
    pub async fn backend_session(&self, id: &str, server: &str, fingerprint: u64) -> Result<Option<BackendSession>, StoreError> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(self.session_key(id)).arg(backend_field(server, fingerprint));
        let raw: Option<String> = self.run(&cmd).await?;
        Ok(raw.as_deref().and_then(BackendSession::decode))
    }

    /// Stores `new` as the client's backend session at (`server`, `fingerprint`) if the one
    /// there now is `replacing` (`None`: if there is none). Returns the one in force afterwards,
    /// which is another replica's when it stored one first; `None` when the session is gone.
    pub async fn put_backend_session(
        &self,
        id: &str,
        server: &str,
        fingerprint: u64,
        new: &BackendSession,
        replacing: Option<&str>,
    ) -> Result<Option<BackendSession>, StoreError> {
        let script = Script::new(PUT_BACKEND);
        let mut inv = script.key(self.session_key(id));
        let expected = match replacing {
            Some(old_id) => {
                // The stored value carries the version; only the id is compared by the caller.
                match self.backend_session(id, server, fingerprint).await? {
                    Some(cur) if cur.session_id == old_id => cur.encode(),
                    Some(cur) => return Ok(Some(cur)),
                    None => String::new(),
                }
            }
            None => String::new(),
        };
        inv.arg(backend_field(server, fingerprint)).arg(new.encode()).arg(expected);
        let out: Option<String> = self.script(inv).await?;
        Ok(out.as_deref().and_then(BackendSession::decode))
    }

    /// Sets (or, with `None`, removes) a field of a live session; false when the session is gone.
    pub async fn set_session_field(&self, id: &str, field: &Field, value: Option<&str>) -> Result<bool, StoreError> {
        let script = Script::new(SET_FIELD);
        let mut inv = script.key(self.session_key(id));
        inv.arg(field.name()).arg(value.unwrap_or(""));
        let n: i64 = self.script(inv).await?;
        Ok(n == 1)
    }

    /// Removes a field when it still holds `value` (e.g. the GET-stream holder, when that
    /// replica's stream ends and no other took over meanwhile).
    pub async fn clear_session_field_if(&self, id: &str, field: &Field, value: &str) -> Result<bool, StoreError> {
        let script = Script::new(CLEAR_FIELD_IF);
        let mut inv = script.key(self.session_key(id));
        inv.arg(field.name()).arg(value);
        let n: i64 = self.script(inv).await?;
        Ok(n == 1)
    }
}

fn encode(rec: &SessionRecord) -> Vec<(String, String)> {
    let mut out = vec![
        ("v".to_owned(), rec.protocol_version.clone()),
        ("c".to_owned(), rec.capabilities.clone()),
        ("i".to_owned(), rec.client_info.clone()),
        ("t".to_owned(), rec.created_ms.to_string()),
    ];
    if let Some(p) = &rec.principal {
        out.push(("p".into(), p.clone()));
    }
    if let Some(l) = &rec.log_level {
        out.push(("l".into(), l.clone()));
    }
    if let Some(g) = &rec.stream_holder {
        out.push(("g".into(), g.clone()));
    }
    for (k, v) in &rec.extra {
        out.push((format!("x:{k}"), v.clone()));
    }
    for ((server, fp), b) in &rec.backends {
        out.push((backend_field(server, *fp), b.encode()));
    }
    out
}

/// A record from HGETALL's flat field/value list (unknown fields are ignored).
fn decode(flat: &[String]) -> SessionRecord {
    let mut rec = SessionRecord::default();
    for pair in flat.chunks_exact(2) {
        let (k, v) = (pair[0].as_str(), &pair[1]);
        match k {
            "p" => rec.principal = Some(v.clone()),
            "v" => rec.protocol_version = v.clone(),
            "c" => rec.capabilities = v.clone(),
            "i" => rec.client_info = v.clone(),
            "l" => rec.log_level = Some(v.clone()),
            "t" => rec.created_ms = v.parse().unwrap_or(0),
            "g" => rec.stream_holder = Some(v.clone()),
            _ => {
                if let Some(name) = k.strip_prefix("x:") {
                    rec.extra.insert(name.to_owned(), v.clone());
                } else if let Some(rest) = k.strip_prefix("b:")
                    && let Some((server, fp)) = rest.rsplit_once(':')
                    && let (Ok(fp), Some(b)) = (fp.parse::<u64>(), BackendSession::decode(v))
                {
                    rec.backends.insert((server.to_owned(), fp), b);
                }
            }
        }
    }
    rec
}

fn strings(values: &[Value]) -> Result<Vec<String>, StoreError> {
    values
        .iter()
        .map(|v| match v {
            Value::BulkString(b) => String::from_utf8(b.clone()).map_err(|_| StoreError::Protocol("non-UTF-8 value".into())),
            Value::SimpleString(s) => Ok(s.clone()),
            Value::Int(n) => Ok(n.to_string()),
            other => Err(StoreError::Protocol(format!("unexpected value {other:?}"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_their_hash_fields() {
        let mut rec = SessionRecord {
            principal: Some("https://idp\u{1f}alice".into()),
            protocol_version: "2025-11-25".into(),
            capabilities: r#"{"elicitation":{}}"#.into(),
            client_info: r#"{"name":"c","version":"1"}"#.into(),
            log_level: Some("debug".into()),
            created_ms: 42,
            stream_holder: Some("replica-a".into()),
            ..Default::default()
        };
        rec.extra.insert("virtual_server".into(), "team-a".into());
        rec.backends.insert(("git-hub".into(), 7), BackendSession { session_id: "abc:def".into(), protocol_version: "2025-06-18".into() });
        let flat: Vec<String> = encode(&rec).into_iter().flat_map(|(k, v)| [k, v]).collect();
        assert_eq!(decode(&flat), rec);
    }
}
