//! A server's `vault` source: builds the caller's secret path from checked segments, reads
//! the field, and puts it in the configured header. Owns the rule that the caller's identity
//! is checked before any request is made; never sends a request for a refused identity and
//! never puts the secret anywhere but the sensitive header.

use std::sync::Arc;

use serde_json::Value;

use super::VaultClient;
use crate::config::{OnError, OnMissing, VaultSourceConfig};
use crate::error::CredentialError;
use crate::resolved::Resolved;
use crate::resolver::{Call, Target};
use crate::template::{HeaderTemplate, PathTemplate, Var, check_identity, check_mount};

pub(crate) struct VaultSource {
    client: Arc<VaultClient>,
    mount: Vec<String>,
    path: PathTemplate,
    field: String,
    header: HeaderTemplate,
    username_claim: String,
    /// How a refused username is named: `username (<claim>)`.
    username_label: String,
    pub on_missing: OnMissing,
    pub on_error: OnError,
}

impl VaultSource {
    pub fn build(cfg: &VaultSourceConfig, client: Arc<VaultClient>, target: &Target) -> Result<Self, String> {
        check_mount(&cfg.mount).map_err(|e| format!("mount: {e}"))?;
        let path = PathTemplate::parse(&cfg.path).map_err(|e| format!("path: {e}"))?;
        if path.uses(Var::Host) {
            let host = target.host.as_deref().ok_or("path: {host} needs a server with a URL")?;
            check_identity("the server's host", host).map_err(|e| format!("path: {e}"))?;
        }
        if path.uses(Var::Server) {
            check_identity("the server's name", &target.name).map_err(|e| format!("path: {e}"))?;
        }
        if !path.uses(Var::Username) && !path.uses(Var::Subject) {
            tracing::warn!(server = %target.name, path = %cfg.path,
                "vault path names no caller ({{username}} or {{subject}}): every caller gets the same secret");
        }
        if cfg.field.is_empty() {
            return Err("field: must not be empty".to_owned());
        }
        if cfg.username_claim.is_empty() {
            return Err("username_claim: must not be empty".to_owned());
        }
        let header = HeaderTemplate::parse(&cfg.header, cfg.format.as_deref())?;
        Ok(Self {
            client,
            mount: cfg.mount.split('/').map(str::to_owned).collect(),
            path,
            field: cfg.field.clone(),
            header,
            username_claim: cfg.username_claim.clone(),
            username_label: format!("username ({})", cfg.username_claim),
            on_missing: cfg.on_missing,
            on_error: cfg.on_error,
        })
    }

    /// The caller's secret; `None` when Vault has no entry for them.
    pub async fn resolve(&self, call: &Call<'_>, target: &Target) -> Result<Option<Resolved>, CredentialError> {
        let invalid = |reason: String| CredentialError::InvalidIdentity { server: target.name.clone(), via: "vault", reason };
        // At most four: server, host, username, subject.
        let mut values = Vec::with_capacity(4);
        values.push((Var::Server, target.name.as_str()));
        if let Some(host) = &target.host {
            values.push((Var::Host, host.as_str()));
        }
        if self.path.uses(Var::Username) {
            let claim = &self.username_claim;
            let username = call.caller.claims.get(claim).and_then(Value::as_str);
            let username = username.ok_or_else(|| invalid(format!("the token has no string claim {claim:?}")))?;
            check_identity(&self.username_label, username).map_err(invalid)?;
            values.push((Var::Username, username));
        }
        if self.path.uses(Var::Subject) {
            check_identity("subject", call.caller.subject).map_err(invalid)?;
            values.push((Var::Subject, call.caller.subject));
        }
        let segments = self.path.render(&values).map_err(invalid)?;
        match self.client.read(&self.mount, &segments, &self.field).await {
            Ok(Some(secret)) => call
                .fingerprints
                .resolved_cached("vault", &self.header, &secret, None)
                .map(Some)
                .ok_or_else(|| CredentialError::BadHeaderValue { server: target.name.clone(), via: "vault" }),
            Ok(None) => Ok(None),
            Err(reason) => Err(CredentialError::Vault { server: target.name.clone(), reason }),
        }
    }
}
