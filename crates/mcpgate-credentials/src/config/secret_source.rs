//! A secret named in the configuration by value, environment variable or file. Owns reading
//! it; never prints it (`Debug` shows `***` for an inline value, and names only the variable
//! or the path otherwise) and never puts it in an error message.

use std::path::PathBuf;

use mcpgate_auth::Secret;
use serde::Deserialize;

/// Exactly one of `value`, `env`, `file`. A file's content is trimmed of surrounding
/// whitespace (a trailing newline is not part of the secret).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// The secret inline (keep it out of files under version control).
    #[serde(default)]
    pub value: Option<Secret>,
    /// The name of an environment variable holding the secret.
    #[serde(default)]
    pub env: Option<String>,
    /// A file holding the secret (e.g. a mounted Kubernetes secret).
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl SecretSource {
    /// An inline secret (for code that builds configuration).
    pub fn value(secret: impl Into<String>) -> Self {
        Self { value: Some(Secret::new(secret)), ..Self::default() }
    }

    /// A secret read from an environment variable.
    pub fn env(name: impl Into<String>) -> Self {
        Self { env: Some(name.into()), ..Self::default() }
    }

    /// A secret read from a file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self { file: Some(path.into()), ..Self::default() }
    }

    /// Reads the secret. Errors name the variable or file and the fix, never the value.
    pub fn load(&self) -> Result<Secret, String> {
        let given = [self.value.is_some(), self.env.is_some(), self.file.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err("give exactly one of value, env, file".to_owned());
        }
        let raw = if let Some(value) = &self.value {
            value.expose().to_owned()
        } else if let Some(name) = &self.env {
            std::env::var(name).map_err(|e| match e {
                std::env::VarError::NotPresent => format!("environment variable {name} is not set"),
                std::env::VarError::NotUnicode(_) => format!("environment variable {name} is not valid UTF-8"),
            })?
        } else if let Some(path) = &self.file {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))?;
            text.trim().to_owned()
        } else {
            unreachable!("exactly one source was checked above")
        };
        if raw.is_empty() {
            return Err(format!("{} is empty", self.describe()));
        }
        Ok(Secret::new(raw))
    }

    /// Where the secret comes from, for messages: `an inline value`, `env FOO`, `file /x`.
    pub fn describe(&self) -> String {
        match (&self.value, &self.env, &self.file) {
            (Some(_), _, _) => "the inline value".to_owned(),
            (None, Some(name), _) => format!("environment variable {name}"),
            (None, None, Some(path)) => format!("file {}", path.display()),
            (None, None, None) => "nothing".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SecretSource;

    #[test]
    fn file_secret_is_trimmed_and_never_printed() {
        let path = std::env::temp_dir().join(format!("mcpgate-cred-secret-{}", std::process::id()));
        std::fs::write(&path, "file-secret-7f3a\n").expect("write");
        let src = SecretSource::file(&path);
        let secret = src.load().expect("loads");
        assert_eq!(secret.expose(), "file-secret-7f3a");
        assert!(!format!("{src:?} {secret:?}").contains("file-secret-7f3a"));
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn inline_value_is_redacted_in_debug() {
        let src = SecretSource::value("inline-secret-91b2");
        assert!(!format!("{src:?}").contains("inline-secret-91b2"));
        assert_eq!(src.load().expect("loads").expose(), "inline-secret-91b2");
    }

    #[test]
    fn missing_variable_and_file_are_clear_errors() {
        let e = SecretSource::env("MCPGATE_TEST_SURELY_UNSET_VAR").load().expect_err("unset");
        assert_eq!(e, "environment variable MCPGATE_TEST_SURELY_UNSET_VAR is not set");
        let e = SecretSource::file("/nonexistent/mcpgate/secret").load().expect_err("no file");
        assert!(e.starts_with("cannot read /nonexistent/mcpgate/secret"), "{e}");
        let both = SecretSource { env: Some("A".into()), ..SecretSource::value("x") };
        assert_eq!(both.load().expect_err("two"), "give exactly one of value, env, file");
    }
}
