"""A single server with prefix "" is passed through: names and URIs unchanged."""

from __future__ import annotations

from harness import fixture_tools, tool_text  # also puts tests/fixtures/python on sys.path

import raw_server  # noqa: E402


def test_single_server_with_empty_prefix_keeps_names_and_uris(backends, start_gateway, connect):
    a = backends.v2("a")
    gw = start_gateway([a.config(prefix="")])
    client = connect(gw)

    tools = client.tool_names()
    prompts = [p["name"] for p in client.list_all("prompts/list", "prompts")[0]]
    resources = [r["uri"] for r in client.list_all("resources/list", "resources")[0]]
    templates = [t["uriTemplate"] for t in client.list_all("resources/templates/list", "resourceTemplates")[0]]

    assert tools == sorted(fixture_tools("a"))
    assert prompts == ["greet"]
    assert resources == ["fixture://a/static"]
    assert templates == ["fixture://a/items/{item_id}"]


def test_single_server_with_empty_prefix_routes_calls_unchanged(backends, start_gateway, connect):
    a = backends.v2("a")
    gw = start_gateway([a.config(prefix="")])
    client = connect(gw)
    mark = a.log.mark()

    echoed = client.call_tool("echo", {"text": "as is"})
    item = client.result("resources/read", {"uri": "fixture://a/items/3"})
    greeting = client.result("prompts/get", {"name": "greet", "arguments": {"who": "you"}})

    assert tool_text(echoed["result"]) == "as is"
    assert item["contents"][0]["text"] == "item 3 of a"
    assert greeting["messages"][0]["content"]["text"] == "Hello you, from a."
    assert a.log.calls(since=mark) == ["echo"]
    assert [e["uri"] for e in a.log.find(since=mark, rpc_method="resources/read")] == ["fixture://a/items/3"]


def test_empty_prefix_passes_backend_results_through_unchanged(backends, start_gateway, connect):
    raw = backends.raw("raw")
    gw = start_gateway([raw.config(prefix="")])

    response = connect(gw).post_raw(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "lossless", "arguments": {}}}
    )

    assert raw_server.LOSSLESS_RESULT in response.text
