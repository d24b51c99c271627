//! The client capabilities that gate server-initiated requests (sampling, elicitation, roots).

use mcpgate_protocol::envelope::Envelope;

/// The client capabilities that gate server-initiated requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientCaps {
    sampling: bool,
    elicitation: bool,
    roots: bool,
}

impl ClientCaps {
    pub fn parse(raw: &str) -> Self {
        let Ok(env) = Envelope::parse(raw.as_bytes()) else { return Self::default() };
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
