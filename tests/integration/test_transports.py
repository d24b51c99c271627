"""Backends over each transport the gateway speaks: Streamable HTTP (SDK 2.x and mcp<2), legacy
HTTP+SSE, stdio (our fixtures and the reference `server-everything`)."""

from __future__ import annotations

import pytest
from harness import NODE_DIR, fixture_tools, rpc_messages, tool_text, ts_client_available


def test_stdio_backend_is_aggregated_and_callable(backends, start_gateway, connect, legacy_sdk):
    a = backends.v2("a")
    e = backends.stdio("e", sdk="v1")
    gw = start_gateway([a.config(), e.config()])
    client = connect(gw)

    names = client.tool_names()
    reply = client.call_tool("e_echo", {"text": "over stdio"})

    assert {f"e_{t}" for t in fixture_tools("e")} <= set(names) and "a_echo" in names
    assert tool_text(reply["result"]) == "over stdio"
    assert e.log.calls() == ["echo"]
    assert gw.server_status("e")["transport"] == "stdio"


def test_stdio_backend_on_sdk2_with_env_and_progress(backends, start_gateway, connect):
    f = backends.stdio("f", sdk="v2")
    gw = start_gateway([f.config(env={"FIXTURE_MARKER": "1"})])
    client = connect(gw)

    response = client.post_raw(
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "f_progress", "arguments": {"steps": 2}, "_meta": {"progressToken": 77}},
        }
    )

    messages = rpc_messages(response)
    assert [m["params"]["progressToken"] for m in messages if m.get("method") == "notifications/progress"] == [77, 77]
    assert tool_text(messages[-1]["result"]) == "done 2"


def test_stdio_backend_resources_and_prompts_are_routed(backends, start_gateway, connect, legacy_sdk):
    e = backends.stdio("e", sdk="v1")
    gw = start_gateway([e.config()])
    client = connect(gw)

    read = client.result("resources/read", {"uri": "e+fixture://e/items/9"})
    prompt = client.result("prompts/get", {"name": "e_greet", "arguments": {"who": "pipe"}})

    assert read["contents"][0]["text"] == "item 9 of e"
    assert prompt["messages"][0]["content"]["text"] == "Hello pipe, from e."


def test_legacy_sse_backend_is_aggregated_and_callable(backends, start_gateway, connect, legacy_sdk):
    d = backends.v1("d", transport="sse", start=False)
    a = backends.v2("a", start=False)
    backends.ready(d, a)
    gw = start_gateway([d.config(), a.config()])
    client = connect(gw)

    names = client.tool_names()
    reply = client.call_tool("d_add", {"a": 4, "b": 5})

    assert {f"d_{t}" for t in fixture_tools("d")} <= set(names)
    assert tool_text(reply["result"]) == "9"
    assert [e["name"] for e in d.log.find(rpc_method="tools/call")] == ["add"]
    assert gw.server_status("d")["transport"] == "sse"


def test_legacy_sse_backend_relays_progress(backends, start_gateway, connect, legacy_sdk):
    d = backends.v1("d", transport="sse")
    gw = start_gateway([d.config()])
    client = connect(gw)

    response = client.post_raw(
        {
            "jsonrpc": "2.0",
            "id": 8,
            "method": "tools/call",
            "params": {"name": "d_progress", "arguments": {"steps": 2}, "_meta": {"progressToken": "sse-tok"}},
        }
    )

    progress = [m for m in rpc_messages(response) if m.get("method") == "notifications/progress"]
    assert [p["params"]["progressToken"] for p in progress] == ["sse-tok", "sse-tok"]


def test_legacy_sdk_streamable_http_backend_is_aggregated(backends, start_gateway, connect, legacy_sdk):
    c = backends.v1("c")
    gw = start_gateway([c.config()])
    client = connect(gw)

    assert tool_text(client.call_tool("c_whoami")["result"]) == "c"
    assert "c_only_c" in client.tool_names()


def test_backend_answering_plain_json_instead_of_sse_works(backends, start_gateway, connect):
    j = backends.v2("j", json_response=True)
    gw = start_gateway([j.config()])

    assert tool_text(connect(gw).call_tool("j_echo", {"text": "json"})["result"]) == "json"


@pytest.mark.skipif(not ts_client_available(), reason="node packages not installed (scripts/setup-test-env.sh)")
def test_reference_server_everything_over_stdio_is_aggregated(backends, start_gateway, connect):
    entry = NODE_DIR / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
    everything = {"name": "everything", "transport": "stdio", "command": "node", "args": [str(entry), "stdio"]}
    a = backends.v2("a")
    gw = start_gateway([everything, a.config()])
    client = connect(gw)

    names = client.tool_names()
    reply = client.call_tool("everything_echo", {"message": "hi"})

    assert "everything_echo" in names and "a_echo" in names
    assert tool_text(reply["result"]) == "Echo: hi"
