#!/usr/bin/env bash
# One-shot driver: starts the conformance fixture on a free loopback port, runs the suite
# against it directly and/or through `mcpgate serve` (the fixture as its only backend,
# prefix ""), then stops everything it started, by PID.
#
# usage: tests/conformance/run-with-fixture.sh [direct|gateway|both] [options] [-- run.sh options]
#   direct   (default) the suite against the fixture itself, strict: an empty baseline, so
#            any FAILURE or WARNING check fails the run. Validates the fixture and suite.
#   gateway  the suite against mcpgate in front of the fixture, with
#            tests/conformance/expected-failures.yml as the baseline.
#   both     direct, then gateway; fails if either fails.
# options:
#   --modern                   the 2026-07-28 (stateless era) requirement set of the 0.2.0 alpha
#                              suite instead of the 0.1.16 default suite: passes
#                              `--requirements 2026-07-28` to run.sh, and the gateway baseline
#                              becomes expected-failures-2026-07-28.yml. The fixture is a legacy
#                              server, so only the gateway run can pass (`gateway --modern`); a
#                              direct run shows what a legacy server fails (see MODERN-SCENARIOS.md).
#   --mcpgate BIN              gateway binary (default: <repo>/target/debug/mcpgate)
#   --expected-failures FILE   baseline for the gateway run (default: expected-failures.yml here,
#                              expected-failures-2026-07-28.yml with --modern)
#   -o, --output-dir DIR       keep results: DIR/direct/, DIR/gateway/ (run.sh layout) and the
#                              fixture/gateway logs and config in DIR/
#   -- ...                     passed on to run.sh (e.g. --scenario tools-list, --suite all,
#                              --next, --verbose)
# Env: MCPGATE_CONFORMANCE_TIMEOUT (suite bound, seconds), MCPGATE_TEST_CACHE.
# The gateway's stderr is kept in DIR/mcpgate.log (or printed on failure).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

mode="direct"
mcpgate="$ROOT/target/debug/mcpgate"
baseline=""
modern=0
outdir=""
run_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        direct|gateway|both) mode="$1"; shift ;;
        --modern) modern=1; shift ;;
        --mcpgate) mcpgate="$2"; shift 2 ;;
        --mcpgate=*) mcpgate="${1#*=}"; shift ;;
        --expected-failures) baseline="$2"; shift 2 ;;
        --expected-failures=*) baseline="${1#*=}"; shift ;;
        -o|--output-dir) outdir="$2"; shift 2 ;;
        --output-dir=*) outdir="${1#*=}"; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
        --) shift; run_args=("$@"); break ;;
        *) echo "run-with-fixture.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

log() { printf '[conformance] %s\n' "$*" >&2; }

if [ "$modern" = 1 ]; then
    run_args=(--requirements 2026-07-28 "${run_args[@]}")
    [ -n "$baseline" ] || baseline="$HERE/expected-failures-2026-07-28.yml"
fi
[ -n "$baseline" ] || baseline="$HERE/expected-failures.yml"

eval "$("$HERE/install.sh" --print-env --no-next)"
node="$MCPGATE_CONFORMANCE_NODE"

keep=1
if [ -z "$outdir" ]; then
    outdir="$(mktemp -d "${TMPDIR:-/tmp}/mcpgate-conformance-run.XXXXXX")"
    keep=0
fi
mkdir -p "$outdir"
outdir="$(cd "$outdir" && pwd)"

pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for_line FILE REGEX PID SECONDS: print the first match of REGEX in FILE, or fail when
# PID exits or the time runs out.
wait_for_line() {
    local file="$1" re="$2" pid="$3" deadline=$((SECONDS + $4)) m
    while [ "$SECONDS" -lt "$deadline" ]; do
        if m="$(grep -m1 -oE "$re" "$file" 2>/dev/null)"; then
            printf '%s\n' "$m"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

free_port() {
    "$node" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# --- fixture -------------------------------------------------------------------------------
fixture_log="$outdir/fixture.log"
"$HERE/serve-fixture.sh" 0 >"$fixture_log" 2>&1 &
pids+=($!)
fixture_pid=$!
if ! fixture_url="$(wait_for_line "$fixture_log" 'http://127\.0\.0\.1:[0-9]+/mcp' "$fixture_pid" 30)"; then
    log "the fixture did not start; its log:"
    cat "$fixture_log" >&2
    exit 1
fi
log "fixture: $fixture_url (pid $fixture_pid)"

rc=0

if [ "$mode" = direct ] || [ "$mode" = both ]; then
    empty="$outdir/empty-baseline.yml"
    printf 'server: []\n' >"$empty"
    log "direct run (strict: no expected failures, warnings fail)"
    [ "$modern" = 1 ] && log "note: the fixture is a legacy-era server; most 2026-07-28 scenarios fail against it directly (expected)"
    if "$HERE/run.sh" "$fixture_url" --expected-failures "$empty" -o "$outdir/direct" "${run_args[@]}"; then
        log "direct: OK"
    else
        log "direct: FAILED"
        rc=1
    fi
fi

if [ "$mode" = gateway ] || [ "$mode" = both ]; then
    if [ ! -x "$mcpgate" ]; then
        log "gateway binary not found or not executable: $mcpgate (build it: cargo build -p mcpgate)"
        exit 1
    fi
    gw_port="$(free_port)"
    gw_cfg="$outdir/mcpgate-conformance.yml"
    cat >"$gw_cfg" <<EOF
# written by tests/conformance/run-with-fixture.sh
listen: 127.0.0.1:$gw_port
servers:
  - name: conformance
    url: $fixture_url
    prefix: ""
EOF
    gw_log="$outdir/mcpgate.log"
    "$mcpgate" serve --listen "127.0.0.1:$gw_port" --config "$gw_cfg" >"$gw_log" 2>&1 &
    pids+=($!)
    gw_pid=$!
    gw_url="http://127.0.0.1:$gw_port/mcp"
    ready=0
    deadline=$((SECONDS + 30))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if grep -q "listening on http://127.0.0.1:$gw_port/mcp" "$gw_log" 2>/dev/null \
            || curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$gw_port/healthz" 2>/dev/null; then
            ready=1
            break
        fi
        kill -0 "$gw_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ "$ready" != 1 ]; then
        if kill -0 "$gw_pid" 2>/dev/null; then
            log "mcpgate did not become ready within 30 s; its log:"
        else
            wait "$gw_pid" && gw_rc=0 || gw_rc=$?
            log "mcpgate exited (status $gw_rc) before it was ready; its log:"
        fi
        cat "$gw_log" >&2
        exit 1
    fi
    log "gateway: $gw_url (pid $gw_pid) -> $fixture_url"
    log "gateway run (baseline: $baseline)"
    if "$HERE/run.sh" "$gw_url" --expected-failures "$baseline" -o "$outdir/gateway" "${run_args[@]}"; then
        log "gateway: OK"
    else
        log "gateway: FAILED (mcpgate log: $gw_log)"
        rc=1
    fi
fi

if [ "$rc" != 0 ] || [ "$keep" = 1 ]; then
    log "results and logs: $outdir"
fi

# One closing line over the runs made (from each run's summary.json).
# shellcheck disable=SC2016 # JavaScript, not shell
"$node" -e '
    const fs = require("fs");
    const t = { passed: 0, failed: 0, skipped: 0, notScored: 0 };
    const runs = [];
    for (const dir of process.argv.slice(1)) {
        const f = dir + "/summary.json";
        if (!fs.existsSync(f)) continue;
        const s = JSON.parse(fs.readFileSync(f, "utf8"));
        for (const k of Object.keys(t)) t[k] += s[k] ?? 0;
        runs.push(dir.split("/").pop() + " " + (s.ok ? "ok" : "FAILED"));
    }
    if (runs.length > 1) console.log("runs: " + runs.join(", "));
    console.log(`conformance: ${t.passed} passed, ${t.failed} failed` + (t.skipped ? `, ${t.skipped} skipped` : "") +
        (t.notScored ? `, ${t.notScored} not scored` : ""));
' "$outdir/direct" "$outdir/gateway"

if [ "$rc" = 0 ] && [ "$keep" = 0 ]; then
    cleanup
    pids=()
    rm -rf "$outdir"
fi
exit "$rc"
