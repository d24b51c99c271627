//! TLS for mcpgate, in one place: reading PEM files, the front door's server configuration
//! (certificate, key, optional client-certificate verification), and the TLS settings of the
//! gateway's outbound clients (custom CA bundles and client certificates for backends, Vault
//! and the IdP).
//!
//! Module map: `pem` (files → DER, errors naming the file), `server` (`tls:` → a rustls
//! `ServerConfig`), `client` (`tls: {ca_file, cert_file, key_file}` on an outbound peer),
//! `outbound` (the gateway's standard HTTP client with those settings).
//!
//! Never logs, prints or returns key material: errors name the file and what is wrong with it.
//! Exactly one crypto provider (aws-lc-rs) is compiled in and installed by
//! [`install_crypto_provider`].

mod client;
mod outbound;
mod pem;
mod server;

pub use client::ClientTls;
pub use outbound::{OutboundOptions, http_client};
pub use server::{ClientAuth, ServerTls};

/// One problem with a TLS setting: the key it belongs to (relative to the `tls` section, e.g.
/// `cert_file`), what is wrong, and how to fix it. The caller prefixes the section's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem} (fix: {fix})")]
pub struct TlsProblem {
    pub key: &'static str,
    pub problem: String,
    pub fix: String,
}

impl TlsProblem {
    pub(crate) fn new(key: &'static str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { key, problem: problem.into(), fix: fix.into() }
    }
}

/// Installs aws-lc-rs as the process's rustls crypto provider. Idempotent; call it once at
/// start-up (and in tests that build TLS clients) so no library has to guess.
pub fn install_crypto_provider() {
    // Err only when a provider is already installed, which is what we want either way.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Why a certificate chain and a key do not make a usable pair, attributed to the right file.
pub(crate) fn pair_problem(e: &rustls::Error, cert: &std::path::Path, key: &std::path::Path, what: &str) -> TlsProblem {
    match e {
        rustls::Error::InvalidCertificate(why) => {
            TlsProblem::new("cert_file", format!("{}: not a valid certificate ({why:?})", cert.display()), "point it at a PEM certificate chain, leaf first")
        }
        rustls::Error::InconsistentKeys(_) => {
            TlsProblem::new("key_file", format!("{} does not fit {}", key.display(), cert.display()), format!("use the private key of the {what}"))
        }
        _ => TlsProblem::new("key_file", format!("{}: not a usable private key", key.display()), "use an RSA, EC (P-256/P-384) or Ed25519 key in PEM"),
    }
}

pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    rustls::crypto::CryptoProvider::get_default().cloned().unwrap_or_else(|| std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}
