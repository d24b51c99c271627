//! What comes back from a backend Envoy forwarded to, as the client must see it: the same
//! translations standalone applies (`forward`): server-initiated requests re-numbered under
//! gateway ids and remembered in the client's session, resource URIs re-namespaced,
//! `list_changed` turned into a re-list, failures turned into the JSON-RPC error naming the
//! server. Never shows the client a backend session id.

use std::sync::Arc;

use mcpgate_gateway::backend::Backend;
use mcpgate_gateway::calls::{rewrite_contents, unavailable};
use mcpgate_gateway::clients::modern::modern_error;
use mcpgate_gateway::core::ResultRewrite;
use mcpgate_gateway::session::ClientSession;
use mcpgate_protocol::envelope::{Envelope, Kind};
use mcpgate_upstream::{Connection, UpstreamError};

use super::Answer;

/// The response-phase context of one routed message.
pub struct Reply {
    backend: Arc<Backend>,
    rewrite: ResultRewrite,
    /// The client's request id (raw JSON), for error answers.
    client_id: String,
    session: Option<Arc<ClientSession>>,
    conn: Option<Arc<Connection>>,
    modern: bool,
}

impl Reply {
    pub(super) fn new(
        backend: Arc<Backend>,
        rewrite: ResultRewrite,
        client_id: String,
        session: Option<Arc<ClientSession>>,
        conn: Option<Arc<Connection>>,
        modern: bool,
    ) -> Self {
        Self { backend, rewrite, client_id, session, conn, modern }
    }

    /// The gateway's session id, shown to the client in place of any backend session id.
    pub fn session_id(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.id.as_str())
    }

    /// Whether a JSON answer must be rewritten (and so cannot keep its length).
    pub fn rewrites_json(&self) -> bool {
        self.rewrite == ResultRewrite::ResourceContents
    }

    /// The answer standalone gives when the backend answers with `status` (not 200/202).
    /// A 404 means the backend lost the client's session: it is forgotten, so the next call
    /// opens a new one (standalone retries at once; through Envoy the client retries).
    pub fn failed(&self, status: u16) -> Answer {
        let e = if status == 404 && !self.modern {
            if let (Some(s), Some(c)) = (&self.session, &self.conn) {
                s.forget_backend(&self.backend.name, c);
            }
            UpstreamError::SessionExpired
        } else {
            UpstreamError::Status { status }
        };
        let err = unavailable(&self.backend, &e);
        let err = if self.modern { modern_error(err) } else { err };
        Answer::rpc_error(Some(&self.client_id), &err)
    }

    /// A whole JSON answer as the client must see it.
    pub fn json(&self, body: &[u8]) -> Vec<u8> {
        self.message(body).unwrap_or_else(|| body.to_vec())
    }

    /// One message (of an SSE stream or a JSON answer) as the client must see it; `None`
    /// drops it (a `list_changed` the gateway handles, a request the client cannot answer).
    pub fn message(&self, msg: &[u8]) -> Option<Vec<u8>> {
        let Ok(env) = Envelope::parse(msg) else { return Some(msg.to_vec()) };
        match env.kind() {
            Some(Kind::Response) => match (self.rewrite, env.get("result")) {
                (ResultRewrite::ResourceContents, Some(r)) => {
                    let result = rewrite_contents(&self.backend.name, &self.backend.prefix, r)?;
                    Some(env.rewrite(&[("result", Some(&result))]))
                }
                _ => Some(msg.to_vec()),
            },
            Some(Kind::Request) => {
                let (Some(session), Some(conn)) = (&self.session, &self.conn) else { return Some(msg.to_vec()) };
                if session.refuse_unsupported(conn, &env) {
                    return None;
                }
                let id = session.mint_server_request_id(&self.backend.name, env.id()?.get());
                Some(env.rewrite(&[("id", Some(&id))]))
            }
            Some(Kind::Notification) if mcpgate_protocol::errors::is_list_changed(&env) => {
                match &self.session {
                    // Re-listed, and told to the session once the catalog is rebuilt, as standalone does.
                    Some(s) => s.list_changed_by(&self.backend, &env.method().unwrap_or_default()),
                    None => self.backend.request_relist(),
                }
                None
            }
            _ => Some(msg.to_vec()),
        }
    }
}
