"""Two backends behind one gateway: initialize and the merged, prefixed, deterministic lists."""

from __future__ import annotations

from harness import fixture_tools


def test_initialize_answers_with_gateway_identity_merged_capabilities_and_instructions(
    backends, start_gateway, connect
):
    raw = backends.raw("rawsrv", start=False)  # tools only
    a = backends.v2("a", start=False)  # tools, prompts, resources
    backends.ready(raw, a)
    gw = start_gateway([raw.config(), a.config()])

    client = connect(gw)
    result = client.init_result

    assert result["protocolVersion"] == "2025-11-25"
    assert client.init_response.headers.get("mcp-session-id"), "gateway must issue an Mcp-Session-Id"
    assert result["serverInfo"]["name"], "gateway serverInfo needs a name"
    assert result["serverInfo"]["name"] not in ("fixture-a", "raw-rawsrv"), "serverInfo must be the gateway's own"
    caps = result["capabilities"]
    for capability in ("tools", "prompts", "resources"):
        assert capability in caps, f"merged capabilities lack {capability}: {caps}"
    assert "Instructions of a." in result["instructions"]
    assert "Instructions of rawsrv." in result["instructions"]


def test_tools_from_two_servers_are_listed_with_prefixes(backends, start_gateway, connect):
    a, b = backends.pair()
    gw = start_gateway([a.config(), b.config()])

    names = connect(gw).tool_names()

    expected = {f"a_{t}" for t in fixture_tools("a")} | {f"b_{t}" for t in fixture_tools("b")}
    assert set(names) == expected
    assert len(names) == len(expected), f"duplicates in {names}"


def test_tool_definitions_are_kept_apart_from_the_name(backends, start_gateway, connect):
    a, b = backends.pair()
    gw = start_gateway([a.config(), b.config()])

    tools = {t["name"]: t for t in connect(gw).list_all("tools/list", "tools")[0]}

    add = tools["a_add"]
    assert add["description"] == "Add two integers."
    assert set(add["inputSchema"]["properties"]) == {"a", "b"}
    assert tools["b_only_b"]["description"] == "Exists only on instance b."


def test_tool_list_is_sorted_by_exposed_name_and_identical_across_sessions(backends, start_gateway, connect):
    a, b = backends.pair()
    gw = start_gateway([b.config(), a.config()])  # config order must not matter

    first = connect(gw).tool_names()
    second_session = connect(gw)
    again = second_session.tool_names()
    once_more = second_session.tool_names()

    assert first == sorted(first)
    assert first == again == once_more


def test_prompts_are_listed_with_prefixes(backends, start_gateway, connect):
    a, b = backends.pair()
    gw = start_gateway([a.config(), b.config()])

    prompts = connect(gw).list_all("prompts/list", "prompts")[0]

    assert [p["name"] for p in prompts] == ["a_greet", "b_greet"]
    assert [arg["name"] for arg in prompts[0]["arguments"]] == ["who"]


def test_resources_and_templates_are_exposed_as_server_plus_uri(backends, start_gateway, connect):
    a, b = backends.pair()
    gw = start_gateway([a.config(), b.config()])
    client = connect(gw)

    resources = client.list_all("resources/list", "resources")[0]
    templates = client.list_all("resources/templates/list", "resourceTemplates")[0]

    assert sorted(r["uri"] for r in resources) == ["a+fixture://a/static", "b+fixture://b/static"]
    assert sorted(t["uriTemplate"] for t in templates) == [
        "a+fixture://a/items/{item_id}",
        "b+fixture://b/items/{item_id}",
    ]
    assert client.list_all("resources/list", "resources")[0] == resources, "resource list must be deterministic"


def test_configured_prefix_replaces_the_default(backends, start_gateway, connect):
    a, b = backends.pair()
    gw = start_gateway([a.config(prefix="alpha."), b.config()])

    client = connect(gw)
    names = client.tool_names()

    assert "alpha.echo" in names and "b_echo" in names
    assert not any(n.startswith("a_") for n in names)
    assert [p["name"] for p in client.list_all("prompts/list", "prompts")[0]] == ["alpha.greet", "b_greet"]


def test_disabled_server_is_not_aggregated(backends, start_gateway, connect):
    a, b = backends.pair()
    gw = start_gateway([a.config(), b.config(enabled=False)])

    names = connect(gw).tool_names()

    assert "a_echo" in names
    assert not any(n.startswith("b_") for n in names)
    assert gw.server_status("b")["state"] == "disabled"
    assert b.log.find(rpc_method="initialize") == [], "a disabled server must not be contacted"
