"""Real observability components for tests: a Prometheus server (Debian's `prometheus`
package, installed by .ci/run) scraping the gateway's admin listener, and the OTLP receiver
fixture (tests/fixtures/python/otlp_receiver.py, on the official OpenTelemetry protobufs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from harness import PY_FIXTURES, ProcessRegistry, free_port, python2, wait_until


class Prometheus:
    """`prometheus` on a free loopback port, scraping `target` every second."""

    def __init__(self, registry: ProcessRegistry, workdir: Path, target: str, token: str | None = None) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            if __import__("os").environ.get("CI"):
                pytest.fail("prometheus is not installed (.ci/run installs Debian's prometheus package)")
            pytest.skip("prometheus is not installed: apt-get install prometheus")
        self.port = free_port()
        job: dict[str, Any] = {"job_name": "mcpgate", "scrape_interval": "1s", "static_configs": [{"targets": [target]}]}
        if token:
            job["authorization"] = {"credentials": token}
        cfg = workdir / "prometheus.yml"
        cfg.write_text(yaml.safe_dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": [job]}))
        data = workdir / "prometheus-data"
        self.proc = registry.start(
            "prometheus",
            [binary, f"--config.file={cfg}", f"--storage.tsdb.path={data}", f"--web.listen-address=127.0.0.1:{self.port}"],
        )
        self.base = f"http://127.0.0.1:{self.port}"
        wait_until(lambda: httpx.get(self.base + "/-/ready", timeout=1).status_code == 200, 30, what="prometheus ready")

    def query(self, expr: str) -> list[dict[str, Any]]:
        r = httpx.get(self.base + "/api/v1/query", params={"query": expr}, timeout=5)
        assert r.status_code == 200, r.text
        return r.json()["data"]["result"]

    def value(self, expr: str) -> float | None:
        """The single value of `expr` now, or None when it has no series."""
        result = self.query(expr)
        if not result:
            return None
        assert len(result) == 1, result
        return float(result[0]["value"][1])

    def wait_value(self, expr: str, expected: float, timeout: float = 30) -> None:
        """Waits until Prometheus has scraped `expr` at `expected` (a hang guard, not a timing)."""
        wait_until(lambda: self.value(expr) == expected, timeout, interval=0.5, what=f"{expr} == {expected} (now {self.value(expr)})")

    def up(self) -> bool:
        return self.value('up{job="mcpgate"}') == 1


class OtlpReceiver:
    def __init__(self, registry: ProcessRegistry, workdir: Path, reject: bool = False) -> None:
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.out = workdir / f"spans-{self.grpc_port}.jsonl"
        argv = [python2(), str(PY_FIXTURES / "otlp_receiver.py"), "--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port), "--out", str(self.out)]
        self.proc = registry.start("otlp", argv + (["--reject"] if reject else []))
        wait_until(lambda: "FIXTURE READY" in self.proc.stdout() or (not self.proc.alive() and pytest.fail(self.proc.stderr())), 30, what="otlp receiver")

    @property
    def grpc(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/v1/traces"

    def spans(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def trace(self, trace_id: str, names: set[str], timeout: float = 30) -> dict[str, dict[str, Any]]:
        """Waits until spans named `names` of `trace_id` arrived; returns them by name."""

        def got() -> dict[str, dict[str, Any]] | None:
            by_name = {s["name"]: s for s in self.spans() if s["trace_id"] == trace_id}
            return by_name if names <= set(by_name) else None

        return wait_until(got, timeout, interval=0.2, what=f"spans {names} of trace {trace_id}")
