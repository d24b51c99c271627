//! The `requestState` the gateway mints when it turns a legacy backend's server request into
//! an `input_required` result: an HMAC-SHA256 tag over a parked-call id, an expiry, the
//! caller's principal and a digest of the original request. The parked call itself stays in
//! memory and is taken out once, so a replayed state finds nothing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::{digest, hmac};

const PREFIX: &str = "mcpgate1.";
const ID_LEN: usize = 16;
const TAG_LEN: usize = 32;

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

pub struct Sealer {
    key: hmac::Key,
}

impl Default for Sealer {
    /// A fresh random key: states do not survive a restart (nor do the calls they park).
    fn default() -> Self {
        let secret: [u8; 32] = rand::random();
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, &secret) }
    }
}

impl Sealer {
    pub fn seal(&self, id: &[u8; ID_LEN], expires_ms: u64, principal: &str, request_digest: &[u8; 32]) -> String {
        let tag = hmac::sign(&self.key, &signed_bytes(id, expires_ms, principal, request_digest));
        let mut raw = Vec::with_capacity(ID_LEN + 8 + TAG_LEN);
        raw.extend_from_slice(id);
        raw.extend_from_slice(&expires_ms.to_be_bytes());
        raw.extend_from_slice(tag.as_ref());
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    /// The parked-call id, when `token` was minted by us for this caller and request and has
    /// not expired.
    pub fn open(&self, token: &str, principal: &str, request_digest: &[u8; 32], now_ms: u64) -> Result<[u8; ID_LEN], StateError> {
        let raw = token.strip_prefix(PREFIX).and_then(|b| URL_SAFE_NO_PAD.decode(b).ok()).ok_or(StateError::Malformed)?;
        if raw.len() != ID_LEN + 8 + TAG_LEN {
            return Err(StateError::Malformed);
        }
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&raw[..ID_LEN]);
        let mut exp = [0u8; 8];
        exp.copy_from_slice(&raw[ID_LEN..ID_LEN + 8]);
        let expires_ms = u64::from_be_bytes(exp);
        hmac::verify(&self.key, &signed_bytes(&id, expires_ms, principal, request_digest), &raw[ID_LEN + 8..]).map_err(|_| StateError::Tampered)?;
        if now_ms > expires_ms {
            return Err(StateError::Expired);
        }
        Ok(id)
    }
}

fn signed_bytes(id: &[u8; ID_LEN], expires_ms: u64, principal: &str, request_digest: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(ID_LEN + 8 + principal.len() + 34);
    m.extend_from_slice(id);
    m.extend_from_slice(&expires_ms.to_be_bytes());
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
        let s = Sealer::default();
        let d = request_digest("tools/call", &json!({"name":"t","arguments":{"a":1,"b":2}}));
        let token = s.seal(&[7; 16], 1_000, "alice", &d);
        assert_eq!(s.open(&token, "alice", &d, 999), Ok([7; 16]));
        assert_eq!(s.open(&token, "bob", &d, 999), Err(StateError::Tampered));
        let other = request_digest("tools/call", &json!({"name":"t","arguments":{"a":1,"b":3}}));
        assert_eq!(s.open(&token, "alice", &other, 999), Err(StateError::Tampered));
        assert_eq!(s.open(&token, "alice", &d, 1_001), Err(StateError::Expired));
        assert_eq!(Sealer::default().open(&token, "alice", &d, 999), Err(StateError::Tampered));
        assert_eq!(s.open("nope", "alice", &d, 0), Err(StateError::Malformed));
        // Flip one character of the payload.
        let mut bytes = token.into_bytes();
        let i = bytes.len() - 5;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).expect("ascii");
        assert!(matches!(s.open(&flipped, "alice", &d, 0), Err(StateError::Tampered | StateError::Malformed)));
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
