//! The credential a call carries to its backend, from the server's credential chain (Vault,
//! token exchange, static, ...). The caller's own token is never among the headers unless the
//! chain says `passthrough`. Never logs a credential.

use mcpgate_credentials::Resolved;
use mcpgate_protocol::{ErrorCode, RpcError};

use crate::backend::Backend;
use crate::identity::Access;
use crate::state::Shared;

/// The credential this call carries to its backend, from the server's chain. The caller's
/// own token is never among the headers unless the chain says `passthrough`.
pub async fn credential(shared: &Shared, access: &Access, backend: &Backend, tool: Option<&str>) -> Result<Option<Resolved>, RpcError> {
    let security = shared.security.load();
    if !security.credentials.has_chain(backend.name.as_str()) {
        return Ok(None);
    }
    let Some(identity) = &access.identity else {
        return Err(RpcError::new(ErrorCode::Internal, format!("server '{}' needs a per-user credential, but the caller is not authenticated", backend.name)));
    };
    let caller = mcpgate_credentials::Caller::from_identity(identity);
    // Boxed: a cold lookup (IdP, Vault) has a large state that every call's future would carry.
    match Box::pin(security.credentials.resolve(backend.name.as_str(), &caller, tool)).await {
        Ok(c) => {
            tracing::debug!(server = %backend.name, source = c.source, subject = %identity.subject, "credential resolved");
            Ok(Some(c))
        }
        Err(e) => {
            tracing::warn!(target: "mcpgate::audit", subject = %identity.subject, server = %backend.name, reason = e.reason_code(), "credential refused: {e}");
            Err(RpcError::new(ErrorCode::Internal, e.to_string()))
        }
    }
}
