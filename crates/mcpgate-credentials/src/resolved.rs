//! The credential a call will carry: headers marked sensitive, the source that produced it,
//! its expiry, a fingerprint for keying backend sessions, and a masked form for display.
//! Owns masking and fingerprinting; never exposes a value through `Debug`, the mask or the
//! fingerprint (a keyed hash with a per-process random key, so it cannot be brute-forced
//! offline from a log line).

use std::sync::OnceLock;
use std::time::SystemTime;

use http::{HeaderName, HeaderValue};

use mcpgate_auth::Secret;

use crate::template::HeaderTemplate;

/// The credential for one call (or for catalog discovery).
#[derive(Clone)]
pub struct Resolved {
    /// Headers to add to the backend request; every value is marked sensitive.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The source that produced it: `vault`, `token_exchange`, `static`,
    /// `client_credentials` or `passthrough`.
    pub source: &'static str,
    /// When the credential stops being valid, when known.
    pub expires_at: Option<SystemTime>,
    /// Equal for equal credentials, different otherwise (within one process): backend
    /// sessions are keyed on it so callers with different credentials never share one.
    pub fingerprint: u64,
    /// A display form that never reveals the value, e.g. `ghp_…(40 chars)`.
    pub masked: String,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Resolved")
            .field("headers", &names)
            .field("source", &self.source)
            .field("expires_at", &self.expires_at)
            .field("fingerprint", &format_args!("{:016x}", self.fingerprint))
            .field("masked", &self.masked)
            .finish()
    }
}

/// A masked form of a secret: its length, plus its first four characters when it is long
/// (≥ 20 characters) and they are a plain prefix like `ghp_` or `eyJh`.
pub(crate) fn mask(secret: &str) -> String {
    let len = secret.chars().count();
    let prefix: String = secret.chars().take(4).collect();
    if len >= 20 && prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        format!("{prefix}…({len} chars)")
    } else {
        format!("…({len} chars)")
    }
}

/// A secret as a source's cache holds it (a Vault field, an exchanged token), with the
/// [`Resolved`] first built from it: a warm call clones that instead of rendering the header,
/// hashing the fingerprint and masking again. Built for one header template; a source with
/// another template sharing the entry builds its own each time.
pub(crate) struct CachedSecret {
    secret: Secret,
    built: OnceLock<(HeaderTemplate, Option<Resolved>)>,
}

impl CachedSecret {
    pub fn new(secret: Secret) -> Self {
        Self { secret, built: OnceLock::new() }
    }

    pub fn expose(&self) -> &str {
        self.secret.expose()
    }
}

/// Keyed hashing of credentials into [`Resolved::fingerprint`].
pub(crate) struct Fingerprinter {
    key: aws_lc_rs::hmac::Key,
}

impl Fingerprinter {
    pub fn new() -> Result<Self, String> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = aws_lc_rs::hmac::Key::generate(aws_lc_rs::hmac::HMAC_SHA256, &rng)
            .map_err(|_| "cannot generate the fingerprint key (no system randomness)".to_owned())?;
        Ok(Self { key })
    }

    pub fn of(&self, source: &str, headers: &[(HeaderName, HeaderValue)]) -> u64 {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.key);
        let mut part = |bytes: &[u8]| {
            // Length-prefix each part so ("ab","c") and ("a","bc") differ.
            ctx.update(&(bytes.len() as u64).to_be_bytes());
            ctx.update(bytes);
        };
        part(source.as_bytes());
        for (name, value) in headers {
            part(name.as_str().as_bytes());
            part(value.as_bytes());
        }
        let tag = ctx.sign();
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag.as_ref()[..8]);
        u64::from_be_bytes(first)
    }

    /// A [`Resolved`] with the secret in `header`; `None` when it is not a valid header value.
    pub fn resolved(&self, source: &'static str, header: &HeaderTemplate, secret: &str, expires_at: Option<SystemTime>) -> Option<Resolved> {
        let headers = vec![header.render(secret)?];
        Some(Resolved { fingerprint: self.of(source, &headers), headers, source, expires_at, masked: mask(secret) })
    }

    /// [`Fingerprinter::resolved`] of a cached secret, built once per entry. `source` and
    /// `expires_at` must be the same on every call for one entry (they are: one cache per
    /// source kind, and an entry's expiry is its own).
    pub fn resolved_cached(&self, source: &'static str, header: &HeaderTemplate, cached: &CachedSecret, expires_at: Option<SystemTime>) -> Option<Resolved> {
        if let Some((built_for, resolved)) = cached.built.get()
            && built_for == header
        {
            return resolved.clone();
        }
        let resolved = self.resolved(source, header, cached.expose(), expires_at);
        let _ = cached.built.set((header.clone(), resolved.clone()));
        resolved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_shows_length_and_a_short_prefix_only() {
        let pat = "ghp_0123456789abcdefghijklmnopqrstuvwxyz";
        assert_eq!(mask(pat), "ghp_…(40 chars)");
        assert_eq!(mask("short-key"), "…(9 chars)");
    }

    #[test]
    fn fingerprints_differ_for_different_credentials_and_hide_them() {
        let fp = Fingerprinter::new().expect("rng");
        let header = HeaderTemplate::parse("Authorization", None).expect("ok");
        let a = fp.resolved("vault", &header, "secret-a-1234", None).expect("a");
        let a2 = fp.resolved("vault", &header, "secret-a-1234", None).expect("a");
        let b = fp.resolved("vault", &header, "secret-b-1234", None).expect("b");
        assert_eq!(a.fingerprint, a2.fingerprint);
        assert_ne!(a.fingerprint, b.fingerprint);
        let shown = format!("{a:?}");
        assert!(!shown.contains("secret-a-1234"), "{shown}");
        assert!(a.headers[0].1.is_sensitive());
    }

    #[test]
    fn the_same_credential_from_another_source_has_another_fingerprint() {
        let fp = Fingerprinter::new().expect("rng");
        let header = HeaderTemplate::parse("Authorization", None).expect("ok");
        let a = fp.resolved("vault", &header, "same", None).expect("a");
        let b = fp.resolved("static", &header, "same", None).expect("b");
        assert_ne!(a.fingerprint, b.fingerprint);
    }

    #[test]
    fn a_cached_secret_resolves_as_the_secret_does_for_every_header() {
        let fp = Fingerprinter::new().expect("rng");
        let bearer = HeaderTemplate::parse("Authorization", None).expect("ok");
        let api_key = HeaderTemplate::parse("X-Api-Key", None).expect("ok");
        let cached = CachedSecret::new(Secret::new("ghp_0123456789abcdefghijklmnop"));
        let direct = fp.resolved("vault", &bearer, cached.expose(), None).expect("direct");
        for _ in 0..2 {
            let warm = fp.resolved_cached("vault", &bearer, &cached, None).expect("cached");
            assert_eq!((warm.fingerprint, &warm.headers, &warm.masked), (direct.fingerprint, &direct.headers, &direct.masked));
            assert!(warm.headers[0].1.is_sensitive());
            // Another template on the same entry gets its own header, not the first one's.
            let other = fp.resolved_cached("vault", &api_key, &cached, None).expect("other");
            assert_eq!(other.headers[0].0.as_str(), "x-api-key");
            assert_eq!(other.headers[0].1, "ghp_0123456789abcdefghijklmnop");
            assert_ne!(other.fingerprint, warm.fingerprint);
        }
        // A secret no header can carry stays refused when cached.
        let bad = CachedSecret::new(Secret::new("line\nbreak"));
        assert!(fp.resolved_cached("vault", &bearer, &bad, None).is_none());
        assert!(fp.resolved_cached("vault", &bearer, &bad, None).is_none());
    }
}
