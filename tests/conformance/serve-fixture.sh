#!/usr/bin/env bash
# Starts the conformance fixture backend (fixture-server/server.mjs) in the foreground on
# http://127.0.0.1:PORT/mcp with the pinned Node 22, installing the tools first if needed.
#
# usage: tests/conformance/serve-fixture.sh PORT [--path /mcp] [--no-event-store] [--no-host-check] [--verbose]
#   PORT 0 picks a free port. Once ready it prints one line on stdout:
#     mcpgate-conformance-fixture listening on http://127.0.0.1:PORT/mcp (sdk ..., node ...)
#   The script execs node, so its PID is the server's: stop it with `kill PID` (SIGTERM).
# Background use:
#   tests/conformance/serve-fixture.sh 0 >fixture.log 2>&1 & pid=$!
#   url=$(until grep -m1 -o 'http://[^ ]*' fixture.log; do sleep 0.1; done)   # bound this wait
#   ...; kill "$pid"
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -lt 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
    [ $# -ge 1 ] && exit 0 || exit 2
fi
port="$1"
shift
[[ "$port" =~ ^[0-9]+$ ]] || { echo "serve-fixture.sh: PORT must be a number, got '$port'" >&2; exit 2; }
eval "$("$HERE/install.sh" --print-env --no-next)"
export MCPGATE_CONFORMANCE_DIR
exec "$MCPGATE_CONFORMANCE_NODE" "$HERE/fixture-server/server.mjs" --port "$port" "$@"
