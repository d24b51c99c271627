//! Calls parked for a modern client's `input_required` round trip (a legacy backend asked the
//! client something): the live backend exchange, what was asked, and who may resume it. The
//! registry only holds them; `calls::bridge` drives them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mcpgate_protocol::errors::notification;
use mcpgate_upstream::{Connection, Exchange};

use super::seal::Sealer;
use super::{ClientCaps, ClientSession};
use crate::backend::Backend;
use crate::catalog::ResultRewrite;

/// One server request of a parked call, shown to the client under `key`.
pub struct Asked {
    pub key: String,
    /// The backend's id for it (raw JSON).
    pub backend_id: String,
    /// `{"method":…,"params":…}` as the client sees it.
    pub request: String,
}

/// A call waiting for the client's `inputResponses`.
pub struct Parked {
    pub call: Running,
    pub asked: Vec<Asked>,
    pub principal: String,
    pub digest: [u8; 32],
}

/// A call in progress on a legacy backend session.
pub struct Running {
    pub session: Arc<ClientSession>,
    pub backend: Arc<Backend>,
    pub conn: Arc<Connection>,
    pub exchange: Exchange,
    pub rewrite: ResultRewrite,
    pub method: String,
    pub caps: ClientCaps,
    pub log_level: Option<u8>,
    /// `inputResponses` the client sent with this attempt: a backend request whose key is
    /// among them is answered at once instead of parking the call.
    pub preset: serde_json::Map<String, serde_json::Value>,
}

impl Drop for Running {
    /// A call abandoned before its response (client gone, state expired) is cancelled upstream.
    fn drop(&mut self) {
        if self.exchange.is_finished() {
            return;
        }
        let msg = notification("notifications/cancelled", Some(&format!(r#"{{"requestId":{},"reason":"the client went away"}}"#, self.exchange.backend_id())));
        let conn = self.conn.clone();
        tokio::spawn(async move {
            let _ = conn.notify(msg).await;
        });
    }
}

/// The parked calls of this gateway process and the key their states are sealed with.
#[derive(Default)]
pub struct Bridges {
    pub sealer: Sealer,
    parked: Mutex<HashMap<[u8; 16], Parked>>,
}

impl Bridges {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 16], Parked>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
