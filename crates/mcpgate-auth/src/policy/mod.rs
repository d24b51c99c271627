//! Permissions: the `Policy` compiled from `auth.permissions` at config load, and per
//! request a [`Caller`] holding precomputed grants that answers "may this caller see/call
//! this item?" with an audit reason. Fails closed: no identity, no claim, no or a bad
//! wristband → nothing, unless a source says `on_missing: allow_all` (warned at compile).
//! Never logs tokens or wristbands; never lets an evaluation error allow anything.

mod caller;
mod cel;
mod claims;
mod grants;

use std::collections::HashMap;
use std::hash::RandomState;
use std::sync::Arc;
use std::time::Duration;

pub use caller::Caller;
pub use grants::{Grants, Kind};

use crate::VerifiedIdentity;
use crate::config::{Effect, OnMissing, PermissionsConfig, ServerAuthConfig, SourceConfig};
use crate::secret::token_hash;
use crate::wristband::WristbandVerifier;
use cel::Rule;
use claims::ClaimsSource;

/// How the IdP and wristbands name one gateway server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAuthInfo {
    /// The gateway's name for the server.
    pub server: String,
    /// Names under `resource_access` (and wristband keys) that mean this server.
    pub client_ids: Vec<String>,
}

impl ServerAuthInfo {
    /// Client ids from the server's `auth.client_ids`, else its name and its URL's host.
    pub fn new(server: &str, url: Option<&str>, cfg: Option<&ServerAuthConfig>) -> Self {
        if let Some(ids) = cfg.and_then(|c| c.client_ids.clone()) {
            return Self { server: server.to_owned(), client_ids: ids };
        }
        let mut client_ids = vec![server.to_owned()];
        let host = url.and_then(|u| url::Url::parse(u).ok()).and_then(|u| u.host_str().map(str::to_owned));
        if let Some(host) = host
            && host != server
        {
            client_ids.push(host);
        }
        Self { server: server.to_owned(), client_ids }
    }
}

/// An item a caller wants to see or call. `name` is the backend's own (unprefixed) tool or
/// prompt name, or the resource URI.
#[derive(Debug, Clone, Copy)]
pub struct ItemRef<'a> {
    pub server: &'a str,
    pub kind: Kind,
    pub name: &'a str,
    /// Tool annotations (`readOnlyHint`, `destructiveHint`, …), visible to CEL rules.
    pub annotations: Option<&'a serde_json::Value>,
}

/// A permission decision with a stable audit reason code, and the CEL rule that decided it
/// when one did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// `claim_role`, `claims_allow_all`, `cel_allow`, `wristband`, `wristband_allow_all`;
    /// or `cel_deny`, `cel_error`, `no_identity`, `no_claim`, `wristband_missing`,
    /// `wristband_invalid`, `not_granted`, `no_sources`.
    pub reason: &'static str,
    pub rule: Option<Arc<str>>,
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.rule {
            Some(rule) => write!(f, "{}:{rule}", self.reason),
            None => f.write_str(self.reason),
        }
    }
}

/// The compiled permission policy. Cheap to clone.
#[derive(Clone)]
pub struct Policy {
    inner: Arc<PolicyInner>,
}

pub(crate) struct PolicyInner {
    pub sources: Vec<Source>,
    pub deny_rules: Vec<Rule>,
    pub env: Option<Arc<::cel::Env>>,
    pub claim_refs: cel::ClaimRefs,
    pub servers: Vec<ServerAuthInfo>,
    /// Client id → gateway servers it names.
    pub by_client: HashMap<String, Vec<String>>,
    pub hasher: RandomState,
    callers: moka::sync::Cache<[u8; 32], Arc<Caller>>,
}

pub(crate) enum Source {
    Claims(ClaimsSource),
    Cel { allow: Vec<Rule> },
    Wristband { verifier: WristbandVerifier, header: http::HeaderName, on_missing: OnMissing },
}

/// Callers remembered per (token, wristband); each also expires with them.
const CALLER_CACHE_SIZE: u64 = 10_000;
const CALLER_CACHE_TTL: Duration = Duration::from_secs(60);

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("sources", &self.inner.sources.len())
            .field("deny_rules", &self.inner.deny_rules.len())
            .field("servers", &self.inner.servers)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Compiles every source; errors name the source and rule:
    /// `auth.permissions.sources[1].rules[0] (name): <error>`.
    pub fn compile(cfg: &PermissionsConfig, servers: &[ServerAuthInfo]) -> Result<Policy, Vec<String>> {
        let mut errors = Vec::new();
        let mut sources = Vec::new();
        let mut deny_rules = Vec::new();
        let mut claim_refs = cel::ClaimRefs::None;
        let mut env = None;
        for (i, source) in cfg.sources.iter().enumerate() {
            let at = format!("auth.permissions.sources[{i}]");
            match source {
                SourceConfig::Claims(c) => match ClaimsSource::compile(c) {
                    Ok(s) => {
                        if s.on_missing == OnMissing::AllowAll {
                            tracing::warn!(source = %at, "claims source has on_missing: allow_all: callers without the claim may use every item");
                        }
                        sources.push(Source::Claims(s));
                    }
                    Err(e) => errors.push(format!("{at}.claims.{e}")),
                },
                SourceConfig::Cel(c) => {
                    let env = env.get_or_insert_with(|| Arc::new(::cel::Env::stdlib()));
                    let mut allow = Vec::new();
                    let mut names = std::collections::HashSet::new();
                    if c.rules.is_empty() {
                        errors.push(format!("{at}.cel.rules: at least one rule is required"));
                    }
                    for (j, rule) in c.rules.iter().enumerate() {
                        if !names.insert(rule.name.as_str()) {
                            errors.push(format!("{at}.rules[{j}] ({}): the name is used twice", rule.name));
                            continue;
                        }
                        match Rule::compile(env, rule) {
                            Ok((r, refs)) => {
                                claim_refs.merge(refs);
                                match r.effect {
                                    Effect::Allow => allow.push(r),
                                    Effect::Deny => deny_rules.push(r),
                                }
                            }
                            Err(e) => errors.push(format!("{at}.rules[{j}] ({}): {e}", rule.name)),
                        }
                    }
                    sources.push(Source::Cel { allow });
                }
                SourceConfig::Wristband(w) => {
                    let name = w.header.clone().unwrap_or_else(|| w.format.default_header().to_owned());
                    let header = http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes());
                    match (WristbandVerifier::new(w), header) {
                        (Ok(verifier), Ok(header)) => {
                            if w.on_missing == OnMissing::AllowAll {
                                tracing::warn!(source = %at, "wristband source has on_missing: allow_all: requests without the header may use every item");
                            }
                            sources.push(Source::Wristband { verifier, header, on_missing: w.on_missing });
                        }
                        (Err(e), _) => errors.push(format!("{at}.wristband.{e}")),
                        (_, Err(_)) => errors.push(format!("{at}.wristband.header: {name:?} is not a valid header name")),
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        if sources.is_empty() {
            tracing::warn!("auth.permissions.sources is empty: every item is denied");
        }
        let mut by_client: HashMap<String, Vec<String>> = HashMap::new();
        for s in servers {
            for id in &s.client_ids {
                by_client.entry(id.clone()).or_default().push(s.server.clone());
            }
        }
        for (id, named) in &by_client {
            if named.len() > 1 {
                tracing::warn!(client_id = %id, servers = ?named, "one client id names several servers: its roles apply to all of them; set auth.client_ids per server");
            }
        }
        let callers = moka::sync::Cache::builder().max_capacity(CALLER_CACHE_SIZE).time_to_live(CALLER_CACHE_TTL).build();
        let inner = PolicyInner { sources, deny_rules, env, claim_refs, servers: servers.to_vec(), by_client, hasher: RandomState::new(), callers };
        Ok(Policy { inner: Arc::new(inner) })
    }

    /// What `identity` may see and call in this request; `headers` carries any wristband
    /// (verified here). Remembered per token and wristband until either expires.
    pub fn caller(&self, identity: Option<&VerifiedIdentity>, headers: &http::HeaderMap) -> Arc<Caller> {
        // The token enters the key by its hash, computed once when it was verified. Without
        // wristband sources that hash is the key; with them, the key hashes it with every
        // wristband value (the sources are fixed per policy, so the two kinds never meet).
        let token_key = identity.map(VerifiedIdentity::token_key);
        let key = if self.inner.sources.iter().any(|s| matches!(s, Source::Wristband { .. })) {
            let mut parts: Vec<&[u8]> = vec![token_key.map_or(&b""[..], |k| &k[..])];
            let mut any_wristband = false;
            for source in &self.inner.sources {
                if let Source::Wristband { header, .. } = source {
                    for v in headers.get_all(header) {
                        parts.push(v.as_bytes());
                        any_wristband = true;
                    }
                    parts.push(b"\0end");
                }
            }
            if identity.is_none() && !any_wristband {
                return Arc::new(Caller::build(&self.inner, identity, headers));
            }
            token_hash(&parts)
        } else {
            match token_key {
                Some(key) => *key,
                None => return Arc::new(Caller::build(&self.inner, identity, headers)),
            }
        };
        if let Some(c) = self.inner.callers.get(&key)
            && c.valid_until() >= crate::verify::now()
        {
            return c;
        }
        let caller = Arc::new(Caller::build(&self.inner, identity, headers));
        self.inner.callers.insert(key, caller.clone());
        caller
    }

    /// The headers that carry a wristband for this policy: a request must not send one twice.
    pub fn wristband_headers(&self) -> impl Iterator<Item = &http::HeaderName> {
        self.inner.sources.iter().filter_map(|s| match s {
            Source::Wristband { header, .. } => Some(header),
            _ => None,
        })
    }

    /// Servers as given at compile time.
    pub fn servers(&self) -> &[ServerAuthInfo] {
        &self.inner.servers
    }
}

/// Maps grants keyed by client id (wristbands) to grants keyed by gateway server.
pub(crate) fn by_server(inner: &PolicyInner, by_client: &Grants) -> Grants {
    let mut out = Grants::new();
    for client in by_client.servers() {
        let Some(servers) = inner.by_client.get(client) else { continue };
        for server in servers {
            for kind in [Kind::Tool, Kind::Prompt, Kind::Resource] {
                for name in by_client.names(client, kind) {
                    out.insert(server, kind, name);
                }
            }
        }
    }
    out
}

/// The gateway shares policies and callers across tasks.
const _: () = {
    const fn is<T: Send + Sync>() {}
    is::<Policy>();
    is::<Caller>();
};
