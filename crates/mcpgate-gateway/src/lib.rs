//! The gateway: configuration, catalog aggregation, client sessions, routing and the HTTP
//! front door.
//!
//! A request's path: `front` (HTTP checks, framing) → `dispatch` (what the message means) →
//! `catalog` (who owns the name) → `forward` (the client's backend session, id and name
//! translation) → `mcpgate_upstream` (the wire to the backend). Backends are discovered and
//! watched in `discovery`; `state` holds what is shared; `reload` swaps configs.

pub mod backend;
pub mod catalog;
pub mod config;
pub mod discovery;
pub mod dispatch;
pub mod forward;
pub mod front;
pub mod identity;
pub mod modern;
pub mod reject;
pub mod reload;
pub mod reply;
pub mod session;
pub mod state;
pub mod visible;

pub use state::Shared;
