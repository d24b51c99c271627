"""The command line: `mcpgate check`, `serve --server NAME=URL` quick start, env substitution,
the readiness line, custom MCP path, `demo --once`."""

from __future__ import annotations

import re
import textwrap

import httpx
import pytest
import yaml
from harness import free_port, run_cli, tool_text, wait_until


def check(mcpgate_bin, tmp_path, text: str, env: dict | None = None):
    path = tmp_path / "check.yaml"
    path.write_text(textwrap.dedent(text))
    return run_cli(mcpgate_bin, ["check", "--config", str(path)], env=env)


def error_lines(proc) -> list[str]:
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("error: ")]


VALID = """
    listen: 127.0.0.1:18080
    mcp_path: /mcp
    limits: {max_body_bytes: 1048576, max_sessions: 100, session_idle_timeout: 30m}
    allowed_origins: []
    catalog: {refresh_interval: 5m, page_size: 100}
    servers:
      - name: weather
        url: http://127.0.0.1:9001/mcp
        transport: streamable_http
        prefix: weather_
        enabled: true
        headers: {X-Api-Key: "k"}
        timeouts: {connect: 5s, call: 30s, discovery: 10s}
      - name: legacy
        url: http://127.0.0.1:9002/sse
        transport: sse
      - name: local
        transport: stdio
        command: python3
        args: [server.py]
        env: {FOO: bar}
"""


def test_check_accepts_a_valid_config(mcpgate_bin, tmp_path):
    proc = check(mcpgate_bin, tmp_path, VALID)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "config OK" in proc.stdout + proc.stderr
    assert error_lines(proc) == []


BAD_CONFIGS = {
    "unknown-top-level-key": (
        "listen: 127.0.0.1:18080\nbogus_key: 1\nservers: [{name: a, url: 'http://127.0.0.1:1/mcp'}]\n",
        ["bogus_key"],
    ),
    "unknown-server-key": (
        "servers: [{name: a, url: 'http://127.0.0.1:1/mcp', colour: blue}]\n",
        ["servers", "colour"],
    ),
    "bad-server-name": ("servers: [{name: Bad_Name, url: 'http://127.0.0.1:1/mcp'}]\n", ["servers", "name"]),
    "duplicate-server-names": (
        "servers:\n  - {name: a, url: 'http://127.0.0.1:1/mcp'}\n  - {name: a, url: 'http://127.0.0.1:2/mcp'}\n",
        ["servers", "name"],
    ),
    "colliding-prefixes": (
        "servers:\n  - {name: a, url: 'http://127.0.0.1:1/mcp', prefix: a_}\n"
        "  - {name: b, url: 'http://127.0.0.1:2/mcp', prefix: a_b_}\n",
        ["prefix"],
    ),
    "empty-prefix-with-two-servers": (
        "servers:\n  - {name: a, url: 'http://127.0.0.1:1/mcp', prefix: ''}\n"
        "  - {name: b, url: 'http://127.0.0.1:2/mcp'}\n",
        ["prefix"],
    ),
    "unknown-transport": ("servers: [{name: a, url: 'http://127.0.0.1:1/mcp', transport: pigeon}]\n", ["transport"]),
    "http-without-url": ("servers: [{name: a, transport: streamable_http}]\n", ["url"]),
    "stdio-without-command": ("servers: [{name: a, transport: stdio}]\n", ["command"]),
    "bad-duration": (
        "servers: [{name: a, url: 'http://127.0.0.1:1/mcp', timeouts: {call: forever}}]\n",
        ["timeouts", "call"],
    ),
    "bad-listen-address": ("listen: not-an-address\nservers: [{name: a, url: 'http://127.0.0.1:1/mcp'}]\n", ["listen"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_check_rejects_a_bad_config_naming_the_key_path(mcpgate_bin, tmp_path, case):
    text, fragments = BAD_CONFIGS[case]

    proc = check(mcpgate_bin, tmp_path, text)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = error_lines(proc)
    assert lines, f"no 'error: <key path>: <problem> (fix: <hint>)' line in:\n{proc.stdout}{proc.stderr}"
    matching = [ln for ln in lines if all(f in ln for f in fragments)]
    assert matching, f"no error line mentions {fragments}: {lines}"
    assert all(re.match(r"^error: \S.*: .+ \(fix: .+\)$", ln) for ln in lines), lines


def test_check_reports_every_problem_on_its_own_line(mcpgate_bin, tmp_path):
    text = (
        "servers:\n  - {name: Bad_Name, url: 'http://127.0.0.1:1/mcp'}\n"
        "  - {name: b, url: 'http://127.0.0.1:2/mcp', prefix: ''}\n"
    )

    proc = check(mcpgate_bin, tmp_path, text)

    assert proc.returncode == 1
    lines = error_lines(proc)
    assert len(lines) >= 2, proc.stdout + proc.stderr
    assert any("name" in ln for ln in lines) and any("prefix" in ln for ln in lines), lines


def test_check_rejects_invalid_yaml(mcpgate_bin, tmp_path):
    proc = check(mcpgate_bin, tmp_path, "servers: [ {name: a, url: \n")

    assert proc.returncode == 1
    assert "config OK" not in proc.stdout + proc.stderr


def test_check_substitutes_environment_variables(mcpgate_bin, tmp_path):
    text = "servers: [{name: a, url: 'http://127.0.0.1:${GW_TEST_PORT}/mcp', transport: '${GW_TEST_TRANSPORT}'}]\n"

    good = check(mcpgate_bin, tmp_path, text, env={"GW_TEST_PORT": "9001", "GW_TEST_TRANSPORT": "streamable_http"})
    bad = check(mcpgate_bin, tmp_path, text, env={"GW_TEST_PORT": "9001", "GW_TEST_TRANSPORT": "pigeon"})

    assert good.returncode == 0, good.stdout + good.stderr
    assert bad.returncode == 1 and any("transport" in ln for ln in error_lines(bad))


def test_env_substituted_headers_reach_the_backend_and_double_dollar_is_literal(backends, gateway, connect):
    a = backends.v2("a")
    gateway.write_config([a.config(headers={"X-Api-Key": "${GW_TEST_KEY}", "X-Literal": "$${NOT_A_VAR}"})])
    gateway.start_with_config(env={"GW_TEST_KEY": "s3cr3t-from-env"}, ready=["a"])
    mark = a.log.mark()

    connect(gateway).call_tool("a_echo", {"text": "x"})

    (call,) = a.log.find(since=mark, rpc_method="tools/call")
    assert call["headers"].get("x-api-key") == "s3cr3t-from-env"
    assert call["headers"].get("x-literal") == "${NOT_A_VAR}"


def test_serve_with_server_flags_aggregates_both(backends, gateway, connect):
    a, b = backends.pair()

    gateway.start_argv(
        ["serve", "--listen", f"127.0.0.1:{gateway.port}", "--server", f"a={a.url}", "--server", f"b={b.url}"],
        ready=["a", "b"],
    )
    client = connect(gateway)

    assert {"a_echo", "b_echo"} <= set(client.tool_names())
    assert tool_text(client.call_tool("b_echo", {"text": "quick"})["result"]) == "quick"


def test_serve_with_sse_server_flag_uses_legacy_sse(backends, gateway, connect, legacy_sdk):
    d = backends.v1("d", transport="sse")

    gateway.start_argv(["serve", "--listen", f"127.0.0.1:{gateway.port}", "--server", f"d=sse+{d.url}"], ready=["d"])

    assert tool_text(connect(gateway).call_tool("d_echo", {"text": "sse"})["result"]) == "sse"
    assert gateway.server_status("d")["transport"] == "sse"


def test_serve_prints_the_listening_line(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config()])

    wait_until(lambda: f"listening on http://127.0.0.1:{gw.port}/mcp" in gw.stderr(), 5, what="listening line")


def test_custom_mcp_path_is_served(backends, start_gateway, connect):
    a = backends.v2("a")
    gw = start_gateway([a.config()], mcp_path="/gateway/mcp")

    client = connect(gw)

    assert gw.url.endswith("/gateway/mcp")
    assert "a_echo" in client.tool_names()
    assert httpx.post(gw.base + "/mcp", json={}).status_code == 404


def test_serve_refuses_an_invalid_config(gateway, mcpgate_bin):
    gateway.write_raw_config(yaml.safe_dump({"listen": f"127.0.0.1:{gateway.port}", "nope": 1, "servers": []}))

    proc = run_cli(mcpgate_bin, ["serve", "--config", str(gateway.config_path)], timeout=20)

    assert proc.returncode != 0
    assert "nope" in proc.stdout + proc.stderr


def test_demo_once_runs_and_exits_cleanly(mcpgate_bin, tmp_path):
    port = free_port()

    proc = run_cli(mcpgate_bin, ["demo", "--once", "--listen", f"127.0.0.1:{port}"], timeout=50, cwd=tmp_path)

    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
