//! Names the gateway exposes and the rules they follow.
//!
//! Tool and prompt names are `<prefix><backend name>`; resource URIs are namespaced as
//! `<server>+<original uri>` so the mapping is reversible without a lookup table.

use std::fmt;

/// A configured server's name: `[a-z0-9][a-z0-9-]*`, at most 32 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerName(String);

impl ServerName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok_first = s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let ok_rest = s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if s.is_empty() || s.len() > 32 || !ok_first || !ok_rest {
            return Err(format!("\"{s}\" is not a valid server name: use 1-32 of a-z, 0-9 and '-', starting with a letter or digit"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The longest tool name the spec recommends clients accept.
pub const MAX_NAME_LEN: usize = 128;

/// Whether `name` is within the spec's allowed tool-name characters and length.
pub fn is_valid_exposed_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Whether a configured prefix is usable: empty, or allowed characters only.
pub fn is_valid_prefix(prefix: &str) -> bool {
    prefix.len() < MAX_NAME_LEN && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Namespaces a backend resource URI for server `server`.
pub fn expose_uri(server: &ServerName, uri: &str) -> String {
    format!("{}+{uri}", server.as_str())
}

/// Reverses [`expose_uri`]: the original URI when `exposed` belongs to `server`.
pub fn backend_uri<'a>(server: &ServerName, exposed: &'a str) -> Option<&'a str> {
    exposed.strip_prefix(server.as_str())?.strip_prefix('+')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_are_restricted() {
        assert!(ServerName::parse("weather-2").is_ok());
        for bad in ["", "Weather", "a_b", "-a", "a+b", &"x".repeat(33)] {
            assert!(ServerName::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn exposed_names_follow_the_spec() {
        assert!(is_valid_exposed_name("a_get.forecast-2"));
        assert!(!is_valid_exposed_name("a_get forecast"));
        assert!(!is_valid_exposed_name("a_wetter/ü"));
        assert!(!is_valid_exposed_name(&"x".repeat(129)));
        assert!(!is_valid_exposed_name(""));
    }

    #[test]
    fn uri_namespacing_round_trips() {
        let s = ServerName::parse("files").expect("name");
        let exposed = expose_uri(&s, "file:///etc/motd");
        assert_eq!(exposed, "files+file:///etc/motd");
        assert_eq!(backend_uri(&s, &exposed), Some("file:///etc/motd"));
        let other = ServerName::parse("file").expect("name");
        assert_eq!(backend_uri(&other, &exposed), None);
    }
}
