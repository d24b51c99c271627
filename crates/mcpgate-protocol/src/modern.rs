//! Wire details of the stateless (2026-07-28) era: the per-request `_meta` keys and the
//! request-metadata headers of SEP-2243 with their Base64 sentinel encoding.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::envelope::{Envelope, ObjectWriter, json_string};

pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

pub const HEADER_METHOD: &str = "mcp-method";
pub const HEADER_NAME: &str = "mcp-name";
pub const HEADER_PARAM_PREFIX: &str = "mcp-param-";

/// Methods that exist only in the session-based era; a modern request for one gets 404/-32601.
pub const LEGACY_ONLY_METHODS: &[&str] = &["initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"];

/// The only requests that may answer `resultType: "input_required"`.
pub fn may_require_input(method: &str) -> bool {
    matches!(method, "tools/call" | "prompts/get" | "resources/read")
}

/// The body member `Mcp-Name` mirrors for `method`, if any.
pub fn name_member(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        "tasks/get" | "tasks/update" | "tasks/cancel" => Some("taskId"),
        _ => None,
    }
}

const SENTINEL_START: &str = "=?base64?";
const SENTINEL_END: &str = "?=";

/// A header value for `value`: as-is when it is plain visible ASCII (spaces inside allowed),
/// else (or when it looks like the sentinel itself) the `=?base64?…?=` form.
pub fn encode_header_value(value: &str) -> Cow<'_, str> {
    let looks_encoded = value.starts_with(SENTINEL_START) && value.ends_with(SENTINEL_END);
    let plain = !value.is_empty() && value.bytes().all(is_header_text) && !value.starts_with([' ', '\t']) && !value.ends_with([' ', '\t']) && !looks_encoded;
    if plain { Cow::Borrowed(value) } else { Cow::Owned(format!("{SENTINEL_START}{}{SENTINEL_END}", STANDARD.encode(value.as_bytes()))) }
}

/// Visible ASCII, space or tab: what a header value may carry as it is.
fn is_header_text(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b)
}

/// Why a header value could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValueError {
    /// Bytes outside visible ASCII, space and tab.
    InvalidCharacters,
    /// The sentinel form with a payload that is not Base64 of UTF-8.
    BadBase64,
}

/// The value a header carries, sentinel-decoded.
pub fn decode_header_value(raw: &[u8]) -> Result<Cow<'_, str>, HeaderValueError> {
    if !raw.iter().copied().all(is_header_text) {
        return Err(HeaderValueError::InvalidCharacters);
    }
    let s = std::str::from_utf8(raw).map_err(|_| HeaderValueError::InvalidCharacters)?;
    match s.strip_prefix(SENTINEL_START).and_then(|r| r.strip_suffix(SENTINEL_END)) {
        Some(b64) => {
            let bytes = STANDARD.decode(b64).map_err(|_| HeaderValueError::BadBase64)?;
            String::from_utf8(bytes).map(Cow::Owned).map_err(|_| HeaderValueError::BadBase64)
        }
        None => Ok(Cow::Borrowed(s)),
    }
}

/// One `x-mcp-header` declaration of a tool: header suffix and the property path it mirrors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    /// The name after `Mcp-Param-`, as declared.
    pub name: String,
    /// The chain of `properties` keys from the schema root.
    pub path: Vec<String>,
    pub kind: ParamKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    String,
    Integer,
    Boolean,
}

/// The `x-mcp-header` declarations of an `inputSchema`, or why the tool is invalid (a bad
/// token, a duplicate, a non-primitive type, or a declaration not reachable through
/// `properties` alone).
pub fn param_headers(schema: &serde_json::Value) -> Result<Vec<ParamHeader>, String> {
    let mut out = Vec::new();
    walk(schema, &mut Vec::new(), true, &mut out)?;
    let mut seen = std::collections::HashSet::new();
    for h in &out {
        if !seen.insert(h.name.to_ascii_lowercase()) {
            return Err(format!("x-mcp-header {:?} is declared twice", h.name));
        }
    }
    Ok(out)
}

fn walk(node: &serde_json::Value, path: &mut Vec<String>, reachable: bool, out: &mut Vec<ParamHeader>) -> Result<(), String> {
    let Some(obj) = node.as_object() else {
        if let Some(items) = node.as_array() {
            for item in items {
                walk(item, path, false, out)?;
            }
        }
        return Ok(());
    };
    if let Some(h) = obj.get("x-mcp-header") {
        let name = h.as_str().ok_or("x-mcp-header must be a string")?;
        if !reachable || path.is_empty() {
            return Err(format!("x-mcp-header {name:?} is not reachable through properties alone"));
        }
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(format!("x-mcp-header {name:?} is not an HTTP token"));
        }
        let kind = match obj.get("type").and_then(|t| t.as_str()) {
            Some("string") => ParamKind::String,
            Some("integer") => ParamKind::Integer,
            Some("boolean") => ParamKind::Boolean,
            other => return Err(format!("x-mcp-header {name:?} is on a property of type {other:?}; only string, integer and boolean are allowed")),
        };
        out.push(ParamHeader { name: name.to_owned(), path: path.clone(), kind });
    }
    for (key, child) in obj {
        if key == "properties" {
            if let Some(props) = child.as_object() {
                for (pname, pschema) in props {
                    path.push(pname.clone());
                    walk(pschema, path, reachable, out)?;
                    path.pop();
                }
            }
        } else if key != "x-mcp-header" && (child.is_object() || child.is_array()) {
            walk(child, path, false, out)?;
        }
    }
    Ok(())
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The header value a tool argument is mirrored as (`None`: absent or null, no header).
pub fn param_value(arguments: Option<&serde_json::Value>, h: &ParamHeader) -> Option<String> {
    let mut v = arguments?;
    for key in &h.path {
        v = v.get(key)?;
    }
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(n.as_i64().map_or_else(|| n.to_string(), |i| i.to_string())),
        other => Some(other.to_string()),
    }
}

/// Whether a header value equals the body's value; integers compare numerically.
pub fn param_matches(h: &ParamHeader, header: &str, body: &str) -> bool {
    match h.kind {
        ParamKind::Integer => match (integer_of(header), body.parse::<i128>()) {
            (Some(a), Ok(b)) => a == b,
            _ => header == body,
        },
        _ => header == body,
    }
}

/// A header's integer: decimal digits exactly, or a plain decimal with a zero fraction
/// (`42.0`) when it is within JavaScript's safe range. Exponents and anything else: none.
fn integer_of(header: &str) -> Option<i128> {
    let h = header.trim();
    if let Ok(i) = h.parse::<i128>() {
        return Some(i);
    }
    let (int, frac) = h.split_once('.')?;
    if frac.is_empty() || !frac.bytes().all(|b| b == b'0') {
        return None;
    }
    let i = int.parse::<i128>().ok()?;
    (i.abs() < (1i128 << 53)).then_some(i)
}

/// `params._meta` for a request the gateway sends to a modern backend on behalf of a legacy
/// client (or for itself).
pub fn request_meta(client_capabilities: &str, client_info: &str) -> String {
    let mut w = ObjectWriter::new();
    w.raw(crate::versions::META_PROTOCOL_VERSION, &json_string(crate::versions::MODERN_VERSION))
        .raw(META_CLIENT_CAPABILITIES, client_capabilities)
        .raw(META_CLIENT_INFO, client_info);
    String::from_utf8(w.finish()).unwrap_or_default()
}

/// `params` with `_meta` merged in: keys already in the request's `_meta` win.
pub fn with_meta(params: Option<&str>, meta: &str) -> String {
    let params = params.unwrap_or("{}");
    let Ok(env) = Envelope::parse(params.as_bytes()) else { return params.to_owned() };
    let merged = match env.get("_meta").and_then(|m| Envelope::parse_raw(m).ok()) {
        Some(existing) => {
            let Ok(ours) = Envelope::parse(meta.as_bytes()) else { return params.to_owned() };
            let add: Vec<(&str, Option<&str>)> = ours.members().filter(|(k, _)| !existing.has(k)).map(|(k, v)| (k, Some(v.get()))).collect();
            String::from_utf8(existing.rewrite(&add)).unwrap_or_default()
        }
        None => meta.to_owned(),
    };
    String::from_utf8(env.rewrite(&[("_meta", Some(&merged))])).unwrap_or_default()
}

/// `params` for a legacy backend: the per-request protocol keys of `_meta` removed (a
/// session carries them), everything else (progress token, trace context) kept.
pub fn without_protocol_meta(params: &str) -> String {
    let Ok(env) = Envelope::parse(params.as_bytes()) else { return params.to_owned() };
    let Some(meta) = env.get("_meta").and_then(|m| Envelope::parse_raw(m).ok()) else { return params.to_owned() };
    let drop = [crate::versions::META_PROTOCOL_VERSION, META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_LOG_LEVEL];
    let remove: Vec<(&str, Option<&str>)> = drop.iter().map(|k| (*k, None)).collect();
    let meta = String::from_utf8(meta.rewrite(&remove)).unwrap_or_default();
    let replacement = if meta == "{}" { None } else { Some(meta.as_str()) };
    String::from_utf8(env.rewrite(&[("_meta", replacement)])).unwrap_or_default()
}

/// Syslog severities as MCP names them, least severe first.
const LEVELS: &[&str] = &["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];

/// A log level's rank (0 = debug … 7 = emergency); `None` for a name MCP does not define.
pub fn level_rank(level: &str) -> Option<u8> {
    LEVELS.iter().position(|l| *l == level).map(|p| p as u8)
}

/// The Tasks extension's identifier (capabilities `extensions` key).
pub const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn header_values_use_the_sentinel_only_when_needed() {
        assert_eq!(encode_header_value("us-west1"), "us-west1");
        assert_eq!(encode_header_value("Hello, 世界"), "=?base64?SGVsbG8sIOS4lueVjA==?=");
        assert_eq!(encode_header_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(encode_header_value("line1\nline2"), "=?base64?bGluZTEKbGluZTI=?=");
        assert_eq!(encode_header_value("=?base64?literal?="), "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=");
        for v in ["us-west1", "Hello, 世界", " padded ", "line1\nline2", "=?base64?literal?="] {
            assert_eq!(decode_header_value(encode_header_value(v).as_bytes()).as_deref(), Ok(v));
        }
    }

    #[test]
    fn bad_header_values_are_named() {
        assert_eq!(decode_header_value(b"a\x01b"), Err(HeaderValueError::InvalidCharacters));
        assert_eq!(decode_header_value("caf\u{e9}".as_bytes()), Err(HeaderValueError::InvalidCharacters));
        assert_eq!(decode_header_value(b"=?base64?!!!?="), Err(HeaderValueError::BadBase64));
    }

    #[test]
    fn param_headers_follow_properties_only() {
        let schema = json!({"type":"object","properties":{
            "region":{"type":"string","x-mcp-header":"Region"},
            "opts":{"type":"object","properties":{"dry":{"type":"boolean","x-mcp-header":"Dry-Run"}}},
            "n":{"type":"integer","x-mcp-header":"N"}}});
        let hs = param_headers(&schema).expect("valid");
        assert_eq!(hs.len(), 3);
        let args = json!({"region":"eu","opts":{"dry":true},"n":42});
        let by = |n: &str| hs.iter().find(|h| h.name == n).cloned().expect("declared");
        assert_eq!(param_value(Some(&args), &by("Region")).as_deref(), Some("eu"));
        assert_eq!(param_value(Some(&args), &by("Dry-Run")).as_deref(), Some("true"));
        assert_eq!(param_value(Some(&args), &by("N")).as_deref(), Some("42"));
        assert!(param_matches(&by("N"), "42.0", "42"));
        assert!(!param_matches(&by("N"), "4.2e1", "42"));
        assert!(!param_matches(&by("N"), "42.5", "42"));
        assert!(!param_matches(&by("N"), "9007199254740992", "9007199254740993"));
        assert_eq!(param_value(Some(&json!({})), &by("Region")), None);
    }

    #[test]
    fn invalid_param_headers_make_the_tool_invalid() {
        let in_items = json!({"type":"object","properties":{"xs":{"type":"array","items":{"type":"string","x-mcp-header":"X"}}}});
        assert!(param_headers(&in_items).is_err());
        let number = json!({"type":"object","properties":{"x":{"type":"number","x-mcp-header":"X"}}});
        assert!(param_headers(&number).is_err());
        let dup = json!({"type":"object","properties":{"a":{"type":"string","x-mcp-header":"X"},"b":{"type":"string","x-mcp-header":"x"}}});
        assert!(param_headers(&dup).is_err());
        let bad_token = json!({"type":"object","properties":{"a":{"type":"string","x-mcp-header":"a b"}}});
        assert!(param_headers(&bad_token).is_err());
        let in_any_of = json!({"type":"object","anyOf":[{"properties":{"a":{"type":"string","x-mcp-header":"A"}}}]});
        assert!(param_headers(&in_any_of).is_err());
    }

    #[test]
    fn meta_is_merged_without_overriding_the_callers_keys() {
        let meta = request_meta("{}", r#"{"name":"g","version":"1"}"#);
        let out = with_meta(Some(r#"{"name":"t","_meta":{"progressToken":7}}"#), &meta);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["_meta"]["progressToken"], 7);
        assert_eq!(v["_meta"]["io.modelcontextprotocol/protocolVersion"], "2026-07-28");
        assert_eq!(v["name"], "t");
        let bare = with_meta(None, &meta);
        assert!(bare.contains("clientCapabilities"));
    }

    #[test]
    fn legacy_backends_get_no_protocol_meta_but_keep_the_rest() {
        let modern = r#"{"name":"t","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"progressToken":"p","traceparent":"00-ab-cd-01"}}"#;
        assert_eq!(without_protocol_meta(modern), r#"{"name":"t","_meta":{"progressToken":"p","traceparent":"00-ab-cd-01"}}"#);
        let only = r#"{"name":"t","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#;
        assert_eq!(without_protocol_meta(only), r#"{"name":"t"}"#);
    }
}
