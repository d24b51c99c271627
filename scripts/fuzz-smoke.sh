#!/usr/bin/env bash
# Fuzz smoke: builds the cargo-fuzz targets (fuzz/) and runs each one briefly over its committed
# corpus, so a regression the corpus reaches, or a property broken by a change, fails CI.
# The long runs that built the corpora are described in docs/fuzzing.md.
#
# Needs a nightly toolchain (the sanitizer build); without one it says so and exits 0.
# Installs cargo-fuzz when missing. New inputs found here go to a temporary directory, never
# into the committed corpus.
#   FUZZ_SECONDS=20 (per target)   FUZZ_TARGETS="envelope sse" (default: all)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
SECONDS_EACH="${FUZZ_SECONDS:-20}"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz smoke: skipped (no nightly toolchain; install one with: rustup toolchain install nightly)"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz smoke: installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

FUZZ_TARGET_DIR="$TARGET/fuzz"
cargo +nightly fuzz build --fuzz-dir fuzz --target-dir "$FUZZ_TARGET_DIR"
BIN_DIR="$FUZZ_TARGET_DIR/x86_64-unknown-linux-gnu/release"
targets="${FUZZ_TARGETS:-$(cargo fuzz list --fuzz-dir fuzz)}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
for t in $targets; do
    dict=()
    [ -f "fuzz/dicts/$t.dict" ] && dict=("-dict=fuzz/dicts/$t.dict")
    case $t in envelope|dupkeys) dict=("-dict=fuzz/dicts/json.dict") ;; esac
    mkdir -p "$work/$t" "$work/artifacts/$t"
    if "$BIN_DIR/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/$t/" "${dict[@]}" "$work/$t" "fuzz/corpus/$t" >"$work/$t.log" 2>&1; then
        runs="$(grep -a 'stat::number_of_executed_units' "$work/$t.log" | awk '{print $2}')"
        echo "fuzz smoke: $t ok (${runs:-?} executions in ${SECONDS_EACH}s)"
    else
        echo "fuzz smoke: $t FAILED"
        tail -n 60 "$work/$t.log"
        ls "$work/artifacts/$t" || true
        failed+=("$t")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz smoke: failing targets: ${failed[*]} (reproduce: cargo +nightly fuzz run <target> <artifact>)"
    exit 1
fi
