"""Lanes: client connections served on single-threaded runtimes, one per CPU by default, each
new connection on the next lane in turn (`lanes:` in the config; 0 turns them off). What a
user notices: every connection is answered correctly whichever lane it lands on, in both eras,
with or without lanes; `/status` and the process's threads say how many lanes there are; a
count past the maximum is a config error naming the key.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from harness import McpHttp, run_cli, tool_text, wait_until
from sdk2 import Callbacks, run, text_of


def lane_threads(pid: int) -> list[str]:
    names = [(Path(f"/proc/{pid}/task") / t / "comm").read_text().strip() for t in os.listdir(f"/proc/{pid}/task")]
    return sorted(n for n in names if n.startswith("mcpgate-lane-"))


def calls_from_many_connections(url: str, connections: int, calls: int) -> list[str]:
    """`connections` clients, each on its own connection and session, calling at once; every
    answer that was not its own echo, or an error, is returned."""
    wrong: list[str] = []
    lock = threading.Lock()

    def one(k: int) -> None:
        client = McpHttp(url)
        try:
            client.initialize()
            for i in range(calls):
                text = f"conn{k}-call{i}"
                reply = client.call_tool("a_echo", {"text": text})
                got = tool_text(reply["result"]) if "result" in reply else repr(reply)
                if got != text:
                    with lock:
                        wrong.append(f"{text} -> {got}")
        except Exception as e:  # noqa: BLE001 (reported as a wrong answer)
            with lock:
                wrong.append(f"conn{k}: {e!r}")
        finally:
            client.close()

    threads = [threading.Thread(target=one, args=(k,)) for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return wrong


def modern_echo(url: str, text: str) -> str:
    async def call() -> str:
        async with Callbacks().client(url) as client:
            return text_of(await client.call_tool("a_echo", {"text": text}))

    return run(call)


def test_by_default_there_is_one_lane_per_cpu_and_every_connection_is_answered(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config()])

    lanes = gw.status()["runtime"]["lanes"]
    assert 1 <= lanes <= len(os.sched_getaffinity(0))
    assert lane_threads(gw.proc.popen.pid) == sorted(f"mcpgate-lane-{i}" for i in range(1, lanes + 1))
    # More connections than lanes: each lane serves several, all at once.
    assert calls_from_many_connections(gw.url, 3 * lanes + 1, 5) == []
    assert modern_echo(gw.url, "modern on a lane") == "modern on a lane"


def test_three_lanes_serve_connections_landing_on_each_of_them(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config()], lanes=3)

    assert gw.status()["runtime"]["lanes"] == 3
    assert lane_threads(gw.proc.popen.pid) == ["mcpgate-lane-1", "mcpgate-lane-2", "mcpgate-lane-3"]
    assert calls_from_many_connections(gw.url, 7, 5) == []
    assert [modern_echo(gw.url, f"modern {i}") for i in range(3)] == ["modern 0", "modern 1", "modern 2"]
    assert "serving connections on 3 lane(s)" in gw.stderr()


def test_lanes_0_serves_every_connection_on_one_work_stealing_pool(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config()], lanes=0)

    assert gw.status()["runtime"]["lanes"] == 0
    assert gw.status()["runtime"]["tasks"] > 0
    assert lane_threads(gw.proc.popen.pid) == []
    assert calls_from_many_connections(gw.url, 4, 5) == []
    assert modern_echo(gw.url, "modern without lanes") == "modern without lanes"
    assert "one work-stealing pool (lanes: 0)" in gw.stderr()


@pytest.mark.parametrize(("value", "problem"), [("257", "must be at most 256"), ("-1", "lanes"), ("two", "lanes")])
def test_a_bad_lane_count_is_a_config_error_naming_the_key(mcpgate_bin, tmp_path, value, problem):
    path = tmp_path / "gateway.yaml"
    path.write_text(f"lanes: {value}\nservers: [{{name: a, url: 'http://127.0.0.1:1/mcp'}}]\n")

    proc = run_cli(mcpgate_bin, ["check", "--config", str(path)])

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "lanes" in proc.stdout + proc.stderr and problem in proc.stdout + proc.stderr


def test_changing_lanes_on_reload_asks_for_a_restart_and_keeps_serving(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config()], lanes=2)

    gw.write_config([a.config()], lanes=1)
    gw.sighup()

    wait_until(lambda: "lanes" in gw.stderr() and "only after a restart" in gw.stderr(), 20, what="the restart warning")
    assert gw.status()["runtime"]["lanes"] == 2
    assert calls_from_many_connections(gw.url, 2, 3) == []
