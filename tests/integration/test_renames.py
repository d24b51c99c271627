"""Renames and overrides: a tool exposed under a new name is called under it and the backend
receives its own name; description and annotation overrides are what clients (and selectors)
see; hidden tools do not exist; prefix modes `never` and `on_collision`; overrides change by
reload without touching backend sessions, and pinning keeps judging the backend's definition."""

from __future__ import annotations

import pytest
import yaml
from harness import run_cli, tool_text, wait_until
from sdk2 import Callbacks, run, text_of

OVERRIDES = {
    "echo": {"expose_as": "say", "description": "Say the text back.", "annotations": {"destructiveHint": True}},
    "sleep": {"hide": True},
}


def tools_by_name(client) -> dict[str, dict]:
    return {t["name"]: t for t in client.list_all("tools/list", "tools")[0]}


def test_a_renamed_tool_is_called_under_its_new_name_and_the_backend_receives_the_original(backends, start_gateway, connect):
    a = backends.v2("a")
    gw = start_gateway([a.config(tools=OVERRIDES)], virtual_servers=[{"name": "risky", "include": [{"kind": "tool", "annotations": {"destructiveHint": True}}]}])
    client = connect(gw)
    tools = tools_by_name(client)

    assert "say" in tools and "a_echo" not in tools and "a_sleep" not in tools and "a_add" in tools
    assert tools["say"]["description"] == "Say the text back."
    assert tools["say"]["annotations"]["destructiveHint"] is True
    assert tools["say"]["inputSchema"]["properties"]["text"]["type"] == "string", "the rest of the definition is the backend's"

    mark = a.log.mark()
    assert tool_text(client.call_tool("say", {"text": "renamed"})["result"]) == "renamed"
    (call,) = a.log.find(since=mark, rpc_method="tools/call")
    assert call["name"] == "echo", "the backend receives its own name"
    for gone in ("a_echo", "a_sleep"):
        assert client.call_tool(gone, {"seconds": 0, "text": "x"})["error"]["message"] == f"Unknown tool: {gone}"
    assert a.log.find(since=mark, rpc_method="tools/call", name="sleep") == []
    # A selector on annotations sees the operator's override.
    assert connect(gw.base + "/mcp/risky").tool_names() == ["say"]


def test_a_modern_client_calls_the_renamed_tool_and_the_backend_gets_its_own_name_in_mcp_name(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config(tools=OVERRIDES)])

    async def scenario():
        async with Callbacks("m").client(gw.url) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            return names, text_of(await client.call_tool("say", {"text": "modern"}))

    mark = a.log.mark()
    names, said = run(scenario)
    assert "say" in names and "a_echo" not in names and said == "modern"
    (call,) = a.log.find(since=mark, rpc_method="tools/call")
    assert call["name"] == "echo"
    headers = {k.lower(): v for k, v in call.get("headers", {}).items()}
    assert headers.get("mcp-name") == "echo", "Mcp-Name is recomputed from the backend's own name"


def test_prefix_modes_never_and_on_collision(backends, start_gateway, connect):
    a, b = backends.pair()
    gw = start_gateway([a.config(prefix_mode="never"), b.config(prefix_mode="on_collision")])
    names = set(connect(gw).tool_names())

    # a's names are bare; b's are bare unless a exposes the same name, then prefixed.
    assert {"echo", "add", "only_a", "only_b", "b_echo", "b_add"} <= names
    assert "a_echo" not in names and "b_only_b" not in names
    client = connect(gw)
    mark_a, mark_b = a.log.mark(), b.log.mark()
    assert tool_text(client.call_tool("whoami")["result"]) == "a"
    assert tool_text(client.call_tool("b_whoami")["result"]) == "b"
    assert tool_text(client.call_tool("only_b")["result"]) == "only b"
    assert [c["name"] for c in a.log.find(since=mark_a, rpc_method="tools/call")] == ["whoami"]
    assert [c["name"] for c in b.log.find(since=mark_b, rpc_method="tools/call")] == ["whoami", "only_b"]
    # Resources stay namespaced: only a single server with prefix "" passes URIs through.
    uris = {r["uri"] for r in client.result("resources/list")["resources"]}
    assert uris == {"a+fixture://a/static", "b+fixture://b/static"}


def test_two_never_prefixed_servers_withhold_their_shared_names(backends, start_gateway, connect):
    a, b = backends.pair()
    gw = start_gateway([a.config(prefix_mode="never"), b.config(prefix_mode="never")])
    names = set(connect(gw).tool_names())
    assert names == {"only_a", "only_b"}, "every shared name is ambiguous: withheld, never picked by order"
    withheld = {w["name"] for w in gw.server_status("a")["withheld"]}
    assert {"echo", "add"} <= withheld


def test_overrides_change_on_reload_without_new_backend_sessions_and_pins_stay_valid(backends, start_gateway, connect, mcpgate_bin, tmp_path):
    a = backends.v2("a")
    pins = tmp_path / "pins.yaml"
    server = a.config(era="legacy", pinning="enforce", tools={"echo": {"description": "First."}})
    gw = start_gateway([server], pins={"file": str(pins)})
    wait_until(lambda: gw.server_status("a")["quarantined"], 20, what="quarantined before approval")
    wait_until(lambda: pins.exists() and "echo" in pins.read_text(), 20, what="pending pins written")
    assert run_cli(mcpgate_bin, ["pins", "approve", "--all", "--file", str(pins)]).returncode == 0
    client = connect(gw)
    wait_until(lambda: "a_echo" in client.tool_names(), 20, what="approved tools served")
    assert tools_by_name(client)["a_echo"]["description"] == "First."
    assert tool_text(client.call_tool("a_echo", {"text": "before"})["result"]) == "before"

    mark = a.log.mark()
    cfg = yaml.safe_load(gw.config_path.read_text())
    cfg["servers"][0]["tools"] = {"echo": {"description": "Second.", "expose_as": "repeat"}}
    gw.write_raw_config(yaml.safe_dump(cfg))
    wait_until(lambda: "repeat" in client.tool_names(), 20, what="the new override served after reload")

    assert tools_by_name(client)["repeat"]["description"] == "Second."
    assert gw.server_status("a")["quarantined"] == [], "overrides never change what the pin covers"
    assert tool_text(client.call_tool("repeat", {"text": "after"})["result"]) == "after"
    assert a.log.find(since=mark, rpc_method="initialize") == [], "neither discovery nor the client's backend session started again"


@pytest.mark.parametrize(
    "tools, other, expected",
    [
        ({"echo": {"expose_as": "b_echo"}}, {}, 'servers[0].tools.echo.expose_as: "b_echo" starts with prefix "b_" of server "b"'),
        ({"echo": {"expose_as": "say"}}, {"tools": {"add": {"expose_as": "say"}}}, 'servers[1].tools.add.expose_as: "say" is already the exposed name'),
        ({"echo": {"expose_as": "say it"}}, {}, 'servers[0].tools.echo.expose_as: "say it" is not a valid name'),
    ],
    ids=["into-another-prefix", "twice", "invalid"],
)
def test_a_colliding_or_invalid_rename_is_a_config_error(gateway, mcpgate_bin, tools, other, expected):
    gateway.write_config([{"name": "a", "url": "http://127.0.0.1:9/mcp", "tools": tools}, {"name": "b", "url": "http://127.0.0.1:9/mcp", **other}])
    out = run_cli(mcpgate_bin, ["check", "--config", str(gateway.config_path)])
    assert out.returncode == 1
    assert f"error: {expected}" in out.stdout and "(fix:" in out.stdout, out.stdout
