//! Behaviour tests of mcpgate-credentials against real components: OpenBao (the `bao`
//! binary from `tests/install-bao.sh`) and the test OpenID provider
//! (`tests/fixtures/oidc`). Each test starts its own instances on free loopback ports and
//! stops them by PID. Without a component a test is skipped with a message, or fails when
//! `CI` is set. Fixtures live in `support`.

mod chain;
mod exchange;
mod exchange_failures;
mod gateway_owned;
mod redaction;
mod support;
mod vault_auth;
mod vault_cache;
mod vault_identity;
mod vault_read;
