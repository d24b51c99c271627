//! The gateway's configuration: one typed tree, read from YAML, validated in one place.
//!
//! `load` reads text and substitutes `${VAR}`; `types` is the tree (unknown keys rejected);
//! `validate` checks everything that serde cannot and reports every problem with its key path
//! and a fix. Nothing here touches the network.

mod cluster;
pub(crate) mod duration;
mod env;
mod envoy;
mod governance;
mod load;
mod observe;
pub mod rate_limits;
mod types;
mod validate;
mod validate_governance;
mod validate_tls;

pub use cluster::{ClusterConfig, ClusterKey, ShutdownConfig, StoreConfig};
pub use envoy::{EnvoyConfig, EnvoyHeaders, ExtAuthzConfig, ExtProcConfig, FailureMode};
pub use load::{ConfigError, load_file, parse_str};
pub use mcpgate_auth::Secret;
pub use observe::*;
pub use types::*;
pub use validate::{Problem, validate};
