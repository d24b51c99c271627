//! Catalog discovery: one gateway-owned session per backend that lists its items, listens for
//! `list_changed`, refreshes on an interval and pings to notice a dead backend.
//!
//! Discovery never uses a caller's identity or credentials; it connects with the static
//! headers configured for the backend.

use std::sync::Arc;
use std::time::Duration;

use mcpgate_credentials::Resolver;
use mcpgate_protocol::envelope::{Envelope, Kind, raw_str};
use mcpgate_protocol::versions::LATEST_LEGACY;
use mcpgate_upstream::{Connection, InitOptions, ModernLink, UpstreamError, probe};
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use crate::backend::{Backend, Era, State};
use crate::catalog::{BackendCaps, Listing};
use crate::config::{CatalogConfig, EraSetting};

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
            // A Streamable HTTP backend is asked first whether it speaks 2026-07-28.
            let setting = backend.config.era;
            if let (Some(url), true) = (backend.http_url(), setting != EraSetting::Legacy) {
                let link = ModernLink::new(http.clone(), url.clone(), headers.clone());
                if let Some(found) = probe(&link).await? {
                    let mut listing = list_all(&Lister::Modern(&link), &found.result).await?;
                    // A dual-era backend also serves legacy sessions: legacy clients get one, so
                    // its server requests and resource subscriptions work as they would directly.
                    let dual = setting == EraSetting::Auto && speaks_legacy_too(&backend, &http, headers, &mut listing).await;
                    return Ok::<_, UpstreamError>((Upstream::Modern { link, dual }, listing));
                }
            }
            if setting == EraSetting::Modern {
                return Err(UpstreamError::Protocol("configured as era: modern, but server/discover does not offer 2026-07-28".into()));
            }
            let conn = Connection::connect(backend.spec.clone(), &http, headers, &InitOptions::gateway(LATEST_LEGACY)).await?;
            let listing = list_all(&Lister::Legacy(&conn), &conn.init_result().raw).await?;
            Ok((Upstream::Legacy(conn), listing))
        })
        .await
        .unwrap_or(Err(UpstreamError::Timeout));
        let err = match attempt {
            Ok((upstream, listing)) => {
                backoff = Duration::from_millis(250);
                let era = match upstream {
                    Upstream::Modern { dual: true, .. } => Era::Dual,
                    Upstream::Modern { .. } => Era::Modern,
                    Upstream::Legacy(_) => Era::Legacy,
                };
                backend.set_era(era);
                tracing::info!(server = %backend.name, era = ?era, tools = listing.tools.len(), prompts = listing.prompts.len(), resources = listing.resources.len(), "backend ready");
                backend.set_health(State::Ready, None, Some(Arc::new(listing)));
                let _ = changed.send(());
                match upstream {
                    Upstream::Legacy(conn) => {
                        let err = watch(&backend, &conn, &cfg, &changed).await;
                        conn.close().await;
                        err
                    }
                    Upstream::Modern { link, .. } => watch_modern(&backend, &link, &cfg, &changed).await,
                }
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
    let Some(mut events) = conn.take_events(backend.timeouts.connect).await else { return UpstreamError::Closed };
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
            match timeout(backend.timeouts.discovery, list_all(&Lister::Legacy(conn), &conn.init_result().raw)).await.unwrap_or(Err(UpstreamError::Timeout)) {
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
    env.kind() == Some(Kind::Notification) && mcpgate_protocol::errors::is_list_changed(&env)
}

async fn ping(conn: &Connection, limit: Duration) -> Result<(), UpstreamError> {
    let ex = conn.request("ping", None).await?;
    let resp = timeout(limit, ex.response()).await.map_err(|_| UpstreamError::Timeout)??;
    let env = Envelope::parse(&resp).map_err(|e| UpstreamError::Protocol(e.to_string()))?;
    if env.has("result") { Ok(()) } else { Err(UpstreamError::Protocol("ping answered with an error".into())) }
}

// One value per discovery attempt, never stored in bulk: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Upstream {
    Legacy(Connection),
    Modern { link: ModernLink, dual: bool },
}

/// Whether a backend that answered `server/discover` also accepts `initialize` (a dual-era
/// server). Its legacy capabilities add to the listing's (resource subscriptions exist only in
/// the legacy era). The probing session is closed at once.
async fn speaks_legacy_too(backend: &Backend, http: &reqwest::Client, headers: http::HeaderMap, listing: &mut Listing) -> bool {
    let init = InitOptions::gateway(LATEST_LEGACY);
    let connect = Connection::connect(backend.spec.clone(), http, headers, &init);
    let Ok(Ok(conn)) = timeout(backend.timeouts.connect, connect).await else { return false };
    let legacy = backend_caps(conn.init_result().member("capabilities"));
    listing.caps.subscribe |= legacy.subscribe;
    listing.caps.logging |= legacy.logging;
    conn.close().await;
    true
}

/// Who answers discovery's list requests: a legacy session or a modern endpoint.
pub(crate) enum Lister<'a> {
    Legacy(&'a Connection),
    Modern(&'a ModernLink),
    /// A modern endpoint asked with a caller's credential (per-user catalogs).
    ModernAs(&'a ModernLink, &'a [(http::HeaderName, http::HeaderValue)]),
}

impl Lister<'_> {
    async fn call(&self, method: &str, params: Option<&str>) -> Result<Vec<u8>, UpstreamError> {
        match self {
            Lister::Legacy(conn) => Ok(conn.request(method, params).await?.response().await?.to_vec()),
            Lister::Modern(link) => link.call_own(method, params).await,
            Lister::ModernAs(link, credential) => {
                let params =
                    mcpgate_protocol::modern::with_meta(params, &mcpgate_protocol::modern::request_meta("{}", &mcpgate_upstream::gateway_client_info()));
                Ok(link.request_with(method, &params, &Default::default(), credential).await?.response().await?.to_vec())
            }
        }
    }
}

/// Keeps a modern backend's listing fresh: a `subscriptions/listen` stream for list changes
/// (when the backend offers it), periodic re-listing, and `server/discover` as health check.
async fn watch_modern(backend: &Backend, link: &ModernLink, cfg: &CatalogConfig, changed: &mpsc::UnboundedSender<()>) -> UpstreamError {
    let (tx, mut events) = mpsc::unbounded_channel::<()>();
    let mut listen = Box::pin(listen_for_changes(link, tx.clone()));
    let mut listening = true;
    // Whether the backend offers subscriptions at all (a stream was acknowledged once).
    let mut reopen = false;
    let mut next_refresh = Instant::now() + cfg.refresh_interval;
    loop {
        let relist = tokio::select! {
            // A stream that ends (backend restarting, or no subscriptions) is not a failure by
            // itself: the next health check decides, and re-opens it.
            acknowledged = &mut listen, if listening => { listening = false; reopen = acknowledged; continue }
            Some(()) = events.recv() => true,
            _ = sleep_until(next_refresh) => true,
            _ = backend.relist.notified() => true,
            _ = sleep(cfg.health_interval) => false,
            _ = backend.nudge.notified() => false,
        };
        let outcome = timeout(backend.timeouts.discovery, async {
            let found = probe(link).await?.ok_or_else(|| UpstreamError::Protocol("server/discover no longer offers 2026-07-28".into()))?;
            if relist || (reopen && !listening) {
                next_refresh = Instant::now() + cfg.refresh_interval;
                let listing = list_all(&Lister::Modern(link), &found.result).await?;
                tracing::info!(server = %backend.name, tools = listing.tools.len(), "backend lists refreshed");
                backend.set_health(State::Ready, None, Some(Arc::new(listing)));
                let _ = changed.send(());
            }
            Ok::<_, UpstreamError>(())
        })
        .await
        .unwrap_or(Err(UpstreamError::Timeout));
        if let Err(e) = outcome {
            return e;
        }
        if reopen && !listening {
            listen = Box::pin(listen_for_changes(link, tx.clone()));
            listening = true;
        }
    }
}

/// Reads a backend `subscriptions/listen` stream until it ends; each list change is sent on
/// `tx`. Returns at once when the backend does not offer subscriptions; true when a stream was
/// established (worth opening again).
async fn listen_for_changes(link: &ModernLink, tx: mpsc::UnboundedSender<()>) -> bool {
    let params = mcpgate_protocol::modern::with_meta(
        Some(r#"{"notifications":{"toolsListChanged":true,"promptsListChanged":true,"resourcesListChanged":true}}"#),
        &mcpgate_protocol::modern::request_meta("{}", &mcpgate_upstream::gateway_client_info()),
    );
    let Ok(mut ex) = link.request("subscriptions/listen", &params, &Default::default()).await else { return false };
    let mut established = false;
    while let Ok(Some(msg)) = ex.next().await {
        if msg.is_final {
            return established;
        }
        established = true;
        if is_list_changed(&msg.bytes) && tx.send(()).is_err() {
            return established;
        }
    }
    established
}

/// Lists everything the backend advertises (per its `initialize` or `server/discover`
/// result), following cursors.
pub(crate) async fn list_all(lister: &Lister<'_>, greeting: &RawValue) -> Result<Listing, UpstreamError> {
    let greeting = Envelope::parse_raw(greeting).map_err(|e| UpstreamError::Protocol(e.to_string()))?;
    let caps = backend_caps(greeting.get("capabilities"));
    let mut listing = Listing { caps, instructions: greeting.get("instructions").and_then(raw_str).map(|s| s.into_owned()), ..Default::default() };
    let mut hints = Hints::default();
    if caps.tools {
        listing.tools = list_kind(lister, "tools/list", "tools", &mut hints).await?;
    }
    if caps.prompts {
        listing.prompts = list_kind(lister, "prompts/list", "prompts", &mut hints).await?;
    }
    if caps.resources {
        listing.resources = list_kind(lister, "resources/list", "resources", &mut hints).await?;
        // Templates are optional even for servers with resources.
        listing.templates = list_kind(lister, "resources/templates/list", "resourceTemplates", &mut hints).await.unwrap_or_default();
    }
    listing.ttl_ms = hints.ttl_ms;
    listing.private = hints.private;
    Ok(listing)
}

const MAX_PAGES: usize = 1000;

/// The caching hints a modern backend put on its lists.
#[derive(Default)]
struct Hints {
    ttl_ms: Option<u64>,
    private: bool,
}

async fn list_kind(lister: &Lister<'_>, method: &str, key: &str, hints: &mut Hints) -> Result<Vec<Box<RawValue>>, UpstreamError> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = cursor.as_ref().map(|c| format!(r#"{{"cursor":{}}}"#, mcpgate_protocol::envelope::json_string(c)));
        let resp = lister.call(method, params.as_deref()).await?;
        let env = Envelope::parse(&resp).map_err(|e| UpstreamError::Protocol(format!("{method}: {e}")))?;
        let result = env
            .get("result")
            .ok_or_else(|| UpstreamError::Protocol(format!("{method} answered with an error: {}", env.get("error").map(|e| e.get()).unwrap_or("?"))))?;
        let result = Envelope::parse_raw(result).map_err(|e| UpstreamError::Protocol(format!("{method}: {e}")))?;
        if let Some(t) = result.get("ttlMs").and_then(|t| t.get().parse::<i64>().ok()) {
            let t = t.max(0) as u64;
            hints.ttl_ms = Some(hints.ttl_ms.map_or(t, |old| old.min(t)));
        }
        hints.private |= result.str("cacheScope").as_deref() == Some("private");
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
    let subscribe = env.get("resources").and_then(|r| Envelope::parse_raw(r).ok()).and_then(|r| r.get("subscribe").map(|v| v.get() == "true")).unwrap_or(false);
    let tasks = env.get("extensions").and_then(|e| Envelope::parse_raw(e).ok()).is_some_and(|e| e.has(mcpgate_protocol::modern::TASKS_EXTENSION));
    BackendCaps {
        tasks,
        tools: env.has("tools"),
        prompts: env.has("prompts"),
        resources: env.has("resources"),
        subscribe,
        logging: env.has("logging"),
        completions: env.has("completions"),
    }
}
