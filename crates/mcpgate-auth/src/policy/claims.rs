//! The claims source: permitted items read from the verified token's claims, e.g. Keycloak
//! `resource_access.<client>.roles`, mapped to gateway servers through their client ids.
//! Never reads claims from an unverified token; a missing claim grants nothing unless the
//! config says `on_missing: allow_all`.

use serde_json::Value;

use super::ServerAuthInfo;
use super::grants::{Grants, Kind};
use crate::VerifiedIdentity;
use crate::config::{ClaimsSourceConfig, OnMissing};

pub(crate) const CLIENT: &str = "{client}";

pub(crate) struct ClaimsSource {
    /// Segments before `{client}` (or all of them without `{client}`).
    head: Vec<String>,
    /// Segments after `{client}`; `None` when the path has no `{client}`.
    tail: Option<Vec<String>>,
    separator: String,
    prefix: String,
    pub on_missing: OnMissing,
}

/// What the source found for one caller.
pub(crate) enum Found {
    Grants(Grants),
    /// No identity, or the claim is absent: `no_identity` / `no_claim`.
    Missing(&'static str),
}

impl ClaimsSource {
    pub fn compile(cfg: &ClaimsSourceConfig) -> Result<Self, String> {
        let segments = cfg.path.segments();
        if segments.is_empty() || segments.iter().any(String::is_empty) {
            return Err("path: empty segment; write e.g. \"resource_access.{client}.roles\"".to_owned());
        }
        let at = segments.iter().position(|s| s == CLIENT);
        if segments.iter().filter(|s| *s == CLIENT).count() > 1 {
            return Err("path: {client} may appear once".to_owned());
        }
        if at == Some(0) {
            return Err("path: {client} cannot be the first segment".to_owned());
        }
        if at.is_none() && cfg.separator.is_empty() {
            return Err("separator: must not be empty for a path without {client}".to_owned());
        }
        let (head, tail) = match at {
            Some(i) => (segments[..i].to_vec(), Some(segments[i + 1..].to_vec())),
            None => (segments, None),
        };
        Ok(Self { head, tail, separator: cfg.separator.clone(), prefix: cfg.prefix.clone(), on_missing: cfg.on_missing })
    }

    pub fn find(&self, identity: Option<&VerifiedIdentity>, servers: &[ServerAuthInfo]) -> Found {
        let Some(identity) = identity else { return Found::Missing("no_identity") };
        let mut node = identity.claims.get(&self.head[0]);
        for seg in &self.head[1..] {
            node = node.and_then(|n| n.get(seg));
        }
        let Some(root) = node else { return Found::Missing("no_claim") };
        let mut grants = Grants::new();
        match &self.tail {
            Some(tail) => {
                for server in servers {
                    for client in &server.client_ids {
                        let mut value = root.get(client);
                        for seg in tail {
                            value = value.and_then(|v| v.get(seg));
                        }
                        for item in values(value) {
                            let (kind, name) = parse_item(item);
                            grants.insert(&server.server, kind, name);
                        }
                    }
                }
            }
            None => {
                for raw in values(Some(root)) {
                    let Some(qualified) = raw.strip_prefix(self.prefix.as_str()) else { continue };
                    for server in servers {
                        for client in &server.client_ids {
                            let item = qualified.strip_prefix(client.as_str()).and_then(|r| r.strip_prefix(self.separator.as_str()));
                            if let Some(item) = item {
                                let (kind, name) = parse_item(item);
                                grants.insert(&server.server, kind, name);
                            }
                        }
                    }
                }
            }
        }
        Found::Grants(grants)
    }
}

/// Strings in a claim value: a list of strings, or one space-separated string (`scope`).
fn values(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).filter(|s| !s.is_empty()).collect(),
        Some(Value::String(s)) => s.split_whitespace().collect(),
        _ => Vec::new(),
    }
}

/// `prompt:<name>` and `resource:<uri>` name prompts and resources; anything else a tool.
fn parse_item(item: &str) -> (Kind, &str) {
    if let Some(name) = item.strip_prefix("prompt:") {
        (Kind::Prompt, name)
    } else if let Some(uri) = item.strip_prefix("resource:") {
        (Kind::Resource, uri)
    } else {
        (Kind::Tool, item)
    }
}
