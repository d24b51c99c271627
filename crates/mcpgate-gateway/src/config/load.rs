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

/// Parses and validates config text, taking environment variables from `lookup`.
pub fn parse_str(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<GatewayConfig, ConfigError> {
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
        let path = if path == "." { "(top level)".to_owned() } else { path };
        ConfigError::Invalid(vec![Problem::new(path, e.inner().to_string(), "see docs/configuration.md for the keys and their types")])
    })?;
    validate(&config).map_err(ConfigError::Invalid)?;
    Ok(config)
}

fn substitute_all(v: &mut yaml_serde::Value, path: &str, lookup: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<Problem>) {
    match v {
        yaml_serde::Value::String(s) => match substitute(s, lookup) {
            Ok(new) => *s = new,
            Err(missing) => {
                for name in missing {
                    problems.push(Problem::new(
                        path,
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
