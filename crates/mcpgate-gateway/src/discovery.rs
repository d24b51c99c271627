//! Catalog discovery: one gateway-owned session per backend that lists its items, listens for
//! `list_changed`, refreshes on an interval and pings to notice a dead backend.
//!
//! Discovery never uses a caller's identity or credentials; it connects with the static
//! headers configured for the backend.

use std::sync::Arc;
use std::time::Duration;

use mcpgate_protocol::envelope::{Envelope, Kind, raw_str};
use mcpgate_protocol::versions::LATEST_LEGACY;
use mcpgate_credentials::Resolver;
use mcpgate_upstream::{Connection, InitOptions, UpstreamError};
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use crate::backend::{Backend, State};
use crate::catalog::{BackendCaps, Listing};
use crate::config::CatalogConfig;

/// Runs until aborted. Each change of the backend's listing or health is announced on `changed`.
pub(crate) async fn run(backend: Arc<Backend>, http: reqwest::Client, cfg: CatalogConfig, changed: mpsc::UnboundedSender<()>, credentials: Resolver) {
    let mut backoff = Duration::from_millis(250);
    loop {
        backend.set_health(State::Connecting, backend.health().last_error, backend.health().listing);
        let attempt = timeout(backend.timeouts.discovery, async {
            let mut headers = backend.headers.clone();
            let credential = credentials.discovery(backend.name.as_str()).await.map_err(|e| UpstreamError::Connect(e.to_string()))?;
            for (name, value) in credential.iter().flat_map(|c| c.headers.iter()) {
                headers.insert(name.clone(), value.clone());
            }
            let conn = Connection::connect(backend.spec.clone(), &http, headers, &InitOptions::gateway(LATEST_LEGACY)).await?;
            let listing = list_all(&conn).await?;
            Ok::<_, UpstreamError>((conn, listing))
        })
        .await
        .unwrap_or(Err(UpstreamError::Timeout));
        let err = match attempt {
            Ok((conn, listing)) => {
                backoff = Duration::from_millis(250);
                tracing::info!(server = %backend.name, tools = listing.tools.len(), prompts = listing.prompts.len(), resources = listing.resources.len(), "backend ready");
                backend.set_health(State::Ready, None, Some(Arc::new(listing)));
                let _ = changed.send(());
                let err = watch(&backend, &conn, &cfg, &changed).await;
                conn.close().await;
                err
            }
            Err(e) => e,
        };
        tracing::warn!(server = %backend.name, error = %err, "backend unreachable");
        backend.set_health(State::Unreachable, Some(err.to_string()), None);
        let _ = changed.send(());
        tokio::select! {
            _ = sleep(backoff) => {}
            _ = backend.nudge.notified() => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(15));
    }
}

/// Keeps the listing fresh until the backend fails; returns why it stopped.
async fn watch(backend: &Backend, conn: &Connection, cfg: &CatalogConfig, changed: &mpsc::UnboundedSender<()>) -> UpstreamError {
    let Some(mut events) = conn.take_events().await else { return UpstreamError::Closed };
    let mut next_refresh = Instant::now() + cfg.refresh_interval;
    loop {
        let relist = tokio::select! {
            msg = events.recv() => match msg {
                None => return UpstreamError::Closed,
                Some(m) => is_list_changed(&m),
            },
            _ = sleep_until(next_refresh) => true,
            _ = backend.relist.notified() => true,
            _ = sleep(cfg.health_interval) => false,
            _ = backend.nudge.notified() => false,
        };
        let outcome = if relist {
            next_refresh = Instant::now() + cfg.refresh_interval;
            match timeout(backend.timeouts.discovery, list_all(conn)).await.unwrap_or(Err(UpstreamError::Timeout)) {
                Ok(listing) => {
                    tracing::info!(server = %backend.name, tools = listing.tools.len(), "backend lists refreshed");
                    backend.set_health(State::Ready, None, Some(Arc::new(listing)));
                    let _ = changed.send(());
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else {
            ping(conn, backend.timeouts.discovery).await
        };
        if let Err(e) = outcome {
            return e;
        }
    }
}

fn is_list_changed(msg: &[u8]) -> bool {
    let Ok(env) = Envelope::parse(msg) else { return false };
    env.kind() == Some(Kind::Notification) && crate::session::is_list_changed(&env)
}

async fn ping(conn: &Connection, limit: Duration) -> Result<(), UpstreamError> {
    let ex = conn.request("ping", None).await?;
    let resp = timeout(limit, ex.response()).await.map_err(|_| UpstreamError::Timeout)??;
    let env = Envelope::parse(&resp).map_err(|e| UpstreamError::Protocol(e.to_string()))?;
    if env.has("result") { Ok(()) } else { Err(UpstreamError::Protocol("ping answered with an error".into())) }
}

/// Lists everything the backend advertises, following cursors.
pub(crate) async fn list_all(conn: &Connection) -> Result<Listing, UpstreamError> {
    let caps = backend_caps(conn.init_result().member("capabilities"));
    let mut listing = Listing {
        caps,
        instructions: conn.init_result().member("instructions").and_then(raw_str).map(|s| s.into_owned()),
        ..Default::default()
    };
    if caps.tools {
        listing.tools = list_kind(conn, "tools/list", "tools").await?;
    }
    if caps.prompts {
        listing.prompts = list_kind(conn, "prompts/list", "prompts").await?;
    }
    if caps.resources {
        listing.resources = list_kind(conn, "resources/list", "resources").await?;
        // Templates are optional even for servers with resources.
        listing.templates = list_kind(conn, "resources/templates/list", "resourceTemplates").await.unwrap_or_default();
    }
    Ok(listing)
}

const MAX_PAGES: usize = 1000;

async fn list_kind(conn: &Connection, method: &str, key: &str) -> Result<Vec<Box<RawValue>>, UpstreamError> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = cursor.as_ref().map(|c| format!(r#"{{"cursor":{}}}"#, mcpgate_protocol::envelope::json_string(c)));
        let resp = conn.request(method, params.as_deref()).await?.response().await?;
        let env = Envelope::parse(&resp).map_err(|e| UpstreamError::Protocol(format!("{method}: {e}")))?;
        let result = env
            .get("result")
            .ok_or_else(|| UpstreamError::Protocol(format!("{method} answered with an error: {}", env.get("error").map(|e| e.get()).unwrap_or("?"))))?;
        let result = Envelope::parse_raw(result).map_err(|e| UpstreamError::Protocol(format!("{method}: {e}")))?;
        let page: Vec<Box<RawValue>> = result
            .get(key)
            .map(|raw| serde_json::from_str(raw.get()))
            .transpose()
            .map_err(|e| UpstreamError::Protocol(format!("{method}: {key} is not a list: {e}")))?
            .unwrap_or_default();
        items.extend(page);
        match result.get("nextCursor").and_then(raw_str) {
            Some(c) if !c.is_empty() => cursor = Some(c.into_owned()),
            _ => return Ok(items),
        }
    }
    Err(UpstreamError::Protocol(format!("{method}: more than {MAX_PAGES} pages")))
}

fn backend_caps(raw: Option<&RawValue>) -> BackendCaps {
    let Some(env) = raw.and_then(|r| Envelope::parse_raw(r).ok()) else { return BackendCaps::default() };
    let subscribe = env
        .get("resources")
        .and_then(|r| Envelope::parse_raw(r).ok())
        .and_then(|r| r.get("subscribe").map(|v| v.get() == "true"))
        .unwrap_or(false);
    BackendCaps {
        tools: env.has("tools"),
        prompts: env.has("prompts"),
        resources: env.has("resources"),
        subscribe,
        logging: env.has("logging"),
        completions: env.has("completions"),
    }
}
