"""Scale-out test parts: a real Redis server (Debian's redis-server), N `mcpgate` replicas
sharing it, and a real HAProxy in front (round robin, no affinity, health checks on /readyz).

Every replica answers with `x-mcpgate-replica: <id>` (`cluster.expose_replica: true`), so a test
can tell which replica served each request. Everything binds to 127.0.0.1 on free ports and is
stopped by the test's `ProcessRegistry`.
"""

from __future__ import annotations

import shutil
import signal
import socket
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from harness import Gateway, Proc, ProcessRegistry, free_port, port_open, wait_until

CLUSTER_KEY = "x" * 40 + "-a-test-key-of-more-than-32-bytes"
REPLICA_HEADER = "x-mcpgate-replica"


def need(binary: str) -> str:
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if path is None:
        pytest.skip(f"{binary} is not installed (scripts/setup-test-env.sh installs it)")
    return path


class Redis:
    """A redis-server on a free port; `stop()`/`start()` keep the port (a restart mid-run)."""

    def __init__(self, registry: ProcessRegistry) -> None:
        self.registry = registry
        self.binary = need("redis-server")
        self.port = free_port()
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        argv = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self.proc = self.registry.start("redis", argv)
        wait_until(lambda: port_open(self.port), 10, what=f"redis on {self.port}")
        return self

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        wait_until(lambda: not port_open(self.port), 10, what=f"redis on {self.port} stopped")


class Replica(Gateway):
    """One `mcpgate` of a cluster, with its own config file and replica id."""

    def __init__(self, registry: ProcessRegistry, binary: Path, workdir: Path, replica_id: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(registry, binary, workdir)
        self.replica_id = replica_id

    def stop(self, sig: int = signal.SIGTERM, grace: float = 30.0) -> None:
        assert self.proc is not None
        self.proc.stop(sig, grace)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()


class HaProxy:
    """HAProxy in HTTP mode: round robin per request, health checks on /readyz, retries of
    requests that found no server (connection refused, nothing answered)."""

    def __init__(self, registry: ProcessRegistry, workdir: Path, ports: list[int]) -> None:
        self.registry = registry
        self.binary = need("haproxy")
        self.port = free_port()
        self.config_path = workdir / "haproxy.cfg"
        servers = "\n".join(f"  server r{i + 1} 127.0.0.1:{p} check" for i, p in enumerate(ports))
        self.config_path.write_text(
            textwrap.dedent(
                f"""\
                global
                  maxconn 4096
                defaults
                  mode http
                  timeout connect 2s
                  timeout client 300s
                  timeout server 300s
                  timeout http-request 10s
                  retries 3
                  option redispatch
                  retry-on conn-failure empty-response
                frontend mcp
                  bind 127.0.0.1:{self.port}
                  default_backend gateways
                backend gateways
                  balance roundrobin
                  option httpchk GET /readyz
                  http-check expect status 200
                  default-server inter 300ms fall 2 rise 1
                """
            )
            + servers
            + "\n"
        )
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> HaProxy:
        self.proc = self.registry.start("haproxy", [self.binary, "-db", "-f", str(self.config_path)])
        wait_until(lambda: port_open(self.port), 10, what=f"haproxy on {self.port}")
        return self


class Cluster:
    """Redis + N replicas (same servers, same keys) + HAProxy."""

    def __init__(self, registry: ProcessRegistry, binary: Path, workdir: Path, servers: list[dict[str, Any]], n: int = 3, **config: Any) -> None:
        self.registry = registry
        self.redis = Redis(registry).start()
        self.servers = servers
        self.config = config
        self.replicas = [Replica(registry, binary, workdir / f"r{i + 1}", f"r{i + 1}") for i in range(n)]
        for r in self.replicas:
            self.write_config(r)
        for r in self.replicas:
            r.start_with_config(ready=[s["name"] for s in servers])
        self.lb = HaProxy(registry, workdir, [r.port for r in self.replicas]).start()
        self.wait_all_up()

    def write_config(self, r: Replica) -> None:
        cluster = {
            "replica_id": r.replica_id,
            "store": {"url": self.redis.url, "key_prefix": "test:", "timeout": "500ms"},
            "keys": [{"id": "k1", "secret": CLUSTER_KEY}],
            "expose_replica": True,
        }
        extra = {"cluster": cluster, "shutdown": {"grace": "1s", "drain": "10s"}}
        # A callable value is made per replica (e.g. its own admin port or pin file).
        extra.update({k: v(r) if callable(v) else v for k, v in self.config.items()})
        r.write_config(self.servers, **extra)

    @property
    def url(self) -> str:
        return self.lb.url

    def replica(self, replica_id: str) -> Replica:
        return next(r for r in self.replicas if r.replica_id == replica_id)

    def wait_all_up(self, timeout: float = 20.0) -> None:
        """Until HAProxy has seen every replica healthy (a request reaches each)."""

        def all_seen() -> bool:
            seen = set()
            for _ in range(3 * len(self.replicas)):
                try:
                    r = httpx.get(self.lb.url.replace("/mcp", "/readyz"), timeout=2)
                except httpx.HTTPError:
                    return False
                seen.add(r.headers.get(REPLICA_HEADER))
            return seen >= {r.replica_id for r in self.replicas}

        wait_until(all_seen, timeout, interval=0.2, what="every replica behind the load balancer")

    def restart(self, r: Replica) -> None:
        r.start_with_config(ready=[s["name"] for s in self.servers])


def replica_of(response: httpx.Response) -> str:
    name = response.headers.get(REPLICA_HEADER)
    assert name, f"no {REPLICA_HEADER} header: {response.headers}"
    return name


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())
