//! The admin listener's router (`admin.listen`, never the MCP port), for operators:
//!
//! - `GET  /metrics`: every series as OpenMetrics text (also on the MCP listener with
//!   `metrics.on_main_listener`);
//! - `GET  /healthz`: the process is up;
//! - `GET  /admin/pins`: every pinned, pending and quarantined item with its state;
//! - `GET  /admin/pins/diff?server=S&name=N[&kind=tool|prompt]`: approved vs observed, field by field;
//! - `POST /admin/pins/approve` with `{"server","kind","name","hash"?}`, `{"server"}` or `{"all": true}`.
//!
//! With `admin.token` set, every request needs `Authorization: Bearer <token>` (compared in
//! constant time). Without it (loopback only) reading works and changing state is refused.
//! Other operator endpoints are added to [`admin_router`] the same way. Never shows
//! configuration values, the token or a definition's content in logs; the metrics carry names
//! and counts only.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::backend::{Era, State as BackendState};
use crate::catalog::ItemKind;
use crate::observe::audit::{DefinitionDecision, Event};
use crate::observe::scrape::{Gauges, render};
use crate::pins::diff::diff;
use crate::pins::{Change, PinKind, PinSet, Selection};
use crate::state::Shared;

/// The admin endpoints; the caller binds it to `admin.listen`.
pub fn admin_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/admin/pins", get(list))
        .route("/admin/pins/diff", get(show_diff))
        .route("/admin/pins/approve", post(approve))
        .with_state(shared)
}

async fn healthz(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(denied) = check_token(&shared, &headers) {
        return denied;
    }
    "ok".into_response()
}

/// The OpenMetrics text of every series.
pub async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(denied) = check_token(&shared, &headers) {
        return denied;
    }
    let body = render(&shared.series, gauges(&shared));
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}

/// `Some(401)` unless the request carries the configured admin token (none configured: open).
fn check_token(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    (!token_ok(shared, headers)).then(unauthorized)
}

/// Whether the request carries the configured admin token (none configured: yes).
fn token_ok(shared: &Shared, headers: &HeaderMap) -> bool {
    let config = shared.config.load();
    let Some(token) = config.admin.as_ref().and_then(|a| a.token.as_ref()) else { return true };
    let sent = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let expected = token.expose().as_bytes();
    // Constant time over the expected token's length: no early exit on the first difference.
    sent.is_some_and(|s| s.len() == expected.len() && s.bytes().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0)
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer realm=\"mcpgate-admin\"")], Json(json!({"error": "a valid admin bearer token is required"})))
        .into_response()
}

fn gauges(shared: &Shared) -> Gauges {
    let catalog = shared.catalog.load();
    let mut g = Gauges {
        client_sessions: shared.sessions.len(),
        stateless_sessions: shared.stateless.len(),
        parked_calls: shared.bridges.len(),
        rate_limit_buckets: shared.buckets.len(),
        ..Gauges::default()
    };
    for b in shared.backends.load().iter() {
        let era = match b.era() {
            Era::Legacy => "legacy",
            Era::Modern => "modern",
            Era::Dual => "dual",
            Era::Unknown => "unknown",
        };
        g.backends.push((b.name.to_string(), era, b.health().state == BackendState::Ready));
        for kind in ItemKind::ALL {
            g.catalog.push((b.name.to_string(), kind.as_str(), catalog.count(&b.name, kind)));
        }
        g.withheld.push((b.name.to_string(), catalog.withheld.get(&b.name).map_or(0, Vec::len)));
    }
    g
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

/// Why a pin request is refused before it is served; answered in one place.
enum Refused {
    /// No or a wrong token (401 with a challenge).
    Token,
    /// Changing state without a configured token (403).
    NoToken,
    /// No pin store configured (404).
    NoPins,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Token => unauthorized(),
            Refused::NoToken => error(StatusCode::FORBIDDEN, "admin.token is not configured: the admin endpoint cannot change state (set admin.token)"),
            Refused::NoPins => error(StatusCode::NOT_FOUND, "pinning is not configured (pins.file)"),
        }
    }
}

/// Checks the admin token. `changes_state`: refused outright when no token is configured.
fn authorize(shared: &Shared, headers: &HeaderMap, changes_state: bool) -> Result<(), Refused> {
    if changes_state && shared.config.load().admin.as_ref().and_then(|a| a.token.as_ref()).is_none() {
        return Err(Refused::NoToken);
    }
    if token_ok(shared, headers) { Ok(()) } else { Err(Refused::Token) }
}

/// The admin token checked, then the pin store.
fn pin_store(shared: &Shared, headers: &HeaderMap, changes_state: bool) -> Result<Arc<dyn crate::pins::PinStore>, Refused> {
    authorize(shared, headers, changes_state)?;
    shared.pins.store().ok_or(Refused::NoPins)
}

async fn list(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let store = match pin_store(&shared, &headers, false) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    Json(listing(&shared, &store.snapshot(), &store.describe())).into_response()
}

/// Every item the pins or the current catalog know, with its state.
pub fn listing(shared: &Shared, set: &PinSet, store: &str) -> Value {
    let catalog = shared.catalog.load();
    let config = shared.config.load();
    let quarantined = |server: &str, kind: PinKind, name: &str| {
        catalog.quarantined.iter().any(|(s, items)| s.as_str() == server && items.iter().any(|q| q.kind == kind.as_str() && q.name == name))
    };
    let mode = |server: &str| config.servers.iter().find(|s| s.name == server).map(|s| s.pinning);
    let mut items: Vec<Value> = set
        .items()
        .map(|(server, kind, name, e)| {
            let state = match (&e.approved, &e.pending) {
                (Some(_), None) => "approved",
                (Some(_), Some(_)) => "changed",
                (None, _) => "unpinned",
            };
            json!({
                "server": server, "kind": kind.as_str(), "name": name, "state": state, "mode": mode(server),
                "quarantined": quarantined(server, kind, name),
                "approved": e.approved.as_ref().map(|p| json!({"hash": p.hash, "at": p.at, "by": p.by})),
                "pending": e.pending.as_ref().map(|p| json!({"hash": p.hash, "at": p.at})),
            })
        })
        .collect();
    // Quarantined now but not yet in the store (its write is still under way).
    for (server, q) in catalog.quarantined.iter().flat_map(|(s, items)| items.iter().map(move |q| (s, q))) {
        let kind = if q.kind == "tool" { PinKind::Tool } else { PinKind::Prompt };
        if set.entry(server.as_str(), kind, &q.name).is_none() {
            items.push(json!({"server": server.as_str(), "kind": q.kind, "name": q.name, "state": "unpinned", "mode": mode(server.as_str()),
                "quarantined": true, "approved": null, "pending": {"hash": q.hash, "at": null}}));
        }
    }
    json!({"store": store, "items": items})
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiffQuery {
    server: String,
    name: String,
    #[serde(default)]
    kind: Option<PinKind>,
}

async fn show_diff(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let store = match pin_store(&shared, &headers, false) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("{e}: give server and name (and kind=tool|prompt), e.g. ?server=weather&name=get_forecast")),
    };
    let kind = q.kind.unwrap_or(PinKind::Tool);
    let set = store.snapshot();
    let entry = set.entry(&q.server, kind, &q.name).cloned().unwrap_or_default();
    // What the gateway sees now, else what the store has pending.
    let catalog = shared.catalog.load();
    let item_kind = if kind == PinKind::Tool { ItemKind::Tool } else { ItemKind::Prompt };
    let live = catalog.pin_report.observations.iter().find(|o| o.server == q.server && o.kind == item_kind && o.name == q.name);
    let observed = live
        .map(|o| json!({"hash": o.hash, "definition": o.definition}))
        .or_else(|| entry.pending.as_ref().map(|p| json!({"hash": p.hash, "definition": p.definition})));
    if entry.approved.is_none() && observed.is_none() {
        return error(StatusCode::NOT_FOUND, format!("no {} named {} of server {} is pinned or observed", kind.as_str(), q.name, q.server));
    }
    let before = entry.approved.as_ref().map_or(Value::Null, |p| p.definition.clone());
    let after = observed.as_ref().and_then(|o| o.get("definition").cloned()).unwrap_or_else(|| before.clone());
    Json(json!({
        "server": q.server, "kind": kind.as_str(), "name": q.name,
        "approved": entry.approved.as_ref().map(|p| json!({"hash": p.hash, "at": p.at, "by": p.by, "definition": p.definition})),
        "observed": observed,
        "changes": diff(&before, &after),
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    #[serde(default)]
    server: Option<String>,
    #[serde(default)]
    kind: Option<PinKind>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    all: bool,
    /// Approve only if the pending definition has exactly this hash (what was reviewed).
    #[serde(default)]
    hash: Option<String>,
}

async fn approve(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let store = match pin_store(&shared, &headers, true) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let body: ApproveBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, format!("invalid body ({e}); send {{\"server\",\"kind\",\"name\"}}, {{\"server\"}} or {{\"all\":true}}"));
        }
    };
    let selection = match (body.all, body.server, body.name) {
        (true, None, None) => Selection::All,
        (false, Some(server), None) if body.kind.is_none() => Selection::Server { server },
        (false, Some(server), Some(name)) => Selection::One { server, kind: body.kind.unwrap_or(PinKind::Tool), name },
        _ => return error(StatusCode::BAD_REQUEST, "send exactly one of {\"server\",\"name\"[,\"kind\"]}, {\"server\"} or {\"all\":true}"),
    };
    if body.hash.is_some() && !matches!(selection, Selection::One { .. }) {
        return error(StatusCode::BAD_REQUEST, "hash is only for approving one item");
    }
    // What the gateway sees now is recorded first, so the approval covers it.
    let observed = shared.catalog.load().pin_report.observations.clone();
    if !observed.is_empty()
        && let Err(e) = store.update(Change::Observe(observed)).await
    {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    match store.update(Change::Approve { selection, hash: body.hash, by: "admin".into() }).await {
        Ok(applied) => {
            for a in &applied.approved {
                shared.audit.record(Event::Definition {
                    server: &a.server,
                    kind: a.kind.as_str(),
                    name: &a.name,
                    hash: &a.hash,
                    approved: &a.hash,
                    decision: DefinitionDecision::Approve,
                    reason: "admin",
                });
            }
            Json(json!({"approved": applied.approved})).into_response()
        }
        Err(crate::pins::PinFileError::Change(e)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
