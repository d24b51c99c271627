//! A server's `token_exchange` source: the audience and options it asks for, the per-tool
//! role check on the exchanged token, and the header it is sent in. Never returns a token
//! for a tool its roles do not list when `require_tool_role` is on.

use std::sync::Arc;

use super::{Exchanger, Failure, Request, check::roles};
use crate::config::{ExchangeSourceConfig, OnError};
use crate::error::CredentialError;
use crate::resolved::Resolved;
use crate::resolver::{Call, Target};
use crate::template::{HeaderTemplate, Template, Var, claim_path};

pub(crate) struct ExchangeSource {
    exchanger: Arc<Exchanger>,
    audience: String,
    scope: Option<String>,
    resource: Option<String>,
    requested_token_type: Option<String>,
    require_tool_role: bool,
    roles_path: Vec<String>,
    header: HeaderTemplate,
    pub on_error: OnError,
}

impl ExchangeSource {
    pub fn build(cfg: &ExchangeSourceConfig, exchanger: Arc<Exchanger>, target: &Target) -> Result<Self, String> {
        let mut values = vec![(Var::Server, target.name.as_str())];
        let template = Template::parse(&cfg.audience, &[Var::Host, Var::Server]).map_err(|e| format!("audience: {e}"))?;
        if template.count(Var::Host) > 0 {
            let host = target.host.as_deref().ok_or("audience: {host} needs a server with a URL")?;
            values.push((Var::Host, host));
        }
        let audience = template.render(&values);
        if audience.is_empty() || audience.chars().any(char::is_control) {
            return Err("audience: must be a non-empty string without control characters".to_owned());
        }
        values.push((Var::Audience, audience.as_str()));
        let roles_path = claim_path(&cfg.roles_claim, &values).map_err(|e| format!("roles_claim: {e}"))?;
        let header = HeaderTemplate::parse(&cfg.header, cfg.format.as_deref())?;
        exchanger.add_audience(&audience);
        Ok(Self {
            exchanger,
            scope: cfg.scope.clone(),
            resource: cfg.resource.clone(),
            requested_token_type: cfg.requested_token_type.clone(),
            require_tool_role: cfg.require_tool_role,
            roles_path,
            header,
            on_error: cfg.on_error,
            audience,
        })
    }

    pub async fn resolve(&self, call: &Call<'_>, target: &Target) -> Result<Resolved, CredentialError> {
        let req = Request {
            audience: &self.audience,
            scope: self.scope.as_deref(),
            resource: self.resource.as_deref(),
            requested_token_type: self.requested_token_type.as_deref(),
        };
        let server = || target.name.clone();
        let exchanged = self.exchanger.token(call.caller, &req).await.map_err(|f| match f {
            Failure::Exchange(reason) => CredentialError::Exchange { server: server(), reason },
            Failure::Rejected(reason) => CredentialError::ExchangedTokenRejected { server: server(), reason },
        })?;
        // Applies to tool calls; other calls are authorised by the gateway's permissions.
        if self.require_tool_role
            && let Some(tool) = call.tool
            && !roles(&exchanged.claims, &self.roles_path).contains(&tool)
        {
            return Err(CredentialError::ToolNotPermitted { server: server(), tool: tool.to_owned() });
        }
        call.fingerprints
            .resolved_cached("token_exchange", &self.header, &exchanged.token, Some(exchanged.expires_at))
            .ok_or_else(|| CredentialError::BadHeaderValue { server: server(), via: "token_exchange" })
    }
}
