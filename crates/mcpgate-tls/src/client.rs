//! TLS towards one outbound peer (a backend, Vault, the IdP): a CA bundle trusted instead of
//! the system's roots, and a client certificate for mTLS. `check` reads the files the way the
//! client will, so `mcpgate check` reports a broken file with its key.

use std::path::PathBuf;

use serde::Deserialize;

use crate::{TlsProblem, pem};

/// `tls:` of an outbound peer. Every field is optional; without `ca_file` the system's roots
/// are trusted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// CA certificates (PEM bundle) trusted for this peer, instead of the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM, leaf first) presented to the peer; needs `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM); needs `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

impl ClientTls {
    /// Reads and checks every file; every problem is reported.
    pub fn check(&self) -> Result<(), Vec<TlsProblem>> {
        let mut problems = Vec::new();
        if let Some(ca) = &self.ca_file {
            match pem::certificates(ca) {
                Ok(certs) => {
                    let mut roots = rustls::RootCertStore::empty();
                    if let Some(e) = certs.into_iter().find_map(|c| roots.add(c).err()) {
                        problems.push(TlsProblem::new(
                            "ca_file",
                            format!("{}: a certificate is not a usable CA: {e}", ca.display()),
                            "use PEM CA certificates",
                        ));
                    }
                }
                Err(e) => problems.push(TlsProblem::new("ca_file", e, "point it at a PEM bundle of CA certificates")),
            }
        }
        match (&self.cert_file, &self.key_file) {
            (None, None) => {}
            (Some(_), None) => problems.push(TlsProblem::new("key_file", "cert_file is set without key_file", "add the client certificate's key_file")),
            (None, Some(_)) => problems.push(TlsProblem::new("cert_file", "key_file is set without cert_file", "add the client certificate's cert_file")),
            (Some(cert), Some(key)) => {
                let chain = pem::certificates(cert).map_err(|e| problems.push(TlsProblem::new("cert_file", e, "point it at a PEM certificate chain"))).ok();
                let key_der = pem::private_key(key).map_err(|e| problems.push(TlsProblem::new("key_file", e, "point it at a PEM private key"))).ok();
                if let (Some(chain), Some(key_der)) = (chain, key_der)
                    && let Err(e) = rustls::sign::CertifiedKey::from_der(chain, key_der, &crate::provider())
                {
                    problems.push(crate::pair_problem(&e, cert, key, "client certificate"));
                }
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// Applies the settings to a reqwest builder (files are read now).
    pub fn apply(&self, mut builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, String> {
        if let Some(ca) = &self.ca_file {
            let bundle = pem::read(ca)?;
            let certs = reqwest::Certificate::from_pem_bundle(&bundle).map_err(|e| format!("{}: {e}", ca.display()))?;
            if certs.is_empty() {
                return Err(format!("{}: no PEM certificate in the file", ca.display()));
            }
            builder = builder.tls_certs_only(certs);
        }
        if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
            let mut pem = pem::read(key)?;
            pem.push(b'\n');
            pem.extend(pem::read(cert)?);
            let identity =
                reqwest::Identity::from_pem(&pem).map_err(|_| format!("{} with {}: not a usable client certificate and key", cert.display(), key.display()))?;
            builder = builder.identity(identity);
        }
        Ok(builder)
    }
}
