//! A value that must never be printed: `Debug` shows `***` and there is no `Display`.
//! Owns the redaction of bearer tokens and private keys; never compares in a way that leaks
//! timing to a caller (it is only compared in tests and config equality).

use std::sync::Arc;

use serde::{Deserialize, Deserializer};

/// Shared, not copied, when cloned: a verified caller's token is cloned out of the token
/// cache on every request.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::from(value.into()))
    }

    /// The value itself, for the one place that must send or parse it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// A short, non-reversible id for a token, safe as a log field: the first 8 bytes of its
/// SHA-256 in hex. Lets an operator correlate log lines without the token itself.
pub fn token_id(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The full SHA-256 of a token, used as a cache key so tokens never sit in a cache as keys.
pub(crate) fn token_hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in parts {
        // Length-prefix each part so ("ab","c") and ("a","bc") hash differently.
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("eyJhbGciOi.secret.token");
        assert_eq!(format!("{s:?}"), "***");
    }

    #[test]
    fn token_id_is_short_and_stable() {
        assert_eq!(token_id("abc"), token_id("abc"));
        assert_eq!(token_id("abc").len(), 16);
        assert!(!token_id("abc").contains("abc"));
    }

    #[test]
    fn token_hash_separates_parts() {
        assert_ne!(token_hash(&[b"ab", b"c"]), token_hash(&[b"a", b"bc"]));
    }
}
