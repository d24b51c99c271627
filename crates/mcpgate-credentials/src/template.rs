//! Templates in the configuration (`{username}/{host}`, `Bearer {value}`,
//! `resource_access.{audience}.roles`) and the checks on the values that fill them. Owns the
//! rule that a caller-controlled value fills exactly one Vault path segment and can never
//! add, remove or escape one: values with `/`, `\`, `%`, `..`, control or non-ASCII
//! characters (look-alikes such as Cyrillic `а`) are refused, never cleaned up. Never
//! renders a secret into anything but a sensitive header value.

use http::{HeaderName, HeaderValue};

/// A placeholder, written `{name}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Var {
    Username,
    Subject,
    Host,
    Server,
    Audience,
    Value,
}

impl Var {
    fn parse(name: &str) -> Option<Var> {
        Some(match name {
            "username" => Var::Username,
            "subject" => Var::Subject,
            "host" => Var::Host,
            "server" => Var::Server,
            "audience" => Var::Audience,
            "value" => Var::Value,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Var::Username => "username",
            Var::Subject => "subject",
            Var::Host => "host",
            Var::Server => "server",
            Var::Audience => "audience",
            Var::Value => "value",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(Var),
}

/// A string with placeholders, parsed once at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `src`; only the placeholders in `allowed` may appear.
    pub fn parse(src: &str, allowed: &[Var]) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = src;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(format!("{src:?}: unmatched '}}'"));
            }
            if open > 0 {
                parts.push(Part::Lit(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| format!("{src:?}: unclosed '{{'"))?;
            let name = &after[..close];
            let var = Var::parse(name).filter(|v| allowed.contains(v)).ok_or_else(|| {
                let names: Vec<String> = allowed.iter().map(|v| format!("{{{}}}", v.name())).collect();
                format!("{src:?}: unknown placeholder {{{name}}}; use {}", names.join(", "))
            })?;
            parts.push(Part::Var(var));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    pub fn count(&self, var: Var) -> usize {
        self.parts.iter().filter(|p| matches!(p, Part::Var(v) if *v == var)).count()
    }

    fn literals(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Lit(s) => Some(s.as_str()),
            Part::Var(_) => None,
        })
    }

    /// Fills the placeholders; one missing from `values` renders empty.
    pub fn render(&self, values: &[(Var, &str)]) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v) => out.push_str(values.iter().find(|(k, _)| k == v).map_or("", |(_, val)| val)),
            }
        }
        out
    }
}

/// A Vault path under the mount, one template per `/`-separated segment.
#[derive(Debug, Clone)]
pub(crate) struct PathTemplate {
    segments: Vec<Template>,
}

impl PathTemplate {
    pub fn parse(src: &str) -> Result<PathTemplate, String> {
        let allowed = [Var::Username, Var::Subject, Var::Host, Var::Server];
        let mut segments = Vec::new();
        for raw in src.split('/') {
            if raw.is_empty() {
                return Err(format!("{src:?}: empty path segment (leading, trailing or double '/')"));
            }
            let segment = Template::parse(raw, &allowed)?;
            for lit in segment.literals() {
                check_literal(lit).map_err(|e| format!("{src:?}: {e}"))?;
            }
            segments.push(segment);
        }
        Ok(PathTemplate { segments })
    }

    pub fn uses(&self, var: Var) -> bool {
        self.segments.iter().any(|s| s.count(var) > 0)
    }

    /// The rendered segments; the values must have passed [`check_identity`].
    pub fn render(&self, values: &[(Var, &str)]) -> Result<Vec<String>, String> {
        self.segments
            .iter()
            .map(|t| {
                let seg = t.render(values);
                // Defence in depth: even checked values must not form `.`/`..` together.
                if seg.is_empty() || seg == "." || seg.contains("..") {
                    Err(format!("the path segment {:?} is not allowed", seg.escape_default().to_string()))
                } else {
                    Ok(seg)
                }
            })
            .collect()
    }
}

/// Checks a caller- or config-supplied value before it fills a path segment: 1..=256 chars of
/// `A-Z a-z 0-9 . _ @ + -`, not `.` and without `..`. `what` names it in the message.
pub(crate) fn check_identity(what: &str, value: &str) -> Result<(), String> {
    let shown = || value.chars().take(64).collect::<String>().escape_default().to_string();
    if value.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if value.len() > 256 {
        return Err(format!("{what} is longer than 256 bytes"));
    }
    if let Some(c) = value.chars().find(|c| !is_path_char(*c)) {
        return Err(format!("{what} \"{}\" contains {}; only A-Z a-z 0-9 . _ @ + - may address a credential", shown(), describe(c)));
    }
    if value == "." || value.contains("..") {
        return Err(format!("{what} \"{}\" contains '..' or is '.'", shown()));
    }
    Ok(())
}

/// A mount (`secret`, `kv/team-a`): segments of path characters, no `..`.
pub(crate) fn check_mount(mount: &str) -> Result<(), String> {
    if mount.is_empty() || mount.split('/').any(str::is_empty) {
        return Err(format!("{mount:?}: empty path segment"));
    }
    mount.split('/').try_for_each(check_literal).map_err(|e| format!("{mount:?}: {e}"))
}

fn check_literal(lit: &str) -> Result<(), String> {
    if let Some(c) = lit.chars().find(|c| !is_path_char(*c)) {
        return Err(format!("{} is not allowed in a Vault path", describe(c)));
    }
    if lit == "." || lit.contains("..") {
        return Err("'.' and '..' are not allowed in a Vault path".to_owned());
    }
    Ok(())
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '+' | '-')
}

fn describe(c: char) -> String {
    match c {
        '/' | '\\' | '%' | '?' | '#' | ' ' => format!("'{c}'"),
        c if c.is_control() => format!("a control character (U+{:04X})", c as u32),
        c if !c.is_ascii() => format!("a non-ASCII character (U+{:04X})", c as u32),
        c => format!("'{c}'"),
    }
}

/// Headers a credential may never be sent in: they frame the request or carry MCP state.
const RESERVED_HEADERS: &[&str] =
    &["host", "content-length", "content-type", "transfer-encoding", "connection", "te", "upgrade", "accept", "mcp-session-id", "mcp-protocol-version"];

/// Header name and value template of a credential (`Authorization: Bearer {value}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderTemplate {
    name: HeaderName,
    format: Template,
}

impl HeaderTemplate {
    /// `format` defaults to `Bearer {value}` for `Authorization`, else `{value}`.
    pub fn parse(header: &str, format: Option<&str>) -> Result<HeaderTemplate, String> {
        let name = HeaderName::from_bytes(header.as_bytes()).map_err(|_| format!("header {header:?} is not a valid header name"))?;
        if RESERVED_HEADERS.contains(&name.as_str()) {
            return Err(format!("header {header:?} cannot carry a credential"));
        }
        let default = if name == http::header::AUTHORIZATION { "Bearer {value}" } else { "{value}" };
        let src = format.unwrap_or(default);
        let template = Template::parse(src, &[Var::Value]).map_err(|e| format!("format: {e}"))?;
        if template.count(Var::Value) != 1 {
            return Err(format!("format {src:?} must contain {{value}} exactly once"));
        }
        if HeaderValue::from_str(&template.render(&[(Var::Value, "x")])).is_err() {
            return Err(format!("format {src:?} has characters not allowed in a header"));
        }
        Ok(HeaderTemplate { name, format: template })
    }

    /// The header carrying `secret`, marked sensitive; `None` when the secret holds bytes a
    /// header cannot (the caller reports it without the value).
    pub fn render(&self, secret: &str) -> Option<(HeaderName, HeaderValue)> {
        let mut value = HeaderValue::from_str(&self.format.render(&[(Var::Value, secret)])).ok()?;
        value.set_sensitive(true);
        Some((self.name.clone(), value))
    }
}

/// A dotted claim path whose segments may be whole placeholders or contain them
/// (`resource_access.{audience}.roles`); split before filling, so dots in values are kept.
pub(crate) fn claim_path(src: &str, values: &[(Var, &str)]) -> Result<Vec<String>, String> {
    let allowed = [Var::Audience, Var::Host, Var::Server];
    src.split('.')
        .map(|seg| {
            if seg.is_empty() {
                return Err(format!("{src:?}: empty segment"));
            }
            Ok(Template::parse(seg, &allowed)?.render(values))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_template_fills_one_segment_per_placeholder() {
        let t = PathTemplate::parse("{username}/{host}").expect("parses");
        let segs = t.render(&[(Var::Username, "alice"), (Var::Host, "github.mcp.local")]).expect("renders");
        assert_eq!(segs, ["alice", "github.mcp.local"]);
        assert!(t.uses(Var::Username) && !t.uses(Var::Subject));
    }

    #[test]
    fn vault_path_rejects_usernames_that_could_reach_another_path() {
        for bad in ["alice/../bob", "alice%2f..%2fbob", "bob\n", "..", ".", "\u{430}lice", "a\\b", "", "al ice", "a?b"] {
            let err = check_identity("username", bad).expect_err(bad);
            assert!(err.starts_with("username"), "{err}");
            assert!(!err.contains('\n'), "message must not carry control characters: {err:?}");
        }
        for good in ["alice", "alice.smith", "alice@example.com", "user-1_2+x"] {
            assert!(check_identity("username", good).is_ok(), "{good}");
        }
    }

    #[test]
    fn lookalike_username_is_named_by_code_point() {
        let err = check_identity("username", "\u{430}lice").expect_err("cyrillic a");
        assert!(err.contains("U+0430"), "{err}");
    }

    #[test]
    fn path_templates_refuse_unknown_placeholders_and_traversal() {
        assert!(PathTemplate::parse("{user}/{host}").is_err());
        assert!(PathTemplate::parse("../{username}").is_err());
        assert!(PathTemplate::parse("{username}//{host}").is_err());
        assert!(PathTemplate::parse("/{username}").is_err());
        assert!(PathTemplate::parse("team-a/{username}/{host}").is_ok());
    }

    #[test]
    fn header_template_defaults_to_bearer_only_for_authorization() {
        let auth = HeaderTemplate::parse("Authorization", None).expect("ok");
        let (name, value) = auth.render("abc").expect("renders");
        assert_eq!(name.as_str(), "authorization");
        assert_eq!(value.to_str().expect("ascii"), "Bearer abc");
        assert!(value.is_sensitive());
        let key = HeaderTemplate::parse("X-API-Key", None).expect("ok");
        assert_eq!(key.render("k1").expect("renders").1.to_str().expect("ascii"), "k1");
    }

    #[test]
    fn header_template_refuses_framing_headers_and_formats_without_value() {
        assert!(HeaderTemplate::parse("Host", None).is_err());
        assert!(HeaderTemplate::parse("Mcp-Session-Id", None).is_err());
        assert!(HeaderTemplate::parse("Bad Header", None).is_err());
        assert!(HeaderTemplate::parse("Authorization", Some("Bearer")).is_err());
        assert!(HeaderTemplate::parse("Authorization", Some("{value}{value}")).is_err());
        assert!(HeaderTemplate::parse("Authorization", Some("Token {value}")).is_ok());
    }

    #[test]
    fn secret_with_newline_does_not_render_a_header() {
        let auth = HeaderTemplate::parse("Authorization", None).expect("ok");
        assert!(auth.render("abc\r\nX-Evil: 1").is_none());
    }

    #[test]
    fn claim_path_keeps_dots_inside_the_audience() {
        let path = claim_path("resource_access.{audience}.roles", &[(Var::Audience, "codereview.local")]).expect("ok");
        assert_eq!(path, ["resource_access", "codereview.local", "roles"]);
    }
}
