//! `POST /authorize`: the gateway as an external authorizer. It verifies the caller's bearer
//! token, computes what they may call across every configured server, and answers with a
//! signed wristband (ES256, `auth.wristband_issue`) that a broker — another mcpgate with a
//! `wristband` permission source, or any verifier of the published JWKS — can trust.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mcpgate_auth::{Grants, Kind};
use serde_json::json;

use crate::catalog::ItemKind;
use crate::state::Shared;
use crate::visible::allowed;

pub async fn authorize(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let security = shared.security.load();
    let Some(issuer) = &security.wristband else {
        return (StatusCode::NOT_FOUND, "this gateway signs no wristbands (auth.wristband_issue)").into_response();
    };
    let access = match security.access(&headers).await {
        Ok(a) => a,
        Err(e) => return security.challenge(&e),
    };
    if access.identity.is_none() {
        return (StatusCode::UNAUTHORIZED, "a verified bearer token is required").into_response();
    }
    let token = match wristband_for(&shared, &access) {
        Some(Ok((_, token))) => token,
        _ => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let header = issuer.header_name().to_owned();
    let mut resp = Json(json!({"header": header, "wristband": token})).into_response();
    if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(header.as_bytes()), HeaderValue::from_str(&token)) {
        resp.headers_mut().insert(name, value);
    }
    resp
}

/// A wristband for a verified caller: every tool and prompt they may use, keyed by each
/// server's wristband key, signed with `auth.wristband_issue`. `None` without an issuer or a
/// verified identity. Shared with the Envoy ext_authz service.
pub fn wristband_for(shared: &Shared, access: &crate::identity::Access) -> Option<Result<(String, String), mcpgate_auth::WristbandError>> {
    let security = shared.security.load();
    let issuer = security.wristband.as_ref()?;
    let identity = access.identity.as_ref()?;
    let catalog = shared.catalog.load();
    let config = shared.config.load();
    let mut grants = Grants::new();
    for (kind, as_kind) in [(ItemKind::Tool, Kind::Tool), (ItemKind::Prompt, Kind::Prompt)] {
        for e in catalog.items(kind).iter().filter(|e| allowed(access, kind, e)) {
            if let Some(sc) = config.servers.iter().find(|s| s.name == e.server.as_str()) {
                grants.insert(&sc.wristband_key(), as_kind, &e.backend_name);
            }
        }
    }
    Some(match issuer.issue(identity, &grants) {
        Ok(token) => Ok((issuer.header_name().to_owned(), token)),
        Err(e) => {
            tracing::error!(error = %e, "cannot sign a wristband");
            Err(e)
        }
    })
}
