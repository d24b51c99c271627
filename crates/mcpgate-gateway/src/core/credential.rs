//! The credential a call carries to its backend, from the server's credential chain (Vault,
//! token exchange, static, ...). The caller's own token is never among the headers unless the
//! chain says `passthrough`. Never logs a credential.

use mcpgate_credentials::Resolved;
use mcpgate_protocol::{ErrorCode, RpcError};

use tracing::Instrument;

use crate::backend::Backend;
use crate::identity::Access;
use crate::observe::CallError;
use crate::observe::audit::Event;
use crate::observe::labels::source_index;
use crate::observe::series::bump;
use crate::state::Shared;

/// The credential this call carries to its backend, from the server's chain. The caller's
/// own token is never among the headers unless the chain says `passthrough`.
pub async fn credential(shared: &Shared, access: &Access, backend: &Backend, tool: Option<&str>) -> Result<Option<Resolved>, RpcError> {
    let request_id = "null";
    let security = shared.security.load();
    if !security.credentials.has_chain(backend.name.as_str()) {
        return Ok(None);
    }
    let Some(identity) = &access.identity else {
        return Err(RpcError::new(ErrorCode::Internal, format!("server '{}' needs a per-user credential, but the caller is not authenticated", backend.name)));
    };
    let caller = mcpgate_credentials::Caller::from_identity(identity);
    let span = crate::stage_span!("credential", mcp.server = %backend.name, mcpgate.credential.source = tracing::field::Empty);
    // Boxed: a cold lookup (IdP, Vault) has a large state that every call's future would carry.
    let resolved = Box::pin(security.credentials.resolve(backend.name.as_str(), &caller, tool)).instrument(span.clone()).await;
    let audit = |source: &str, allowed: bool, reason: &str| {
        shared.audit.record(Event::Credential { subject: &identity.subject, server: backend.name.as_str(), source, allowed, reason, request_id });
    };
    match resolved {
        Ok(c) => {
            span.record("mcpgate.credential.source", c.source);
            bump(&backend.series.credentials[source_index(c.source)]);
            audit(c.source, true, "resolved");
            tracing::debug!(server = %backend.name, source = c.source, subject = %identity.subject, "credential resolved");
            Ok(Some(c))
        }
        Err(e) => {
            backend.series.credential_failed(e.reason_code());
            access.meter.failed(CallError::CredentialRefused);
            audit("-", false, e.reason_code());
            tracing::warn!(subject = %identity.subject, server = %backend.name, reason = e.reason_code(), "credential refused: {e}");
            Err(RpcError::new(ErrorCode::Internal, e.to_string()))
        }
    }
}
