"""Official SDK clients through the gateway: Python 2.x (probes the modern era first and stays
modern), Python mcp<2, TypeScript."""

from __future__ import annotations

import json

import pytest
from harness import HANDSHAKE_VERSIONS, MODERN_VERSION, McpHttp, run_ts_client, run_v1_client
from sdk2 import Callbacks, run, text_of

def discover_probe() -> dict:
    """The request the Python SDK 2.x client sends first (mcp/client/session.py send_discover)."""
    return {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "server/discover",
        "params": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
                "io.modelcontextprotocol/clientInfo": {"name": "probe", "version": "0"},
                "io.modelcontextprotocol/clientCapabilities": {},
            }
        },
    }


def test_modern_discover_probe_is_answered_statelessly_by_the_gateway(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config()])
    client = McpHttp(gw.url)
    mark = a.log.mark()

    response = client.post_raw(
        discover_probe(), headers={"MCP-Protocol-Version": MODERN_VERSION, "Mcp-Method": "server/discover"}
    )

    assert response.status_code == 200
    assert not response.headers.get("mcp-session-id"), "the modern era has no sessions"
    result = response.json()["result"]
    assert result["supportedVersions"] == [MODERN_VERSION]
    assert result["resultType"] == "complete"
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcpgate"
    assert "tools" in result["capabilities"]
    # Answered from the catalog: the client's probe itself never reaches a backend (the
    # gateway's own discovery probes carry the gateway's clientInfo).
    probes = a.log.find(since=mark, rpc_method="server/discover")
    assert all("probe" not in json.dumps(r) for r in probes)
    # The same endpoint still serves sessions.
    assert McpHttp(gw.url).initialize()["protocolVersion"] in HANDSHAKE_VERSIONS


def test_python_sdk2_client_stays_modern_and_lists_and_calls(backends, start_gateway):
    a, b = backends.pair()
    gw = start_gateway([a.config(), b.config()])

    async def session():
        async with Callbacks("sdk2").client(gw.url) as client:
            version = client.session.protocol_version
            tools = await client.list_tools()
            echoed = await client.call_tool("b_echo", {"text": "through the gateway"})
            prompt = await client.get_prompt("a_greet", {"who": "sdk2"})
            resource = await client.read_resource("a+fixture://a/items/5")
            return version, [t.name for t in tools.tools], text_of(echoed), prompt, resource

    version, names, echoed, prompt, resource = run(session)

    assert version == MODERN_VERSION
    assert {"a_echo", "b_echo", "a_only_a", "b_only_b"} <= set(names)
    assert echoed == "through the gateway"
    assert prompt.messages[0].content.text == "Hello sdk2, from a."
    assert resource.contents[0].text == "item 5 of a"


def test_python_sdk2_client_in_legacy_mode_works(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config()])

    async def session():
        async with Callbacks().client(gw.url, mode="legacy") as client:
            return text_of(await client.call_tool("a_add", {"a": 20, "b": 22}))

    assert run(session) == "42"


def test_legacy_python_client_lists_and_calls(backends, start_gateway, legacy_sdk):
    a, b = backends.pair()
    gw = start_gateway([a.config(), b.config()])

    out = run_v1_client(
        gw.url,
        calls=[("a_echo", {"text": "v1"}), ("b_add", {"a": 1, "b": 2})],
        reads=["b+fixture://b/static"],
        prompts=[("a_greet", {"who": "v1"})],
    )

    assert out["_returncode"] == 0, out
    assert {"a_echo", "b_echo"} <= set(out["tools"])
    assert out["calls"] == [
        {"name": "a_echo", "is_error": False, "text": "v1"},
        {"name": "b_add", "is_error": False, "text": "3"},
    ]
    assert out["reads"][0]["text"] == "static resource of b"
    assert out["prompts_got"][0]["texts"] == ["Hello v1, from a."]
    assert out["prompts"] == ["a_greet", "b_greet"]


def test_typescript_client_lists_and_calls(backends, start_gateway, ts_sdk):
    a, b = backends.pair()
    gw = start_gateway([a.config(), b.config()])

    out = run_ts_client(gw.url, calls=[("a_echo", {"text": "ts"}), ("b_add", {"a": 5, "b": 6})])

    assert out["_returncode"] == 0, out
    assert out["protocolVersion"] in HANDSHAKE_VERSIONS
    assert {"a_echo", "b_echo"} <= set(out["tools"])
    assert out["calls"] == [
        {"name": "a_echo", "isError": False, "text": "ts"},
        {"name": "b_add", "isError": False, "text": "11"},
    ]


@pytest.mark.parametrize("client_kind", ["sdk2", "legacy"])
def test_sdk_clients_see_the_same_sorted_tool_list(backends, start_gateway, legacy_sdk, client_kind, connect):
    a, b = backends.pair()
    gw = start_gateway([a.config(), b.config()])
    expected = connect(gw).tool_names()

    if client_kind == "sdk2":

        async def names():
            async with Callbacks().client(gw.url) as client:
                return [t.name for t in (await client.list_tools()).tools]

        got = run(names)
    else:
        got = run_v1_client(gw.url)["tools"]

    assert got == expected
