#!/usr/bin/env bash
# Validates deploy/: renders the Kustomize base and every overlay with `kubectl kustomize`,
# checks each resource against the Kubernetes schemas (kubernetes-validate, strict: unknown
# fields fail), and runs `mcpgate check` on the gateway config each ConfigMap carries.
# Installs what it needs: kubectl (Debian's kubernetes-client, unless a kubectl is already
# there) and a venv with kubernetes-validate (pins: deploy/requirements-validate.txt).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="${MCPGATE_TEST_CACHE:-$HOME/.cache/mcpgate-test}"
BIN="${MCPGATE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/mcpgate}"

if ! command -v kubectl >/dev/null 2>&1; then
    echo "[check-deploy] installing kubectl (kubernetes-client)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client
fi

VENV="$CACHE/venv-deploy"
want="$(sha256sum deploy/requirements-validate.txt | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/kubernetes-validate" ] || [ "$(cat "$VENV/.mcpgate-stamp" 2>/dev/null)" != "$want" ]; then
    echo "[check-deploy] creating $VENV"
    rm -rf "$VENV"
    python3.11 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r deploy/requirements-validate.txt
    echo "$want" >"$VENV/.mcpgate-stamp"
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for dir in deploy/kubernetes/base deploy/kubernetes/overlays/*/; do
    name="$(basename "$dir")"
    kubectl kustomize "$dir" >"$out/$name.yaml"
    "$VENV/bin/kubernetes-validate" --strict --quiet "$out/$name.yaml"
    # The gateway config inside the ConfigMap must pass `mcpgate check` (env from the pod spec).
    "$VENV/bin/python" - "$out/$name.yaml" "$out/$name-gateway.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("mcpgate-config"))
# Files only a pod has (its service account token) are stood in for by a local file.
text = config["data"]["gateway.yaml"].replace("/var/run/secrets/kubernetes.io/serviceaccount/token", sys.argv[2] + ".token")
open(sys.argv[2] + ".token", "w").write("a-service-account-token")
open(sys.argv[2], "w").write(text)
PY
    POD_NAME=mcpgate-0 REDIS_PASSWORD=x MCPGATE_CLUSTER_KEY="$(printf 'k%.0s' {1..48})" MCPGATE_EXCHANGE_SECRET=x \
        "$BIN" check --config "$out/$name-gateway.yaml"
    echo "[check-deploy] $name: $(grep -c '^kind:' "$out/$name.yaml") resources valid"
done
