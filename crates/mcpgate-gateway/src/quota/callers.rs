//! A rule's group of callers: a CEL expression over the verified token's `claims` and
//! `subject`, compiled at config load. Results are remembered per token (issuer, subject,
//! expiry) so a caller's calls do not pay the evaluation again; an evaluation error or a
//! non-bool result means "not in the group".

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

use cel::{Context, Program, Value};
use mcpgate_auth::VerifiedIdentity;

/// Most remembered answers before the memory starts over.
const MAX_REMEMBERED: usize = 10_000;

pub struct Callers {
    program: Program,
    remembered: Mutex<HashMap<u64, bool>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Callers {
    pub fn compile(expr: &str) -> Result<Self, String> {
        let program = crate::config::rate_limits::compile_callers(expr)?;
        Ok(Self { program, remembered: Mutex::default(), hasher: Default::default() })
    }

    /// Whether the caller is in the group. No verified identity: never.
    pub fn contains(&self, identity: Option<&VerifiedIdentity>) -> bool {
        let Some(id) = identity else { return false };
        let key = self.hasher.hash_one((&id.issuer, &id.subject, id.expires_at));
        if let Some(v) = self.remembered.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return *v;
        }
        let mut ctx = Context::default();
        ctx.add_variable_from_value("claims", cel::to_value(&*id.claims).unwrap_or_else(|_| Value::from(HashMap::<String, Value>::new())));
        ctx.add_variable_from_value("subject", id.subject.clone());
        let yes = matches!(self.program.execute(&ctx), Ok(Value::Bool(true)));
        let mut map = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_REMEMBERED {
            map.clear();
        }
        map.insert(key, yes);
        yes
    }
}
