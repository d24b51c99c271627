//! Envoy's header representations ↔ `http::HeaderMap`, and the header options both services
//! answer with. Pseudo-headers (`:method`, `:path`, `:authority`, `:status`) are read out;
//! `:authority` becomes `host` so the gateway's checks see what a direct client would send.

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderMap as EnvoyHeaders, HeaderValue as EnvoyValue, HeaderValueOption};
use http::{HeaderMap, HeaderName, HeaderValue};

/// A request or response as its headers describe it.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    pub method: Option<http::Method>,
    pub path: Option<String>,
    pub authority: Option<String>,
    pub status: Option<u16>,
    pub headers: HeaderMap,
}

/// A header Envoy sent that is not a valid HTTP header (name or value).
#[derive(Debug, thiserror::Error)]
#[error("header {0:?} is not a valid HTTP header")]
pub struct BadHeader(pub String);

/// Reads Envoy's `HeaderMap` (values in `raw_value`, or `value` from older Envoys).
pub fn from_envoy(map: Option<&EnvoyHeaders>) -> Result<Parsed, BadHeader> {
    let mut out = Parsed::default();
    for h in map.map_or(&[][..], |m| m.headers.as_slice()) {
        let value: &[u8] = if h.raw_value.is_empty() { h.value.as_bytes() } else { &h.raw_value };
        add(&mut out, &h.key, value)?;
    }
    Ok(out)
}

/// Reads ext_authz's `headers` map (string values).
pub fn from_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a [u8])>) -> Result<Parsed, BadHeader> {
    let mut out = Parsed::default();
    for (k, v) in pairs {
        add(&mut out, k, v)?;
    }
    Ok(out)
}

fn add(out: &mut Parsed, key: &str, value: &[u8]) -> Result<(), BadHeader> {
    let text = || std::str::from_utf8(value).map(str::to_owned).map_err(|_| BadHeader(key.to_owned()));
    match key {
        ":method" => out.method = Some(http::Method::from_bytes(value).map_err(|_| BadHeader(key.to_owned()))?),
        ":path" => out.path = Some(text()?),
        ":authority" => {
            out.authority = Some(text()?);
            out.headers.insert(http::header::HOST, HeaderValue::from_bytes(value).map_err(|_| BadHeader(key.to_owned()))?);
        }
        ":status" => out.status = text()?.parse().ok(),
        k if k.starts_with(':') => {}
        k => {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| BadHeader(k.to_owned()))?;
            let value = HeaderValue::from_bytes(value).map_err(|_| BadHeader(k.to_owned()))?;
            out.headers.append(name, value);
        }
    }
    Ok(())
}

/// "Set this header, replacing any": for ext_proc (value in `raw_value`, as Envoy sends them).
pub fn set_raw(name: &str, value: &[u8]) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(EnvoyValue { key: name.to_owned(), value: String::new(), raw_value: value.to_vec() }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

/// "Set this header, replacing any": for ext_authz (value in `value`).
pub fn set_text(name: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(EnvoyValue { key: name.to_owned(), value: value.to_owned(), raw_value: Vec::new() }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}
