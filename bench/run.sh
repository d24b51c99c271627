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
exec python3 bench/run.py --bin-dir "$TARGET/release" "$@"
