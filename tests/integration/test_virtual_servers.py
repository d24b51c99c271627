"""Virtual servers: extra MCP paths over the same backends, each showing exactly its selection
(by server, name glob, regex, annotations) to legacy and modern clients alike; calls outside the
selection are unknown and never reach a backend; sessions stay on the path that created them;
per-user permissions still apply on top, with the real OpenID provider; a virtual server's own
token requirements and RFC 9728 metadata; the main endpoint can be switched off."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest
from harness import ACCEPT_BOTH, GetStream, McpHttp, tool_text, wait_until
from idp import Idp
from sdk2 import Callbacks, run, text_of

VIRTUAL = [
    # Everything of server a but its sleep tool.
    {"name": "ops", "include": [{"server": "a"}], "exclude": [{"name": "a_sleep"}]},
    # Tools named *_add or *_echo of any server, by regular expression.
    {"name": "math", "path": "/teams/math/mcp", "include": [{"kind": "tool", "regex": "_(add|echo)$"}]},
]


def a_tools() -> set[str]:
    return {f"a_{t}" for t in ["echo", "add", "whoami", "progress", "log_message", "sample", "elicit", "roots", "add_tool", "only_a"]}


@pytest.fixture
def two_paths(backends, start_gateway):
    a, b = backends.pair()
    gw = start_gateway([a.config(), b.config()], virtual_servers=VIRTUAL)
    return gw, a, b


def at(gw, path: str) -> str:
    return gw.base + path


def test_two_virtual_servers_show_exactly_their_subsets_and_refuse_the_rest(two_paths, connect):
    gw, a, b = two_paths
    ops, math, main = connect(at(gw, "/mcp/ops")), connect(at(gw, "/teams/math/mcp")), connect(gw)

    assert set(ops.tool_names()) == a_tools()
    assert [p["name"] for p in ops.result("prompts/list")["prompts"]] == ["a_greet"]
    assert [r["uri"] for r in ops.result("resources/list")["resources"]] == ["a+fixture://a/static"]
    assert ops.tool_names() == sorted(ops.tool_names()), "a virtual server's list is sorted like the main one"
    assert math.tool_names() == ["a_add", "a_echo", "b_add", "b_echo"]
    assert math.result("prompts/list")["prompts"] == [] and math.result("resources/list")["resources"] == []
    assert {"a_sleep", "b_whoami", "b_sleep"} <= set(main.tool_names()), "the main endpoint keeps the full catalog"

    mark_a, mark_b = a.log.mark(), b.log.mark()
    for client, name in [(ops, "b_whoami"), (ops, "a_sleep"), (math, "a_whoami")]:
        refused = client.call_tool(name, {"seconds": 0})
        assert refused["error"] == {"code": -32602, "message": f"Unknown tool: {name}"}, refused
    assert math.request("prompts/get", {"name": "a_greet", "arguments": {"who": "x"}})["error"]["message"] == "Unknown prompt: a_greet"
    not_found = ops.request("resources/read", {"uri": "b+fixture://b/static"})
    assert not_found["error"]["code"] == -32002
    assert a.log.find(since=mark_a, rpc_method="tools/call") == [] and b.log.find(since=mark_b) == []

    assert tool_text(math.call_tool("b_add", {"a": 2, "b": 3})["result"]) == "5"
    assert tool_text(ops.call_tool("a_whoami")["result"]) == "a"
    read = ops.result("resources/read", {"uri": "a+fixture://a/items/7"})
    assert read["contents"][0]["text"] == "item 7 of a", "an expansion of a selected template can be read"
    assert b.log.find(since=mark_b, rpc_method="tools/call", name="add")


def test_instructions_on_a_virtual_server_come_only_from_its_servers(two_paths, connect):
    gw, _, _ = two_paths
    ops = McpHttp(at(gw, "/mcp/ops"))
    init = ops.initialize()
    assert init["instructions"] == "## a\nInstructions of a."
    ops.close()


def test_a_modern_sdk_client_on_a_virtual_server_sees_and_calls_only_its_selection(two_paths):
    gw, a, b = two_paths

    async def scenario():
        async with Callbacks("m").client(at(gw, "/teams/math/mcp")) as client:
            tools = sorted(t.name for t in (await client.list_tools()).tools)
            added = text_of(await client.call_tool("a_add", {"a": 20, "b": 22}))
            try:
                await client.call_tool("b_whoami", {})
                refused = None
            except Exception as exc:  # noqa: BLE001 - the SDK raises the JSON-RPC error
                refused = str(exc)
            return tools, added, refused

    mark = b.log.mark()
    tools, added, refused = run(scenario)
    assert tools == ["a_add", "a_echo", "b_add", "b_echo"]
    assert added == "42"
    assert refused is not None and "Unknown tool: b_whoami" in refused
    assert b.log.find(since=mark, rpc_method="tools/call") == []


def test_a_session_belongs_to_the_path_that_created_it(two_paths, connect):
    gw, _, _ = two_paths
    ops = connect(at(gw, "/mcp/ops"))
    for other in (gw.url, at(gw, "/teams/math/mcp")):
        stranger = McpHttp(other)
        stranger.session_id, stranger.protocol_version = ops.session_id, ops.protocol_version
        r = stranger.post_raw({"jsonrpc": "2.0", "id": 5, "method": "tools/list"})
        assert r.status_code == 404 and r.json()["error"]["message"] == "Session not found", r.text
        get = httpx.get(other, headers={"Accept": "text/event-stream", "Mcp-Session-Id": ops.session_id})
        assert get.status_code == 404
        assert httpx.delete(other, headers={"Mcp-Session-Id": ops.session_id}).status_code == 404
        stranger.close()
    assert ops.tool_names(), "the session still works on its own path"
    assert ops.delete().status_code == 204


def test_list_changed_reaches_only_the_virtual_servers_whose_selection_changed(backends, start_gateway, connect):
    a, b = backends.pair()
    virtual = [{"name": "only-a", "include": [{"server": "a"}]}, {"name": "only-b", "include": [{"server": "b"}]}]
    gw = start_gateway([a.config(), b.config()], virtual_servers=virtual)
    on_a, on_b, actor = connect(at(gw, "/mcp/only-a")), connect(at(gw, "/mcp/only-b")), connect(gw)
    with GetStream(on_a) as stream_a, GetStream(on_b) as stream_b:
        actor.call_tool("b_add_tool", {"tool_name": "fresh"})
        stream_b.wait_for(lambda m: m.get("method") == "notifications/tools/list_changed", timeout=15)
        wait_until(lambda: "b_fresh" in on_b.tool_names(), 10, what="b_fresh on only-b")
        # Another change that only-a does see: its stream then carries exactly one notification.
        actor.call_tool("a_add_tool", {"tool_name": "later"})
        stream_a.wait_for(lambda m: m.get("method") == "notifications/tools/list_changed", timeout=15)
    tools_changed = [m for m in stream_a.seen if m.get("method") == "notifications/tools/list_changed"]
    assert len(tools_changed) == 1, f"only-a was told about b's change: {stream_a.seen}"
    assert "b_fresh" not in on_a.tool_names() and "a_later" in on_a.tool_names()


def test_a_modern_listener_on_a_virtual_server_hears_its_changes_and_lists_only_its_selection(backends, start_gateway, connect):
    """(That it is not told about changes outside its selection is pinned exactly, message by
    message, for GET streams above; both eras share the per-endpoint change feed.)"""
    from mcp.client.subscriptions import ToolsListChanged

    a, b = backends.pair()
    gw = start_gateway([a.config(), b.config()], virtual_servers=[{"name": "only-a", "include": [{"server": "a"}]}])
    actor = connect(gw)

    async def scenario():
        async with Callbacks("m").client(at(gw, "/mcp/only-a")) as listener:
            async with listener.listen(tools_list_changed=True) as sub:
                # A change outside the selection, then one inside it.
                await anyio.to_thread.run_sync(lambda: actor.call_tool("b_add_tool", {"tool_name": "elsewhere"}))
                await anyio.to_thread.run_sync(lambda: wait_until(lambda: "b_elsewhere" in actor.tool_names(), 15, what="b_elsewhere"))
                await anyio.to_thread.run_sync(lambda: actor.call_tool("a_add_tool", {"tool_name": "here"}))
                with anyio.fail_after(15):
                    event = await sub.__anext__()
            return event, sorted(t.name for t in (await listener.list_tools()).tools)

    event, tools = run(scenario)
    assert isinstance(event, ToolsListChanged)
    assert "a_here" in tools and "b_elsewhere" not in tools


def test_virtual_servers_follow_a_reload(backends, start_gateway, connect):
    import yaml

    a = backends.v2("a")
    gw = start_gateway([a.config()], virtual_servers=[{"name": "ops", "include": [{"name": "a_echo"}]}])
    ops = connect(at(gw, "/mcp/ops"))
    assert ops.tool_names() == ["a_echo"]
    cfg = yaml.safe_load(gw.config_path.read_text())
    cfg["virtual_servers"] = [{"name": "ops", "include": [{"name": "a_add"}]}, {"name": "new", "include": [{"server": "a"}]}]
    gw.write_raw_config(yaml.safe_dump(cfg))
    wait_until(lambda: ops.tool_names() == ["a_add"], 20, what="the changed selection on the existing session")
    assert "a_echo" in connect(at(gw, "/mcp/new")).tool_names()
    cfg["virtual_servers"] = [{"name": "new", "include": [{"server": "a"}]}]
    gw.write_raw_config(yaml.safe_dump(cfg))
    wait_until(lambda: httpx.post(at(gw, "/mcp/ops"), json={}).status_code == 404, 20, what="the removed virtual server's path gone")


def test_the_main_endpoint_can_be_switched_off(backends, start_gateway, connect):
    a = backends.v2("a")
    gw = start_gateway([a.config()], virtual_servers=[{"name": "ops", "include": [{"server": "a"}]}], expose_full_catalog=False)
    r = McpHttp(gw.url).post_raw(
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    )
    assert r.status_code == 404
    assert "a_echo" in connect(at(gw, "/mcp/ops")).tool_names()
    assert httpx.get(gw.base + "/mcp/nowhere").status_code == 404


# ---------------------------------------------------------------------------------------------
# With the real OpenID provider: permissions on top, own requirements, own metadata
# ---------------------------------------------------------------------------------------------

USERS = {
    "alice": {"roles": {"a.local": ["echo", "add"], "b.local": ["whoami"]}},
    "bob": {"roles": {"b.local": ["echo"]}},
}


@pytest.fixture
def secured(backends, start_gateway, registry, tmp_path):
    users = tmp_path / "users.json"
    users.write_text(json.dumps(USERS))
    idp = Idp(registry, ["--users", str(users)])
    a, b = backends.pair()
    virtual = [
        {"name": "all", "include": [{}]},
        {"name": "a-only", "include": [{"server": "a"}]},
        {"name": "ops", "include": [{"server": "a"}], "auth": {"required_scopes": ["ops"], "audiences": ["mcpgate-ops"]}},
    ]
    auth = {"issuers": [{"issuer": idp.issuer}], "audiences": ["mcpgate", "mcpgate-ops"]}
    gw = start_gateway(
        [a.config(auth={"client_ids": ["a.local"]}), b.config(auth={"client_ids": ["b.local"]})],
        auth=auth,
        virtual_servers=virtual,
        public_url="https://mcp.example.com/mcp",
    )
    return gw, idp, a, b


def login(url: str, token: str) -> McpHttp:
    c = McpHttp(url)
    c.http.headers["Authorization"] = f"Bearer {token}"
    c.initialize()
    return c


def test_a_virtual_server_never_shows_what_the_callers_permissions_deny(secured):
    gw, idp, a, b = secured
    alice, bob = idp.token("alice"), idp.token("bob")

    assert login(at(gw, "/mcp/all"), alice).tool_names() == ["a_add", "a_echo", "b_whoami"]
    assert login(at(gw, "/mcp/a-only"), alice).tool_names() == ["a_add", "a_echo"]
    assert login(at(gw, "/mcp/all"), bob).tool_names() == ["b_echo"]
    bob_a = login(at(gw, "/mcp/a-only"), bob)
    assert bob_a.tool_names() == []
    mark = b.log.mark()
    assert bob_a.call_tool("b_echo", {"text": "x"})["error"]["message"] == "Unknown tool: b_echo", "permitted, but not on this path"
    assert bob_a.call_tool("a_echo", {"text": "x"})["error"]["message"] == "Unknown tool: a_echo", "on this path, but not permitted"
    assert b.log.find(since=mark, rpc_method="tools/call") == []


def test_a_virtual_server_demands_its_scope_and_audience_and_publishes_its_metadata(secured):
    gw, idp, a, _ = secured
    plain = idp.token("alice", scope="openid ops")
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}

    def post(token: str) -> httpx.Response:
        return httpx.post(at(gw, "/mcp/ops"), json=init, headers={"Accept": ACCEPT_BOTH, "Authorization": f"Bearer {token}"})

    metadata_url = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp/ops"
    wrong_audience = post(plain)
    assert wrong_audience.status_code == 401
    assert 'error="invalid_token"' in wrong_audience.headers["www-authenticate"]
    assert f'resource_metadata="{metadata_url}"' in wrong_audience.headers["www-authenticate"]
    no_scope = post(idp.token("alice", audience="mcpgate-ops"))
    assert no_scope.status_code == 403
    assert 'error="insufficient_scope"' in no_scope.headers["www-authenticate"] and 'scope="ops"' in no_scope.headers["www-authenticate"]
    ops = login(at(gw, "/mcp/ops"), idp.token("alice", audience="mcpgate-ops", scope="openid ops"))
    assert ops.tool_names() == ["a_add", "a_echo"]
    # The main endpoint does not demand what the virtual server demands.
    assert login(gw.url, plain).tool_names() == ["a_add", "a_echo", "b_whoami"]

    meta = httpx.get(gw.base + "/.well-known/oauth-protected-resource/mcp/ops")
    assert meta.status_code == 200
    doc = meta.json()
    assert doc["resource"] == "https://mcp.example.com/mcp/ops"
    assert doc["authorization_servers"] == [idp.issuer] and "ops" in doc["scopes_supported"]
    assert httpx.get(gw.base + "/.well-known/oauth-protected-resource/mcp/nowhere").status_code == 404


def test_a_modern_client_on_a_virtual_server_gets_the_same_narrowing(secured):
    import httpx2
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    gw, idp, _, _ = secured
    token = idp.token("alice")

    async def scenario():
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
        async with Client(streamable_http_client(at(gw, "/mcp/a-only"), http_client=http)) as c:
            return sorted(t.name for t in (await c.list_tools()).tools), text_of(await c.call_tool("a_add", {"a": 1, "b": 1}))

    tools, added = run(scenario)
    assert tools == ["a_add", "a_echo"]
    assert added == "2"
