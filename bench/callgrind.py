"""Instructions the gateway executes per call, by callgrind, for small deltas the shared
machine's timings cannot show (docs/benchmarks.md, "Observability overhead").

    python3 bench/callgrind.py --bin-dir $CARGO_TARGET_DIR/release [--seconds 3]

For each variant a release gateway runs under `valgrind --tool=callgrind` in front of one
legacy-only bench backend; one `mcpgate-load` worker warms it up, the counters are zeroed
(`callgrind_control --zero`), a measured run follows, and the counters are dumped. The figure
is the gateway's instructions in the measured run divided by the calls served in it (the load
driver's own 1 s warm-up included, as in run.py).
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
from run import ROOT, free_port, wait_http, wait_port  # noqa: E402


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mcpgate-callgrind-"))
    procs: list[subprocess.Popen] = []

    def spawn(argv: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, **kw)
        procs.append(p)
        return p

    try:
        bport = free_port()
        spawn([str(args.bin_dir / "mcpgate-bench-backend"), "--listen", f"127.0.0.1:{bport}", "--legacy-only"])
        wait_port(bport)
        otlp_port = None
        py = Path(os.environ.get("MCPGATE_TEST_CACHE", Path.home() / ".cache" / "mcpgate-test")) / "venv-mcp2" / "bin" / "python"
        if py.exists():
            otlp_port = free_port()
            spawn([str(py), str(ROOT / "tests/fixtures/python/otlp_receiver.py"), "--grpc-port", str(otlp_port), "--http-port", str(free_port()), "--out", str(work / "spans.jsonl")])
            wait_port(otlp_port)
        for name, cfg in variants(f"http://127.0.0.1:{bport}/mcp", otlp_port):
            port = free_port()
            path = work / "gw.yaml"
            path.write_text(cfg.replace("LISTEN", f"127.0.0.1:{port}"))
            out = work / f"callgrind.{port}.out"
            gw = spawn(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", str(args.bin_dir / "mcpgate"), "serve", "--config", str(path)], env={**os.environ, "RUST_LOG": "warn"})
            wait_http(f"http://127.0.0.1:{port}/readyz", timeout=120)
            url = f"http://127.0.0.1:{port}/mcp"
            load = [str(args.bin_dir / "mcpgate-load"), "--url", url, "--concurrency", "1", "--op", "call", "--tool", "b_echo"]
            subprocess.run(load + ["--duration", "2"], capture_output=True, check=True, timeout=120)
            subprocess.run(["callgrind_control", "--zero", str(gw.pid)], capture_output=True, check=True)
            r = subprocess.run(load + ["--duration", str(args.seconds)], capture_output=True, text=True, check=True, timeout=120)
            calls = json.loads(r.stdout.strip().splitlines()[-1])["calls"] * (args.seconds + 1) / args.seconds
            subprocess.run(["callgrind_control", "--dump", str(gw.pid)], capture_output=True, check=True)
            time.sleep(1)
            total = 0
            for f in glob.glob(f"{out}*"):
                text = Path(f).read_text(errors="replace")
                m = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(r"^totals:\s+(\d+)", text, re.M)
                if m and f != str(out):
                    total = max(total, int(m.group(1)))
            os.killpg(gw.pid, signal.SIGTERM)
            gw.wait(timeout=60)
            print(json.dumps({"variant": name, "calls": round(calls), "instructions_per_call": round(total / max(calls, 1))}), flush=True)
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    main()
