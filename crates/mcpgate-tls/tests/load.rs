//! Loading TLS settings from files: what works, and what each broken file gets (a problem
//! naming its key and file, never the file's content).

use std::path::{Path, PathBuf};

use mcpgate_tls::{ClientAuth, ClientTls, ServerTls, TlsProblem};

fn pki(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pki").join(name)
}

fn server(cert: &str, key: &str, client_ca: Option<&str>) -> ServerTls {
    ServerTls { cert_file: pki(cert), key_file: pki(key), client_ca_file: client_ca.map(pki), client_auth: ClientAuth::Required }
}

fn keys(problems: &[TlsProblem]) -> Vec<&'static str> {
    problems.iter().map(|p| p.key).collect()
}

fn scratch(name: &str, content: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcpgate-tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write");
    path
}

#[test]
fn server_certificate_and_key_load_and_offer_h2_and_http1() {
    mcpgate_tls::install_crypto_provider();
    let config = server("server.pem", "server.key.pem", None).load().expect("loads");
    assert_eq!(config.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
}

#[test]
fn server_with_client_ca_loads_required_and_optional() {
    assert!(server("server.pem", "server.key.pem", Some("ca.pem")).load().is_ok());
    let optional = ServerTls { client_auth: ClientAuth::Optional, ..server("server.pem", "server.key.pem", Some("ca.pem")) };
    assert!(optional.load().is_ok());
}

#[test]
fn a_key_that_does_not_fit_the_certificate_is_named() {
    let problems = server("server.pem", "other.key.pem", None).load().expect_err("mismatch");
    assert_eq!(keys(&problems), ["key_file"]);
    assert!(problems[0].problem.contains("does not fit"), "{problems:?}");
}

#[test]
fn missing_and_garbage_files_are_each_named_without_their_content() {
    let garbage = scratch("garbage.pem", b"-----BEGIN CERTIFICATE-----\nnot base64 at all: SECRET-CONTENT\n-----END CERTIFICATE-----\n");
    let cfg = ServerTls {
        cert_file: garbage.clone(),
        key_file: pki("no-such.key.pem"),
        client_ca_file: Some(pki("no-such-ca.pem")),
        client_auth: ClientAuth::Required,
    };
    let problems = cfg.load().expect_err("broken");
    assert_eq!(keys(&problems), ["cert_file", "key_file", "client_ca_file"]);
    let text = format!("{problems:?}");
    assert!(text.contains("garbage.pem") && text.contains("no-such.key.pem"), "{text}");
    assert!(!text.contains("SECRET-CONTENT"), "a file's content never appears in an error: {text}");
}

#[test]
fn a_key_file_without_a_key_is_named() {
    let problems = server("server.pem", "server.pem", None).load().expect_err("no key");
    assert_eq!(keys(&problems), ["key_file"]);
    assert!(problems[0].problem.contains("no PEM private key"), "{problems:?}");
}

#[test]
fn optional_client_auth_without_a_ca_is_refused() {
    let cfg = ServerTls { client_auth: ClientAuth::Optional, ..server("server.pem", "server.key.pem", None) };
    assert_eq!(keys(&cfg.load().expect_err("no ca")), ["client_auth"]);
}

#[test]
fn client_settings_check_each_file() {
    let good = ClientTls { ca_file: Some(pki("ca.pem")), cert_file: Some(pki("client.pem")), key_file: Some(pki("client.key.pem")) };
    assert_eq!(good.check(), Ok(()));
    assert!(mcpgate_tls::http_client(Some(&good), Default::default()).is_ok());

    let half = ClientTls { cert_file: Some(pki("client.pem")), ..Default::default() };
    assert_eq!(keys(&half.check().expect_err("no key")), ["key_file"]);
    let mismatch = ClientTls { cert_file: Some(pki("client.pem")), key_file: Some(pki("other.key.pem")), ..Default::default() };
    assert_eq!(keys(&mismatch.check().expect_err("mismatch")), ["key_file"]);
    let no_ca = ClientTls { ca_file: Some(pki("client.key.pem")), ..Default::default() };
    assert_eq!(keys(&no_ca.check().expect_err("not certificates")), ["ca_file"]);
}

#[test]
fn settings_are_parsed_strictly() {
    let parsed: ClientTls = yaml_serde::from_str("ca_file: /etc/ca.pem\n").expect("parses");
    assert_eq!(parsed.ca_file, Some(PathBuf::from("/etc/ca.pem")));
    assert!(yaml_serde::from_str::<ClientTls>("ca: /etc/ca.pem\n").is_err(), "unknown keys are refused");
    let s: ServerTls = yaml_serde::from_str("cert_file: a\nkey_file: b\nclient_ca_file: c\nclient_auth: optional\n").expect("parses");
    assert_eq!(s.client_auth, ClientAuth::Optional);
}

#[test]
fn a_certificate_that_is_pem_but_not_a_certificate_is_named_as_the_certificate() {
    let broken = scratch("broken.pem", b"-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n");
    let cfg = ServerTls { cert_file: broken, key_file: pki("server.key.pem"), client_ca_file: None, client_auth: ClientAuth::Required };
    let problems = cfg.load().expect_err("not a certificate");
    assert_eq!(keys(&problems), ["cert_file"], "{problems:?}");
}
