#!/usr/bin/env bash
# Runs the MCP conformance suite's server scenarios against URL (the fixture directly, or
# mcpgate in front of it) with the pinned Node 22, and summarises the result.
#
# usage: tests/conformance/run.sh URL [options] [-- extra suite arguments]
#   --expected-failures FILE  baseline in the suite's format (`server: [scenario, ...]`),
#                             passed to the suite's own --expected-failures flag. With it, a
#                             scenario with a FAILURE *or WARNING* check fails unless listed,
#                             and a listed scenario that passes fails the run (stale entry).
#                             Without it, only FAILURE checks fail the run.
#   -o, --output-dir DIR      keep results in DIR: DIR/results/server-<scenario>-<ts>/checks.json
#                             (DIR/results is emptied first), DIR/suite-output.txt (full suite
#                             output), DIR/summary.json. Default: a temporary directory,
#                             removed after a clean run and kept (path printed) otherwise.
#   --suite active|all|pending  passed to the suite; when absent the suite runs its default
#                             `active` suite (30 scenarios in 0.1.16; `all` adds the pending
#                             json-schema-2020-12 and server-sse-polling)
#   --scenario NAME           run one scenario only (with --requirements REV: at REV's wire,
#                             via the suite's --spec-version REV)
#   --next                    use the optional 0.2.0 alpha suite (install.sh puts it in
#                             conformance-next/); e.g. `--next -- --requirements 2025-11-25`
#   --requirements REV        run exactly the scenarios spec revision REV requires, at REV's
#                             wire (implies --next; same as `--next -- --requirements REV`),
#                             e.g. 2026-07-28 (stateless era) or 2025-11-25. The scenarios the
#                             revision runs but does not score (extensions, pending) are shown
#                             as `n/s` and, as in the suite, left out of the verdict.
#   --timeout SECS            bound for the whole suite run (default 600,
#                             env MCPGATE_CONFORMANCE_TIMEOUT)
#   --verbose                 stream the suite's full output (default: only its summary)
# Prints one line per scenario, then `conformance: P passed, F failed[, X skipped][, N not scored]`
# (skipped = failing scenarios listed in the expected-failures file).
# Exit status: 0 when the suite and the summary agree that nothing unexpected failed;
# 1 on an unexpected failure or stale baseline entry; 2 on usage errors; 124 on timeout.
# The URL must be a loopback address (set MCPGATE_CONFORMANCE_ALLOW_REMOTE=1 to override).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }
die_usage() { echo "run.sh: $*" >&2; echo "run 'tests/conformance/run.sh --help' for usage" >&2; exit 2; }

url=""
baseline=""
outdir=""
suite=""
scenario=""
use_next=0
requirements=""
verbose=0
timeout_s="${MCPGATE_CONFORMANCE_TIMEOUT:-600}"
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --expected-failures) [ $# -ge 2 ] || die_usage "$1 needs a file"; baseline="$2"; shift 2 ;;
        --expected-failures=*) baseline="${1#*=}"; shift ;;
        -o|--output-dir) [ $# -ge 2 ] || die_usage "$1 needs a directory"; outdir="$2"; shift 2 ;;
        --output-dir=*) outdir="${1#*=}"; shift ;;
        --suite) [ $# -ge 2 ] || die_usage "$1 needs a value"; suite="$2"; shift 2 ;;
        --suite=*) suite="${1#*=}"; shift ;;
        --scenario) [ $# -ge 2 ] || die_usage "$1 needs a value"; scenario="$2"; shift 2 ;;
        --scenario=*) scenario="${1#*=}"; shift ;;
        --next) use_next=1; shift ;;
        --requirements) [ $# -ge 2 ] || die_usage "$1 needs a revision"; requirements="$2"; use_next=1; shift 2 ;;
        --requirements=*) requirements="${1#*=}"; use_next=1; shift ;;
        --timeout) [ $# -ge 2 ] || die_usage "$1 needs seconds"; timeout_s="$2"; shift 2 ;;
        --timeout=*) timeout_s="${1#*=}"; shift ;;
        --verbose) verbose=1; shift ;;
        --) shift; extra=("$@"); break ;;
        -*) die_usage "unknown option: $1" ;;
        *) [ -z "$url" ] || die_usage "more than one URL: $url, $1"; url="$1"; shift ;;
    esac
done
[ -n "$url" ] || die_usage "missing URL (e.g. http://127.0.0.1:3001/mcp)"
# A --requirements given to the suite directly (after --) counts too: the summary needs it.
for ((i = 0; i < ${#extra[@]}; i++)); do
    case "${extra[$i]}" in
        --requirements) [ -n "$requirements" ] && die_usage "--requirements given twice"
            requirements="${extra[$((i + 1))]:-}"; [ -n "$requirements" ] || die_usage "--requirements needs a revision" ;;
        --requirements=*) [ -n "$requirements" ] && die_usage "--requirements given twice"; requirements="${extra[$i]#*=}" ;;
        *) continue ;;
    esac
    [ "$use_next" = 1 ] || die_usage "--requirements needs the 0.2.0 alpha suite: add --next (or use run.sh --requirements REV)"
    requirements_in_extra=1
done
[ -z "$requirements" ] || [[ "$requirements" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || die_usage "--requirements needs a revision date such as 2026-07-28"
[[ "$timeout_s" =~ ^[0-9]+$ ]] || die_usage "--timeout needs a number of seconds"
if [ -n "$baseline" ]; then
    [ -f "$baseline" ] || die_usage "expected-failures file not found: $baseline"
    baseline="$(cd "$(dirname "$baseline")" && pwd)/$(basename "$baseline")"
fi

# Loopback only, unless explicitly allowed.
host="$(printf '%s' "$url" | sed -E 's#^[a-zA-Z]+://(\[[^]]*\]|[^/:]*).*#\1#')"
case "$host" in
    127.*|localhost|\[::1\]) ;;
    *) [ "${MCPGATE_CONFORMANCE_ALLOW_REMOTE:-0}" = 1 ] \
        || die_usage "URL host '$host' is not a loopback address (MCPGATE_CONFORMANCE_ALLOW_REMOTE=1 overrides)" ;;
esac

# Tools (idempotent, quick when already installed).
if [ "$use_next" = 1 ]; then
    env_lines="$("$HERE/install.sh" --print-env)"
else
    env_lines="$("$HERE/install.sh" --print-env --no-next)"
fi
eval "$env_lines"
export MCPGATE_CONFORMANCE_DIR
cli="$MCPGATE_CONFORMANCE_CLI"
if [ "$use_next" = 1 ]; then
    [ -n "${MCPGATE_CONFORMANCE_NEXT_CLI:-}" ] || { echo "run.sh: the 0.2.0 alpha suite is not installed (see install.sh output)" >&2; exit 1; }
    cli="$MCPGATE_CONFORMANCE_NEXT_CLI"
fi
node="$MCPGATE_CONFORMANCE_NODE"

# Output directory.
keep_out=1
if [ -z "$outdir" ]; then
    outdir="$(mktemp -d "${TMPDIR:-/tmp}/mcpgate-conformance.XXXXXX")"
    keep_out=0
fi
mkdir -p "$outdir"
outdir="$(cd "$outdir" && pwd)"
rm -rf "$outdir/results"
mkdir -p "$outdir/results"
log_file="$outdir/suite-output.txt"

args=(server --url "$url" -o "$outdir/results")
[ -n "$scenario" ] && args+=(--scenario "$scenario")
[ -n "$suite" ] && args+=(--suite "$suite")
[ -n "$baseline" ] && args+=(--expected-failures "$baseline")
if [ -n "$requirements" ] && [ "${requirements_in_extra:-0}" = 0 ]; then
    # The suite refuses --requirements with --scenario; one scenario runs at the revision's
    # wire with --spec-version instead.
    if [ -n "$scenario" ]; then args+=(--spec-version "$requirements"); else args+=(--requirements "$requirements"); fi
fi
args+=("${extra[@]}")

# The revision's requirement set ships with the suite: requirements/<REV>.yaml.
requirements_file=""
if [ -n "$requirements" ]; then
    requirements_file="$(dirname "$(dirname "$cli")")/requirements/$requirements.yaml"
    [ -f "$requirements_file" ] || die_usage "no requirement set for $requirements in this suite ($requirements_file)"
fi

suite_version="$("$node" "$cli" --version 2>/dev/null || echo '?')"
echo "conformance suite $suite_version (node $("$node" --version)) -> $url"
echo "  $(basename "$node") $cli ${args[*]}"

set +e
if [ "$verbose" = 1 ]; then
    NO_COLOR=1 FORCE_COLOR=0 timeout -k 10 "$timeout_s" "$node" "$cli" "${args[@]}" 2>&1 | tee "$log_file"
    suite_rc=${PIPESTATUS[0]}
else
    NO_COLOR=1 FORCE_COLOR=0 timeout -k 10 "$timeout_s" "$node" "$cli" "${args[@]}" >"$log_file" 2>&1
    suite_rc=$?
    # The suite's totals and baseline verdict; summarize.mjs prints the per-scenario lines.
    sed 's/\x1b\[[0-9;]*m//g' "$log_file" | grep -E '^(Total|Passed): |[Bb]aseline|^Not scored|^  [~✓✗] ' || true
fi
if [ "$keep_out" = 1 ]; then
    echo "results: $outdir (suite-output.txt, results/*/checks.json, summary.json)"
else
    echo "results: $outdir (temporary: removed after a clean run)"
fi
"$node" "$HERE/summarize.mjs" "$log_file" "$outdir/results" ${baseline:+"$baseline"} \
    ${requirements_file:+--requirements "$requirements_file"}
summary_rc=$?
set -e

rc=0
if [ "$suite_rc" = 124 ] || [ "$suite_rc" = 137 ]; then
    echo "run.sh: the suite did not finish within ${timeout_s}s (killed)" >&2
    rc=124
elif [ "$suite_rc" != 0 ] || [ "$summary_rc" != 0 ]; then
    if [ "$suite_rc" != 0 ] && [ "$summary_rc" = 0 ]; then
        echo "run.sh: the suite exited $suite_rc although no scenario failed unexpectedly; last lines:" >&2
        tail -n 20 "$log_file" >&2
    fi
    rc=1
fi

if [ "$rc" = 0 ] && [ "$keep_out" = 0 ]; then
    rm -rf "$outdir"
fi
exit "$rc"
