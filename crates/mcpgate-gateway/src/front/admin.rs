//! The admin listener (`admin.listen`): `/metrics` and `/healthz`, for operators, apart from
//! the MCP port. With `admin.token`, every request needs `Authorization: Bearer <token>`.
//! `/metrics` can also be served on the MCP listener (`metrics.on_main_listener`).
//!
//! Never shows configuration values; the metrics carry names and counts only.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::backend::{Era, State as BackendState};
use crate::catalog::ItemKind;
use crate::observe::scrape::{Gauges, render};
use crate::state::Shared;

pub fn admin_router(shared: Arc<Shared>) -> Router {
    Router::new().route("/metrics", get(metrics)).route("/healthz", get(healthz)).with_state(shared)
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

fn check_token(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let config = shared.config.load();
    let token = config.admin.as_ref().and_then(|a| a.token.as_ref())?;
    let sent = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let expected = token.expose().as_bytes();
    // Constant time over the expected token's length: no early exit on the first difference.
    let ok = sent.is_some_and(|s| s.len() == expected.len() && s.bytes().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0);
    (!ok).then(|| (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "admin token required\n").into_response())
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
