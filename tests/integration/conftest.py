"""pytest fixtures for mcpgate's integration tests.

- `registry`: every process a test starts; all are stopped (process group + descendants) at teardown,
  and their output is printed when the test failed.
- `backends`: factory for fixture MCP servers (see harness.Backends).
- `mcpgate_bin`: the gateway binary (MCPGATE_BIN, target/debug/mcpgate, $CARGO_TARGET_DIR/debug/mcpgate).
- `start_gateway(servers, ready=..., env=..., **config)`: writes a YAML config and runs `mcpgate serve`.
- `connect(gw)`: an initialized raw HTTP MCP client (harness.McpHttp).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from harness import (
    VENV1_PY,
    Backends,
    Gateway,
    McpHttp,
    ProcessRegistry,
    gateway_binary,
    ts_client_available,
)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture
def registry(request: pytest.FixtureRequest, tmp_path: Path):
    reg = ProcessRegistry(tmp_path)
    yield reg
    failed = any(
        getattr(request.node, f"rep_{w}", None) is not None and getattr(request.node, f"rep_{w}").failed
        for w in ("setup", "call")
    )
    reg.stop_all()
    if failed:
        print(f"\n===== process output ({tmp_path}) =====\n{reg.dump_logs()}")


@pytest.fixture
def backends(registry: ProcessRegistry) -> Backends:
    return Backends(registry)


@pytest.fixture(scope="session")
def mcpgate_bin() -> Path:
    binary = gateway_binary()
    if binary is None or not binary.exists():
        msg = "mcpgate binary not found: build it (cargo build) or set MCPGATE_BIN"
        if os.environ.get("CI") or os.environ.get("MCPGATE_REQUIRE_BIN"):
            pytest.fail(msg)
        pytest.skip(msg)
    return binary


@pytest.fixture(scope="session")
def legacy_sdk() -> Path:
    if not VENV1_PY.exists():
        pytest.skip(f"{VENV1_PY} missing: run scripts/setup-test-env.sh")
    return VENV1_PY


@pytest.fixture(scope="session")
def ts_sdk() -> None:
    if not ts_client_available():
        pytest.skip("TypeScript SDK not installed: run scripts/setup-test-env.sh")


@pytest.fixture
def gateway(registry: ProcessRegistry, mcpgate_bin: Path, tmp_path: Path) -> Gateway:
    """An unstarted gateway (pick its config and how to start it yourself)."""
    return Gateway(registry, mcpgate_bin, tmp_path)


@pytest.fixture
def start_gateway(gateway: Gateway) -> Callable[..., Gateway]:
    """start_gateway(servers, ready=None, env=None, **config) -> running Gateway.

    `ready` defaults to the names of all enabled servers: the call returns once /status shows them
    all `ready`. Pass `ready=[]` when some are expected to be down.
    """

    def start(
        servers: Iterable[dict[str, Any]],
        ready: Iterable[str] | None = None,
        env: dict[str, str] | None = None,
        **config: Any,
    ) -> Gateway:
        servers = list(servers)
        if ready is None:
            ready = [s["name"] for s in servers if s.get("enabled", True)]
        gateway.write_config(servers, **config)
        return gateway.start_with_config(env=env, ready=ready)

    return start


@pytest.fixture
def connect() -> Callable[..., McpHttp]:
    """connect(gw_or_url, capabilities=None) -> initialized McpHttp client (closed at teardown)."""
    clients: list[McpHttp] = []

    def make(target: Gateway | str, capabilities: dict[str, Any] | None = None) -> McpHttp:
        url = target if isinstance(target, str) else target.url
        client = McpHttp(url)
        clients.append(client)
        client.initialize(capabilities)
        return client

    yield make
    for c in clients:
        c.close()
