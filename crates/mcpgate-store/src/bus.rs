//! The replicas' message bus over Redis pub/sub: each replica listens on a channel of its own
//! and on one for all. Messages are small and rare (a session deleted elsewhere, a call to
//! cancel, a server request to deliver to the replica holding a client's stream); nothing on a
//! call's hot path goes through here.
//!
//! Delivery is at most once: a message published while a replica is disconnected from the store
//! is lost for it. Everything sent here is either repeated by its sender when it matters (a
//! session's validity is re-checked against the store) or only an optimisation.

use bytes::Bytes;
use redis::aio::ConnectionManagerConfig;
use tokio::sync::mpsc;

use crate::error::StoreError;
use crate::redis_store::RedisStore;

/// Where a bus message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    /// Every replica (the sender included).
    All,
    /// One replica, by its id.
    Replica(String),
}

/// The receiving end of a replica's bus: every message for it or for all, in order per sender.
pub struct Inbox {
    rx: mpsc::UnboundedReceiver<Bytes>,
    _conn: redis::aio::ConnectionManager,
}

impl Inbox {
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.rx.recv().await
    }
}

impl RedisStore {
    fn channel(&self, to: &To) -> String {
        match to {
            To::All => self.key("bus:all"),
            To::Replica(id) => self.key(&format!("bus:r:{id}")),
        }
    }

    /// Subscribes `replica` to its channel and the one for all. The subscription survives
    /// reconnections (it is renewed after each).
    pub async fn subscribe_bus(&self, replica: &str) -> Result<Inbox, StoreError> {
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        let (push_tx, mut push_rx) = mpsc::unbounded_channel::<redis::PushInfo>();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_push_sender(push_tx)
            .set_automatic_resubscription();
        let mut conn = tokio::time::timeout(self.timeout * 2, self.client.get_connection_manager_with_config(config))
            .await
            .map_err(|_| StoreError::Timeout(self.timeout.as_millis() as u64))?
            .map_err(|e| StoreError::from_redis(&e))?;
        let channels = [self.channel(&To::All), self.channel(&To::Replica(replica.to_owned()))];
        tokio::time::timeout(self.timeout, conn.subscribe(&channels))
            .await
            .map_err(|_| StoreError::Timeout(self.timeout.as_millis() as u64))?
            .map_err(|e| StoreError::from_redis(&e))?;
        tokio::spawn(async move {
            while let Some(push) = push_rx.recv().await {
                if push.kind != redis::PushKind::Message {
                    continue;
                }
                // [channel, payload]
                if let Some(redis::Value::BulkString(payload)) = push.data.get(1)
                    && tx.send(Bytes::copy_from_slice(payload)).is_err()
                {
                    return;
                }
            }
        });
        Ok(Inbox { rx, _conn: conn })
    }

    /// Publishes `payload` to `to`.
    pub async fn publish(&self, to: &To, payload: &[u8]) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.channel(to)).arg(payload);
        let _: i64 = self.run(&cmd).await?;
        Ok(())
    }
}
