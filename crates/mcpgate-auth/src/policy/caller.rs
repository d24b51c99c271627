//! One caller's permissions for one request: each source's outcome computed once, CEL
//! context prepared once, and `decide` per item. Never allows on a CEL error, never lets an
//! allow outweigh a matching deny rule.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use cel::{Context, Value};

use super::claims::Found;
use super::{Decision, Grants, ItemRef, PolicyInner, Source, by_server};
use crate::VerifiedIdentity;
use crate::config::OnMissing;

/// A source's outcome for this caller.
#[derive(Debug, Hash)]
enum State {
    Granted {
        grants: Grants,
        reason: &'static str,
    },
    AllowAll(&'static str),
    /// CEL allow rules may grant (a verified identity is present).
    CelActive,
    /// Absent input (no identity, claim or header): grants nothing.
    Missing(&'static str),
    /// Present but unusable input (a bad wristband): grants nothing, whatever `on_missing`.
    Invalid(&'static str),
}

/// What one caller may see and call, precomputed from identity and headers.
pub struct Caller {
    policy: Arc<PolicyInner>,
    states: Vec<State>,
    cel_root: Option<Context<'static, 'static>>,
    deny_reason: &'static str,
    fingerprint: u64,
    valid_until: u64,
    subject: Option<String>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller").field("subject", &self.subject).field("states", &self.states).field("fingerprint", &self.fingerprint).finish_non_exhaustive()
    }
}

impl Caller {
    pub(crate) fn build(policy: &Arc<PolicyInner>, identity: Option<&VerifiedIdentity>, headers: &http::HeaderMap) -> Caller {
        let mut valid_until = identity.map_or(u64::MAX, |i| i.expires_at);
        // Behind an external authorizer the verified wristband names the subject.
        let mut wristband_subject: Option<String> = None;
        let mut states = Vec::with_capacity(policy.sources.len());
        for source in &policy.sources {
            let state = match source {
                Source::Claims(claims) => match (claims.find(identity, &policy.servers), claims.on_missing) {
                    (Found::Grants(grants), _) => State::Granted { grants, reason: "claim_role" },
                    (Found::Missing(_), OnMissing::AllowAll) => State::AllowAll("claims_allow_all"),
                    (Found::Missing(why), OnMissing::Deny) => State::Missing(why),
                },
                Source::Cel { .. } if identity.is_some() => State::CelActive,
                Source::Cel { .. } => State::Missing("no_identity"),
                Source::Wristband { verifier, header, on_missing } => {
                    let mut values = headers.get_all(header).iter();
                    match (values.next(), values.next(), on_missing) {
                        (None, _, OnMissing::AllowAll) => State::AllowAll("wristband_allow_all"),
                        (None, _, OnMissing::Deny) => State::Missing("wristband_missing"),
                        (Some(_), Some(_), _) => State::Invalid("wristband_invalid"),
                        (Some(value), None, _) => {
                            let verified = value.to_str().ok().map(|jwt| verifier.verify(jwt.trim(), identity));
                            match verified {
                                Some(Ok(w)) => {
                                    valid_until = valid_until.min(w.expires_at);
                                    wristband_subject = w.subject.clone();
                                    State::Granted { grants: by_server(policy, &w.grants), reason: "wristband" }
                                }
                                Some(Err(e)) => {
                                    tracing::debug!(reason = e.reason(), "wristband refused");
                                    State::Invalid("wristband_invalid")
                                }
                                None => State::Invalid("wristband_invalid"),
                            }
                        }
                    }
                }
            };
            states.push(state);
        }
        let deny_reason = if states.is_empty() {
            "no_sources"
        } else {
            states
                .iter()
                .find_map(|s| match s {
                    State::Missing(r) | State::Invalid(r) => Some(*r),
                    _ => None,
                })
                .unwrap_or("not_granted")
        };
        let cel_root = policy.env.as_ref().map(|env| {
            let claims = identity.and_then(|i| cel::to_value(&*i.claims).ok()).unwrap_or_else(empty_map);
            let mut ctx = Context::with_env(env.clone());
            ctx.add_variable_from_value("claims", claims);
            ctx
        });
        let fingerprint = fingerprint(policy, &states, identity);
        Caller {
            policy: policy.clone(),
            states,
            cel_root,
            deny_reason,
            fingerprint,
            valid_until,
            subject: identity.map(|i| i.subject.clone()).or(wristband_subject),
        }
    }

    /// Whether this caller may see and call `item`, and why.
    pub fn decide(&self, item: &ItemRef<'_>) -> Decision {
        let scope = self.cel_root.as_ref().map(|root| item_scope(root, item));
        let mut allowed = None;
        for (source, state) in self.policy.sources.iter().zip(&self.states) {
            match (source, state) {
                (_, State::AllowAll(reason)) => allowed = Some(decision(true, reason, None)),
                (_, State::Granted { grants, reason }) if grants.contains(item.server, item.kind, item.name) => {
                    allowed = Some(decision(true, reason, None));
                }
                (Source::Cel { allow }, State::CelActive) => {
                    let Some(ctx) = scope.as_ref() else { continue };
                    for rule in allow {
                        match rule.matches(ctx) {
                            Ok(true) => {
                                allowed = Some(decision(true, "cel_allow", Some(rule.name.clone())));
                                break;
                            }
                            Ok(false) => {}
                            Err(e) => tracing::debug!(rule = %rule.name, error = %e, "CEL allow rule failed; not allowing"),
                        }
                    }
                }
                _ => {}
            }
            if allowed.is_some() {
                break;
            }
        }
        let Some(allowed) = allowed else { return decision(false, self.deny_reason, None) };
        if let Some(ctx) = &scope {
            for rule in &self.policy.deny_rules {
                match rule.matches(ctx) {
                    Ok(false) => {}
                    Ok(true) => return decision(false, "cel_deny", Some(rule.name.clone())),
                    Err(e) => {
                        tracing::debug!(rule = %rule.name, error = %e, "CEL deny rule failed; denying");
                        return decision(false, "cel_error", Some(rule.name.clone()));
                    }
                }
            }
        }
        allowed
    }

    /// Equal for callers whose grants (and the claims CEL rules read) are equal: a key for
    /// caching filtered lists. Differs between policies.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The verified subject, if any: the token's, else a verified wristband's (audit logs,
    /// session binding).
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    pub(crate) fn valid_until(&self) -> u64 {
        self.valid_until
    }
}

fn decision(allowed: bool, reason: &'static str, rule: Option<Arc<str>>) -> Decision {
    Decision { allowed, reason, rule }
}

fn item_scope<'b>(root: &'b Context<'static, 'static>, item: &ItemRef<'_>) -> Context<'b, 'static> {
    let mut ctx = root.new_inner_scope();
    ctx.add_variable_from_value("server", item.server.to_owned());
    ctx.add_variable_from_value("kind", item.kind.as_str().to_owned());
    ctx.add_variable_from_value("name", item.name.to_owned());
    let annotations = match item.annotations {
        Some(a @ serde_json::Value::Object(_)) => to_cel(a),
        _ => empty_map(),
    };
    ctx.add_variable_from_value("annotations", annotations);
    ctx
}

fn empty_map() -> Value {
    Value::from(std::collections::HashMap::<String, Value>::new())
}

fn to_cel(v: &serde_json::Value) -> Value {
    cel::to_value(v).unwrap_or_else(|_| empty_map())
}

fn fingerprint(policy: &PolicyInner, states: &[State], identity: Option<&VerifiedIdentity>) -> u64 {
    let mut h = policy.hasher.build_hasher();
    states.hash(&mut h);
    let claims = identity.map(|i| &i.claims);
    let mut hash_claim = |name: &str| {
        name.hash(&mut h);
        claims.and_then(|c| c.get(name)).map(|v| v.to_string()).hash(&mut h);
    };
    match &policy.claim_refs {
        super::cel::ClaimRefs::None => {}
        super::cel::ClaimRefs::Fields(fields) => fields.iter().for_each(|f| hash_claim(f)),
        super::cel::ClaimRefs::All => {
            let mut names: Vec<&String> = claims.map(|c| c.keys().collect()).unwrap_or_default();
            names.sort();
            names.into_iter().for_each(|f| hash_claim(f));
        }
    }
    h.finish()
}
