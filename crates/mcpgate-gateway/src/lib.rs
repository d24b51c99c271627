//! The gateway: configuration, catalog aggregation, client sessions, routing and the HTTP
//! front door.
//!
//! A request's path, one module per stage:
//! `front` (HTTP checks, framing) → `identity` (who is calling, what they may touch) →
//! `clients` (what the message means, per client era) → `core` (route → permit → credential,
//! the same for every era) → `calls` (the backend-era adapters) → `mcpgate_upstream` (the wire).
//! `session` holds client-session state; `catalog` what backends offer, kept fresh by
//! `discovery`; `state` ties the shared pieces together; `reload` swaps configs.

pub mod backend;
pub mod calls;
pub mod catalog;
pub mod clients;
pub mod cluster;
pub mod config;
pub mod core;
pub mod discovery;
pub mod front;
pub mod governance;
pub mod identity;
pub mod kind;
pub mod listener;
pub mod observe;
pub mod per_user;
pub mod pins;
pub mod quota;
pub mod reject;
pub mod reload;
pub mod replicas;
pub mod reply;
pub mod request;
pub mod session;
pub mod state;
mod timer;
pub mod visible;

pub use state::Shared;
