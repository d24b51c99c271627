//! Tool governance compiled from the config: how each server's items are named and
//! overridden (`catalog::ServerRules`, compiled here per server), and the virtual servers ([`virtual_server`]). Definition pinning is
//! in `crate::pins`. Rebuilt whole on every config (re)load; never touches the network.

pub mod glob;
pub mod virtual_server;

use std::collections::HashMap;
use std::sync::Arc;

pub use crate::catalog::ServerRules;
pub use virtual_server::VirtualServer;

use crate::config::{CatalogMode, GatewayConfig};

/// The governance part of one config, compiled.
#[derive(Debug, Default)]
pub struct Governance {
    rules: HashMap<String, Arc<ServerRules>>,
    pub virtual_servers: Vec<Arc<VirtualServer>>,
    /// Whether `mcp_path` serves the full catalog.
    pub expose_full_catalog: bool,
    /// Enabled `catalog: per_user` servers and their listing TTL.
    pub per_user: Vec<(String, std::time::Duration)>,
}

impl Governance {
    pub fn build(config: &GatewayConfig) -> Result<Self, Vec<String>> {
        let rules = config.servers.iter().map(|s| (s.name.clone(), Arc::new(ServerRules::from_config(s)))).collect();
        let mut errors = Vec::new();
        let mut virtual_servers = Vec::new();
        for v in &config.virtual_servers {
            match VirtualServer::compile(config, v) {
                Ok(v) => virtual_servers.push(Arc::new(v)),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let per_user = config.servers.iter().filter(|s| s.enabled && s.catalog == CatalogMode::PerUser).map(|s| (s.name.clone(), s.catalog_ttl)).collect();
        Ok(Self { rules, virtual_servers, expose_full_catalog: config.expose_full_catalog, per_user })
    }

    /// The rules of server `name` (defaults for a server the config does not know).
    pub fn rules(&self, name: &str) -> Arc<ServerRules> {
        self.rules.get(name).cloned().unwrap_or_default()
    }

    /// The virtual server served at `path`.
    pub fn virtual_at(&self, path: &str) -> Option<&Arc<VirtualServer>> {
        self.virtual_servers.iter().find(|v| v.path == path)
    }

    /// The virtual server whose path-inserted RFC 9728 metadata URL is `path`.
    pub fn virtual_metadata_at(&self, path: &str) -> Option<&Arc<VirtualServer>> {
        let rest = path.strip_prefix("/.well-known/oauth-protected-resource")?;
        self.virtual_at(rest)
    }
}

/// The RFC 9728 metadata URL of a protected resource: the well-known path inserted before the
/// resource's path (the main endpoint's and every virtual server's).
pub fn metadata_url(resource: &str) -> String {
    match url::Url::parse(resource) {
        Ok(u) => {
            let path = u.path().trim_end_matches('/');
            format!("{}/.well-known/oauth-protected-resource{path}", u.origin().ascii_serialization())
        }
        Err(_) => format!("{resource}/.well-known/oauth-protected-resource"),
    }
}
