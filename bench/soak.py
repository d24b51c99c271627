"""Soak: mixed load on a release gateway for a long time, watching for leaks.

Real parts only, on loopback: the OpenID provider (tokens, token exchange, key rotation), OpenBao
(a per-user API key), Python SDK backends of both eras, the official request shapes of both eras.
Workers, each in a loop with a short pause:

- legacy: opens a session with a fresh token, lists tools and prompts, calls a tool on each
  backend (token exchange, Vault, a modern and a legacy backend), closes the session (DELETE);
- modern: `server/discover`, `tools/list` and the same calls, stateless, with `_meta` and the
  SEP-2243 headers;
- the IdP rotates its signing key every few minutes (the old key stays published).

Every few seconds it samples the gateway's RSS and open file descriptors (/proc) and its live
tokio tasks (`/status` → `runtime.tasks`). After a warm-up it compares the first window of
samples with the last: growth beyond the bounds, or any failed call, fails the run (exit 1).
Results go to bench/out/soak.md and bench/out/soak.json.

    python3 bench/soak.py --bin target/release/mcpgate --minutes 30
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import httpx  # noqa: E402
from harness import ACCEPT_BOTH, CAPS_KEY, MODERN_VERSION, VERSION_KEY, Backends, Gateway, McpHttp, ProcessRegistry  # noqa: E402
from idp import Idp  # noqa: E402
from test_credentials import seed_backend  # noqa: E402
from vault import Bao  # noqa: E402

ROLES = {"a.local": ["echo", "add"], "c.local": ["echo"], "weather.local": ["get_forecast"], "codereview.local": ["analyze_pr"]}
CALLS = [("a_echo", {"text": "soak"}), ("c_echo", {"text": "soak"}), ("weather_get_forecast", {}), ("codereview_analyze_pr", {})]
# Bounds, first window after warm-up -> last window.
RSS_FACTOR, RSS_SLACK_MIB = 1.20, 16
FD_SLACK = 16
TASK_SLACK = 64


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ops = 0
        self.errors: list[str] = []
        self.sessions_opened = 0

    def ok(self, n: int = 1) -> None:
        with self.lock:
            self.ops += n

    def fail(self, what: str) -> None:
        with self.lock:
            self.errors.append(what[:300])


class Tokens:
    """A current token for alice, renewed well before it expires."""

    def __init__(self, idp: Idp) -> None:
        self.idp = idp
        self.lock = threading.Lock()
        self.token, self.at = idp.token("alice"), time.monotonic()

    def get(self) -> str:
        with self.lock:
            if time.monotonic() - self.at > 60:
                self.token, self.at = self.idp.token("alice"), time.monotonic()
            return self.token


def legacy_worker(url: str, tokens: Tokens, stats: Stats, stop: threading.Event, pause: float) -> None:
    while not stop.is_set():
        c = McpHttp(url)
        try:
            c.http.headers["Authorization"] = f"Bearer {tokens.get()}"
            c.initialize()
            with stats.lock:
                stats.sessions_opened += 1
            c.tool_names()
            c.result("prompts/list")
            for name, args in CALLS:
                reply = c.call_tool(name, args)
                if "result" not in reply or reply["result"].get("isError"):
                    stats.fail(f"legacy {name}: {reply}")
                else:
                    stats.ok()
                time.sleep(pause)
            r = c.delete()
            if r.status_code != 204:
                stats.fail(f"legacy DELETE: {r.status_code}")
        except Exception as e:  # noqa: BLE001 - every failure is counted, the soak goes on
            stats.fail(f"legacy: {e!r}")
        finally:
            c.close()
        time.sleep(pause)


def modern_post(http: httpx.Client, url: str, token: str, rpc_id: int, method: str, params: dict | None = None, name: str | None = None) -> dict:
    body = {"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": {**(params or {}), "_meta": {VERSION_KEY: MODERN_VERSION, CAPS_KEY: {}}}}
    headers = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json", "MCP-Protocol-Version": MODERN_VERSION, "Mcp-Method": method, "Authorization": f"Bearer {token}"}
    if name is not None:
        headers["Mcp-Name"] = name
    r = http.post(url, content=json.dumps(body), headers=headers)
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        msgs = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        return next((m for m in msgs if m.get("id") == rpc_id), {"error": {"message": f"no answer in {r.text[:200]}"}})
    return r.json()


def modern_worker(url: str, tokens: Tokens, stats: Stats, stop: threading.Event, pause: float) -> None:
    http = httpx.Client(timeout=30)
    rpc_id = 0
    while not stop.is_set():
        try:
            token = tokens.get()
            for method in ("server/discover", "tools/list"):
                rpc_id += 1
                reply = modern_post(http, url, token, rpc_id, method)
                if "result" in reply:
                    stats.ok()
                else:
                    stats.fail(f"modern {method}: {reply}")
            for name, args in CALLS:
                rpc_id += 1
                reply = modern_post(http, url, token, rpc_id, "tools/call", {"name": name, "arguments": args}, name)
                if "result" not in reply or reply["result"].get("isError"):
                    stats.fail(f"modern {name}: {reply}")
                else:
                    stats.ok()
                time.sleep(pause)
        except Exception as e:  # noqa: BLE001
            stats.fail(f"modern: {e!r}")
        time.sleep(pause)
    http.close()


def rotator(idp: Idp, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        idp.rotate()


def sample(gw: Gateway, stats: Stats, t0: float) -> dict:
    pid = gw.proc.pid
    rss = next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS:"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    st = httpx.get(gw.base + "/status", timeout=10).json()
    with stats.lock:
        ops, errors, opened = stats.ops, len(stats.errors), stats.sessions_opened
    return {
        "t": round(time.monotonic() - t0, 1),
        "rss_mib": round(rss / 1024, 1),
        "fds": fds,
        "tasks": st["runtime"]["tasks"],
        "sessions": st["sessions"],
        "stateless_backend_sessions": st["stateless_backend_sessions"],
        "ops": ops,
        "errors": errors,
        "sessions_opened": opened,
    }


def verdict(samples: list[dict], warmup: float, window: float) -> tuple[bool, dict]:
    end = samples[-1]["t"]
    first = [s for s in samples if warmup <= s["t"] < warmup + window]
    last = [s for s in samples if s["t"] >= end - window]
    if not first or not last:
        return False, {"problem": "too few samples"}
    mean = lambda xs, k: statistics.fmean(x[k] for x in xs)  # noqa: E731
    out = {k: {"first": round(mean(first, k), 1), "last": round(mean(last, k), 1)} for k in ("rss_mib", "fds", "tasks")}
    out["rss_mib"]["bound"] = round(out["rss_mib"]["first"] * RSS_FACTOR + RSS_SLACK_MIB, 1)
    out["fds"]["bound"] = out["fds"]["first"] + FD_SLACK
    out["tasks"]["bound"] = out["tasks"]["first"] + TASK_SLACK
    ok = all(out[k]["last"] <= out[k]["bound"] for k in ("rss_mib", "fds", "tasks"))
    out["errors"] = samples[-1]["errors"]
    return ok and samples[-1]["errors"] == 0, out


def write_report(path: Path, args: argparse.Namespace, samples: list[dict], ok: bool, v: dict, stats: Stats) -> None:
    lines = [
        f"# Soak: {args.minutes} min, {args.legacy} legacy + {args.modern} modern workers, pause {args.pause}s, key rotation every {args.rotate_every}s",
        "",
        f"Result: **{'PASS' if ok else 'FAIL'}** — {samples[-1]['ops']} operations, {samples[-1]['sessions_opened']} sessions opened and closed, {samples[-1]['errors']} errors.",
        "",
        "| metric | first window after warm-up | last window | bound |",
        "|---|---|---|---|",
    ]
    for k in ("rss_mib", "fds", "tasks"):
        if k in v:
            lines.append(f"| {k} | {v[k]['first']} | {v[k]['last']} | {v[k]['bound']} |")
    lines += ["", "| min | RSS MiB | FDs | tasks | sessions | stateless backend sessions | ops | errors |", "|---|---|---|---|---|---|---|---|"]
    per_minute: dict[int, dict] = {}
    for s in samples:
        per_minute[int(s["t"] // 60)] = s
    for m, s in sorted(per_minute.items()):
        lines.append(f"| {m} | {s['rss_mib']} | {s['fds']} | {s['tasks']} | {s['sessions']} | {s['stateless_backend_sessions']} | {s['ops']} | {s['errors']} |")
    if stats.errors:
        lines += ["", "First errors:", "", *[f"- `{e}`" for e in stats.errors[:10]]]
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", required=True, type=Path)
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--legacy", type=int, default=3)
    p.add_argument("--modern", type=int, default=3)
    p.add_argument("--pause", type=float, default=0.02, help="seconds between a worker's operations")
    p.add_argument("--sample-every", type=float, default=5)
    p.add_argument("--rotate-every", type=float, default=300)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = p.parse_args()
    duration = args.minutes * 60
    warmup = window = max(60.0, duration * 0.1)

    work = Path(tempfile.mkdtemp(prefix="mcpgate-soak-"))
    registry = ProcessRegistry(work)
    stop = threading.Event()
    try:
        users = work / "users.json"
        users.write_text(json.dumps({"alice": {"roles": ROLES}}))
        idp = Idp(registry, ["--users", str(users)])
        bao = Bao(registry, work)
        bao.put("alice/weather.local", token="wk_alice_soak_key")
        backends = Backends(registry)
        a, c = backends.v2("a", start=False), backends.v1("c", start=False)
        weather, review = seed_backend(registry, "weather"), seed_backend(registry, "codereview")
        for b in (a, c, weather, review):
            b.wait_ready()
        servers = [
            a.config(auth={"client_ids": ["a.local"]}),
            c.config(auth={"client_ids": ["c.local"]}),
            {**weather.config(), "auth": {"client_ids": ["weather.local"]}, "credentials": [{"vault": {"path": "{username}/weather.local", "header": "X-API-Key"}}]},
            {**review.config(), "auth": {"client_ids": ["codereview.local"]}, "credentials": [{"token_exchange": {"audience": "codereview.local"}}]},
        ]
        gw = Gateway(registry, args.bin.resolve(), work)
        gw.write_config(
            servers,
            auth={"issuers": [{"issuer": idp.issuer}], "audiences": ["mcpgate"]},
            credentials={
                "vault": {"address": bao.addr, "auth": {"token": {"value": "root"}}},
                "token_exchange": {"client_id": "mcpgate", "client_secret": {"value": "mcpgate-secret"}},
            },
        )
        gw.start_with_config(env={"RUST_LOG": "warn"}, ready=["a", "c", "weather", "codereview"])

        stats, tokens = Stats(), Tokens(idp)
        threads = [threading.Thread(target=legacy_worker, args=(gw.url, tokens, stats, stop, args.pause), daemon=True) for _ in range(args.legacy)]
        threads += [threading.Thread(target=modern_worker, args=(gw.url, tokens, stats, stop, args.pause), daemon=True) for _ in range(args.modern)]
        threads.append(threading.Thread(target=rotator, args=(idp, stop, args.rotate_every), daemon=True))
        t0 = time.monotonic()
        for t in threads:
            t.start()
        samples: list[dict] = []
        while time.monotonic() - t0 < duration:
            time.sleep(args.sample_every)
            samples.append(sample(gw, stats, t0))
            s = samples[-1]
            print(f"t={s['t']:7.1f}s rss={s['rss_mib']:6.1f}MiB fds={s['fds']:4} tasks={s['tasks']:4} sessions={s['sessions']:3} ops={s['ops']} errors={s['errors']}", flush=True)
        stop.set()
        ok, v = verdict(samples, warmup, window)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "soak.json").write_text(json.dumps({"samples": samples, "verdict": v, "ok": ok, "errors": stats.errors[:50]}, indent=1))
        write_report(args.out / "soak.md", args, samples, ok, v, stats)
        print((args.out / "soak.md").read_text())
        return 0 if ok else 1
    finally:
        stop.set()
        registry.stop_all()


if __name__ == "__main__":
    sys.exit(main())
