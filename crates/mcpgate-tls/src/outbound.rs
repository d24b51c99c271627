//! The gateway's outbound HTTP client, built one way for every peer: no proxy from the
//! environment (a proxy would see credentials), no redirects (a redirect must never carry a
//! backend credential or a Vault token to another host), a bounded connect time, and the
//! peer's TLS settings when it has any.

use std::time::Duration;

use crate::ClientTls;

/// Knobs that differ between peers.
#[derive(Debug, Clone, Copy)]
pub struct OutboundOptions {
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
}

impl Default for OutboundOptions {
    fn default() -> Self {
        Self { connect_timeout: Duration::from_secs(5), pool_idle_timeout: Duration::from_secs(60) }
    }
}

/// A client with the gateway's outbound defaults and `tls` applied. Fails when a TLS file
/// cannot be read or used (the message names the file).
pub fn http_client(tls: Option<&ClientTls>, options: OutboundOptions) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(options.connect_timeout)
        .pool_idle_timeout(options.pool_idle_timeout);
    if let Some(tls) = tls {
        builder = tls.apply(builder)?;
    }
    builder.build().map_err(|e| format!("building the HTTP client: {e}"))
}
