//! The client capabilities that gate server-initiated requests (sampling, elicitation, roots).

use mcpgate_protocol::envelope::Envelope;
use serde_json::value::RawValue;

/// The client capabilities that gate server-initiated requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientCaps {
    sampling: bool,
    elicitation: bool,
    roots: bool,
}

impl ClientCaps {
    pub fn parse(raw: &str) -> Self {
        Envelope::parse(raw.as_bytes()).map_or_else(|_| Self::default(), |env| Self::of(&env))
    }

    /// From a raw member (a modern request's `_meta` capabilities), without parsing its text again.
    pub fn of_raw(raw: &RawValue) -> Self {
        Envelope::parse_raw(raw).map_or_else(|_| Self::default(), |env| Self::of(&env))
    }

    fn of(env: &Envelope<'_>) -> Self {
        Self { sampling: env.has("sampling"), elicitation: env.has("elicitation"), roots: env.has("roots") }
    }

    pub fn allows(&self, method: &str) -> bool {
        match method {
            "sampling/createMessage" => self.sampling,
            "elicitation/create" => self.elicitation,
            "roots/list" => self.roots,
            // ping and anything newer: let the client decide.
            _ => true,
        }
    }
}

/// The client capability a server-to-client request needs ("input" for any other).
pub fn capability_of(method: &str) -> &'static str {
    match method {
        "sampling/createMessage" => "sampling",
        "elicitation/create" => "elicitation",
        "roots/list" => "roots",
        _ => "input",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_from_text_and_from_a_raw_member_agree() {
        for (text, sampling, elicitation, roots) in [
            (r#"{"sampling":{},"roots":{"listChanged":true}}"#, true, false, true),
            (r#"{ "elicitation" : {"form":{}} }"#, false, true, false),
            ("{}", false, false, false),
            ("[]", false, false, false),
        ] {
            let raw: &RawValue = serde_json::from_str(text).expect("JSON");
            for caps in [ClientCaps::parse(text), ClientCaps::of_raw(raw)] {
                assert_eq!(caps.allows("sampling/createMessage"), sampling, "{text}");
                assert_eq!(caps.allows("elicitation/create"), elicitation, "{text}");
                assert_eq!(caps.allows("roots/list"), roots, "{text}");
            }
        }
    }
}
