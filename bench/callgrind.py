"""Instructions the gateway executes per call, by callgrind, for small deltas the shared
machine's timings cannot show (docs/benchmarks.md, "Observability overhead" and "Against the
floor").

    python3 bench/callgrind.py --bin-dir $CARGO_TARGET_DIR/release [--seconds 3] [--floor]

For each variant a release gateway runs under `valgrind --tool=callgrind` in front of one
legacy-only bench backend; one `mcpgate-load` worker warms it up, the counters are zeroed
(`callgrind_control --zero`), a measured run follows, and the counters are dumped. The figure
is the gateway's instructions in the measured run divided by the requests it parsed in it
(counted in the profile itself: calls of httparse's request-line parser; the load driver's
count, warm-up included, when that symbol is not there).

`--pipeline` measures the gateway with the full pipeline of scenario 2 (no auth, JWT +
permissions, + a warm Vault credential, + a warm exchanged token), with the OpenID provider
fixture and an OpenBao dev server (installed by scripts/test.sh), each against the floor.

`--floor` measures instead the floor proxy (`mcpgate-bench-floor`) and the gateway with its
defaults, each with legacy requests (legacy-only backend) and modern ones (stateless, in front
of a dual-era backend), and prints the gateway's ratios to the floor. Kernel time is not
counted: this is user space only.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ROOT, free_port, pipeline_setup, wait_http, wait_port  # noqa: E402


def variants(backend: str, otlp_port: int | None) -> list[tuple[str, str]]:
    # Discovery kept quiet (no pings, no re-lists) so that the counts are the calls' own.
    base = f'listen: LISTEN\ncatalog: {{health_interval: 1h, refresh_interval: 1h}}\nservers:\n  - {{name: b, url: "{backend}"}}\n'
    out = [
        ("metrics off", base + "metrics: {enabled: false}\n"),
        ("metrics on (default)", base),
        ("metrics on + rate limit", base + "rate_limits: {rules: [{name: all, per: [server, tool], limit: 1000000000, interval: 1s}]}\n"),
    ]
    if otlp_port:
        out.append(("metrics on + tracing 100 %", base + f'telemetry: {{otlp: {{endpoint: "http://127.0.0.1:{otlp_port}"}}}}\n'))
    return out


# A function or callee line of a callgrind dump (names are compressed: `(id) name` the first
# time an id appears on either kind of line, `(id)` after).
# httparse's request-line parser runs once per request a server reads (the gateway's client
# side parses status lines instead): the profile's own count of requests served. It shows as
# its dispatcher (`runtime::…`), its AVX2 body, or both, depending on inlining: each counts
# every request once, so the larger count is the one.
NAMED = re.compile(r"^c?fn=\((\d+)\)(?: (.*))?$")


def counted(path: str) -> tuple[int, int]:
    """Total instructions of a callgrind dump, and how many requests its server parsed."""
    names: dict[str, str] = {}
    total = 0
    requests: dict[str, int] = {}
    parser = None
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
            elif line.startswith(("fn=", "cfn=")):
                m = NAMED.match(line.rstrip("\n"))
                if m:
                    if m.group(2):
                        names[m.group(1)] = m.group(2)
                    name = names.get(m.group(1), "")
                    parser = name if line.startswith("cfn=") and "match_uri_vectored" in name else None
            elif line.startswith("calls=") and parser:
                requests[parser] = requests.get(parser, 0) + int(line[6:].split()[0])
    return total, max(requests.values(), default=0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--floor", action="store_true", help="the floor proxy and the gateway in both eras instead of the observability variants")
    ap.add_argument("--pipeline", action="store_true", help="the full pipeline of scenario 2 (JWT, Vault, token exchange) and the floor")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mcpgate-callgrind-"))
    procs: list[subprocess.Popen] = []

    def spawn(argv: list[str], stdout=subprocess.DEVNULL, **kw) -> subprocess.Popen:
        p = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.DEVNULL, start_new_session=True, **kw)
        procs.append(p)
        return p

    def profile(name: str, argv: list[str], port: int, modern: bool = False, ready: str | None = None, token: str | None = None) -> float:
        out = work / f"callgrind.{port}.out"
        proc = spawn(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv], env={**os.environ, "RUST_LOG": "warn"})
        wait_port(port, timeout=120)
        if ready:
            wait_http(f"http://127.0.0.1:{port}{ready}", timeout=120)
        load = [str(args.bin_dir / "mcpgate-load"), "--url", f"http://127.0.0.1:{port}/mcp", "--concurrency", "1", "--op", "call", "--tool", "b_echo"]
        load += ["--modern"] if modern else []
        load += ["--token", token] if token else []
        subprocess.run(load + ["--duration", "2"], capture_output=True, check=True, timeout=120)
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)], capture_output=True, check=True)
        r = subprocess.run(load + ["--duration", str(args.seconds)], capture_output=True, text=True, check=True, timeout=120)
        driver = json.loads(r.stdout.strip().splitlines()[-1])["calls"] * (args.seconds + 1) / args.seconds
        subprocess.run(["callgrind_control", "--dump", str(proc.pid)], capture_output=True, check=True)
        # The dump is complete once its size stops changing.
        sizes: list[int] = []
        while len(sizes) < 120 and (len(sizes) < 2 or sizes[-1] != sizes[-2] or sizes[-1] == 0):
            time.sleep(0.5)
            sizes.append(sum(os.path.getsize(f) for f in glob.glob(f"{out}.*")))
        total, requests = 0, 0
        for f in glob.glob(f"{out}*"):
            if f != str(out):
                t, n = counted(f)
                if t > total:
                    total, requests = t, n
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        calls = requests or driver
        per_call = total / max(calls, 1)
        line = {"variant": name, "calls": round(calls), "instructions_per_call": round(per_call)}
        if not 0.5 < calls / max(driver, 1) < 2:
            line["warning"] = f"the profile counted {requests} requests, the load driver about {round(driver)}: measure again"
        print(json.dumps(line), flush=True)
        return per_call

    def gateway(name: str, cfg: str, modern: bool = False, token: str | None = None) -> float:
        port = free_port()
        path = work / "gw.yaml"
        path.write_text(cfg.replace("LISTEN", f"127.0.0.1:{port}"))
        return profile(name, [str(args.bin_dir / "mcpgate"), "serve", "--config", str(path)], port, modern, ready="/readyz", token=token)

    def floor(name: str, to: str, modern: bool = False) -> float:
        port = free_port()
        return profile(name, [str(args.bin_dir / "mcpgate-bench-floor"), "--listen", f"127.0.0.1:{port}", "--backend", to], port, modern)

    def pipeline(backend: str) -> None:
        quiet = "listen: LISTEN\ncatalog: {health_interval: 1h, refresh_interval: 1h}\n"
        ready = pipeline_setup(work, spawn, backend, head=quiet)
        if ready is None:
            sys.exit("--pipeline needs the OpenID provider fixture and OpenBao (scripts/test.sh installs them)")
        token, configs = ready
        floor_legacy = floor("floor proxy, legacy", backend)
        results = {name: gateway(name, cfg, token=None if name == "no auth" else token) for name, cfg in configs.items()}
        print(json.dumps({f"{k} vs floor": round(v / floor_legacy, 2) for k, v in results.items()}), flush=True)

    try:
        bport = free_port()
        spawn([str(args.bin_dir / "mcpgate-bench-backend"), "--listen", f"127.0.0.1:{bport}", "--legacy-only"])
        wait_port(bport)
        backend = f"http://127.0.0.1:{bport}/mcp"
        if args.floor:
            dual = free_port()
            spawn([str(args.bin_dir / "mcpgate-bench-backend"), "--listen", f"127.0.0.1:{dual}"])
            wait_port(dual)
            quiet = "listen: LISTEN\ncatalog: {health_interval: 1h, refresh_interval: 1h}\nservers:\n"
            floor_legacy = floor("floor proxy, legacy", backend)
            # A modern request is larger (its `_meta`), and so is its answer: the floor reads them too.
            floor_modern = floor("floor proxy, modern", f"http://127.0.0.1:{dual}/mcp", modern=True)
            legacy = gateway("gateway, legacy", quiet + f'  - {{name: b, url: "{backend}"}}\n')
            modern = gateway("gateway, modern", quiet + f'  - {{name: b, url: "http://127.0.0.1:{dual}/mcp"}}\n', modern=True)
            ratios = {"legacy_vs_floor": legacy / floor_legacy, "modern_vs_floor": modern / floor_modern, "modern_vs_legacy": modern / legacy}
            print(json.dumps({k: round(v, 2) for k, v in ratios.items()}), flush=True)
            return
        if args.pipeline:
            pipeline(backend)
            return
        otlp_port = None
        py = Path(os.environ.get("MCPGATE_TEST_CACHE", Path.home() / ".cache" / "mcpgate-test")) / "venv-mcp2" / "bin" / "python"
        if py.exists():
            otlp_port = free_port()
            spawn([str(py), str(ROOT / "tests/fixtures/python/otlp_receiver.py"), "--grpc-port", str(otlp_port), "--http-port", str(free_port()), "--out", str(work / "spans.jsonl")])
            wait_port(otlp_port)
        for name, cfg in variants(backend, otlp_port):
            gateway(name, cfg)
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    main()
