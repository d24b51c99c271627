//! Keys made fresh for each fuzzing process (P-256 and Ed25519, generated with aws-lc-rs):
//! nothing here is committed key material.
#![allow(dead_code)] // each target uses only some of these

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use base64::Engine as _;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};

pub struct TestKey {
    pub alg: Algorithm,
    pub kid: &'static str,
    pub pem: String,
    pub encoding: EncodingKey,
}

impl TestKey {
    pub fn p256(kid: &'static str) -> Self {
        let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).expect("P-256 key");
        Self::from_der(Algorithm::ES256, kid, der.as_ref())
    }

    pub fn ed25519(kid: &'static str) -> Self {
        let der = Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new()).expect("Ed25519 key");
        Self::from_der(Algorithm::EdDSA, kid, der.as_ref())
    }

    fn from_der(alg: Algorithm, kid: &'static str, der: &[u8]) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("base64 is ASCII")).collect();
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"));
        let encoding = match alg {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
            _ => EncodingKey::from_ec_pem(pem.as_bytes()),
        }
        .expect("generated key parses");
        Self { alg, kid, pem, encoding }
    }

    /// The public key as a JWK with this key's `kid` and `alg`.
    pub fn jwk(&self) -> serde_json::Value {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.alg).expect("public JWK");
        jwk.common.key_id = Some(self.kid.to_owned());
        serde_json::to_value(jwk).expect("JWK as JSON")
    }

    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let mut header = jsonwebtoken::Header::new(self.alg);
        header.kid = Some(self.kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing works")
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
