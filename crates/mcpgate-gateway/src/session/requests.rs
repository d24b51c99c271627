//! The ids under which the client sees server requests, and where its answers go.
//!
//! A backend's own request (sampling, elicitation, roots) is shown under an id that says where
//! the answer goes and is signed, so any replica can deliver the answer straight to the backend
//! session that asked, with nothing stored: `mcpgate-r.{key id}.{payload}.{tag}`, the payload
//! naming the server, the credential fingerprint of the backend session and the backend's own
//! id, the tag binding it to this client session. A forged or altered id is refused.
//!
//! A request the gateway asks itself (a modern backend's `input_required` round, for a legacy
//! client) waits in the process that asked: `mcpgate-b.{replica}.{n}`; an answer reaching
//! another replica is forwarded to it over the bus.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpgate_protocol::envelope::json_string;
use mcpgate_protocol::names::ServerName;
use std::sync::atomic::Ordering;

use super::keys::Purpose;
use super::{ClientSession, lock};

/// Where a client's answer goes.
#[derive(Debug)]
pub enum AnswerTarget {
    /// A backend's own request: the backend session (server, credential fingerprint) and the
    /// backend's id for it (raw JSON).
    Backend { server: ServerName, fingerprint: u64, backend_id: String },
    /// A request the gateway asked, waiting here.
    Here(tokio::sync::oneshot::Sender<Vec<u8>>),
    /// A request the gateway asked, waiting on another replica.
    Replica(String),
    /// Not an id this gateway gave the client.
    Unknown,
}

impl ClientSession {
    /// The id (raw JSON string) under which a request of `server`'s backend session is shown.
    pub fn mint_server_request_id(&self, server: &ServerName, backend_id: &str) -> String {
        let fingerprint = self.credential_of(server);
        let payload = URL_SAFE_NO_PAD.encode(format!("{server}\n{fingerprint}\n{backend_id}"));
        let keys = &self.ctx.keys;
        let tag = keys.sign(Purpose::ServerRequest, format!("{}\n{payload}", self.id).as_bytes());
        json_string(&format!("mcpgate-r.{}.{payload}.{}", keys.current_id(), URL_SAFE_NO_PAD.encode(tag)))
    }

    /// Mints the id of a request the gateway itself asks the client (era bridging).
    pub fn register_bridged_request(&self) -> (String, tokio::sync::oneshot::Receiver<Vec<u8>>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let replica = self.ctx.cluster.as_ref().map_or("local", |c| c.replica.as_str());
        let id = json_string(&format!("mcpgate-b.{replica}.{}", self.next_id.fetch_add(1, Ordering::Relaxed)));
        lock(&self.bridged).insert(id.clone(), tx);
        (id, rx)
    }

    /// Where the answer to the request shown under `id` (raw JSON) goes.
    pub fn answer_target(&self, id: &str) -> AnswerTarget {
        if let Some(tx) = lock(&self.bridged).remove(id) {
            return AnswerTarget::Here(tx);
        }
        let Ok(id_str) = serde_json::from_str::<String>(id) else { return AnswerTarget::Unknown };
        if let Some(rest) = id_str.strip_prefix("mcpgate-b.") {
            return match (rest.rsplit_once('.'), &self.ctx.cluster) {
                (Some((replica, _)), Some(c)) if replica != c.replica => AnswerTarget::Replica(replica.to_owned()),
                _ => AnswerTarget::Unknown,
            };
        }
        let Some(rest) = id_str.strip_prefix("mcpgate-r.") else { return AnswerTarget::Unknown };
        let mut parts = rest.splitn(3, '.');
        let (Some(kid), Some(payload), Some(tag)) = (parts.next(), parts.next(), parts.next()) else { return AnswerTarget::Unknown };
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else { return AnswerTarget::Unknown };
        if !self.ctx.keys.verify(Purpose::ServerRequest, kid, format!("{}\n{payload}", self.id).as_bytes(), &tag) {
            return AnswerTarget::Unknown;
        }
        let Some(decoded) = URL_SAFE_NO_PAD.decode(payload).ok().and_then(|p| String::from_utf8(p).ok()) else { return AnswerTarget::Unknown };
        let mut fields = decoded.splitn(3, '\n');
        match (fields.next().map(ServerName::parse), fields.next().map(str::parse::<u64>), fields.next()) {
            (Some(Ok(server)), Some(Ok(fingerprint)), Some(backend_id)) => AnswerTarget::Backend { server, fingerprint, backend_id: backend_id.to_owned() },
            _ => AnswerTarget::Unknown,
        }
    }

    /// An answer another replica forwarded for a request asked here; false when nothing waits.
    pub fn answer_bridged(&self, id: &str, response: Vec<u8>) -> bool {
        lock(&self.bridged).remove(id).is_some_and(|tx| tx.send(response).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionCtx;

    #[test]
    fn a_relayed_request_id_names_its_backend_session_and_only_this_session_accepts_it() {
        let ctx = SessionCtx::local();
        let a = ClientSession::new(&ctx, "2025-11-25", "{}".into(), "{}".into(), None);
        let b = ClientSession::new(&ctx, "2025-11-25", "{}".into(), "{}".into(), None);
        let server = ServerName::parse("github").expect("name");
        let id = a.mint_server_request_id(&server, r#""srv-7""#);
        match a.answer_target(&id) {
            AnswerTarget::Backend { server: s, fingerprint, backend_id } => assert_eq!((s, fingerprint, backend_id.as_str()), (server, 0, r#""srv-7""#)),
            other => panic!("expected the backend session, got {other:?}"),
        }
        assert!(matches!(b.answer_target(&id), AnswerTarget::Unknown), "bound to the session that was asked");
        let forged = id.replace("mcpgate-r.local.", "mcpgate-r.local.Z");
        assert!(matches!(a.answer_target(&forged), AnswerTarget::Unknown));
        assert!(matches!(a.answer_target(r#""mcpgate-7""#), AnswerTarget::Unknown));
        assert!(matches!(a.answer_target("42"), AnswerTarget::Unknown));
    }

    #[test]
    fn a_bridged_request_is_answered_once() {
        let ctx = SessionCtx::local();
        let a = ClientSession::new(&ctx, "2025-11-25", "{}".into(), "{}".into(), None);
        let (id, _rx) = a.register_bridged_request();
        assert!(matches!(a.answer_target(&id), AnswerTarget::Here(_)));
        assert!(matches!(a.answer_target(&id), AnswerTarget::Unknown));
    }
}
