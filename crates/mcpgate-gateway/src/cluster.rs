//! This replica's link to the others: the shared store (`mcpgate_store`) and the messages
//! replicas send each other over its bus. Built from `cluster:`; absent in a single process.
//!
//! Messages are for rare cross-replica events only; a call's hot path never waits on the bus.
//! Never logs the store password or a message's payload (it may carry a client's answer).

use std::sync::Arc;
use std::time::Duration;

use mcpgate_store::bus::To;
use mcpgate_store::{ConnectOptions, RedisStore, StoreError};
use serde::{Deserialize, Serialize};

use crate::config::ClusterConfig;

pub struct Cluster {
    pub store: RedisStore,
    /// This replica's id on the bus.
    pub replica: String,
    /// Whether responses carry `x-mcpgate-replica`.
    pub expose: bool,
}

/// What one replica tells another (or all).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum BusMessage {
    /// A session was deleted or expired: drop whatever you hold of it.
    Closed { session: String },
    /// A backend said its lists changed (to a session of the sender): list it again.
    Relist { server: String },
    /// The client cancelled `request_id` (raw JSON) in `session`: stop it if it runs here.
    Cancel { session: String, request_id: String },
    /// Push `message` (a JSON-RPC message, as the client sees it) on the session's GET stream,
    /// which the receiver holds.
    Deliver { session: String, message: String },
    /// A backend sent a server request (raw, as the backend sent it) on the GET stream of the
    /// session's backend session at `server`: hand it to a call of the session waiting there.
    ToCall { session: String, server: String, message: String },
    /// The client's answer (whole JSON-RPC response) to a request the receiver asked it.
    Answer { session: String, id: String, response: String },
    /// The session's GET stream moved to another replica: close the one held here.
    StreamMoved { session: String },
    /// Resume a parked call held by the receiver, and stream what it says back to `reply_to`.
    Resume(Box<ResumeRequest>),
    /// One message of a resumed call, back to the replica serving the client.
    ResumeReply { corr: String, message: String, last: bool },
    /// The pins in the store changed: read them again.
    PinsChanged,
}

/// A modern client's retry of a parked call, forwarded to the replica holding the call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResumeRequest {
    pub corr: String,
    pub reply_to: String,
    /// The parked call's id (hex). The forwarding replica has checked the state (caller,
    /// request, expiry) with the shared keys; the bus is as trusted as the store.
    pub call: String,
    /// The retry: its JSON-RPC id (raw), params (raw JSON), and log level rank.
    pub request_id: String,
    pub params: String,
    pub log_level: Option<u8>,
}

impl Cluster {
    /// Connects to the store, retrying for up to `patience` (a replica may start before the
    /// store is ready).
    pub async fn connect(config: &ClusterConfig, patience: Duration) -> Result<Arc<Self>, String> {
        let read = |p: &Option<std::path::PathBuf>, what: &str| -> Result<Option<Vec<u8>>, String> {
            p.as_ref().map(|p| std::fs::read(p).map_err(|e| format!("cluster.store.{what}: cannot read {}: {e}", p.display()))).transpose()
        };
        let opts = ConnectOptions {
            url: config.store.url.clone(),
            username: config.store.username.clone(),
            password: config.store.password.as_ref().map(|p| p.expose().to_owned()),
            key_prefix: config.store.key_prefix.clone(),
            timeout: config.store.timeout,
            ca_pem: read(&config.store.ca_file, "ca_file")?,
            client_cert_pem: match (read(&config.store.cert_file, "cert_file")?, read(&config.store.key_file, "key_file")?) {
                (Some(c), Some(k)) => Some((c, k)),
                _ => None,
            },
        };
        let deadline = tokio::time::Instant::now() + patience;
        let store = loop {
            match RedisStore::connect(&opts).await {
                Ok(s) => break s,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(error = %e, "waiting for the session store");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        let replica = config.replica_id.clone().unwrap_or_else(default_replica_id);
        Ok(Arc::new(Self { store, replica, expose: config.expose_replica }))
    }

    /// Sends `msg` (best effort: a failure is logged, the caller carries on).
    pub async fn send(&self, to: To, msg: &BusMessage) {
        let Ok(payload) = serde_json::to_vec(msg) else { return };
        if let Err(e) = self.store.publish(&to, &payload).await {
            tracing::warn!(error = %e, "could not reach the other replicas");
        }
    }

    /// Sends `msg` without waiting (from code that must not block on the store).
    pub fn post(self: &Arc<Self>, to: To, msg: BusMessage) {
        let me = self.clone();
        tokio::spawn(async move { me.send(to, &msg).await });
    }
}

/// The store error a client sees when a request needs the store and it cannot answer.
pub fn store_refusal(e: &StoreError) -> String {
    format!("{e}; try again shortly")
}

fn default_replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "mcpgate".into());
    format!("{host}-{}", std::process::id())
}
