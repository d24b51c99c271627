//! The front door's TLS: the `tls:` section (certificate chain, private key, optional CA bundle
//! for client certificates) turned into a rustls `ServerConfig` that offers HTTP/2 and
//! HTTP/1.1 by ALPN. Loading is all-or-nothing: a config is returned only when every file
//! reads, parses and the key matches the certificate, so a reload can keep the previous one.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;

use crate::{TlsProblem, pem};

/// `tls:` of the gateway: serve HTTPS on `listen`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// The certificate chain (PEM, leaf first). Reloaded when the file changes.
    pub cert_file: PathBuf,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1). Reloaded with the chain.
    pub key_file: PathBuf,
    /// CA certificates (PEM) that sign acceptable client certificates: with it, callers
    /// present a certificate (mTLS). Reloaded when the file changes.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: `required` (default; no certificate, no connection) or
    /// `optional` (a certificate, when sent, must verify).
    #[serde(default)]
    pub client_auth: ClientAuth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    #[default]
    Required,
    Optional,
}

impl ServerTls {
    /// Every file this configuration reads, for watching.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.cert_file.clone(), self.key_file.clone()];
        files.extend(self.client_ca_file.clone());
        files
    }

    /// Reads the files and builds the server config; every problem is reported.
    pub fn load(&self) -> Result<Arc<ServerConfig>, Vec<TlsProblem>> {
        let mut problems = Vec::new();
        let chain = pem::certificates(&self.cert_file)
            .map_err(|e| problems.push(TlsProblem::new("cert_file", e, "point it at a PEM certificate chain, leaf first")))
            .ok();
        let key =
            pem::private_key(&self.key_file).map_err(|e| problems.push(TlsProblem::new("key_file", e, "point it at the certificate's PEM private key"))).ok();
        let provider = crate::provider();
        let verifier = match &self.client_ca_file {
            None => None,
            Some(path) => match client_verifier(path, self.client_auth, &provider) {
                Ok(v) => Some(v),
                Err(e) => {
                    problems.push(TlsProblem::new("client_ca_file", e, "point it at a PEM bundle of the CAs that sign client certificates"));
                    None
                }
            },
        };
        if self.client_ca_file.is_none() && self.client_auth == ClientAuth::Optional {
            problems.push(TlsProblem::new("client_auth", "optional client certificates need client_ca_file", "set client_ca_file or remove client_auth"));
        }
        let (Some(chain), Some(key)) = (chain, key) else { return Err(problems) };
        if !problems.is_empty() {
            return Err(problems);
        }
        let builder = match ServerConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
            Ok(b) => b,
            Err(e) => return Err(vec![TlsProblem::new("cert_file", format!("TLS setup failed: {e}"), "report this as a bug")]),
        };
        let builder = match verifier {
            Some(v) => builder.with_client_cert_verifier(v),
            None => builder.with_no_client_auth(),
        };
        let mut config =
            builder.with_single_cert(chain, key).map_err(|e| vec![crate::pair_problem(&e, &self.cert_file, &self.key_file, "leaf certificate")])?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn client_verifier(
    path: &std::path::Path,
    auth: ClientAuth,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in pem::certificates(path)? {
        roots.add(cert).map_err(|e| format!("{}: a certificate is not a usable CA: {e}", path.display()))?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = if auth == ClientAuth::Optional { builder.allow_unauthenticated() } else { builder };
    builder.build().map_err(|e| format!("{}: {e}", path.display()))
}
