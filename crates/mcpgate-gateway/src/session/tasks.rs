//! The ids of tasks modern backends created, as clients see them: signed by the gateway (the
//! cluster's key ring), naming the backend and its own task id, bound to the caller's principal,
//! expiring. Any replica can route a `tasks/*` request with nothing stored; an id that is
//! altered, another caller's or expired is unknown.
//!
//! Form: `mcpgate-task-{key id}.{payload}.{tag}`, the payload (base64url) holding the server,
//! the expiry and the backend's task id; the tag covers the payload and the principal.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpgate_protocol::names::ServerName;

use super::keys::{KeyRing, Purpose};

/// How long an id is valid when the backend gives no `ttlMs` for its task.
const DEFAULT_TTL: Duration = Duration::from_secs(3600);
const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const PREFIX: &str = "mcpgate-task-";

/// The id the client sees for `backend_task` of `server`, for `principal`.
pub fn mint(ring: &KeyRing, server: &ServerName, backend_task: &str, principal: &str, ttl_ms: Option<u64>, now_ms: u64) -> String {
    let ttl = ttl_ms.map_or(DEFAULT_TTL, Duration::from_millis).min(MAX_TTL);
    let expires = now_ms + ttl.as_millis() as u64;
    let payload = URL_SAFE_NO_PAD.encode(format!("{server}\n{expires}\n{backend_task}"));
    let tag = ring.sign(Purpose::TaskId, &signed(&payload, principal));
    format!("{PREFIX}{}.{payload}.{}", ring.current_id(), URL_SAFE_NO_PAD.encode(tag))
}

/// The backend and its task id, when `id` was minted for `principal` and has not expired.
pub fn find(ring: &KeyRing, id: &str, principal: &str, now_ms: u64) -> Option<(ServerName, String)> {
    let mut parts = id.strip_prefix(PREFIX)?.splitn(3, '.');
    let (kid, payload, tag) = (parts.next()?, parts.next()?, parts.next()?);
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    if !ring.verify(Purpose::TaskId, kid, &signed(payload, principal), &tag) {
        return None;
    }
    let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let mut fields = decoded.splitn(3, '\n');
    let (server, expires, task) = (ServerName::parse(fields.next()?).ok()?, fields.next()?.parse::<u64>().ok()?, fields.next()?);
    (now_ms <= expires).then(|| (server, task.to_owned()))
}

fn signed(payload: &str, principal: &str) -> Vec<u8> {
    format!("{payload}\n{principal}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_are_bound_to_their_caller_and_expire() {
        let ring = KeyRing::random();
        let s = ServerName::parse("jobs").expect("name");
        let id = mint(&ring, &s, "backend-1", "alice", None, 1_000);
        assert!(id.starts_with("mcpgate-task-local."), "{id}");
        assert_eq!(find(&ring, &id, "alice", 2_000), Some((s.clone(), "backend-1".to_owned())));
        assert_eq!(find(&ring, &id, "bob", 2_000), None);
        assert_eq!(find(&ring, "backend-1", "alice", 2_000), None);
        assert_eq!(find(&KeyRing::random(), &id, "alice", 2_000), None, "another gateway's key");
        let short = mint(&ring, &s, "backend-2", "alice", Some(0), 1_000);
        assert_eq!(find(&ring, &short, "alice", 1_001), None);
        let tampered = id.replacen(".", ".A", 2);
        assert_eq!(find(&ring, &tampered, "alice", 2_000), None);
    }
}
