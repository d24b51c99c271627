"""Process and protocol helpers for mcpgate's integration tests (imported by conftest and tests).

Nothing here mocks the gateway: `Gateway` runs the real `mcpgate` binary, backends are real MCP
servers (tests/fixtures/python), clients are raw HTTP (httpx) or the official SDKs.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
PY_FIXTURES = FIXTURES / "python"
CACHE = Path(os.environ.get("MCPGATE_TEST_CACHE", Path.home() / ".cache" / "mcpgate-test"))
VENV2_PY = CACHE / "venv-mcp2" / "bin" / "python"
VENV1_PY = CACHE / "venv-mcp1" / "bin" / "python"
NODE_DIR = Path(os.environ.get("MCPGATE_NODE_DIR", CACHE / "node"))

# The fixture modules (raw_server.LOSSLESS_RESULT, ...) are importable from the tests.
if str(PY_FIXTURES) not in sys.path:
    sys.path.insert(0, str(PY_FIXTURES))

# Tools every server_v2.py / server_v1.py instance has (plus only_<name> and extra_NNN).
FIXTURE_TOOLS = ["echo", "add", "whoami", "progress", "log_message", "sample", "elicit", "roots", "sleep", "add_tool"]


def fixture_tools(name: str, extra: int = 0) -> list[str]:
    """Backend-side tool names of a server_v2.py/server_v1.py instance called `name`."""
    return FIXTURE_TOOLS + [f"only_{name}"] + [f"extra_{i:03d}" for i in range(extra)]


LEGACY_VERSION = "2025-11-25"
HANDSHAKE_VERSIONS = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}
MODERN_VERSION = "2026-07-28"
ACCEPT_BOTH = "application/json, text/event-stream"
# `_meta` keys of a 2026-07-28 request.
VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CAPS_KEY = "io.modelcontextprotocol/clientCapabilities"


def python2() -> str:
    """Interpreter with mcp 2.x: the venv's, else the one running pytest (it has mcp 2.x too)."""
    return str(VENV2_PY) if VENV2_PY.exists() else sys.executable


def gateway_binary() -> Path | None:
    """MCPGATE_BIN, else target/debug/mcpgate, else $CARGO_TARGET_DIR/debug/mcpgate."""
    if os.environ.get("MCPGATE_BIN"):
        return Path(os.environ["MCPGATE_BIN"])
    candidates = [REPO / "target" / "debug" / "mcpgate"]
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.append(Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "mcpgate")
    for c in candidates:
        if c.exists():
            return c
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; return it, or raise AssertionError."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last one
            last_exc = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(x) for x in f.read().split())
    except OSError:
        pass
    return out


def descendants(pid: int) -> list[int]:
    seen: list[int] = []
    stack = [pid]
    while stack:
        for child in _children(stack.pop()):
            if child not in seen:
                seen.append(child)
                stack.append(child)
    return seen


class Proc:
    """A child process in its own session (process group); output goes to files."""

    def __init__(self, name: str, argv: list[str], workdir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.popen = subprocess.Popen(
                argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=full_env, start_new_session=True
            )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def send_signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, grace: float = 3.0) -> None:
        """Stop the process group and every descendant (also ones that left the group)."""
        victims = descendants(self.pid)
        for target in (self.pid, *victims):
            self._kill_group_of(target, sig)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        for target in (self.pid, *victims):
            self._kill_group_of(target, signal.SIGKILL)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass

    def kill(self) -> None:
        """Abrupt death (SIGKILL), as in a crash."""
        self.stop(signal.SIGKILL, grace=3.0)

    @staticmethod
    def _kill_group_of(pid: int, sig: int) -> None:
        try:
            os.killpg(os.getpgid(pid), sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


class ProcessRegistry:
    """Everything a test started; `stop_all` runs at teardown whatever happened."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        # unique file names if a name is reused (restarts)
        base, n = name, 1
        while any(p.name == name for p in self.procs):
            n += 1
            name = f"{base}-{n}"
        proc = Proc(name, argv, self.workdir, env)
        self.procs.append(proc)
        return proc

    def stop_all(self, grace: float = 2.0) -> None:
        """SIGTERM every process group (and descendants), wait up to `grace` in total, SIGKILL the rest."""
        victims = {p: descendants(p.pid) for p in self.procs}
        for proc, children in victims.items():
            for pid in (proc.pid, *children):
                Proc._kill_group_of(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc, children in victims.items():
            for pid in (proc.pid, *children):
                Proc._kill_group_of(pid, signal.SIGKILL)
            try:
                proc.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def dump_logs(self, limit: int = 4000) -> str:
        parts = []
        for p in self.procs:
            for label, text in (("stdout", p.stdout()), ("stderr", p.stderr())):
                if text.strip():
                    parts.append(f"----- {p.name} {label} (pid {p.pid}) -----\n{text[-limit:]}")
        return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------


class RequestLogReader:
    """Reads a fixture's JSON-lines request log (see tests/fixtures/python/fixture_common.py)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    def mark(self) -> int:
        """Position to pass as `since=` to only see later entries."""
        return len(self.entries())

    def find(self, since: int = 0, **match: Any) -> list[dict[str, Any]]:
        """Entries whose keys equal all of `match` (e.g. rpc_method="tools/call", name="echo")."""
        return [e for e in self.entries()[since:] if all(e.get(k) == v for k, v in match.items())]

    def wait_for(self, timeout: float = 10.0, since: int = 0, **match: Any) -> list[dict[str, Any]]:
        return wait_until(lambda: self.find(since, **match), timeout, what=f"{self.path.name} entry {match}")

    def calls(self, since: int = 0) -> list[str]:
        return [e.get("name") for e in self.find(since, rpc_method="tools/call")]


class Backend:
    """One fixture server. `url` is what goes into the gateway config."""

    def __init__(
        self,
        registry: ProcessRegistry,
        name: str,
        kind: str,
        transport: str,
        port: int | None,
        argv: list[str],
        log_path: Path,
    ) -> None:
        self.registry = registry
        self.name = name
        self.kind = kind  # v2 | v1 | raw
        self.transport = transport  # streamable-http | sse | stdio
        self.port = port
        self.argv = argv
        self.log = RequestLogReader(log_path)
        self.proc: Proc | None = None
        # Config keys every entry for this backend gets (e.g. `era: modern` for a server_v2 that
        # a test means to be spoken to in the modern era only).
        self.config_defaults: dict[str, Any] = {}
        self.scheme = "http"

    @property
    def url(self) -> str:
        if self.transport == "sse":
            return f"{self.scheme}://127.0.0.1:{self.port}/sse"
        return f"{self.scheme}://127.0.0.1:{self.port}/mcp"

    def launch(self) -> Backend:
        self.proc = self.registry.start(f"backend-{self.name}", self.argv)
        return self

    def wait_ready(self, timeout: float = 30.0) -> Backend:
        proc = self.proc
        assert proc is not None

        def ready() -> bool:
            if "FIXTURE READY" in proc.stdout():
                return True
            if not proc.alive():
                raise AssertionError(f"backend {self.name} exited:\n{proc.stderr()[-3000:]}")
            return False

        wait_until(ready, timeout, what=f"backend {self.name} ready")
        return self

    def start(self, timeout: float = 30.0) -> Backend:
        return self.launch().wait_ready(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        wait_until(lambda: not port_open(self.port), 5, what=f"port {self.port} closed")

    def restart(self) -> Backend:
        """Start a new process on the same port (it knows none of the old sessions)."""
        if self.proc is not None and self.proc.alive():
            self.kill()
        return self.start()

    def config(self, **overrides: Any) -> dict[str, Any]:
        """A `servers:` entry for the gateway config."""
        entry: dict[str, Any] = {
            "name": self.name,
            "url": self.url,
            "transport": "sse" if self.transport == "sse" else "streamable_http",
        }
        entry.update(self.config_defaults)
        entry.update(overrides)
        return entry


class Backends:
    """Factory for fixture servers, all registered for teardown."""

    def __init__(self, registry: ProcessRegistry) -> None:
        self.registry = registry
        self.workdir = registry.workdir

    def _log(self, name: str) -> Path:
        return self.workdir / f"requests-{name}.jsonl"

    @staticmethod
    def _maybe_start(backend: Backend, start: bool | None) -> Backend:
        """start=True: launch and wait; False: launch only (then `ready()` several at once);
        None: do not launch at all (a configured but down server; `backend.start()` later)."""
        if start is None:
            return backend
        backend.launch()
        return backend.wait_ready() if start else backend

    @staticmethod
    def ready(*backends: Backend) -> tuple[Backend, ...]:
        for b in backends:
            b.wait_ready()
        return backends

    def pair(self, names: tuple[str, str] = ("a", "b"), **kwargs: Any) -> tuple[Backend, Backend]:
        """Two SDK 2.x servers (default `a` and `b`), started in parallel."""
        a = self.v2(names[0], start=False, **kwargs)
        b = self.v2(names[1], start=False, **kwargs)
        self.ready(a, b)
        return a, b

    def v2(
        self,
        name: str = "a",
        *,
        extra_tools: int = 0,
        instructions: str | None = None,
        json_response: bool = False,
        transport: str = "streamable-http",
        start: bool | None = True,
        log_name: str | None = None,
        flags: Iterable[str] = (),
        tls: tuple[Path, Path] | None = None,
        client_ca: Path | None = None,
    ) -> Backend:
        """Python SDK 2.x server (server_v2.py). `log_name` separates the request logs of two
        instances with the same server name; `flags` are extra options (e.g. --editable-tools).
        `tls` = (cert, key) serves HTTPS; `client_ca` then requires client certificates signed
        by it."""
        port = free_port()
        log = self._log(log_name or name)
        argv = [
            python2(),
            str(PY_FIXTURES / "server_v2.py"),
            "--name",
            name,
            "--port",
            str(port),
            "--transport",
            transport,
            "--log",
            str(log),
            "--extra-tools",
            str(extra_tools),
        ]
        if instructions is not None:
            argv += ["--instructions", instructions]
        if json_response:
            argv.append("--json-response")
        if tls is not None:
            argv += ["--ssl-certfile", str(tls[0]), "--ssl-keyfile", str(tls[1])]
            if client_ca is not None:
                argv += ["--ssl-ca-certs", str(client_ca)]
        argv += list(flags)
        backend = Backend(self.registry, name, "v2", transport, port, argv, log)
        if tls is not None:
            backend.scheme = "https"
        return self._maybe_start(backend, start)

    def v1(self, name: str = "c", *, transport: str = "streamable-http", start: bool | None = True) -> Backend:
        """Legacy Python SDK (mcp<2) server (server_v1.py) over streamable-http or sse."""
        port = free_port()
        argv = [
            str(VENV1_PY),
            str(PY_FIXTURES / "server_v1.py"),
            "--name",
            name,
            "--port",
            str(port),
            "--transport",
            transport,
            "--log",
            str(self._log(name)),
        ]
        return self._maybe_start(Backend(self.registry, name, "v1", transport, port, argv, self._log(name)), start)

    def raw(
        self,
        name: str = "raw",
        *,
        sse: bool = False,
        garbage: bool = False,
        bad_names: bool = False,
        start: bool | None = True,
    ) -> Backend:
        """Hand-written server (raw_server.py): lossless bytes, garbage, bad names, forgettable sessions."""
        port = free_port()
        argv = [
            sys.executable,
            str(PY_FIXTURES / "raw_server.py"),
            "--name",
            name,
            "--port",
            str(port),
            "--log",
            str(self._log(name)),
        ]
        argv += ["--sse"] if sse else []
        argv += ["--garbage"] if garbage else []
        argv += ["--bad-names"] if bad_names else []
        return self._maybe_start(
            Backend(self.registry, name, "raw", "streamable-http", port, argv, self._log(name)), start
        )

    def fault(self, name: str = "junk", *, start: bool | None = True) -> Backend:
        """Fault-injecting server (fault_server.py): one tool per way an answer can go wrong."""
        port = free_port()
        argv = [sys.executable, str(PY_FIXTURES / "fault_server.py"), "--name", name, "--port", str(port), "--log", str(self._log(name))]
        return self._maybe_start(Backend(self.registry, name, "fault", "streamable-http", port, argv, self._log(name)), start)

    def fault_stdio(self, name: str = "junk") -> StdioBackend:
        """fault_server.py over stdio (launched by the gateway): `echo` and `flood`."""
        args = [str(PY_FIXTURES / "fault_server.py"), "--name", name, "--transport", "stdio", "--log", str(self._log(name))]
        return StdioBackend(name, sys.executable, args, self._log(name))

    def stdio(self, name: str = "e", *, sdk: str = "v1") -> StdioBackend:
        """A stdio server the gateway itself launches (no process started here)."""
        py = str(VENV1_PY) if sdk == "v1" else python2()
        script = "server_v1.py" if sdk == "v1" else "server_v2.py"
        return StdioBackend(
            name,
            py,
            [str(PY_FIXTURES / script), "--name", name, "--transport", "stdio", "--log", str(self._log(name))],
            self._log(name),
        )

    def sdk_example(self, name: str, script: str) -> Backend:
        """One of the official TypeScript SDK's own example servers (shipped in the package under
        dist/esm/examples/server/), on a free port. They log nothing of ours: assert on what
        clients see."""
        path = NODE_DIR / "node_modules" / "@modelcontextprotocol" / "sdk" / "dist" / "esm" / "examples" / "server" / script
        if not path.exists():
            pytest.skip(f"TypeScript SDK example {script} not installed")
        for attempt in range(3):
            port = free_port()
            backend = Backend(self.registry, name, "ts-example", "streamable-http", port, ["env", f"PORT={port}", "node", str(path)], self._log(name))
            backend.launch()
            proc = backend.proc
            assert proc is not None
            # Up: "listening"; exited: "exited" (both end the wait at once).
            state = wait_until(
                lambda proc=proc, port=port: "exited" if not proc.alive() else "listening" if port_open(port) else None,
                30,
                what=f"example server {script} on port {port}",
            )
            if state == "listening":
                return backend
            # free_port() only picked a free port: another socket may have taken it before the
            # example bound it (as for the gateway). Try again on a new one.
            if attempt == 2 or "EADDRINUSE" not in proc.stderr():
                raise AssertionError(f"example server {script} exited:\n{proc.stderr()[-3000:]}")
        raise AssertionError("unreachable")

    def dead_url(self) -> str:
        """A loopback URL nothing listens on."""
        return f"http://127.0.0.1:{free_port()}/mcp"


class StdioBackend:
    def __init__(self, name: str, command: str, args: list[str], log_path: Path) -> None:
        self.name = name
        self.command = command
        self.args = args
        self.log = RequestLogReader(log_path)

    def config(self, **overrides: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "transport": "stdio", "command": self.command, "args": self.args}
        entry.update(overrides)
        return entry


# ---------------------------------------------------------------------------------------------
# Gateway
# ---------------------------------------------------------------------------------------------


def gateway_config(servers: Iterable[dict[str, Any]], port: int, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"listen": f"127.0.0.1:{port}", "servers": list(servers)}
    cfg.update(extra)
    return cfg


class Gateway:
    """A running `mcpgate serve` process."""

    def __init__(self, registry: ProcessRegistry, binary: Path, workdir: Path) -> None:
        self.registry = registry
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.config_path = workdir / "gateway.yaml"
        self.proc: Proc | None = None
        self.mcp_path = "/mcp"
        # A TLS front door: "https", and what httpx should verify with (an ssl.SSLContext
        # holding the test CA, and a client certificate when one is required).
        self.scheme = "http"
        self.verify: Any = True

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base + self.mcp_path

    # -- config ----------------------------------------------------------------------------
    def write_config(self, servers: Iterable[dict[str, Any]], *, atomic: bool = True, **extra: Any) -> dict[str, Any]:
        cfg = gateway_config(servers, self.port, **extra)
        self.mcp_path = cfg.get("mcp_path", "/mcp")
        self.write_raw_config(yaml.safe_dump(cfg, sort_keys=False), atomic=atomic)
        return cfg

    def write_raw_config(self, text: str, *, atomic: bool = True) -> None:
        """atomic: write a temp file and rename it over the config (as editors do);
        otherwise truncate and rewrite the file in place."""
        if atomic:
            tmp = self.config_path.with_name(self.config_path.name + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, self.config_path)
        else:
            with open(self.config_path, "w") as f:
                f.write(text)

    # -- lifecycle -------------------------------------------------------------------------
    def start_with_config(
        self, env: dict[str, str] | None = None, ready: Iterable[str] | None = None, timeout: float = 20.0
    ) -> Gateway:
        return self.start_argv(["serve", "--config", str(self.config_path)], env, ready, timeout)

    def start_argv(
        self,
        args: list[str],
        env: dict[str, str] | None = None,
        ready: Iterable[str] | None = None,
        timeout: float = 20.0,
    ) -> Gateway:
        full_env = {"RUST_LOG": os.environ.get("RUST_LOG", "info"), "RUST_BACKTRACE": "1"}
        full_env.update(env or {})
        for attempt in range(3):
            self.proc = self.registry.start("gateway", [str(self.binary), *args], full_env)
            try:
                self.wait_healthy(timeout)
                break
            except AssertionError:
                # free_port() only picked a free port: another process may have taken it
                # before the gateway bound it. Move to a new port and try again.
                if attempt == 2 or self.proc.alive() or "Address already in use" not in self.proc.stderr():
                    raise
                old, self.port = f"127.0.0.1:{self.port}", free_port()
                args = [a.replace(old, f"127.0.0.1:{self.port}") for a in args]
                if self.config_path.exists():
                    self.config_path.write_text(self.config_path.read_text().replace(old, f"127.0.0.1:{self.port}"))
        if ready:
            self.wait_servers(ready, "ready", timeout)
        return self

    def wait_healthy(self, timeout: float = 20.0) -> None:
        proc = self.proc
        assert proc is not None

        def healthy() -> bool:
            if not proc.alive():
                raise AssertionError(f"mcpgate exited with {proc.popen.returncode}:\n{proc.stderr()[-4000:]}")
            try:
                return httpx.get(self.base + "/healthz", timeout=1.0, verify=self.verify).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout, what="mcpgate /healthz")

    def status(self) -> dict[str, Any]:
        r = httpx.get(self.base + "/status", timeout=5.0, verify=self.verify)
        assert r.status_code == 200, r.text
        return r.json()

    def server_status(self, name: str) -> dict[str, Any]:
        for s in self.status()["servers"]:
            if s["name"] == name:
                return s
        raise AssertionError(f"server {name!r} not in /status")

    def wait_servers(self, names: Iterable[str], state: str, timeout: float = 20.0) -> dict[str, Any]:
        names = list(names)

        def check() -> dict[str, Any] | None:
            st = self.status()
            states = {s["name"]: s["state"] for s in st["servers"]}
            return st if all(states.get(n) == state for n in names) else None

        return wait_until(check, timeout, interval=0.1, what=f"servers {names} {state} in /status")

    def sighup(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def stderr(self) -> str:
        return self.proc.stderr() if self.proc else ""


def run_cli(
    binary: Path, args: list[str], env: dict[str, str] | None = None, timeout: float = 30.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [str(binary), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


# ---------------------------------------------------------------------------------------------
# Raw HTTP MCP client
# ---------------------------------------------------------------------------------------------


def parse_sse(text: str) -> list[dict[str, Any]]:
    """JSON messages carried by the `data:` fields of an SSE body."""
    messages = []
    for event in text.replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].lstrip(" ") if line.startswith("data:") else None for line in event.split("\n")]
        payload = "\n".join(d for d in data if d is not None)
        if payload.strip():
            messages.append(json.loads(payload))
    return messages


def rpc_messages(response: httpx.Response) -> list[dict[str, Any]]:
    """All JSON-RPC messages in a POST response, JSON or SSE."""
    ctype = response.headers.get("content-type", "")
    if ctype.startswith("text/event-stream"):
        return parse_sse(response.text)
    if ctype.startswith("application/json") and response.content.strip():
        body = response.json()
        return body if isinstance(body, list) else [body]
    return []


class McpHttp:
    """Minimal legacy-era Streamable-HTTP client on httpx: every byte is visible to the test."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self.http = httpx.Client(timeout=timeout)
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self.next_id = 1
        self.notifications: list[dict[str, Any]] = []
        self.last_response: httpx.Response | None = None
        self.init_result: dict[str, Any] | None = None
        self.init_response: httpx.Response | None = None

    def close(self) -> None:
        self.http.close()

    def fork(self, id_base: int = 1000) -> McpHttp:
        """Another connection on the same MCP session (for concurrent requests)."""
        other = McpHttp(self.url)
        other.session_id = self.session_id
        other.protocol_version = self.protocol_version
        other.next_id = id_base
        return other

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json"}
        if self.session_id:
            h["Mcp-Session-Id"] = self.session_id
        if self.protocol_version:
            h["MCP-Protocol-Version"] = self.protocol_version
        h.update(extra or {})
        return h

    def post_raw(
        self,
        body: bytes | str | dict[str, Any],
        headers: dict[str, str] | None = None,
        replace_headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST exactly `body`. `headers` are added to the defaults; `replace_headers` replaces them all."""
        content = json.dumps(body).encode() if isinstance(body, dict | list) else body
        if isinstance(content, str):
            content = content.encode()
        hdrs = replace_headers if replace_headers is not None else self.headers(headers)
        r = self.http.post(self.url, content=content, headers=hdrs)
        self.last_response = r
        return r

    def initialize(self, capabilities: dict[str, Any] | None = None, version: str = LEGACY_VERSION) -> dict[str, Any]:
        body = {
            "jsonrpc": "2.0",
            "id": self._id(),
            "method": "initialize",
            "params": {
                "protocolVersion": version,
                "capabilities": capabilities or {},
                "clientInfo": {"name": "mcpgate-raw-test-client", "version": "0.0.1"},
            },
        }
        r = self.post_raw(body, replace_headers={"Accept": ACCEPT_BOTH, "Content-Type": "application/json"})
        assert r.status_code == 200, f"initialize: {r.status_code} {r.text}"
        self.init_response = r
        self.session_id = r.headers.get("mcp-session-id")
        msg = self._response_for(r, body["id"])
        assert "result" in msg, msg
        self.protocol_version = msg["result"]["protocolVersion"]
        self.init_result = msg["result"]
        n = self.post_raw({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert n.status_code == 202, f"notifications/initialized: {n.status_code} {n.text}"
        return msg["result"]

    def request(
        self, method: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Send a request; return its JSON-RPC response message (result or error)."""
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": self._id(), "method": method}
        if params is not None:
            body["params"] = params
        r = self.post_raw(body, headers=headers)
        return self._response_for(r, body["id"])

    def result(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        msg = self.request(method, params)
        assert "result" in msg, f"{method} failed: {msg}"
        return msg["result"]

    def notify(self, method: str, params: dict[str, Any] | None = None) -> httpx.Response:
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            body["params"] = params
        return self.post_raw(body)

    def call_tool(self, name: str, arguments: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        return self.request("tools/call", {"name": name, "arguments": arguments or {}, **extra})

    def list_all(self, method: str, key: str, limit_pages: int = 100) -> tuple[list[dict[str, Any]], int]:
        """Follow nextCursor to the end; returns (items, pages)."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {}
        for page in range(1, limit_pages + 1):
            res = self.result(method, params or None)
            items.extend(res[key])
            cursor = res.get("nextCursor")
            if not cursor:
                return items, page
            params = {"cursor": cursor}
        raise AssertionError(f"{method}: more than {limit_pages} pages")

    def tool_names(self) -> list[str]:
        return [t["name"] for t in self.list_all("tools/list", "tools")[0]]

    def delete(self) -> httpx.Response:
        return self.http.delete(self.url, headers=self.headers())

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def _response_for(self, r: httpx.Response, rpc_id: Any) -> dict[str, Any]:
        msgs = rpc_messages(r)
        found = None
        for m in msgs:
            if "method" in m and "id" not in m:
                self.notifications.append(m)
            elif m.get("id") == rpc_id or ("error" in m and m.get("id") is None):
                found = m
        if found is None:
            raise AssertionError(f"no JSON-RPC response for id {rpc_id} in HTTP {r.status_code}: {r.text[:2000]}")
        return found


def shut_down(response: httpx.Response | None) -> None:
    """Closes our side of a streaming response. A read blocked in another thread only wakes up
    when the socket is shut down; closing the response from here would not wake it."""
    try:
        if response is not None:
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
    except Exception:  # noqa: BLE001
        pass


class GetStream:
    """Background reader of the session's GET SSE stream; messages land in a queue."""

    def __init__(self, client: McpHttp) -> None:
        self.client = client
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.status: int | None = None
        self.opened = threading.Event()
        self._http = httpx.Client(timeout=httpx.Timeout(10.0, read=None))
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GetStream:
        self._thread.start()
        assert self.opened.wait(10), "GET stream did not open"
        assert self.status == 200, f"GET stream: HTTP {self.status}"
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        shut_down(self._response)
        self._thread.join(timeout=5)
        self._http.close()

    def _run(self) -> None:
        headers = self.client.headers({"Accept": "text/event-stream"})
        headers.pop("Content-Type", None)
        try:
            with self._http.stream("GET", self.client.url, headers=headers) as r:
                self._response = r
                self.status = r.status_code
                self.opened.set()
                if r.status_code != 200:
                    return
                data: list[str] = []
                for line in r.iter_lines():
                    if line.startswith("data:"):
                        data.append(line[5:].lstrip(" "))
                    elif line == "" and data:
                        try:
                            self.messages.put(json.loads("\n".join(data)))
                        except ValueError:
                            pass
                        data = []
        except Exception:  # noqa: BLE001 - closed by the test or by the gateway
            pass
        finally:
            self.opened.set()

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for m in self.seen:
            if predicate(m):
                return m
        while time.monotonic() < deadline:
            try:
                m = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(m)
            if predicate(m):
                return m
        raise AssertionError(f"no matching message on the GET stream within {timeout}s; saw {self.seen}")


def tool_text(result: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for c in result.get("content", []) if c.get("type") == "text")


# ---------------------------------------------------------------------------------------------
# Out-of-process SDK clients
# ---------------------------------------------------------------------------------------------


def run_v1_client(
    url: str | None = None,
    *,
    calls: list[tuple[str, dict[str, Any]]] = (),
    reads: list[str] = (),
    prompts: list[tuple[str, dict[str, Any]]] = (),
    transport: str = "streamable-http",
    stdio_command: str | None = None,
    timeout: float = 30.0,
    elicit_content: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run tests/fixtures/python/client_v1.py (mcp<2) and return its JSON output."""
    argv = [str(VENV1_PY), str(PY_FIXTURES / "client_v1.py"), "--timeout", str(timeout)]
    if elicit_content is not None:
        argv += ["--elicit-content", json.dumps(elicit_content)]
    if url:
        argv += ["--url", url, "--transport", transport]
    if stdio_command:
        argv += ["--stdio-command", stdio_command]
    for name, args in calls:
        argv += ["--call", name, json.dumps(args)]
    for uri in reads:
        argv += ["--read", uri]
    for name, args in prompts:
        argv += ["--prompt", name, json.dumps(args)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 15, stdin=subprocess.DEVNULL)
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    assert lines, f"client_v1 printed no JSON (rc={p.returncode}):\n{p.stdout}\n{p.stderr[-3000:]}"
    out = json.loads(lines[-1])
    out["_returncode"] = p.returncode
    out["_stderr"] = p.stderr[-3000:]
    return out


def ts_client_available() -> bool:
    return (NODE_DIR / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json").exists()


def run_ts_client(url: str, calls: list[tuple[str, dict[str, Any]]] = (), timeout: float = 30.0) -> dict[str, Any]:
    argv = ["node", str(FIXTURES / "ts" / "client.mjs"), "--url", url, "--timeout-ms", str(int(timeout * 1000))]
    for name, args in calls:
        argv += ["--call", name, json.dumps(args)]
    env = dict(os.environ, MCPGATE_NODE_DIR=str(NODE_DIR))
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 15, env=env, stdin=subprocess.DEVNULL)
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    assert lines, f"client.mjs printed no JSON (rc={p.returncode}):\n{p.stdout}\n{p.stderr[-3000:]}"
    out = json.loads(lines[-1])
    out["_returncode"] = p.returncode
    return out


# ---------------------------------------------------------------------------------------------
# Era tests (test_eras.py): fixture servers with the interactive tools, the 1.x client's extra steps
# ---------------------------------------------------------------------------------------------


def interactive_backend(backends: Backends, kind: str, name: str, start: bool | None = True) -> Backend:
    """server_v2.py (kind "modern": SDK 2.x, serves 2026-07-28 and the legacy era; configured with
    `era: modern` so that the gateway speaks only 2026-07-28 to it, and legacy clients reach it
    through the era bridge) or server_v1.py (kind "legacy": mcp<2, legacy era only), with
    --interactive-tools (the tools chain and ask_all)."""
    port = free_port()
    log = backends._log(name)
    if kind == "modern":
        script, py, sdk = "server_v2.py", python2(), "v2"
    elif kind == "legacy":
        script, py, sdk = "server_v1.py", str(VENV1_PY), "v1"
    else:
        raise ValueError(f"unknown backend kind {kind!r}")
    argv = [py, str(PY_FIXTURES / script), "--name", name, "--port", str(port), "--log", str(log)]
    argv += ["--interactive-tools"]
    backend = Backend(backends.registry, name, sdk, "streamable-http", port, argv, log)
    if kind == "modern":
        backend.config_defaults["era"] = "modern"
    return backends._maybe_start(backend, start)


def _v1_client_argv(url: str, steps: list[str], timeout: float) -> list[str]:
    return [str(VENV1_PY), str(PY_FIXTURES / "client_v1.py"), "--timeout", str(timeout), "--url", url, *steps]


def _v1_client_output(stdout: str, stderr: str, returncode: int | None) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert lines, f"client_v1 printed no JSON (rc={returncode}):\n{stdout}\n{stderr[-3000:]}"
    out = json.loads(lines[-1])
    out["_returncode"] = returncode
    out["_stderr"] = stderr[-3000:]
    return out


def v1_steps(
    calls: Iterable[tuple[str, dict[str, Any]]] = (),
    cancels: Iterable[tuple[str, dict[str, Any], float]] = (),
    wait_notification: str | None = None,
    relist: bool = False,
    ready_file: Path | None = None,
) -> list[str]:
    """client_v1.py arguments for calls, --cancel, --wait-notification, --relist, --ready-file."""
    argv: list[str] = []
    for name, args in calls:
        argv += ["--call", name, json.dumps(args)]
    for name, args, after in cancels:
        argv += ["--cancel", name, json.dumps(args), str(after)]
    if ready_file is not None:
        argv += ["--ready-file", str(ready_file)]
    if wait_notification:
        argv += ["--wait-notification", wait_notification]
    if relist:
        argv.append("--relist")
    return argv


def run_v1_client_steps(url: str, steps: list[str], timeout: float = 30.0) -> dict[str, Any]:
    """Run client_v1.py (mcp<2) with arbitrary step arguments (see `v1_steps`); return its JSON."""
    p = subprocess.run(
        _v1_client_argv(url, steps, timeout),
        capture_output=True,
        text=True,
        timeout=timeout + 15,
        stdin=subprocess.DEVNULL,
    )
    return _v1_client_output(p.stdout, p.stderr, p.returncode)


class V1ClientRun:
    """client_v1.py running in the background (e.g. waiting for a notification another client causes)."""

    def __init__(self, url: str, steps: list[str], timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.popen = subprocess.Popen(
            _v1_client_argv(url, steps, timeout),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )

    def result(self) -> dict[str, Any]:
        try:
            stdout, stderr = self.popen.communicate(timeout=self.timeout + 15)
        except subprocess.TimeoutExpired:
            self.stop()
            stdout, stderr = self.popen.communicate()
        return _v1_client_output(stdout, stderr, self.popen.returncode)

    def stop(self) -> None:
        if self.popen.poll() is None:
            Proc._kill_group_of(self.popen.pid, signal.SIGKILL)


# ---------------------------------------------------------------------------------------------
# Own gateways in modules with a shared environment (test_modern_http, test_subscriptions,
# test_tasks)
# ---------------------------------------------------------------------------------------------


def start_gateway_retrying(gw: Gateway, servers: list[dict[str, Any]], ready: list[str], **config: Any) -> Gateway:
    """Write the config and start; the binary may be being rebuilt (briefly missing or busy)."""
    gw.write_config(servers, **config)
    deadline = time.monotonic() + 30
    while True:
        try:
            wait_until(lambda: gw.binary.exists(), 20, what=f"{gw.binary} to exist")
            return gw.start_with_config(ready=ready)
        except OSError:  # ENOENT / ETXTBSY while the binary is replaced
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def find_binary() -> Path:
    """The gateway binary for a module-scoped fixture: fails under CI when missing, else skips."""
    binary = gateway_binary()
    deadline = time.monotonic() + 10
    while binary is None and time.monotonic() < deadline:  # maybe being rebuilt right now
        time.sleep(0.5)
        binary = gateway_binary()
    if binary is None:
        if os.environ.get("CI") or os.environ.get("MCPGATE_REQUIRE_BIN"):
            pytest.fail("mcpgate binary not found")
        pytest.skip("mcpgate binary not found: build it (cargo build) or set MCPGATE_BIN")
    return binary
