//! A client session's backend sessions: one per backend and credential, opened on first use
//! with the client's capabilities, re-opened once when the backend lost it.
//!
//! In a cluster, a backend session is opened by whichever replica first needs it and stored
//! (`b:{server}:{fingerprint}` in the session's record); every other replica resumes it
//! ([`Connection::attach`]): one `initialize` per client and backend, however many replicas
//! serve the client, and none after a replica restarts. When two replicas open one at once, the
//! first stored wins and the other ends its own. Only Streamable HTTP sessions can be resumed
//! elsewhere; a stdio or HTTP+SSE backend session belongs to the replica that opened it.

use std::sync::Arc;

use mcpgate_credentials::Resolved;
use mcpgate_protocol::envelope::json_string;
use mcpgate_protocol::names::ServerName;
use mcpgate_store::sessions::BackendSession;
use mcpgate_upstream::{Connection, UpstreamError};
use tokio::sync::OnceCell;

use super::{ClientSession, lock, short};
use crate::backend::Backend;

type Cell = Arc<OnceCell<Arc<Connection>>>;

/// A backend session slot: the fingerprint of the credential it was opened with, and the
/// connection (created once). A different credential gets a different session.
#[derive(Clone, Default)]
pub(super) struct Slot {
    pub(super) credential: u64,
    cell: Cell,
}

impl Slot {
    pub(super) fn connection(&self) -> Option<Arc<Connection>> {
        self.cell.get().cloned()
    }
}

impl ClientSession {
    /// This client's session with `backend`, created on first use with `credential`. When the
    /// credential changes (expired and re-resolved), a new backend session replaces the old.
    pub async fn backend(&self, backend: &Arc<Backend>, credential: Option<&Resolved>) -> Result<Arc<Connection>, UpstreamError> {
        let fingerprint = credential.map_or(0, |c| c.fingerprint);
        let (cell, replaced) = {
            let mut map = lock(&self.backends);
            let slot = map.entry(backend.name.clone()).or_insert_with(|| Slot { credential: fingerprint, cell: Cell::default() });
            if slot.credential == fingerprint {
                (slot.cell.clone(), None)
            } else {
                let old = std::mem::replace(slot, Slot { credential: fingerprint, cell: Cell::default() });
                (slot.cell.clone(), old.cell.get().cloned())
            }
        };
        if let Some(old) = replaced {
            tokio::spawn(async move { old.close().await });
        }
        let conn = cell
            // Boxed: opening a backend session is rare, and its state would otherwise enlarge
            // every call's future.
            .get_or_try_init(|| Box::pin(self.open_backend(backend, credential, fingerprint)))
            .await?
            .clone();
        Ok(conn)
    }

    /// Resumes the backend session the cluster already has for (`backend`, `fingerprint`), or
    /// opens a new one (and shares it).
    async fn open_backend(&self, backend: &Arc<Backend>, credential: Option<&Resolved>, fingerprint: u64) -> Result<Arc<Connection>, UpstreamError> {
        let mut headers = backend.headers.clone();
        for (name, value) in credential.iter().flat_map(|c| c.headers.iter()) {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(existing) = self.shared_backend(&backend.name, fingerprint).await
            && let Ok(conn) = Connection::attach(backend.spec.clone(), backend.http(), headers.clone(), &existing.session_id, &existing.protocol_version)
        {
            let conn = Arc::new(conn);
            tracing::debug!(session = %short(&self.id), server = %backend.name, "backend session resumed");
            self.relay_events(backend, &conn, false).await;
            return Ok(conn);
        }
        let mut init = self.init.clone();
        if let Some(cluster) = self.cluster()
            && let Ok(Some(rec)) = cluster.store.load_session(&self.id, u64::MAX / 2, super::now_ms()).await
        {
            // Another replica may have changed the level since this one cached the session.
            *lock(&self.log_level) = rec.log_level;
        }
        init.protocol_version = self.protocol_version.to_owned();
        let connect = Connection::connect(backend.spec.clone(), backend.http(), headers.clone(), &init);
        let conn = tokio::time::timeout(backend.timeouts.connect.max(backend.timeouts.discovery), connect).await.map_err(|_| UpstreamError::Timeout)??;
        let mut conn = Arc::new(conn);
        if let Some(winner) = self.share_backend(&backend.name, fingerprint, &conn).await
            && let Ok(theirs) = Connection::attach(backend.spec.clone(), backend.http(), headers, &winner.session_id, &winner.protocol_version)
        {
            // Another replica opened one at the same moment and stored it first: use that one.
            let ours = std::mem::replace(&mut conn, Arc::new(theirs));
            tokio::spawn(async move { ours.close().await });
            self.relay_events(backend, &conn, false).await;
            return Ok(conn);
        }
        tracing::debug!(session = %short(&self.id), server = %backend.name, "backend session opened");
        // Out-of-request messages (list_changed, server requests, resource updates) are read
        // from the start: a change announced only to this session must not be lost.
        self.relay_events(backend, &conn, true).await;
        let level = lock(&self.log_level).clone();
        if let Some(level) = level {
            let params = format!(r#"{{"level":{}}}"#, json_string(&level));
            if let Ok(ex) = conn.request("logging/setLevel", Some(&params)).await {
                let _ = ex.response().await;
            }
        }
        Ok(conn)
    }

    /// The backend session another replica stored for (`server`, `fingerprint`), if any.
    async fn shared_backend(&self, server: &ServerName, fingerprint: u64) -> Option<BackendSession> {
        let cluster = self.cluster()?;
        let key = (server.to_string(), fingerprint);
        if let Some(known) = lock(&self.known).get(&key).cloned() {
            return Some(known);
        }
        let failed = lock(&self.failed).get(&key).cloned();
        match cluster.store.backend_session(&self.id, server.as_str(), fingerprint).await {
            // The one that failed here is not worth resuming; a newer one is.
            Ok(found) => found.filter(|b| Some(&b.session_id) != failed.as_ref()),
            Err(e) => {
                tracing::warn!(session = %short(&self.id), error = %e, "could not read the shared backend sessions; opening one here");
                None
            }
        }
    }

    /// Stores `conn` as the cluster's backend session for (`server`, `fingerprint`). Returns
    /// the one in force when another replica's won.
    async fn share_backend(&self, server: &ServerName, fingerprint: u64, conn: &Connection) -> Option<BackendSession> {
        let cluster = self.cluster()?;
        let id = conn.shareable_id()?;
        let ours = BackendSession { session_id: id.to_owned(), protocol_version: conn.init_result().protocol_version.clone() };
        let key = (server.to_string(), fingerprint);
        lock(&self.known).remove(&key);
        let replacing = lock(&self.failed).remove(&key);
        match cluster.store.put_backend_session(&self.id, server.as_str(), fingerprint, &ours, replacing.as_deref()).await {
            Ok(Some(in_force)) if in_force.session_id != ours.session_id => Some(in_force),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(session = %short(&self.id), error = %e, "could not share the backend session; other replicas will open their own");
                None
            }
        }
    }

    /// Forgets a backend session that failed (e.g. the backend lost it), so the next call
    /// creates a fresh one. Only forgets `failed` itself, not a replacement made meanwhile.
    pub fn forget_backend(&self, server: &ServerName, failed: &Arc<Connection>) {
        let mut map = lock(&self.backends);
        if let Some(slot) = map.get(server)
            && slot.cell.get().is_some_and(|c| Arc::ptr_eq(c, failed))
        {
            let key = (server.to_string(), slot.credential);
            map.remove(server);
            // The next open replaces it in the store (unless another replica already did).
            lock(&self.known).remove(&key);
            if let Some(id) = failed.shareable_id() {
                lock(&self.failed).insert(key, id.to_owned());
            }
        }
    }

    /// Closes and forgets this client's session with `server` (config reload removed it).
    pub async fn drop_backend(&self, server: &ServerName) {
        let slot = lock(&self.backends).remove(server);
        if let Some(conn) = slot.and_then(|s| s.connection()) {
            conn.close().await;
        }
    }

    pub fn open_backends(&self) -> Vec<(ServerName, Arc<Connection>)> {
        lock(&self.backends).iter().filter_map(|(k, s)| Some((k.clone(), s.connection()?))).collect()
    }

    /// The open backend session for `server` opened with credential `fingerprint`.
    pub fn connection(&self, server: &ServerName, fingerprint: u64) -> Option<Arc<Connection>> {
        lock(&self.backends).get(server).filter(|s| s.credential == fingerprint).and_then(Slot::connection)
    }

    /// The servers the store knows a backend session of this client for (in a cluster; none
    /// otherwise).
    pub async fn stored_backend_servers(&self) -> Vec<ServerName> {
        let Some(cluster) = self.cluster() else { return Vec::new() };
        let Ok(Some(rec)) = cluster.store.load_session(&self.id, u64::MAX / 2, super::now_ms()).await else { return Vec::new() };
        let mut servers: Vec<ServerName> = rec.backends.keys().filter_map(|(s, _)| ServerName::parse(s).ok()).collect();
        servers.dedup();
        servers
    }

    /// The fingerprint of the credential this session's backend session at `server` uses.
    pub fn credential_of(&self, server: &ServerName) -> u64 {
        lock(&self.backends).get(server).map_or(0, |s| s.credential)
    }
}
