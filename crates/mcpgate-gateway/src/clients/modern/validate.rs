//! Reading and checking a modern request: its per-request `_meta` and its SEP-2243 headers,
//! compared with the body and with the names the gateway exposes. The body is what the
//! gateway acts on; headers are only ever checked against it.

use std::borrow::Cow;

use axum::http::header::{AsHeaderName, HeaderName};
use axum::http::{HeaderMap, StatusCode};
use mcpgate_protocol::envelope::{Envelope, json_string, raw_str};
use mcpgate_protocol::modern::{
    HEADER_METHOD, HEADER_NAME, HEADER_PARAM_PREFIX, HeaderValueError, META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_LOG_LEVEL, decode_header_value,
    name_member, param_matches, param_value,
};
use mcpgate_protocol::versions::{META_PROTOCOL_VERSION, MODERN_VERSION};
use mcpgate_protocol::{ErrorCode, RpcError};

use crate::request::ModernRequest;
use crate::session::ClientCaps;
use crate::state::Shared;

type Refusal = (StatusCode, RpcError, Option<String>);

impl ModernRequest {
    /// Checks `env` against its headers.
    /// The params come back parsed too, for the caller to route on without parsing them again.
    pub fn parse<'a>(shared: &Shared, headers: &HeaderMap, env: &Envelope<'a>) -> Result<(Self, Envelope<'a>), Refusal> {
        let id = env.id().map(|i| i.get().to_owned());
        let refuse = |status, code, msg: String| (status, RpcError::new(code, msg), id.clone());
        let method = env.method().ok_or_else(|| refuse(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, "method must be a string".into()))?.into_owned();
        let header_version = match header(headers, crate::front::checks::VERSION) {
            None => return Err(mismatch(&id, "the MCP-Protocol-Version header is required".into())),
            Some(Err(_)) => return Err(mismatch(&id, "the MCP-Protocol-Version header has invalid characters".into())),
            Some(Ok(h)) => h,
        };
        // Both split already by the parse of the body, in the common case.
        let params =
            env.params_object().ok().flatten().ok_or_else(|| refuse(StatusCode::BAD_REQUEST, ErrorCode::InvalidParams, "params must be an object".into()))?;
        let meta = params
            .object("_meta")
            .and_then(Result::ok)
            .ok_or_else(|| refuse(StatusCode::BAD_REQUEST, ErrorCode::InvalidParams, "params._meta must be an object".into()))?;
        let Some(version) = meta.get(META_PROTOCOL_VERSION).and_then(raw_str) else {
            return Err(refuse(StatusCode::BAD_REQUEST, ErrorCode::InvalidParams, format!("_meta[\"{META_PROTOCOL_VERSION}\"] must be a string")));
        };
        let client_caps = meta.get(META_CLIENT_CAPABILITIES);
        if client_caps.is_none_or(|c| !c.get().starts_with('{')) {
            return Err(refuse(StatusCode::BAD_REQUEST, ErrorCode::InvalidParams, format!("_meta[\"{META_CLIENT_CAPABILITIES}\"] must be an object")));
        }
        if header_version != version {
            return Err(mismatch(&id, format!("MCP-Protocol-Version header {header_version:?} does not match _meta protocolVersion {version:?}")));
        }
        if version != MODERN_VERSION {
            let data = format!(r#"{{"supported":["{MODERN_VERSION}"],"requested":{}}}"#, json_string(&version));
            let e = RpcError::new(ErrorCode::UnsupportedVersion, format!("Unsupported protocol version: {version}")).with_data(data);
            return Err((StatusCode::BAD_REQUEST, e, id));
        }
        let capabilities = client_caps.map_or_else(|| "{}".to_owned(), |c| c.get().to_owned());
        let client_info = meta.get(META_CLIENT_INFO).map_or_else(|| r#"{"name":"unknown-client","version":"0"}"#.to_owned(), |c| c.get().to_owned());
        let log_level = match meta.get(META_LOG_LEVEL) {
            None => None,
            Some(l) => Some(
                raw_str(l)
                    .and_then(|l| mcpgate_protocol::modern::level_rank(&l))
                    .ok_or_else(|| refuse(StatusCode::BAD_REQUEST, ErrorCode::InvalidParams, format!("_meta[\"{META_LOG_LEVEL}\"] must be a log level")))?,
            ),
        };
        match header(headers, METHOD) {
            None => return Err(mismatch(&id, "the Mcp-Method header is required".into())),
            Some(Err(_)) => return Err(mismatch(&id, "the Mcp-Method header has invalid characters".into())),
            Some(Ok(h)) if h != method => return Err(mismatch(&id, format!("Mcp-Method header {h:?} does not match body method {method:?}"))),
            Some(Ok(_)) => {}
        }
        let mut name = None;
        if let Some(member) = name_member(&method) {
            let body_value = params.get(member).and_then(raw_str);
            name = body_value.clone();
            match (header(headers, NAME), body_value) {
                (None, _) => return Err(mismatch(&id, "the Mcp-Name header is required".into())),
                (Some(Err(e)), _) => return Err(mismatch(&id, format!("the Mcp-Name header {}", describe(e)))),
                (Some(Ok(h)), Some(b)) if h != b => {
                    return Err(mismatch(&id, format!("Mcp-Name header {h:?} does not match body {member} {b:?}")));
                }
                (Some(Ok(_)), None) => return Err(refuse(StatusCode::BAD_REQUEST, ErrorCode::InvalidParams, format!("params.{member} must be a string"))),
                (Some(Ok(_)), Some(_)) => {}
            }
        }
        let checked_name = if method == "tools/call" { name } else { None };
        let req = Self {
            id: id.unwrap_or_else(|| "null".into()),
            method,
            params: env.params().map_or_else(|| b"{}".to_vec(), |p| p.get().as_bytes().to_vec()),
            caps: client_caps.map_or_else(ClientCaps::default, ClientCaps::of_raw),
            capabilities,
            client_info,
            log_level,
        };
        if let Some(name) = checked_name {
            req.check_param_headers(shared, headers, &name).map_err(|m| mismatch(&Some(req.id.clone()), m))?;
        }
        Ok((req, params))
    }

    /// `Mcp-Param-*` headers against the arguments, for the tool's declared headers. Headers
    /// the tool does not declare are ignored (forwarded to nobody: the gateway recomputes).
    fn check_param_headers(&self, shared: &Shared, headers: &HeaderMap, name: &str) -> Result<(), String> {
        let catalog = shared.catalog.load();
        let Some(entry) = catalog.tool(name) else { return Ok(()) };
        if entry.param_headers.is_empty() {
            return Ok(());
        }
        let params = self.params_value();
        let args = params.get("arguments");
        for h in &entry.param_headers {
            let header_name = format!("{HEADER_PARAM_PREFIX}{}", h.name.to_ascii_lowercase());
            let sent = header(headers, &header_name);
            match (param_value(args, h), sent) {
                (None, None) => {}
                (Some(_), None) => return Err(format!("the Mcp-Param-{} header is required: the arguments carry its value", h.name)),
                (None, Some(_)) => return Err(format!("Mcp-Param-{} is sent but the arguments carry no value for it", h.name)),
                (Some(_), Some(Err(e))) => return Err(format!("the Mcp-Param-{} header {}", h.name, describe(e))),
                (Some(body), Some(Ok(value))) if !param_matches(h, &value, &body) => {
                    return Err(format!("Mcp-Param-{} header {value:?} does not match the argument value {body:?}", h.name));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Parsed once: a lookup by `&str` validates and lowercases the name first.
const METHOD: HeaderName = HeaderName::from_static(HEADER_METHOD);
const NAME: HeaderName = HeaderName::from_static(HEADER_NAME);

fn header<K: AsHeaderName>(headers: &HeaderMap, name: K) -> Option<Result<Cow<'_, str>, HeaderValueError>> {
    headers.get(name).map(|v| decode_header_value(v.as_bytes()))
}

fn describe(e: HeaderValueError) -> &'static str {
    match e {
        HeaderValueError::InvalidCharacters => "has invalid characters",
        HeaderValueError::BadBase64 => "is not valid =?base64?…?= encoding",
    }
}

fn mismatch(id: &Option<String>, message: String) -> Refusal {
    (StatusCode::BAD_REQUEST, RpcError::new(ErrorCode::HeaderMismatch, format!("Header mismatch: {message}")), id.clone())
}
