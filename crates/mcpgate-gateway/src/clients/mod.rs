//! Client-era adapters: what each JSON-RPC message means for a legacy-era session
//! ([`legacy`]) or a stateless 2026-07-28 request ([`modern`]). Both route and permit through
//! `core` and reach backends through `calls`.

pub mod legacy;
pub mod modern;
mod subscribe;
