//! Reading a config file: YAML → `${VAR}` substitution → typed tree → validation.

use std::path::Path;

use super::env::substitute;
use super::types::GatewayConfig;
use super::validate::{Problem, validate};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{}", render(.0))]
    Invalid(Vec<Problem>),
}

fn render(problems: &[Problem]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

pub fn load_file(path: &Path) -> Result<GatewayConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
    parse_str(&text, &|k| std::env::var(k).ok())
}

/// Parses and validates config text, taking environment variables from `lookup`. Problems
/// never show a value that came from the environment (that is where secrets come from): it
/// reads as `${NAME}` instead.
pub fn parse_str(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<GatewayConfig, ConfigError> {
    let used = std::cell::RefCell::new(Vec::new());
    let recording = |name: &str| {
        let value = lookup(name);
        if let Some(v) = &value {
            used.borrow_mut().push((name.to_owned(), v.clone()));
        }
        value
    };
    parse_substituted(text, &recording).map_err(|e| match e {
        ConfigError::Invalid(problems) => ConfigError::Invalid(redact(problems, &used.into_inner())),
        other => other,
    })
}

fn parse_substituted(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<GatewayConfig, ConfigError> {
    let mut value: yaml_serde::Value = yaml_serde::from_str(text)
        .map_err(|e| ConfigError::Invalid(vec![Problem::new("(file)", format!("not valid YAML: {e}"), "fix the YAML syntax at the position shown")]))?;
    if value.is_null() {
        value = yaml_serde::Value::Mapping(Default::default());
    }
    let mut problems = Vec::new();
    substitute_all(&mut value, "", lookup, &mut problems);
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    let config: GatewayConfig = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." || path.is_empty() { "(top level)".to_owned() } else { path };
        ConfigError::Invalid(vec![Problem::new(path, e.inner().to_string(), "see docs/configuration.md for the keys and their types")])
    })?;
    validate(&config).map_err(ConfigError::Invalid)?;
    Ok(config)
}

/// Values shorter than this are left alone: masking every "a" or "30" in a message would make
/// it unreadable, and a value that short is no secret.
const REDACT_MIN: usize = 4;

/// Each environment value in a problem replaced by the `${NAME}` it came from (longest values
/// first, so a value containing another is masked whole).
fn redact(problems: Vec<Problem>, used: &[(String, String)]) -> Vec<Problem> {
    let mut used: Vec<&(String, String)> = used.iter().filter(|(_, v)| v.len() >= REDACT_MIN).collect();
    if used.is_empty() {
        return problems;
    }
    used.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    let mask = |s: String| used.iter().fold(s, |s, (name, value)| s.replace(value.as_str(), &format!("${{{name}}}")));
    problems.into_iter().map(|p| Problem { path: mask(p.path), problem: mask(p.problem), fix: mask(p.fix) }).collect()
}

fn substitute_all(v: &mut yaml_serde::Value, path: &str, lookup: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<Problem>) {
    match v {
        yaml_serde::Value::String(s) => match substitute(s, lookup) {
            Ok(new) => *s = new,
            Err(missing) => {
                for name in missing {
                    problems.push(Problem::new(
                        // The whole document is a string (or the key is empty): still a path.
                        if path.is_empty() { "(top level)" } else { path },
                        format!("environment variable {name} is not set"),
                        format!("set {name} in the gateway's environment, or write $${{ for a literal ${{"),
                    ));
                }
            }
        },
        yaml_serde::Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_all(item, &format!("{path}[{i}]"), lookup, problems);
            }
        }
        yaml_serde::Value::Mapping(map) => {
            for (k, item) in map.iter_mut() {
                let key = k.as_str().unwrap_or("?");
                let child = if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
                substitute_all(item, &child, lookup, problems);
            }
        }
        yaml_serde::Value::Tagged(t) => substitute_all(&mut t.value, path, lookup, problems),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_with_env(yaml: &str) -> Vec<String> {
        let env = |name: &str| match name {
            "TOKEN" => Some("s3cr3t-token-value".to_owned()),
            "HOST" => Some("10.0.0.7:notaport".to_owned()),
            _ => None,
        };
        match parse_str(yaml, &env) {
            Ok(_) => vec![],
            Err(e) => e.to_string().lines().map(str::to_owned).collect(),
        }
    }

    #[test]
    fn a_value_from_the_environment_never_shows_in_a_problem() {
        // A string where a list belongs: serde quotes the value it found.
        let p = problems_with_env("servers:\n  - name: a\n    url: http://127.0.0.1:1/mcp\n    credentials: ${TOKEN}\n");
        assert!(!p.is_empty());
        assert!(p.iter().all(|l| !l.contains("s3cr3t")), "{p:?}");
        assert!(p.iter().any(|l| l.contains("${TOKEN}")), "the problem names the variable instead: {p:?}");

        // Validation messages quote values too (both found by fuzzing the loader).
        let p = problems_with_env("listen: ${HOST}\nservers: []\n");
        assert!(p[0].starts_with("error: listen: \"${HOST}\" is not an address"), "{p:?}");
        assert!(p.iter().all(|l| !l.contains("10.0.0.7")), "{p:?}");
    }

    #[test]
    fn a_missing_variable_in_a_document_that_is_one_string_names_the_top_level() {
        // Found by fuzzing the loader: the problem had an empty key path.
        let p = problems_with_env("just text with ${UNSET_VAR}");
        assert_eq!(
            p.first().map(String::as_str),
            Some(
                "error: (top level): environment variable UNSET_VAR is not set (fix: set UNSET_VAR in the gateway's environment, or write $${ for a literal ${)"
            )
        );
    }

    #[test]
    fn a_key_that_is_the_empty_string_is_named_at_the_top_level() {
        // Found by fuzzing the loader: `"":` gave a problem with an empty key path.
        let p = problems_with_env("\"\": 1\n");
        assert!(p.first().is_some_and(|l| l.starts_with("error: (top level): unknown field ``")), "{p:?}");
    }
}
