//! The connection to the store: one multiplexed, self-reconnecting connection for commands,
//! every operation bounded by the configured timeout, keys under the configured prefix.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, TlsCertificates};

use crate::error::StoreError;

/// How to reach the store. `Debug` never shows the password.
#[derive(Clone)]
pub struct ConnectOptions {
    /// `redis://host:port/db` or `rediss://host:port/db` (TLS). A password in the URL is
    /// accepted, but `password` is the place for it.
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Prepended to every key and channel, so several gateways can share one store.
    pub key_prefix: String,
    /// Bound on each operation (and on connecting).
    pub timeout: Duration,
    /// PEM CA bundle for `rediss://` (default: the system's roots).
    pub ca_pem: Option<Vec<u8>>,
    /// PEM client certificate and key, for a store that requires mutual TLS.
    pub client_cert_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A URL without its password (for logs and errors).
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => "(invalid url)".to_owned(),
    }
}

/// A connected store. Cheap to clone (the connection is shared).
#[derive(Clone)]
pub struct RedisStore {
    pub(crate) conn: ConnectionManager,
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) client: redis::Client,
}

impl RedisStore {
    /// Connects (waiting at most the configured timeout for the first connection). Later
    /// disconnections are repaired in the background; operations meanwhile fail fast.
    pub async fn connect(opts: &ConnectOptions) -> Result<Self, StoreError> {
        let client = client(opts, ProtocolVersion::RESP2)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(opts.timeout))
            .set_response_timeout(Some(opts.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = tokio::time::timeout(opts.timeout * 2, client.get_connection_manager_with_config(config))
            .await
            .map_err(|_| StoreError::Timeout(opts.timeout.as_millis() as u64))?
            .map_err(|e| StoreError::from_redis(&e))?;
        let bus_client = self::client(opts, ProtocolVersion::RESP3)?;
        Ok(Self { conn, prefix: opts.key_prefix.clone(), timeout: opts.timeout, client: bus_client })
    }

    /// The full name of `key` under this store's prefix.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs `cmd`, bounded by the timeout.
    pub(crate) async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(r) => r.map_err(|e| StoreError::from_redis(&e)),
            Err(_) => Err(StoreError::Timeout(self.timeout.as_millis() as u64)),
        }
    }

    /// Runs a Lua script, bounded by the timeout.
    pub(crate) async fn script<T: redis::FromRedisValue>(&self, inv: redis::ScriptInvocation<'_>) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, inv.invoke_async::<T>(&mut conn)).await {
            Ok(r) => r.map_err(|e| StoreError::from_redis(&e)),
            Err(_) => Err(StoreError::Timeout(self.timeout.as_millis() as u64)),
        }
    }

    /// Whether the store answers now (for `/readyz` and `/status`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self.run(&redis::cmd("PING")).await?;
        if pong == "PONG" { Ok(()) } else { Err(StoreError::Protocol(format!("PING answered {pong:?}"))) }
    }
}

fn client(opts: &ConnectOptions, protocol: ProtocolVersion) -> Result<redis::Client, StoreError> {
    let bad = |what: &str| StoreError::Protocol(format!("store url {}: {what}", redact_url(&opts.url)));
    let info = opts.url.as_str().into_connection_info().map_err(|_| bad("not a redis:// or rediss:// URL"))?;
    let mut settings = info.redis_settings().clone().set_protocol(protocol);
    if let Some(u) = &opts.username {
        settings = settings.set_username(u);
    }
    if let Some(p) = &opts.password {
        settings = settings.set_password(p);
    }
    let info = info.set_redis_settings(settings);
    let tls = opts.url.starts_with("rediss://");
    let built = if tls && (opts.ca_pem.is_some() || opts.client_cert_pem.is_some()) {
        let certs = TlsCertificates {
            client_tls: opts.client_cert_pem.as_ref().map(|(cert, key)| redis::ClientTlsConfig { client_cert: cert.clone(), client_key: key.clone() }),
            root_cert: opts.ca_pem.clone(),
        };
        redis::Client::build_with_tls(info, certs)
    } else {
        redis::Client::open(info)
    };
    built.map_err(|e| bad(&format!("{:?}", e.kind())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_options_never_show_the_password() {
        assert_eq!(redact_url("redis://:hunter2@10.0.0.1:6379/0"), "redis://***@10.0.0.1:6379/0");
        assert_eq!(redact_url("rediss://user:hunter2@cache:6380"), "rediss://***@cache:6380");
        assert_eq!(redact_url("redis://cache:6379"), "redis://cache:6379");
        let opts = ConnectOptions {
            url: "redis://:hunter2@cache:6379".into(),
            username: None,
            password: Some("hunter2".into()),
            key_prefix: "mcpgate:".into(),
            timeout: Duration::from_millis(500),
            ca_pem: None,
            client_cert_pem: None,
        };
        assert!(!format!("{opts:?}").contains("hunter2"));
    }
}
