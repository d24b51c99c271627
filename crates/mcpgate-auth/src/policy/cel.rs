//! CEL rules: compiled once at config load (a rule that does not compile, or names an
//! unknown variable, is a config error naming the rule), evaluated per item over `claims`,
//! `server`, `kind`, `name` and `annotations`. Also finds which claims the rules can read,
//! so callers with equal relevant claims share a list-cache fingerprint. Never treats an
//! evaluation error as "allow".

use std::collections::BTreeSet;
use std::sync::Arc;

use cel::common::ast::Expr;
use cel::{Context, Env, Program, Value};

use crate::config::{CelRule, Effect};

/// Variables a rule may use.
pub(crate) const VARIABLES: [&str; 5] = ["claims", "server", "kind", "name", "annotations"];

/// Identifiers CEL itself defines (type names), accepted anywhere.
const BUILTIN_IDENTS: [&str; 11] = ["int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type", "dyn"];

pub(crate) struct Rule {
    pub name: Arc<str>,
    pub effect: Effect,
    program: Program,
}

/// Which claims rules read: named top-level claims, or (when `claims` is used whole) all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum ClaimRefs {
    #[default]
    None,
    Fields(BTreeSet<String>),
    All,
}

impl ClaimRefs {
    pub fn merge(&mut self, other: ClaimRefs) {
        *self = match (std::mem::take(self), other) {
            (ClaimRefs::All, _) | (_, ClaimRefs::All) => ClaimRefs::All,
            (ClaimRefs::None, x) | (x, ClaimRefs::None) => x,
            (ClaimRefs::Fields(mut a), ClaimRefs::Fields(b)) => {
                a.extend(b);
                ClaimRefs::Fields(a)
            }
        };
    }
}

impl Rule {
    pub fn compile(env: &Env, cfg: &CelRule) -> Result<(Rule, ClaimRefs), String> {
        if cfg.name.trim().is_empty() {
            return Err("name: must not be empty".to_owned());
        }
        let program = env.compile(&cfg.expr).map_err(|e| format!("does not compile: {e}"))?;
        let mut walk = Walk { refs: ClaimRefs::None, unknown: BTreeSet::new(), bound: Vec::new() };
        walk.expr(&program.expression().expr);
        if !walk.unknown.is_empty() {
            let names: Vec<_> = walk.unknown.into_iter().collect();
            return Err(format!("unknown variable(s) {}; available: {}", names.join(", "), VARIABLES.join(", ")));
        }
        Ok((Rule { name: cfg.name.as_str().into(), effect: cfg.effect, program }, walk.refs))
    }

    /// `Ok(true)` when the rule matches; an error or a non-bool result is `Err`.
    pub fn matches(&self, ctx: &Context<'_, '_>) -> Result<bool, String> {
        match self.program.execute(ctx) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("evaluated to {:?}, not a bool", other.type_of())),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Collects claim references and unbound identifiers.
struct Walk {
    refs: ClaimRefs,
    unknown: BTreeSet<String>,
    /// Comprehension variables in scope.
    bound: Vec<String>,
}

impl Walk {
    fn expr(&mut self, e: &Expr) {
        match e {
            Expr::Ident(name) => self.ident(name),
            Expr::Select(sel) => {
                if let Expr::Ident(root) = &sel.operand.expr
                    && root == "claims"
                    && !self.bound.iter().any(|b| b == "claims")
                {
                    let mut fields = match std::mem::take(&mut self.refs) {
                        ClaimRefs::Fields(f) => f,
                        ClaimRefs::None => BTreeSet::new(),
                        ClaimRefs::All => {
                            self.refs = ClaimRefs::All;
                            return;
                        }
                    };
                    fields.insert(sel.field.clone());
                    self.refs = ClaimRefs::Fields(fields);
                } else {
                    self.expr(&sel.operand.expr);
                }
            }
            Expr::Call(call) => {
                if let Some(t) = &call.target {
                    self.expr(&t.expr);
                }
                call.args.iter().for_each(|a| self.expr(&a.expr));
            }
            Expr::Comprehension(c) => {
                self.expr(&c.iter_range.expr);
                self.expr(&c.accu_init.expr);
                let depth = self.bound.len();
                self.bound.push(c.iter_var.clone());
                self.bound.extend(c.iter_var2.clone());
                self.bound.push(c.accu_var.clone());
                self.expr(&c.loop_cond.expr);
                self.expr(&c.loop_step.expr);
                self.expr(&c.result.expr);
                self.bound.truncate(depth);
            }
            Expr::List(list) => list.elements.iter().for_each(|x| self.expr(&x.expr)),
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let cel::common::ast::EntryExpr::MapEntry(me) = &entry.expr {
                        self.expr(&me.key.expr);
                        self.expr(&me.value.expr);
                    }
                }
            }
            Expr::Struct(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
    }

    fn ident(&mut self, name: &str) {
        if self.bound.iter().any(|b| b == name) {
            return;
        }
        if name == "claims" {
            self.refs = ClaimRefs::All;
        } else if !VARIABLES.contains(&name) && !BUILTIN_IDENTS.contains(&name) {
            self.unknown.insert(name.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(expr: &str) -> ClaimRefs {
        let rule = CelRule { name: "r".into(), effect: Effect::Allow, expr: expr.into() };
        Rule::compile(&Env::stdlib(), &rule).expect("compiles").1
    }

    #[test]
    fn claim_references_are_found() {
        assert_eq!(refs("claims.department == 'eng'"), ClaimRefs::Fields(["department".to_owned()].into()));
        assert_eq!(refs("has(claims.groups) && server == 'x'"), ClaimRefs::Fields(["groups".to_owned()].into()));
        assert_eq!(refs("size(claims) > 1"), ClaimRefs::All);
        assert_eq!(refs("claims['a.b'] == 1"), ClaimRefs::All);
        assert_eq!(refs("server == 'x'"), ClaimRefs::None);
    }
}
