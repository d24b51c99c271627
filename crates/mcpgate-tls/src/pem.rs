//! PEM files into DER: certificate chains and bundles, and one private key. Errors name the
//! file and the problem in fixed words; they never quote the file's content.

use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Every certificate in a PEM file, in order. Fails on an unreadable file, broken PEM, or a
/// file holding no certificate.
pub(crate) fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>().map_err(|e| format!("{}: {}", path.display(), why(&e)))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate (BEGIN CERTIFICATE) in the file", path.display()));
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub(crate) fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => format!("{}: no PEM private key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) in the file", path.display()),
        other => format!("{}: {}", path.display(), why(&other)),
    })
}

/// The file's bytes, for the few callers that hand PEM on as it is.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// A PEM error in fixed words (the parser's own messages may quote a line of the file).
fn why(e: &pem::Error) -> &'static str {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64",
        pem::Error::NoItemsFound => "no PEM item of the expected kind",
        pem::Error::SectionTooLarge => "a PEM section is too large",
        _ => "not a readable PEM file",
    }
}
