#!/usr/bin/env bash
# Installs everything mcpgate's Python integration tests need, outside the repo:
#
#   Debian packages (root only; otherwise they must be there): redis-server, haproxy, prometheus
#   $MCPGATE_TEST_CACHE (default ~/.cache/mcpgate-test)
#     venv-mcp2/  CPython 3.11 venv: mcp 2.x, pytest, pytest-timeout, httpx, PyYAML
#                 (pins: tests/integration/requirements-mcp2.txt)
#     venv-mcp1/  CPython 3.11 venv: legacy-only mcp<2 (pins: tests/integration/requirements-mcp1.txt)
#     node/       npm ci of tests/fixtures/ts/package.json + package-lock.json
#                 (@modelcontextprotocol/sdk, @modelcontextprotocol/server-everything)
#
# Idempotent: each part carries a stamp file holding a hash of its pin list (and the
# interpreter version); a part is rebuilt only when that hash changes or the part is broken.
# Env: MCPGATE_TEST_CACHE, MCPGATE_TEST_PYTHON (default python3.11), MCPGATE_TEST_SKIP_NODE=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MCPGATE_TEST_CACHE:-$HOME/.cache/mcpgate-test}"
PYTHON="${MCPGATE_TEST_PYTHON:-python3.11}"
REQ2="$ROOT/tests/integration/requirements-mcp2.txt"
REQ1="$ROOT/tests/integration/requirements-mcp1.txt"
NODE_SRC="$ROOT/tests/fixtures/ts"

log() { printf '[setup-test-env] %s\n' "$*"; }

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

mkdir -p "$CACHE"
log "cache: $CACHE"

# --- Python interpreter with a working venv module -------------------------------------
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    log "error: $PYTHON not found (set MCPGATE_TEST_PYTHON to a CPython 3.11 interpreter)" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    # Debian splits ensurepip into python3.11-venv.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "$PYTHON lacks ensurepip: installing python3.11-venv with apt-get"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11-venv
    else
        log "error: $PYTHON has no ensurepip; install python3.11-venv" >&2
        exit 1
    fi
fi
PYVER="$("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
log "python: $PYTHON ($PYVER)"

# --- Debian packages: Redis and HAProxy (scale-out tests), Prometheus (metrics tests) ----
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing ${missing[*]} with apt-get"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    else
        log "error: ${missing[*]} missing; install them (Debian: apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi

# --- venvs ------------------------------------------------------------------------------
make_venv() {
    local dir="$1" req="$2" import_check="$3"
    local want stamp="$1/.mcpgate-stamp"
    want="$(hash_of "$req" <(echo "$PYVER"))"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$dir/bin/python" -c "$import_check" >/dev/null 2>&1; then
        log "$(basename "$dir"): up to date"
        return
    fi
    log "$(basename "$dir"): creating (pins changed or missing)"
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    log "$(basename "$dir"): pip install -r ${req#"$ROOT"/}"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    "$dir/bin/python" -c "$import_check"
    echo "$want" >"$stamp"
    log "$(basename "$dir"): ready ($("$dir/bin/python" -m pip show mcp 2>/dev/null | sed -n 's/^Version: /mcp /p'))"
}

make_venv "$CACHE/venv-mcp2" "$REQ2" \
    'import mcp, pytest, pytest_timeout, httpx, yaml; from mcp.server.mcpserver import MCPServer; from mcp.client import Client'
make_venv "$CACHE/venv-mcp1" "$REQ1" \
    'import mcp; from mcp.server.fastmcp import FastMCP; from mcp.client.streamable_http import streamablehttp_client'

# --- node packages ------------------------------------------------------------------------
if [ "${MCPGATE_TEST_SKIP_NODE:-0}" = 1 ]; then
    log "node: skipped (MCPGATE_TEST_SKIP_NODE=1)"
elif ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "node: node/npm not found; TypeScript-SDK tests will be skipped" >&2
else
    NODE_DIR="$CACHE/node"
    NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
    want="$(hash_of "$NODE_SRC/package.json" "$NODE_SRC/package-lock.json" <(echo "node$NODE_MAJOR"))"
    stamp="$NODE_DIR/.mcpgate-stamp"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
        && [ -f "$NODE_DIR/node_modules/@modelcontextprotocol/sdk/package.json" ] \
        && [ -f "$NODE_DIR/node_modules/@modelcontextprotocol/server-everything/package.json" ]; then
        log "node: up to date"
    else
        log "node: npm ci (node $(node --version))"
        rm -rf "$NODE_DIR"
        mkdir -p "$NODE_DIR"
        cp "$NODE_SRC/package.json" "$NODE_SRC/package-lock.json" "$NODE_DIR/"
        (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
        echo "$want" >"$stamp"
        log "node: ready (sdk $(node -p "require('$NODE_DIR/node_modules/@modelcontextprotocol/sdk/package.json').version"))"
    fi
fi

log "done. Run: $CACHE/venv-mcp2/bin/pytest tests/integration"
