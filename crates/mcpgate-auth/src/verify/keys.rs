//! Verification keys: parsing PEM and JWK into keys whose algorithm is fixed by the key
//! itself (JWK `alg`, or `kty`+`crv`), and choosing the keys for a token. Never derives an
//! algorithm from a token, never accepts a symmetric or private key for verification.

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};

use crate::config::keys::KeyMaterial;
use crate::config::{Alg, KeyConfig};

/// A public key and the algorithms it may verify (already intersected with the allow-list).
pub(crate) struct VerifyKey {
    pub kid: Option<String>,
    pub algs: Vec<Alg>,
    pub key: DecodingKey,
    /// SHA-256 of the key as published (kid and public parameters): tells a key that was
    /// replaced under the same `kid` from one that stayed.
    pub fingerprint: [u8; 32],
}

/// An immutable set of keys, as fetched or configured.
#[derive(Default)]
pub(crate) struct KeySet {
    keys: Vec<VerifyKey>,
}

/// Outcome of looking up keys for a token.
pub(crate) enum Lookup<'a> {
    Found(Vec<&'a VerifyKey>),
    /// Keys exist for this `kid` (or the token has none) but none may verify this algorithm.
    AlgorithmMismatch,
    /// No key has this `kid` (and there is no key without a `kid` to try).
    NoSuchKey,
}

impl KeySet {
    pub fn from_configs(configs: &[KeyConfig], allowed: &[Alg]) -> Result<KeySet, String> {
        let mut keys = Vec::new();
        for (i, cfg) in configs.iter().enumerate() {
            match cfg.load().map_err(|e| format!("[{i}]: {e}"))? {
                KeyMaterial::Pem { pem, kid, alg } => {
                    keys.push(from_pem(&pem, kid, alg, allowed).map_err(|e| format!("[{i}]: {e}"))?);
                }
                KeyMaterial::Jwks(doc) => {
                    let set = KeySet::from_jwks(&doc, allowed).map_err(|e| format!("[{i}]: {e}"))?;
                    if set.keys.is_empty() {
                        return Err(format!("[{i}]: the JWKS holds no usable signing key for the allowed algorithms"));
                    }
                    keys.extend(set.keys);
                }
            }
        }
        Ok(KeySet { keys })
    }

    /// Parses a JWKS document, skipping keys that are unusable (wrong use, symmetric,
    /// unsupported curve, algorithm not allowed). Fails only when the document has no `keys`.
    pub fn from_jwks(doc: &serde_json::Value, allowed: &[Alg]) -> Result<KeySet, String> {
        let list = doc.get("keys").and_then(|k| k.as_array()).ok_or("not a JWKS document (no \"keys\" array)")?;
        let mut keys = Vec::new();
        for entry in list {
            let parsed = serde_json::from_value::<Jwk>(entry.clone()).map_err(|_| "unparsable JWK");
            match parsed.and_then(|jwk| from_jwk(&jwk, allowed)) {
                Ok(k) => keys.push(k),
                Err(why) => tracing::debug!(kid = entry.get("kid").and_then(|k| k.as_str()), why, "skipping JWK"),
            }
        }
        Ok(KeySet { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// How many of this set's keys are absent from `next` (removed, or replaced under the
    /// same `kid`): tokens they verified must be verified again.
    pub fn retired_in(&self, next: &KeySet) -> usize {
        self.keys.iter().filter(|k| !next.keys.iter().any(|n| n.fingerprint == k.fingerprint)).count()
    }

    /// Keys to try for a token with this `kid` and header algorithm: those with the same
    /// `kid`, else those without any `kid`; a token without `kid` may use any key.
    pub fn lookup(&self, kid: Option<&str>, alg: Alg) -> Lookup<'_> {
        let by_kid: Vec<&VerifyKey> = match kid {
            Some(kid) => {
                let exact: Vec<_> = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).collect();
                if exact.is_empty() { self.keys.iter().filter(|k| k.kid.is_none()).collect() } else { exact }
            }
            None => self.keys.iter().collect(),
        };
        if by_kid.is_empty() {
            return Lookup::NoSuchKey;
        }
        let fitting: Vec<_> = by_kid.into_iter().filter(|k| k.algs.contains(&alg)).collect();
        if fitting.is_empty() { Lookup::AlgorithmMismatch } else { Lookup::Found(fitting) }
    }
}

/// The algorithms a key's type allows, before the allow-list.
fn family_algs(params: &AlgorithmParameters) -> Result<Vec<Alg>, &'static str> {
    match params {
        AlgorithmParameters::RSA(_) => Ok(vec![Alg::RS256, Alg::RS384, Alg::RS512, Alg::PS256, Alg::PS384, Alg::PS512]),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Ok(vec![Alg::ES256]),
            EllipticCurve::P384 => Ok(vec![Alg::ES384]),
            _ => Err("unsupported EC curve"),
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => Ok(vec![Alg::EdDSA]),
            _ => Err("unsupported OKP curve"),
        },
        AlgorithmParameters::OctetKey(_) => Err("symmetric key"),
        _ => Err("unsupported key type"),
    }
}

/// Narrows the family to a pinned algorithm (which must belong to it) and to the allow-list.
fn pin(family: Vec<Alg>, pinned: Option<Alg>, allowed: &[Alg]) -> Result<Vec<Alg>, &'static str> {
    let algs: Vec<Alg> = match pinned {
        Some(alg) if family.contains(&alg) => vec![alg],
        Some(_) => return Err("the key's alg does not match its key type"),
        None => family,
    };
    let algs: Vec<Alg> = algs.into_iter().filter(|a| allowed.contains(a)).collect();
    if algs.is_empty() { Err("the key's algorithm is not in the allowed algorithms") } else { Ok(algs) }
}

pub(crate) fn from_jwk(jwk: &Jwk, allowed: &[Alg]) -> Result<VerifyKey, &'static str> {
    if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature) {
        return Err("not a signing key (use)");
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return Err("not a verification key (key_ops)");
    }
    let pinned = match &jwk.common.key_algorithm {
        Some(ka) => {
            let name = serde_json::to_value(ka).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            Some(Alg::from_name(&name).ok_or("the key's alg is not a supported signature algorithm")?)
        }
        None => None,
    };
    let algs = pin(family_algs(&jwk.algorithm)?, pinned, allowed)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| "invalid key material")?;
    let fingerprint = crate::secret::token_hash(&[&serde_json::to_vec(jwk).map_err(|_| "unserialisable JWK")?]);
    Ok(VerifyKey { kid: jwk.common.key_id.clone(), algs, key, fingerprint })
}

pub(crate) fn from_pem(pem: &str, kid: Option<String>, pinned: Option<Alg>, allowed: &[Alg]) -> Result<VerifyKey, String> {
    if pem.contains("PRIVATE KEY") {
        return Err("a private key was given where a public key is expected".to_owned());
    }
    let bytes = pem.as_bytes();
    let key = DecodingKey::from_ec_pem(bytes)
        .or_else(|_| DecodingKey::from_ed_pem(bytes))
        .or_else(|_| DecodingKey::from_rsa_pem(bytes))
        .map_err(|_| "not a PEM RSA, EC or Ed25519 public key".to_owned())?;
    // Re-express as a JWK to learn the curve of an EC key.
    let jwk = Jwk::from_decoding_key(&key, None).map_err(|_| "unsupported public key".to_owned())?;
    let algs = pin(family_algs(&jwk.algorithm)?, pinned, allowed)?;
    let fingerprint = crate::secret::token_hash(&[kid.as_deref().unwrap_or("").as_bytes(), pem.as_bytes()]);
    Ok(VerifyKey { kid, algs, key, fingerprint })
}
