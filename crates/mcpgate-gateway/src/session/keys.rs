//! The keys that sign what clients carry back: session ids, `requestState`s, task ids and the
//! ids of server requests relayed to clients. Every replica of a cluster holds the same ring
//! (`cluster.keys`); a single process makes a random one at start.
//!
//! Each configured secret is stretched once, at load (HKDF-SHA256), into one HMAC key per
//! purpose, so a tag made for one purpose is never accepted for another and nothing is derived
//! per request. The first key signs; every key verifies (rotation with two keys live). Tags are
//! compared in constant time. Nothing here logs a key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::{hkdf, hmac};

use crate::config::ClusterKey;

/// What a tag is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    SessionId,
    RequestState,
    TaskId,
    ServerRequest,
    /// Digests of principals used as store keys (never the subject itself).
    Principal,
}

impl Purpose {
    const ALL: [Purpose; 5] = [Purpose::SessionId, Purpose::RequestState, Purpose::TaskId, Purpose::ServerRequest, Purpose::Principal];

    fn info(self) -> &'static [u8] {
        match self {
            Purpose::SessionId => b"mcpgate session id",
            Purpose::RequestState => b"mcpgate request state",
            Purpose::TaskId => b"mcpgate task id",
            Purpose::ServerRequest => b"mcpgate server request id",
            Purpose::Principal => b"mcpgate principal digest",
        }
    }
}

struct Key {
    id: String,
    per_purpose: Vec<hmac::Key>,
}

/// Bytes of a tag as carried (truncated HMAC-SHA256: 128 bits).
pub const TAG_LEN: usize = 16;

pub struct KeyRing {
    keys: Vec<Key>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("ids", &self.keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>()).finish()
    }
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive(secret: &[u8], id: &str) -> Key {
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"mcpgate key ring v1");
    let prk = salt.extract(secret);
    let per_purpose = Purpose::ALL
        .iter()
        .map(|p| {
            let mut bytes = [0u8; 32];
            // Fills 32 bytes: cannot fail for this length.
            if let Ok(okm) = prk.expand(&[p.info()], Len(32)) {
                let _ = okm.fill(&mut bytes);
            }
            hmac::Key::new(hmac::HMAC_SHA256, &bytes)
        })
        .collect();
    Key { id: id.to_owned(), per_purpose }
}

impl KeyRing {
    /// A ring of one fresh random key (a single process: nothing it signs survives a restart).
    pub fn random() -> Self {
        let secret: [u8; 32] = rand::random();
        Self { keys: vec![derive(&secret, "local")] }
    }

    /// The configured keys, in order (the first signs). `cluster.keys` is validated non-empty.
    pub fn from_config(keys: &[ClusterKey]) -> Self {
        let keys: Vec<Key> = keys.iter().map(|k| derive(k.secret.expose().as_bytes(), &k.id)).collect();
        if keys.is_empty() { Self::random() } else { Self { keys } }
    }

    fn signer(&self) -> &Key {
        // Never empty: both constructors put at least one key in.
        &self.keys[0]
    }

    /// The id of the signing key.
    pub fn current_id(&self) -> &str {
        &self.signer().id
    }

    /// A tag over `data` for `purpose`, with the signing key.
    pub fn sign(&self, purpose: Purpose, data: &[u8]) -> [u8; TAG_LEN] {
        tag_of(&self.signer().per_purpose[purpose as usize], data)
    }

    /// Whether `tag` over `data` was made by key `key_id` (any live key) for `purpose`.
    pub fn verify(&self, purpose: Purpose, key_id: &str, data: &[u8], tag: &[u8]) -> bool {
        let Some(key) = self.keys.iter().find(|k| k.id == key_id) else { return false };
        let expected = tag_of(&key.per_purpose[purpose as usize], data);
        tag.len() == TAG_LEN && constant_time_eq(&expected, tag)
    }

    /// A new session id: `{key id}.{128 random bits}.{tag}`, base64url. Unguessable, and
    /// checkable by any replica without a store lookup.
    pub fn new_session_id(&self) -> String {
        let random: [u8; 16] = rand::random();
        let kid = self.current_id();
        let body = format!("{kid}.{}", URL_SAFE_NO_PAD.encode(random));
        let tag = self.sign(Purpose::SessionId, body.as_bytes());
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Whether `id` is a session id a live key made. Anything else (forged, truncated, made
    /// with a retired key) is answered like an unknown session.
    pub fn is_session_id(&self, id: &str) -> bool {
        let Some((body, tag)) = id.rsplit_once('.') else { return false };
        let Some((kid, random)) = body.split_once('.') else { return false };
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else { return false };
        random.len() == 22 && self.verify(Purpose::SessionId, kid, body.as_bytes(), &tag)
    }

    /// A stable digest of a principal, for use as a store key (hex, 128 bits).
    pub fn principal_digest(&self, principal: &str) -> String {
        self.sign(Purpose::Principal, principal.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn tag_of(key: &hmac::Key, data: &[u8]) -> [u8; TAG_LEN] {
    let full = hmac::sign(key, data);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&full.as_ref()[..TAG_LEN]);
    tag
}

/// Equality whose time does not depend on where the slices first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn ring(keys: &[(&str, &str)]) -> KeyRing {
        KeyRing::from_config(&keys.iter().map(|(id, s)| ClusterKey { id: (*id).into(), secret: Secret::new(*s) }).collect::<Vec<_>>())
    }

    const S1: &str = "0123456789abcdef0123456789abcdef-one";
    const S2: &str = "0123456789abcdef0123456789abcdef-two";

    #[test]
    fn session_ids_are_checked_by_any_ring_holding_the_key() {
        let a = ring(&[("k1", S1)]);
        let id = a.new_session_id();
        assert!(id.starts_with("k1.") && id.len() < 64, "{id}");
        assert!(ring(&[("k1", S1)]).is_session_id(&id), "another replica with the same key");
        assert!(ring(&[("k2", S2), ("k1", S1)]).is_session_id(&id), "rotation: the old key still verifies");
        assert!(!ring(&[("k2", S2)]).is_session_id(&id), "a retired key no longer does");
        assert!(!ring(&[("k1", S2)]).is_session_id(&id), "same id, other secret");
    }

    #[test]
    fn forged_truncated_or_altered_session_ids_are_refused() {
        let a = ring(&[("k1", S1)]);
        let id = a.new_session_id();
        let (body, _) = id.rsplit_once('.').expect("tag");
        assert!(!a.is_session_id(body));
        assert!(!a.is_session_id(&id[..id.len() - 1]));
        let mut flipped = id.clone().into_bytes();
        flipped[4] = if flipped[4] == b'A' { b'B' } else { b'A' };
        assert!(!a.is_session_id(&String::from_utf8(flipped).expect("ascii")));
        assert!(!a.is_session_id("k1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA"));
        assert!(!a.is_session_id("0123456789abcdef0123456789abcdef"), "an old-style id");
    }

    #[test]
    fn a_tag_for_one_purpose_is_not_accepted_for_another() {
        let a = ring(&[("k1", S1)]);
        let tag = a.sign(Purpose::TaskId, b"data");
        assert!(a.verify(Purpose::TaskId, "k1", b"data", &tag));
        assert!(!a.verify(Purpose::RequestState, "k1", b"data", &tag));
        assert!(!a.verify(Purpose::TaskId, "k1", b"other", &tag));
    }

    #[test]
    fn debug_shows_key_ids_only() {
        assert_eq!(format!("{:?}", ring(&[("k1", S1)])), r#"KeyRing { ids: ["k1"] }"#);
    }
}
