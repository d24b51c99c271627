"""Calls go to the owning backend with the prefix removed; lists come from the gateway's cache;
backend sessions are per client session and reused."""

from __future__ import annotations

from harness import tool_text


def test_tool_call_reaches_owning_backend_with_prefix_removed(backends, start_gateway, connect):
    a, b = backends.pair()
    gw = start_gateway([a.config(), b.config()])
    client = connect(gw)
    mark_a, mark_b = a.log.mark(), b.log.mark()

    reply = client.call_tool("b_echo", {"text": "hello"})

    assert tool_text(reply["result"]) == "hello"
    assert b.log.calls(since=mark_b) == ["echo"], "backend b must receive the unprefixed name"
    assert a.log.calls(since=mark_a) == [], "backend a must not be called"


def test_tool_arguments_and_result_are_forwarded(backends, start_gateway, connect):
    a, b = backends.pair()
    gw = start_gateway([a.config(), b.config()])

    reply = connect(gw).call_tool("a_add", {"a": 2, "b": 40})

    assert tool_text(reply["result"]) == "42"
    assert reply["result"]["isError"] is False
    assert reply["result"]["structuredContent"] == {"result": 42}


def test_prompt_get_reaches_owning_backend_with_prefix_removed(backends, start_gateway, connect):
    a, b = backends.pair()
    gw = start_gateway([a.config(), b.config()])
    mark = a.log.mark()

    result = connect(gw).result("prompts/get", {"name": "a_greet", "arguments": {"who": "zed"}})

    assert result["messages"][0]["content"]["text"] == "Hello zed, from a."
    assert [e["name"] for e in a.log.find(since=mark, rpc_method="prompts/get")] == ["greet"]


def test_resource_read_reaches_owning_backend_with_original_uri(backends, start_gateway, connect):
    a, b = backends.pair()
    gw = start_gateway([a.config(), b.config()])
    client = connect(gw)
    mark = b.log.mark()

    static = client.result("resources/read", {"uri": "b+fixture://b/static"})
    item = client.result("resources/read", {"uri": "b+fixture://b/items/42"})

    assert static["contents"][0]["text"] == "static resource of b"
    assert item["contents"][0]["text"] == "item 42 of b"
    uris = [e["uri"] for e in b.log.find(since=mark, rpc_method="resources/read")]
    assert uris == ["fixture://b/static", "fixture://b/items/42"]


def test_unknown_tool_is_invalid_params_naming_the_tool(backends, start_gateway, connect):
    a, b = backends.pair()
    gw = start_gateway([a.config(), b.config()])
    client = connect(gw)

    for name in ("a_does_not_exist", "echo", "zz_echo"):
        reply = client.call_tool(name, {"text": "x"})
        assert "error" in reply, reply
        assert reply["error"]["code"] == -32602
        assert name in reply["error"]["message"]


def test_unknown_prompt_is_invalid_params_naming_the_prompt(backends, start_gateway, connect):
    a = backends.v2("a")
    gw = start_gateway([a.config()])

    reply = connect(gw).request("prompts/get", {"name": "a_nope", "arguments": {}})

    assert reply["error"]["code"] == -32602
    assert "a_nope" in reply["error"]["message"]


def test_tools_list_is_served_from_the_cache_without_backend_round_trips(backends, start_gateway, connect):
    a, b = backends.pair()
    gw = start_gateway([a.config(), b.config()])
    first = connect(gw)
    first.tool_names()  # warm everything up
    mark_a, mark_b = a.log.mark(), b.log.mark()

    for client in (first, connect(gw), connect(gw)):
        for _ in range(3):
            client.tool_names()
            client.list_all("prompts/list", "prompts")

    for backend, mark in ((a, mark_a), (b, mark_b)):
        for method in ("tools/list", "prompts/list"):
            assert backend.log.find(since=mark, rpc_method=method) == [], f"{backend.name} got {method}"


def test_backend_session_is_reused_within_a_client_session_and_separate_across_them(backends, start_gateway, connect):
    a = backends.v2("a")
    gw = start_gateway([a.config(era="legacy")])  # a modern backend has no sessions
    one, two = connect(gw), connect(gw)
    mark = a.log.mark()

    one.call_tool("a_echo", {"text": "1"})
    one.call_tool("a_echo", {"text": "2"})
    two.call_tool("a_echo", {"text": "3"})
    one.call_tool("a_echo", {"text": "4"})

    calls = a.log.find(since=mark, rpc_method="tools/call")
    sessions = [e["session"] for e in calls]
    assert len(calls) == 4 and all(sessions)
    assert sessions[0] == sessions[1] == sessions[3], "one client session -> one backend session, reused"
    assert sessions[2] != sessions[0], "another client session -> another backend session"
