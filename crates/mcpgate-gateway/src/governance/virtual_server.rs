//! Virtual servers: an MCP path that shows a chosen subset of the catalog. Selection is by
//! server, exposed-name glob or regex, and tool annotations; it only ever narrows what the
//! caller's permissions allow (both are checked, on lists and on calls). A virtual server may
//! add token requirements (scopes, audience) and has its own RFC 9728 metadata.
//!
//! Never widens access: an item is shown only if an include selector matches and no exclude
//! selector does; an empty include list shows nothing.

use std::sync::Arc;

use mcpgate_auth::{AuthError, VerifiedIdentity};
use mcpgate_protocol::names::ServerName;
use regex::Regex;
use serde_json::{Map, Value};

use super::glob;
use crate::catalog::{Entry, ItemKind};
use crate::config::{GatewayConfig, Selector, SelectorKind, VirtualServerConfig};

/// A compiled virtual server.
#[derive(Debug)]
pub struct VirtualServer {
    pub name: Arc<str>,
    pub path: String,
    include: Vec<Compiled>,
    exclude: Vec<Compiled>,
    pub required_scopes: Vec<String>,
    pub audiences: Vec<String>,
    /// This virtual server's resource identifier (its public URL).
    pub resource: String,
    /// Where its RFC 9728 metadata is published.
    pub metadata_url: String,
}

#[derive(Debug)]
struct Compiled {
    kind: Option<SelectorKind>,
    server: Option<String>,
    name: Option<String>,
    regex: Option<Regex>,
    annotations: Option<Map<String, Value>>,
}

impl Compiled {
    fn new(s: &Selector) -> Result<Self, String> {
        let regex = s.regex.as_deref().map(Regex::new).transpose().map_err(|e| e.to_string())?;
        Ok(Self { kind: s.kind, server: s.server.clone(), name: s.name.clone(), regex, annotations: s.annotations.clone() })
    }

    fn matches(&self, kind: ItemKind, server: &ServerName, exposed: &str, annotations: Option<&Value>) -> bool {
        let kind_ok = match self.kind {
            None => true,
            Some(SelectorKind::Tool) => kind == ItemKind::Tool,
            Some(SelectorKind::Prompt) => kind == ItemKind::Prompt,
            Some(SelectorKind::Resource) => matches!(kind, ItemKind::Resource | ItemKind::ResourceTemplate),
        };
        kind_ok
            && self.server.as_deref().is_none_or(|s| s == server.as_str())
            && self.name.as_deref().is_none_or(|g| glob::matches(g, exposed))
            && self.regex.as_ref().is_none_or(|r| r.is_match(exposed))
            && self.annotations.as_ref().is_none_or(|want| {
                let have = annotations.and_then(Value::as_object);
                want.iter().all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
            })
    }
}

impl VirtualServer {
    pub fn compile(config: &GatewayConfig, v: &VirtualServerConfig) -> Result<Self, String> {
        let compile = |list: &[Selector]| list.iter().map(Compiled::new).collect::<Result<Vec<_>, _>>();
        let path = v.effective_path();
        let origin = config.public_url.as_deref().and_then(|u| url::Url::parse(u).ok()).map(|u| u.origin().ascii_serialization());
        let origin = origin.unwrap_or_else(|| format!("http://{}", config.listen));
        let resource = v.public_url.clone().unwrap_or_else(|| format!("{origin}{path}"));
        let metadata_url = super::metadata_url(&resource);
        let auth = v.auth.clone().unwrap_or_default();
        Ok(Self {
            name: Arc::from(v.name.as_str()),
            include: compile(&v.include).map_err(|e| format!("virtual server {}: {e}", v.name))?,
            exclude: compile(&v.exclude).map_err(|e| format!("virtual server {}: {e}", v.name))?,
            required_scopes: auth.required_scopes,
            audiences: auth.audiences,
            path,
            resource,
            metadata_url,
        })
    }

    /// Whether the item (by its exposed name or URI) is part of this virtual server.
    pub fn admits(&self, kind: ItemKind, server: &ServerName, exposed: &str, annotations: Option<&Value>) -> bool {
        self.include.iter().any(|s| s.matches(kind, server, exposed, annotations))
            && !self.exclude.iter().any(|s| s.matches(kind, server, exposed, annotations))
    }

    pub fn admits_entry(&self, kind: ItemKind, e: &Entry) -> bool {
        self.admits(kind, &e.server, &e.exposed, e.annotations.as_ref())
    }

    /// The extra token requirements of this virtual server.
    pub fn check_token(&self, identity: Option<&VerifiedIdentity>) -> Result<(), AuthError> {
        if self.required_scopes.is_empty() && self.audiences.is_empty() {
            return Ok(());
        }
        // Validation makes requirements depend on verified tokens; without one, fail closed.
        let Some(identity) = identity else { return Err(AuthError::Missing) };
        if !self.audiences.is_empty() {
            let aud = identity.claim("aud");
            let named = |a: &str| match aud {
                Some(Value::String(s)) => s == a,
                Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(a)),
                _ => false,
            };
            if !self.audiences.iter().any(|a| named(a)) {
                return Err(AuthError::WrongAudience);
            }
        }
        if self.required_scopes.iter().any(|s| !identity.scopes.contains(s)) {
            return Err(AuthError::InsufficientScope { needed: self.required_scopes.clone() });
        }
        Ok(())
    }

    /// RFC 9728 metadata for this virtual server.
    pub fn resource_metadata(&self, gateway: &serde_json::Value) -> serde_json::Value {
        let mut m = gateway.clone();
        if let Some(obj) = m.as_object_mut() {
            obj.insert("resource".into(), Value::String(self.resource.clone()));
            let mut scopes: Vec<Value> = obj.get("scopes_supported").and_then(Value::as_array).cloned().unwrap_or_default();
            for s in &self.required_scopes {
                if !scopes.iter().any(|x| x.as_str() == Some(s)) {
                    scopes.push(Value::String(s.clone()));
                }
            }
            obj.insert("scopes_supported".into(), Value::Array(scopes));
            obj.insert("resource_name".into(), Value::String(format!("mcpgate/{}", self.name)));
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;
    use serde_json::json;

    fn vs(yaml_selectors: &str) -> VirtualServer {
        let text =
            format!("servers:\n  - {{name: a, url: 'http://x/mcp'}}\n  - {{name: b, url: 'http://y/mcp'}}\nvirtual_servers:\n  - name: team\n{yaml_selectors}");
        let config = parse_str(&text, &|_| None).expect("config");
        VirtualServer::compile(&config, &config.virtual_servers[0]).expect("compile")
    }

    fn s(n: &str) -> ServerName {
        ServerName::parse(n).expect("name")
    }

    #[test]
    fn include_and_exclude_select_by_server_glob_regex_and_annotations() {
        let v = vs(
            "    include:\n      - {server: a}\n      - {kind: tool, regex: '^b_(echo|add)$'}\n      - {kind: tool, annotations: {readOnlyHint: true}}\n    exclude:\n      - {name: '*_sleep'}\n",
        );
        assert!(v.admits(ItemKind::Tool, &s("a"), "a_echo", None));
        assert!(v.admits(ItemKind::Prompt, &s("a"), "a_greet", None));
        assert!(!v.admits(ItemKind::Tool, &s("a"), "a_sleep", None), "excluded");
        assert!(v.admits(ItemKind::Tool, &s("b"), "b_add", None));
        assert!(!v.admits(ItemKind::Tool, &s("b"), "b_whoami", None));
        assert!(v.admits(ItemKind::Tool, &s("b"), "b_whoami", Some(&json!({"readOnlyHint": true}))));
        assert!(!v.admits(ItemKind::Prompt, &s("b"), "b_echo", None), "the regex selector is for tools only");
    }

    #[test]
    fn an_empty_include_list_shows_nothing() {
        // Validation refuses it; the run-time meaning is still "nothing".
        let text = "servers:\n  - {name: a, url: 'http://x/mcp'}\nvirtual_servers:\n  - {name: team, include: [{server: a}]}\n";
        let mut config = parse_str(text, &|_| None).expect("config");
        config.virtual_servers[0].include.clear();
        let v = VirtualServer::compile(&config, &config.virtual_servers[0]).expect("compile");
        assert!(!v.admits(ItemKind::Tool, &s("a"), "a_echo", None));
    }

    #[test]
    fn default_path_and_resource() {
        let v = vs("    include: [{server: a}]\n");
        assert_eq!(v.path, "/mcp/team");
        assert_eq!(v.resource, "http://127.0.0.1:8080/mcp/team");
        assert_eq!(v.metadata_url, "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp/team");
    }
}
