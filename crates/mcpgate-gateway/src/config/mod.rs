//! The gateway's configuration: one typed tree, read from YAML, validated in one place.
//!
//! `load` reads text and substitutes `${VAR}`; `types` is the tree (unknown keys rejected);
//! `validate` checks everything that serde cannot and reports every problem with its key path
//! and a fix. Nothing here touches the network.

mod cluster;
mod duration;
mod env;
mod load;
mod types;
mod validate;
mod validate_tls;

pub use cluster::{ClusterConfig, ClusterKey, ShutdownConfig, StoreConfig};
pub use load::{ConfigError, load_file, parse_str};
pub use mcpgate_auth::Secret;
pub use types::*;
pub use validate::{Problem, validate};
