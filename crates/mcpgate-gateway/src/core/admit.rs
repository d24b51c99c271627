//! The rate-limit stage of a routed call, between permission and credential: every rule
//! that covers the call must have a token. A limited call gets the documented -32029 error,
//! an audit record and a count, and never reaches its backend. Lists never come here.

use mcpgate_protocol::RpcError;

use super::route::Target;
use crate::identity::Access;
use crate::observe::CallError;
use crate::observe::audit::Event;
use crate::quota::Call;
use crate::state::Shared;

pub async fn admit(shared: &Shared, access: &Access, target: &Target, request_id: &str) -> Result<(), RpcError> {
    let security = shared.security.load();
    if security.quotas.is_empty() {
        return Ok(());
    }
    let call = Call { method: &target.method, server: target.backend.name.as_str(), tool: target.tool.as_deref() };
    let subject = access.subject();
    let limited = match security.quotas.admit(&shared.buckets, access.identity.as_ref(), subject, &call).await {
        Ok(()) => return Ok(()),
        Err(l) => l,
    };
    access.meter.failed(CallError::RateLimited);
    let name = target.tool.as_deref().or(target.name.as_deref()).unwrap_or("");
    shared.audit.record(Event::RateLimit { subject, server: call.server, name, rule: &limited.rule.name, request_id });
    Err(limited.to_rpc())
}
