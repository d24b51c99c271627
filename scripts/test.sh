#!/usr/bin/env bash
# Runs every test of mcpgate: Rust unit tests, the integration suite against the real binary
# and real MCP servers/clients, and the official conformance suite through the gateway.
# Installs what the tests need first (Python venvs, npm packages, Node 22) into
# ${MCPGATE_TEST_CACHE:-~/.cache/mcpgate-test}; safe to re-run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="${MCPGATE_TEST_CACHE:-$HOME/.cache/mcpgate-test}"
export MCPGATE_TEST_CACHE="$CACHE"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_TARGET_DIR="$TARGET"

step() { printf '\n== %s ==\n' "$*"; }

step "install test dependencies"
scripts/setup-test-env.sh
tests/conformance/install.sh
bash tests/fixtures/oidc/install.sh >/dev/null
MCPGATE_BAO="$(bash crates/mcpgate-credentials/tests/install-bao.sh | tail -n 1)"
export MCPGATE_BAO

step "lint (rustfmt, clippy)"
cargo fmt --all --check
cargo clippy --locked --workspace --all-targets -- -D warnings

step "build"
cargo build --locked --workspace --bins
export MCPGATE_BIN="$TARGET/debug/mcpgate"

step "unit tests (cargo nextest; live tests against OpenBao, the OpenID provider and Redis)"
export MCPGATE_REQUIRE_REDIS=1
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked --workspace --no-fail-fast
else
    cargo test --locked --workspace
fi

step "fuzz smoke (each cargo-fuzz target ~20 s over its committed corpus; skipped without nightly)"
scripts/fuzz-smoke.sh

step "integration tests (pytest, real binary, real SDK servers and clients)"
"$CACHE/venv-mcp2/bin/pytest" tests/integration -q -p no:cacheprovider

step "deployment manifests (kubectl kustomize, schema validation, mcpgate check)"
scripts/check-deploy.sh

step "demo walkthrough"
"$MCPGATE_BIN" demo --once --listen 127.0.0.1:0 >/dev/null

step "MCP conformance suite through the gateway (legacy era, 0.1.16)"
tests/conformance/run-with-fixture.sh gateway --mcpgate "$MCPGATE_BIN"

step "MCP conformance suite through the gateway (2026-07-28 requirement set, 0.2.0 alpha)"
tests/conformance/run-with-fixture.sh gateway --modern --mcpgate "$MCPGATE_BIN"
