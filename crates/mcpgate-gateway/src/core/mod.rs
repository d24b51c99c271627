//! The era-independent core of a request: route → permit ([`route`]), the rate limits
//! ([`admit`]), the backend credential ([`credential`]), list answers ([`list`]), each
//! caller's own listings of per-user servers ([`personal`]). Client-era adapters (`clients`)
//! call in here; backend-era adapters (`calls`) take its [`route::Target`].

pub mod admit;
pub mod credential;
pub mod list;
pub mod personal;
pub mod route;

pub use crate::catalog::ResultRewrite;
pub use admit::admit;
pub use credential::credential;
pub use list::list_response;
pub use route::{Target, resource_in_scope, resource_owner, route};
