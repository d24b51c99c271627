#!/usr/bin/env bash
# Benchmark harness: builds release binaries, starts everything on loopback, runs each scenario
# direct-to-backend and through the gateway in the same run, and writes bench/out/results.md
# and bench/out/results.json. `--smoke` runs every scenario for about a second (used by CI).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_TARGET_DIR="$TARGET"
cargo build --locked --release -p mcpgate -p mcpgate-bench

# The peer (FastMCP's proxy mode), pinned, in a venv outside the repo.
PEER_VENV="${MCPGATE_TEST_CACHE:-$HOME/.cache/mcpgate-test}/venv-fastmcp"
if ! "$PEER_VENV/bin/python" -c 'import fastmcp' >/dev/null 2>&1 || [ "$("$PEER_VENV/bin/python" -c 'import fastmcp; print(fastmcp.__version__)')" != "4.2.3" ]; then
    python3 -m venv "$PEER_VENV"
    "$PEER_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "fastmcp==4.2.3"
fi
export MCPGATE_PEER_PYTHON="$PEER_VENV/bin/python"
exec python3 bench/run.py --bin-dir "$TARGET/release" "$@"
