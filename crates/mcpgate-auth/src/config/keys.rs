//! Public keys written in the configuration: inline or file PEM, inline or file JWKS.
//! Owns reading them; never accepts a private or symmetric key as a verification key.

use std::path::PathBuf;

use serde::Deserialize;

use super::Alg;

/// One verification key source. Exactly one of `pem`, `pem_file`, `jwks`, `jwks_file`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// A public key in PEM (`BEGIN PUBLIC KEY`, or `BEGIN RSA PUBLIC KEY`).
    #[serde(default)]
    pub pem: Option<String>,
    /// A file holding a PEM public key.
    #[serde(default)]
    pub pem_file: Option<PathBuf>,
    /// A JWKS document (`{"keys": [...]}`), as a mapping or a JSON string.
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// A file holding a JWKS document.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Key id a token's `kid` must match to use this PEM key (JWKS keys carry their own).
    /// Without it the key is tried for tokens whose algorithm fits it.
    #[serde(default)]
    pub kid: Option<String>,
    /// Pins the algorithm of a PEM key. Without it: EC P-256 → ES256, P-384 → ES384,
    /// Ed25519 → EdDSA, RSA → the allowed RS*/PS* algorithms.
    #[serde(default)]
    pub alg: Option<Alg>,
}

/// Key material read from a [`KeyConfig`], not yet parsed.
#[derive(Debug, Clone)]
pub(crate) enum KeyMaterial {
    Pem { pem: String, kid: Option<String>, alg: Option<Alg> },
    Jwks(serde_json::Value),
}

impl KeyConfig {
    /// Reads the key (files included). Errors name the field and the fix.
    pub(crate) fn load(&self) -> Result<KeyMaterial, String> {
        let given = [self.pem.is_some(), self.pem_file.is_some(), self.jwks.is_some(), self.jwks_file.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err("give exactly one of pem, pem_file, jwks, jwks_file".to_owned());
        }
        if (self.jwks.is_some() || self.jwks_file.is_some()) && (self.kid.is_some() || self.alg.is_some()) {
            return Err("kid and alg apply to PEM keys only; JWKS keys carry their own".to_owned());
        }
        if let Some(pem) = &self.pem {
            return Ok(KeyMaterial::Pem { pem: pem.clone(), kid: self.kid.clone(), alg: self.alg });
        }
        if let Some(path) = &self.pem_file {
            let pem = std::fs::read_to_string(path).map_err(|e| format!("pem_file {}: {e}", path.display()))?;
            return Ok(KeyMaterial::Pem { pem, kid: self.kid.clone(), alg: self.alg });
        }
        let doc = match (&self.jwks, &self.jwks_file) {
            (Some(serde_json::Value::String(s)), _) => serde_json::from_str(s).map_err(|e| format!("jwks is not valid JSON: {e}"))?,
            (Some(v), _) => v.clone(),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("jwks_file {}: {e}", path.display()))?;
                serde_json::from_str(&text).map_err(|e| format!("jwks_file {} is not valid JSON: {e}", path.display()))?
            }
            (None, None) => return Err("no key given".to_owned()),
        };
        Ok(KeyMaterial::Jwks(doc))
    }
}
