//! The first step of a catalog build, one server at a time: each listed item read, hidden
//! items dropped, overrides and the pinning verdict attached, and how it may be named.
//! Names are settled across servers afterwards (`names`).

use mcpgate_protocol::envelope::{Envelope, raw_str};
use mcpgate_protocol::modern::{ParamHeader, param_headers};
use mcpgate_protocol::names::{ServerName, expose_uri};
use serde_json::Value;
use serde_json::value::RawValue;

use super::build::ServerEntry;
use super::{ChangedServed, ItemKind, Listing, PinReport, Quarantined, Withheld};
use crate::config::{ItemOverride, PinMode, PrefixMode};
use crate::pins::{Observation, PinKind, PinSet, Verdict};

/// How a candidate may be named.
pub(super) enum Naming {
    /// Exactly this name (prefix mode `always` or `never`, `expose_as`, resource URIs).
    Fixed(String),
    /// `bare` unless another server exposes that name too, then `prefixed`.
    OnCollision { bare: String, prefixed: String },
}

/// One item of one server on its way into the catalog.
pub(super) struct Candidate<'a> {
    pub server: ServerName,
    pub backend_name: String,
    pub env: Envelope<'a>,
    pub naming: Naming,
    /// Replaces the description (operator override).
    pub description: Option<String>,
    /// The annotations clients and permission rules see (backend's, overrides merged in).
    pub annotations: Option<Value>,
    /// Whether `annotations` differ from the backend's (then they are written into the JSON).
    pub annotations_overridden: bool,
    pub param_headers: Vec<ParamHeader>,
    /// Held back by pinning: the reason, this definition's hash and the approved one's.
    pub quarantine: Option<(&'static str, String, Option<String>)>,
}

impl Candidate<'_> {
    pub fn quarantined(&self, kind: ItemKind, exposed: &str) -> Option<Quarantined> {
        let (reason, hash, approved) = self.quarantine.as_ref()?;
        Some(Quarantined {
            kind: kind.as_str(),
            name: self.backend_name.clone(),
            exposed: exposed.to_owned(),
            reason,
            hash: hash.clone(),
            approved: approved.clone(),
        })
    }
}

/// Reads server `s`'s items of `kind` into candidates.
pub(super) fn candidates<'a>(
    s: &ServerEntry,
    kind: ItemKind,
    listing: &'a Listing,
    pins: &PinSet,
    out: &mut Vec<Candidate<'a>>,
    withheld: &mut Vec<Withheld>,
    report: &mut PinReport,
) {
    let key = kind.name_key();
    let pin_kind = PinKind::of(kind).filter(|_| s.rules.pinning != PinMode::Off);
    let definitions = pin_kind.map(|_| listing.definitions(s.name.as_str()));
    for (index, item) in listing.items(kind).iter().enumerate() {
        let Some((name, env)) = Envelope::parse_raw(item).ok().and_then(|e| Some((e.get(key).and_then(raw_str)?.into_owned(), e))) else {
            withheld.push(Withheld { kind: kind.as_str(), name: "(unnamed)".into(), reason: format!("item has no string \"{key}\"") });
            continue;
        };
        let over = s.rules.item(kind, &name);
        if over.is_some_and(|o| o.hide) {
            continue;
        }
        let param_headers = if kind == ItemKind::Tool {
            let schema = env.get("inputSchema").and_then(|raw| serde_json::from_str(raw.get()).ok()).unwrap_or(Value::Null);
            match param_headers(&schema) {
                Ok(h) => h,
                Err(reason) => {
                    // A client must drop such a tool (SEP-2243); so does the gateway.
                    tracing::warn!(server = %s.name, name = %name, "withheld: {reason}");
                    withheld.push(Withheld { kind: kind.as_str(), name, reason });
                    continue;
                }
            }
        } else {
            Vec::new()
        };
        let (annotations, annotations_overridden) = annotations(kind, env.get("annotations"), over);
        let quarantine = match (pin_kind, &definitions) {
            (Some(pk), Some(defs)) => pin_verdict(s, kind, pk, &name, defs.get(kind, index), pins, report),
            _ => None,
        };
        let naming = naming(s, kind, &name, over);
        out.push(Candidate {
            server: s.name.clone(),
            backend_name: name,
            env,
            naming,
            description: over.and_then(|o| o.description.clone()),
            annotations,
            annotations_overridden,
            param_headers,
            quarantine,
        });
    }
}

fn naming(s: &ServerEntry, kind: ItemKind, name: &str, over: Option<&ItemOverride>) -> Naming {
    match kind {
        ItemKind::Resource | ItemKind::ResourceTemplate if s.prefix.is_empty() => Naming::Fixed(name.to_owned()),
        ItemKind::Resource | ItemKind::ResourceTemplate => Naming::Fixed(expose_uri(&s.name, name)),
        ItemKind::Tool | ItemKind::Prompt => match (over.and_then(|o| o.expose_as.clone()), s.rules.prefix_mode) {
            (Some(exposed), _) => Naming::Fixed(exposed),
            (None, PrefixMode::Always) => Naming::Fixed(format!("{}{name}", s.prefix)),
            (None, PrefixMode::Never) => Naming::Fixed(name.to_owned()),
            (None, PrefixMode::OnCollision) => Naming::OnCollision { bare: name.to_owned(), prefixed: format!("{}{name}", s.prefix) },
        },
    }
}

/// A tool's annotations with the operator's overrides merged in (override keys win).
fn annotations(kind: ItemKind, raw: Option<&RawValue>, over: Option<&ItemOverride>) -> (Option<Value>, bool) {
    if kind != ItemKind::Tool {
        return (None, false);
    }
    let backend: Option<Value> = raw.and_then(|a| serde_json::from_str(a.get()).ok());
    let Some(extra) = over.and_then(|o| o.annotations.as_ref()) else { return (backend, false) };
    let mut merged = backend.and_then(|v| v.as_object().cloned()).unwrap_or_default();
    for (k, v) in extra {
        merged.insert(k.clone(), v.clone());
    }
    (Some(Value::Object(merged)), true)
}

/// Compares the item's definition with its pin; records what the store should learn and
/// returns the quarantine (enforce mode) if the item may not be served.
fn pin_verdict(
    s: &ServerEntry,
    kind: ItemKind,
    pin_kind: PinKind,
    name: &str,
    definition: Option<&crate::pins::Definition>,
    pins: &PinSet,
    report: &mut PinReport,
) -> Option<(&'static str, String, Option<String>)> {
    let enforce = s.rules.pinning == PinMode::Enforce;
    let Some(def) = definition else {
        tracing::warn!(server = %s.name, kind = kind.as_str(), name, "the definition cannot be read for pinning");
        return enforce.then(|| ("definition unreadable", String::new(), None));
    };
    let observe =
        |first_use: bool| Observation { server: s.name.to_string(), kind, name: name.to_owned(), hash: def.hash.clone(), definition: def.value(), first_use };
    match pins.verdict(s.name.as_str(), pin_kind, name, &def.hash) {
        Verdict::Approved => {
            // The backend went back to the approved definition: the pending one is obsolete.
            if pins.entry(s.name.as_str(), pin_kind, name).is_some_and(|e| e.pending.is_some()) {
                report.observations.push(observe(false));
            }
            None
        }
        Verdict::Unpinned => {
            report.observations.push(observe(!enforce));
            enforce.then(|| ("not approved", def.hash.clone(), None))
        }
        Verdict::Changed { approved } => {
            report.observations.push(observe(false));
            if enforce {
                return Some(("changed since approval", def.hash.clone(), Some(approved)));
            }
            report.changed_served.push(ChangedServed {
                server: s.name.to_string(),
                kind: kind.as_str(),
                name: name.to_owned(),
                hash: def.hash.clone(),
                approved,
            });
            None
        }
    }
}
