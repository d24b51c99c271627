"""Where the wall-clock CPU goes under load, kernel included: `perf` samples (cpu-clock, the
software clock, as virtual machines have no hardware counters) of the floor proxy and of the
gateway in each variant of scenario 2 (no auth, JWT + permissions, + a warm Vault credential,
+ a warm exchanged token), each under a closed loop of 16 legacy `tools/call` (docs/benchmarks.md,
"Issue 16, fifth round"). bench/callgrind.py counts instructions in user space only; this shows
what it cannot: the kernel's share, and costs that depend on the two workers sharing state.

    python3 bench/perf.py --bin-dir $CARGO_TARGET_DIR/release [--seconds 8] [--keep DIR]

Needs `perf` (Debian: linux-perf) allowed to sample the gateway's process, the OpenID provider
fixture and OpenBao (scripts/test.sh installs them). For each variant it prints the gateway's
CPU per call (samples over calls in the sampled window: an estimate, as the window and the
load driver's clock are not the same) and that CPU split by where it went.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import free_port, pipeline_setup, start, stop_all, wait_http, wait_port  # noqa: E402

FREQUENCY = 4000

# (category, test on "dso symbol"), first match wins.
CATEGORIES: list[tuple[str, re.Pattern]] = [
    ("kernel: scheduler (switches, wake-ups)", re.compile(r"^\[kernel\.kallsyms\] (finish_task_switch|_raw_spin_unlock_irqrestore|__schedule|schedule|try_to_wake_up|_raw_spin_unlock_irq)\b")),
    ("kernel: TCP/IP and sockets", re.compile(r"^\[kernel\.kallsyms\] .*(tcp|ip_|inet|skb|sock|net_|napi|dev_|__netif|bbr|_copy_|copy_user|iter)")),
    ("kernel: other (syscalls, epoll, futex, timers)", re.compile(r"^\[kernel\.kallsyms\] ")),
    ("allocator", re.compile(r" (_?mi_|malloc|free|_int_|cfree|realloc)")),
    ("memcpy/memmove/memcmp", re.compile(r" __mem(cpy|move|cmp|set)")),
    ("clock", re.compile(r"(clock_gettime|Timespec|Instant::now)")),
    ("crypto (SHA-256, HMAC)", re.compile(r" (aws_lc|sha256|hmac|HMAC)")),
    ("caches (moka, epoch)", re.compile(r" (moka|crossbeam)")),
    ("JSON (serde, envelope, duplicate keys)", re.compile(r" (serde|mcpgate_protocol::(envelope|dupkeys))")),
    ("HTTP (hyper, httparse, http)", re.compile(r" (hyper|httparse|http::|http_body|<http)")),
    ("tokio", re.compile(r" (tokio|<tokio|alloc::task)")),
    ("gateway (sessions, routing, auth, metrics)", re.compile(r" (mcpgate|<mcpgate)")),
]
REPORT_LINE = re.compile(r"^\s*([\d.]+)%\s+(\d+)\s+(\S+)\s+\[[.k]\]\s+(.*)$")


def categorised(data: Path) -> tuple[int, dict[str, int], list[tuple[int, str]]]:
    """Samples in a perf.data, by category, and the top symbols."""
    out = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "dso,symbol", "--stdio", "-g", "none", "-n"],
                         capture_output=True, text=True, check=True).stdout
    total, by, top = 0, {}, []
    for line in out.splitlines():
        m = REPORT_LINE.match(line)
        if not m:
            continue
        samples, key = int(m.group(2)), f"{m.group(3)} {m.group(4).strip()}"
        total += samples
        name = next((c for c, rx in CATEGORIES if rx.search(key)), "other")
        by[name] = by.get(name, 0) + samples
        top.append((samples, key))
    return total, by, sorted(top, reverse=True)[:12]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=8.0, help="sampled seconds per variant")
    ap.add_argument("--keep", type=Path, help="keep each variant's perf.data in this directory")
    args = ap.parse_args()
    if not shutil.which("perf"):
        sys.exit("needs perf (Debian: linux-perf)")
    work = Path(tempfile.mkdtemp(prefix="mcpgate-perf-"))
    keep = args.keep or work
    keep.mkdir(parents=True, exist_ok=True)
    def sampled(name: str, proc: subprocess.Popen, port: int, token: str | None) -> dict:
        load = [str(args.bin_dir / "mcpgate-load"), "--url", f"http://127.0.0.1:{port}/mcp", "--concurrency", "16", "--op", "call", "--tool", "b_echo"]
        load += ["--token", token] if token else []
        subprocess.run(load + ["--duration", "2"], capture_output=True, check=True, timeout=120)
        # The driver warms up for 1 s, then measures; perf samples a window inside its measured run.
        driver = subprocess.Popen(load + ["--duration", str(args.seconds + 2)], stdout=subprocess.PIPE, text=True)
        time.sleep(2)
        data = keep / (re.sub(r"\W+", "-", name).strip("-") + ".perf.data")
        subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", str(FREQUENCY), "-o", str(data), "-p", str(proc.pid), "--", "sleep", str(args.seconds)],
                       capture_output=True, check=True, timeout=args.seconds + 60)
        result = json.loads(driver.communicate(timeout=120)[0].strip().splitlines()[-1])
        total, by, top = categorised(data)
        calls = result["throughput"] * args.seconds
        per_call = total / FREQUENCY / max(calls, 1) * 1e6
        line = {"variant": name, "throughput": round(result["throughput"]), "cpu_us_per_call": round(per_call, 1),
                "by_category_us": {k: round(v / total * per_call, 1) for k, v in sorted(by.items(), key=lambda kv: -kv[1])},
                "top_symbols_pct": [(round(100 * s / total, 1), k[:100]) for s, k in top]}
        print(json.dumps(line), flush=True)
        return line

    try:
        bport = free_port()
        start([str(args.bin_dir / "mcpgate-bench-backend"), "--listen", f"127.0.0.1:{bport}", "--legacy-only"])
        wait_port(bport)
        backend = f"http://127.0.0.1:{bport}/mcp"
        ready = pipeline_setup(work, start, backend, head="listen: LISTEN\ncatalog: {health_interval: 1h, refresh_interval: 1h}\n")
        if ready is None:
            sys.exit("needs the OpenID provider fixture and OpenBao (scripts/test.sh installs them)")
        token, configs = ready
        fport = free_port()
        floor = start([str(args.bin_dir / "mcpgate-bench-floor"), "--listen", f"127.0.0.1:{fport}", "--backend", backend])
        wait_port(fport)
        lines = [sampled("floor proxy", floor, fport, None)]
        os.killpg(floor.pid, signal.SIGTERM)
        for i, (name, cfg) in enumerate(configs.items()):
            port = free_port()
            path = work / f"gw{i}.yaml"
            path.write_text(cfg.replace("LISTEN", f"127.0.0.1:{port}"))
            gw = start([str(args.bin_dir / "mcpgate"), "serve", "--config", str(path)], env={"RUST_LOG": "warn"})
            wait_http(f"http://127.0.0.1:{port}/readyz")
            lines.append(sampled(name, gw, port, None if name == "no auth" else token))
            os.killpg(gw.pid, signal.SIGTERM)
            gw.wait(timeout=30)
        cats = [c for c, _ in CATEGORIES] + ["other"]
        print("\n| µs per call | " + " | ".join(l["variant"] for l in lines) + " |")
        print("|---|" + "---|" * len(lines))
        print("| all (gateway process) | " + " | ".join(str(l["cpu_us_per_call"]) for l in lines) + " |")
        for c in cats:
            print(f"| {c} | " + " | ".join(str(l["by_category_us"].get(c, 0)) for l in lines) + " |")
    finally:
        stop_all()


if __name__ == "__main__":
    main()
