//! Behaviour tests of the crate, grouped by stage. Shared fixtures (test keys, token
//! minting, an in-process IdP) live in `support`.

mod jwks;
mod policy;
mod support;
mod tokens;
mod wristband;
