#!/usr/bin/env bash
# Soak test (not run in CI): a release gateway under 30 minutes of mixed load (both eras, tokens
# from a real OpenID provider with key rotation, Vault and token-exchange credentials, sessions
# opened and closed, lists and calls), sampling RSS, open FDs and live tokio tasks every few
# seconds; fails when they grow past the bounds after warm-up, or when any call fails.
# Needs the test environment (scripts/setup-test-env.sh, run by scripts/test.sh) and OpenBao
# (crates/mcpgate-credentials/tests/install-bao.sh). Arguments go to bench/soak.py, e.g.
#   bench/soak.sh --minutes 5
# The machine is shared: the load generator and the gateway run under nice.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_TARGET_DIR="$TARGET"
CACHE="${MCPGATE_TEST_CACHE:-$HOME/.cache/mcpgate-test}"
PY="$CACHE/venv-mcp2/bin/python"
if [ ! -x "$PY" ]; then
    echo "soak: $PY is missing: run scripts/setup-test-env.sh first" >&2
    exit 2
fi
bash tests/fixtures/oidc/install.sh >/dev/null
MCPGATE_BAO="${MCPGATE_BAO:-$(bash crates/mcpgate-credentials/tests/install-bao.sh | tail -n 1)}"
export MCPGATE_BAO
cargo build --locked --release -p mcpgate
exec nice -n 10 "$PY" bench/soak.py --bin "$TARGET/release/mcpgate" "$@"
