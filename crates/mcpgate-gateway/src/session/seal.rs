//! The `requestState` the gateway mints when it turns a legacy backend's server request into
//! an `input_required` result: an HMAC-SHA256 tag (the cluster's key ring) over a parked-call
//! id, an expiry, the replica holding the call, the caller's principal and a digest of the
//! original request. The parked call itself stays in the memory of that replica and is taken
//! out once, so a replayed state finds nothing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;

use super::keys::{KeyRing, Purpose, TAG_LEN};

const PREFIX: &str = "mcpgate2.";
const ID_LEN: usize = 16;

/// Why a `requestState` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    /// Not a state this gateway minted (wrong shape).
    Malformed,
    /// The tag does not match: modified, minted for another caller or another request.
    Tampered,
    Expired,
}

impl StateError {
    pub fn message(self) -> &'static str {
        match self {
            StateError::Malformed => "requestState is not one this gateway issued",
            StateError::Tampered => "requestState failed verification (modified, or issued for another caller or request)",
            StateError::Expired => "requestState has expired; send the request again without it",
        }
    }
}

/// Seals and opens `requestState`s with the key ring every replica shares (any replica can
/// check a state another minted, and tell which replica holds its parked call).
pub struct Sealer;

impl Sealer {
    /// A state for parked call `id` held by `replica`, for `principal` and the request whose
    /// digest is `request_digest`, valid until `expires_ms`.
    pub fn seal(ring: &KeyRing, id: &[u8; ID_LEN], expires_ms: u64, replica: &str, principal: &str, request_digest: &[u8; 32]) -> String {
        let mut body = Vec::with_capacity(ID_LEN + 8 + replica.len());
        body.extend_from_slice(id);
        body.extend_from_slice(&expires_ms.to_be_bytes());
        body.extend_from_slice(replica.as_bytes());
        let tag = ring.sign(Purpose::RequestState, &signed_bytes(&body, principal, request_digest));
        format!("{PREFIX}{}.{}.{}", ring.current_id(), URL_SAFE_NO_PAD.encode(&body), URL_SAFE_NO_PAD.encode(tag))
    }

    /// The parked-call id and the replica holding it, when `token` was minted by a replica of
    /// this gateway for this caller and request and has not expired.
    pub fn open(ring: &KeyRing, token: &str, principal: &str, request_digest: &[u8; 32], now_ms: u64) -> Result<([u8; ID_LEN], String), StateError> {
        let rest = token.strip_prefix(PREFIX).ok_or(StateError::Malformed)?;
        let mut parts = rest.splitn(3, '.');
        let (Some(kid), Some(body), Some(tag)) = (parts.next(), parts.next(), parts.next()) else { return Err(StateError::Malformed) };
        let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| StateError::Malformed)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| StateError::Malformed)?;
        if body.len() < ID_LEN + 8 || tag.len() != TAG_LEN {
            return Err(StateError::Malformed);
        }
        if !ring.verify(Purpose::RequestState, kid, &signed_bytes(&body, principal, request_digest), &tag) {
            return Err(StateError::Tampered);
        }
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&body[..ID_LEN]);
        let mut exp = [0u8; 8];
        exp.copy_from_slice(&body[ID_LEN..ID_LEN + 8]);
        if now_ms > u64::from_be_bytes(exp) {
            return Err(StateError::Expired);
        }
        let replica = String::from_utf8(body[ID_LEN + 8..].to_vec()).map_err(|_| StateError::Malformed)?;
        Ok((id, replica))
    }
}

fn signed_bytes(body: &[u8], principal: &str, request_digest: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + principal.len() + 42);
    m.extend_from_slice(&(body.len() as u64).to_be_bytes());
    m.extend_from_slice(body);
    m.extend_from_slice(&(principal.len() as u64).to_be_bytes());
    m.extend_from_slice(principal.as_bytes());
    m.extend_from_slice(request_digest);
    m
}

/// A digest of what identifies a request: its method and its params without `_meta`,
/// `inputResponses` and `requestState`, with object keys sorted (so a client that
/// re-serialises the same params gets the same digest).
pub fn request_digest(method: &str, params: &serde_json::Value) -> [u8; 32] {
    let mut canon = String::new();
    canon.push_str(method);
    canon.push('\n');
    match params.as_object() {
        Some(obj) => {
            let mut keys: Vec<&String> = obj.keys().filter(|k| !matches!(k.as_str(), "_meta" | "inputResponses" | "requestState")).collect();
            keys.sort();
            canon.push('{');
            for k in keys {
                canonical(&serde_json::Value::String(k.clone()), &mut canon);
                canon.push(':');
                canonical(&obj[k], &mut canon);
                canon.push(',');
            }
            canon.push('}');
        }
        None => canonical(params, &mut canon),
    }
    let d = digest::digest(&digest::SHA256, canon.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn canonical(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(obj) => {
            let mut keys: Vec<&String> = obj.keys().collect();
            keys.sort();
            out.push('{');
            for k in keys {
                canonical(&serde_json::Value::String(k.clone()), out);
                out.push(':');
                canonical(&obj[k], out);
                out.push(',');
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for i in items {
                canonical(i, out);
                out.push(',');
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_state_opens_only_for_its_caller_request_and_lifetime() {
        let ring = KeyRing::random();
        let d = request_digest("tools/call", &json!({"name":"t","arguments":{"a":1,"b":2}}));
        let token = Sealer::seal(&ring, &[7; 16], 1_000, "replica-a", "alice", &d);
        assert_eq!(Sealer::open(&ring, &token, "alice", &d, 999), Ok(([7; 16], "replica-a".to_owned())));
        assert_eq!(Sealer::open(&ring, &token, "bob", &d, 999), Err(StateError::Tampered));
        let other = request_digest("tools/call", &json!({"name":"t","arguments":{"a":1,"b":3}}));
        assert_eq!(Sealer::open(&ring, &token, "alice", &other, 999), Err(StateError::Tampered));
        assert_eq!(Sealer::open(&ring, &token, "alice", &d, 1_001), Err(StateError::Expired));
        assert_eq!(Sealer::open(&KeyRing::random(), &token, "alice", &d, 999), Err(StateError::Tampered));
        assert_eq!(Sealer::open(&ring, "nope", "alice", &d, 0), Err(StateError::Malformed));
        // Flip one character of the payload.
        let mut bytes = token.into_bytes();
        let i = bytes.len() - 30;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).expect("ascii");
        assert!(matches!(Sealer::open(&ring, &flipped, "alice", &d, 0), Err(StateError::Tampered | StateError::Malformed)));
    }

    #[test]
    fn the_digest_ignores_key_order_and_retry_fields() {
        let a = request_digest("tools/call", &json!({"name":"t","arguments":{"x":1,"y":[1,{"b":2,"a":1}]}}));
        let b = request_digest(
            "tools/call",
            &json!({"arguments":{"y":[1,{"a":1,"b":2}],"x":1},"name":"t","requestState":"s","inputResponses":{"k":{}},"_meta":{"p":1}}),
        );
        assert_eq!(a, b);
        assert_ne!(a, request_digest("prompts/get", &json!({"name":"t","arguments":{"x":1,"y":[1,{"b":2,"a":1}]}})));
    }
}
