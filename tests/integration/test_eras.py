"""The era matrix: modern (2026-07-28, stateless) and legacy (initialize/session) clients x modern and
legacy backends, all through the one gateway endpoint.

Clients
- modern: the official Python SDK 2.x `Client` in its default `mode="auto"`. It must stay modern
  against the gateway: the `server/discover` probe is answered, no `initialize` is ever sent, no
  session id exists (its HTTP traffic is recorded with `sdk2.Wire`).
- legacy: the Python SDK 1.x client (`tests/fixtures/python/client_v1.py`, run in venv-mcp1) and,
  for list/call, the TypeScript SDK client (`tests/fixtures/ts/client.mjs`).

Backends (each started with `--interactive-tools`, see `harness.interactive_backend`)
- modern: `server_v2.py` on SDK 2.x, which serves 2026-07-28 statelessly (and the legacy era on
  the same endpoint). The gateway must detect it (`server/discover` answered) and speak modern to
  it: no `initialize`, no session, `_meta` + SEP-2243 headers on every request.
- legacy: `server_v1.py` on mcp<2 (legacy only: its 400 to the probe makes the gateway fall back).

Per cell: list, call, progress, cancellation, elicitation/sampling/roots (single and multi-round),
list_changed. A modern client gets list_changed through `subscriptions/listen`, cancels by closing
the response stream, and answers server requests through `input_required` rounds (the SDK client
drives them with its callbacks). A legacy client gets real server-to-client requests, GET-stream
notifications and cancels with `notifications/cancelled`, whatever the backend's era.

The `test_direct_*` tests run the same SDKs against the fixtures WITHOUT the gateway: they pin the
SDK behaviour the gateway tests rely on ("direct-checked" below refers to them). They need no
gateway binary.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from harness import (
    ACCEPT_BOTH,
    FIXTURE_TOOLS,
    HANDSHAKE_VERSIONS,
    MODERN_VERSION,
    Backend,
    Backends,
    V1ClientRun,
    interactive_backend,
    run_ts_client,
    run_v1_client_steps,
    v1_steps,
    wait_until,
)
from mcp.client.subscriptions import ToolsListChanged
from sdk2 import Callbacks, Wire, recorded_client, run, text_of

BACKEND_KINDS = ["modern", "legacy"]
NAME = {"modern": "mod", "legacy": "leg"}  # server names in the gateway config: tools are "<name>_<tool>"

PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"

ELICIT, SAMPLE, ROOTS = "elicitation/create", "sampling/createMessage", "roots/list"

# Interactive tools of the fixtures, their arguments, and:
# - "modern_rounds": the inputRequests keys server_v2 asks per round on a modern request (its
#   hand-rolled input_required; direct-checked),
# - "legacy_sequence": the server-to-client requests the tool sends on a legacy session, one after
#   the other (each only once the previous one is answered; both fixtures, direct-checked).
INTERACTIVE: dict[str, dict[str, Any]] = {
    "elicit": {"args": {"question": "Your name?"}, "modern_rounds": [["elicit"]], "legacy_sequence": [ELICIT]},
    "sample": {"args": {"prompt": "haiku"}, "modern_rounds": [["sample"]], "legacy_sequence": [SAMPLE]},
    "roots": {"args": {}, "modern_rounds": [["roots"]], "legacy_sequence": [ROOTS]},
    "chain": {
        "args": {"question": "Your name?", "prompt": "P"},
        "modern_rounds": [["elicit"], ["sample"]],
        "legacy_sequence": [ELICIT, SAMPLE],
    },
    "ask_all": {
        "args": {"question": "Your name?", "prompt": "P"},
        "modern_rounds": [["elicit", "roots", "sample"]],
        "legacy_sequence": [ELICIT, SAMPLE, ROOTS],
    },
}

# What each tool returns when the modern SDK client (Callbacks tag "m") answers.
MODERN_CLIENT_TEXT = {
    "elicit": "accept:m-answer",
    "sample": "sampled:m-sampled-haiku",
    "roots": "file:///m/root",
    "chain": "m-answer|m-sampled-P+m-answer",
    "ask_all": "accept:m-answer|sampled:m-sampled-P|file:///m/root",
}
# ... and when client_v1.py answers (sampling "V1SAMPLED", elicitation {"answer": "v1"}, root file:///v1-root).
LEGACY_CLIENT_TEXT = {
    "elicit": "accept:v1",
    "sample": "sampled:V1SAMPLED",
    "roots": "file:///v1-root",
    "chain": "v1|V1SAMPLED",
    "ask_all": "accept:v1|sampled:V1SAMPLED|file:///v1-root",
}


def expected_states(tool: str, answer: str) -> list[str]:
    """The plaintext requestState server_v2 sees echoed on each retry (it seals "<tool>:round-<n>";
    chain carries the elicited answer into round 3)."""
    if tool == "chain":
        return ["chain:round-1", f"chain:round-2|{answer}"]
    return [f"{tool}:round-1"]


class OrderedCallbacks(Callbacks):
    """Callbacks that also record the order in which the client was asked things."""

    def __init__(self, tag: str = "client") -> None:
        super().__init__(tag)
        self.order: list[str] = []

    async def on_sampling(self, context: Any, params: Any) -> Any:
        self.order.append(SAMPLE)
        return await super().on_sampling(context, params)

    async def on_elicitation(self, context: Any, params: Any) -> Any:
        self.order.append(ELICIT)
        return await super().on_elicitation(context, params)

    async def on_roots(self, context: Any) -> Any:
        self.order.append(ROOTS)
        return await super().on_roots(context)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def start_matrix(backends: Backends, start_gateway: Any, kind: str) -> tuple[Backend, Any, str]:
    """One interactive backend of `kind` behind a fresh gateway; returns (backend, gateway, prefix)."""
    backend = interactive_backend(backends, kind, NAME[kind])
    gw = start_gateway([backend.config()])
    return backend, gw, NAME[kind]


def all_tools(prefix: str) -> set[str]:
    return {f"{prefix}_{t}" for t in [*FIXTURE_TOOLS, f"only_{prefix}", "chain", "ask_all"]}


def tool_calls(wire: Wire, name: str) -> list[dict[str, Any]]:
    return [e for e in wire.posts() if e.get("rpc_method") == "tools/call" and e["body"]["params"]["name"] == name]


def assert_client_stayed_modern(client: Any, wire: Wire) -> None:
    """The SDK 2.x client negotiated 2026-07-28 with the gateway and never fell back.

    Direct-checked (test_direct_sdk2_client_is_modern_with_server_v2): against a modern server the
    client's first POST is `server/discover` (id 1, headers MCP-Protocol-Version: 2026-07-28 and
    Mcp-Method: server/discover, `_meta` with protocolVersion/clientInfo/clientCapabilities); a 200
    DiscoverResult listing 2026-07-28 makes it `adopt()` it: `protocol_version == "2026-07-28"`,
    `session.discover_result` set, `session.initialize_result` None. Any JSON-RPC error or bare 4xx
    to the probe (except -32022 naming only modern versions) makes it send `initialize` instead.
    """
    methods = wire.rpc_methods()
    assert methods and methods[0] == "server/discover", f"first request was not the probe: {methods}"
    probe = wire.posts()[0]
    assert probe.get("status") == 200, f"gateway answered the server/discover probe with HTTP {probe.get('status')}"
    assert "initialize" not in methods, f"the SDK 2.x client fell back to initialize: {methods}"
    assert client.protocol_version == MODERN_VERSION
    assert client.session.initialize_result is None
    assert MODERN_VERSION in client.session.discover_result.supported_versions
    assert wire.session_ids() == [], "a modern exchange must not create or use an Mcp-Session-Id"
    assert [e["http_method"] for e in wire.exchanges if e["http_method"] != "POST"] == [], "no GET stream, no DELETE"
    for post in wire.posts():
        assert post["headers"].get("mcp-protocol-version") == MODERN_VERSION, post["headers"]


def backend_requests(backend: Backend, since: int = 0) -> list[dict[str, Any]]:
    """JSON-RPC requests (not notifications/responses) the backend received over HTTP."""
    return [
        e
        for e in backend.log.entries()[since:]
        if e.get("http_method") == "POST" and e.get("rpc_kind") == "request"
    ]


def body_params(entry: dict[str, Any]) -> dict[str, Any]:
    return json.loads(entry["body"]).get("params") or {}


def assert_gateway_speaks_backend_era(backend: Backend, kind: str) -> None:
    """The gateway probed the backend with `server/discover` and then spoke the backend's era.

    modern: no initialize, no session; every request carries `_meta` protocolVersion 2026-07-28 and
    clientCapabilities, MCP-Protocol-Version/Mcp-Method headers, and Mcp-Name = the backend's own
    (unprefixed) tool name on tools/call (server_v2 itself rejects mismatches with 400/-32020).
    legacy: `initialize` after the probe, then a session on every request.
    """
    requests = backend_requests(backend)
    methods = [e["rpc_method"] for e in requests]
    assert "server/discover" in methods, f"the gateway never probed {backend.name} with server/discover: {methods}"
    if kind == "modern":
        assert "initialize" not in methods, f"the gateway used the legacy handshake with a modern backend: {methods}"
        for e in requests:
            assert not e.get("session"), e
            assert e["headers"].get("mcp-protocol-version") == MODERN_VERSION, e["headers"]
            assert e["headers"].get("mcp-method") == e["rpc_method"], e["headers"]
            meta = body_params(e).get("_meta") or {}
            assert meta.get(PROTOCOL_VERSION_KEY) == MODERN_VERSION, e["body"]
            assert CLIENT_CAPABILITIES_KEY in meta, e["body"]
            if e["rpc_method"] == "tools/call":
                assert e["headers"].get("mcp-name") == e["name"], e["headers"]
    else:
        assert "initialize" in methods, f"no legacy handshake with the legacy backend: {methods}"
        assert methods.index("server/discover") < methods.index("initialize"), methods
        for e in requests:
            if e["rpc_method"] not in ("initialize", "server/discover"):
                assert e.get("session"), e
                assert e["headers"].get("mcp-protocol-version") in HANDSHAKE_VERSIONS, e["headers"]


async def in_thread(fn: Any) -> Any:
    return await anyio.to_thread.run_sync(fn)


# ---------------------------------------------------------------------------------------------
# Direct checks: the SDKs against the fixtures, no gateway (pin the behaviour the tests rely on)
# ---------------------------------------------------------------------------------------------


def test_direct_sdk2_client_is_modern_with_server_v2(backends):
    backend = interactive_backend(backends, "modern", "a")
    cb, wire = Callbacks("m"), Wire()

    async def scenario():
        async with recorded_client(cb, backend.url, wire) as client:
            tools = await client.list_tools()
            echoed = await client.call_tool("echo", {"text": "hi"})
            assert_client_stayed_modern(client, wire)
            return tools, text_of(echoed)

    tools, echoed = run(scenario)

    assert echoed == "hi"
    # A modern list result carries ttlMs/cacheScope (the SDK client validates the 2026-07-28 wire
    # shape strictly: resultType, ttlMs and cacheScope are required). server_v2 says 0 / private.
    assert (tools.ttl_ms, tools.cache_scope) == (0, "private")
    probe = wire.posts()[0]
    assert probe["rpc_id"] == 1
    assert probe["headers"] == {"mcp-protocol-version": MODERN_VERSION, "mcp-method": "server/discover"}
    caps = probe["body"]["params"]["_meta"][CLIENT_CAPABILITIES_KEY]
    assert caps == {"sampling": {}, "elicitation": {"form": {}, "url": {}}, "roots": {"listChanged": True}}
    call = tool_calls(wire, "echo")[0]
    assert call["headers"]["mcp-name"] == "echo" and call["headers"]["mcp-method"] == "tools/call"


def test_direct_sdk2_client_falls_back_to_initialize_with_server_v1(backends, legacy_sdk):
    backend = interactive_backend(backends, "legacy", "c")
    wire = Wire()

    async def scenario():
        async with recorded_client(Callbacks("m"), backend.url, wire) as client:
            return client.protocol_version, text_of(await client.call_tool("echo", {"text": "hi"}))

    version, echoed = run(scenario)

    # mcp<2's streamable HTTP answers the probe 400 (with a throwaway session id); the client then
    # does the 2025-11-25 handshake on the same URL.
    assert version == "2025-11-25" and echoed == "hi"
    assert wire.rpc_methods()[:3] == ["server/discover", "initialize", "notifications/initialized"]
    assert wire.posts()[0]["status"] == 400


def test_direct_input_required_wire_shape_of_server_v2(backends):
    """What the gateway has to pass through / produce: the raw 2026-07-28 input_required exchange."""
    backend = interactive_backend(backends, "modern", "a")
    meta = {
        PROTOCOL_VERSION_KEY: MODERN_VERSION,
        CLIENT_CAPABILITIES_KEY: {"elicitation": {"form": {}}},
    }
    headers = {
        "Accept": ACCEPT_BOTH,
        "Content-Type": "application/json",
        "MCP-Protocol-Version": MODERN_VERSION,
        "Mcp-Method": "tools/call",
        "Mcp-Name": "elicit",
    }
    params = {"name": "elicit", "arguments": {"question": "Q?"}, "_meta": meta}

    def post(rpc_id: int, call_params: dict[str, Any]) -> httpx.Response:
        body = {"jsonrpc": "2.0", "id": rpc_id, "method": "tools/call", "params": call_params}
        return httpx.post(backend.url, json=body, headers=headers, timeout=10)

    first = post(1, params)

    assert first.status_code == 200 and "mcp-session-id" not in first.headers
    result = first.json()["result"]
    assert result["resultType"] == "input_required"
    assert result["inputRequests"] == {
        "elicit": {
            "method": "elicitation/create",
            "params": {
                "message": "Q?",
                "mode": "form",
                "requestedSchema": {
                    "properties": {"answer": {"type": "string"}},
                    "required": ["answer"],
                    "type": "object",
                },
            },
        }
    }
    state = result["requestState"]
    assert isinstance(state, str) and "elicit:round-1" not in state, "the SDK seals requestState"

    answer = {"elicit": {"action": "accept", "content": {"answer": "raw"}}}
    retry = post(2, {**params, "inputResponses": answer, "requestState": state})
    tampered = post(3, {**params, "inputResponses": answer, "requestState": state[:-4] + "AAAA"})

    assert retry.json()["result"]["resultType"] == "complete"
    assert retry.json()["result"]["content"][0]["text"] == "accept:raw"
    assert "error" in tampered.json(), f"a tampered requestState must be refused: {tampered.text}"
    (answered,) = backend.log.find(event="input_answered", name="elicit")
    assert answered["request_state"] == "elicit:round-1"


@pytest.mark.parametrize("tool", list(INTERACTIVE))
def test_direct_sdk2_client_drives_input_required_rounds(backends, tool):
    backend = interactive_backend(backends, "modern", "a")
    cb, wire = OrderedCallbacks("m"), Wire()
    spec = INTERACTIVE[tool]

    async def scenario():
        async with recorded_client(cb, backend.url, wire) as client:
            result = text_of(await client.call_tool(tool, spec["args"]))
            assert_client_stayed_modern(client, wire)
            return result

    assert run(scenario) == MODERN_CLIENT_TEXT[tool]
    calls = tool_calls(wire, tool)
    # One POST per round plus the final one; each retry: new id, same name/arguments, the answers
    # keyed exactly as asked, and the (sealed) requestState echoed.
    assert len(calls) == len(spec["modern_rounds"]) + 1
    assert len({c["rpc_id"] for c in calls}) == len(calls)
    assert "inputResponses" not in calls[0]["body"]["params"] and "requestState" not in calls[0]["body"]["params"]
    for keys, retry in zip(spec["modern_rounds"], calls[1:]):
        params = retry["body"]["params"]
        assert params["arguments"] == spec["args"]
        assert sorted(params["inputResponses"]) == sorted(keys)
        assert isinstance(params["requestState"], str) and params["requestState"]
    assert sorted(cb.order) == sorted(spec["legacy_sequence"])
    answered = backend.log.find(event="input_answered", name=tool)
    assert [a["request_state"] for a in answered] == expected_states(tool, "m-answer")


def test_direct_sdk2_client_progress_and_cancellation_in_the_modern_era(backends):
    backend = interactive_backend(backends, "modern", "a")
    cb, wire = Callbacks("m"), Wire()

    async def scenario():
        async with recorded_client(cb, backend.url, wire) as client:
            done = text_of(await client.call_tool("progress", {"steps": 3}, progress_callback=cb.on_progress))
            mark = backend.log.mark()
            with anyio.move_on_after(1.0):
                await client.call_tool("sleep", {"seconds": 20})
            await in_thread(lambda: backend.log.wait_for(timeout=10, since=mark, event="tool_cancelled"))
            return done

    assert run(scenario) == "done 3"
    assert cb.progress == [(1.0, 3.0, "step 1/3"), (2.0, 3.0, "step 2/3"), (3.0, 3.0, "step 3/3")]
    (progress_call,) = tool_calls(wire, "progress")
    assert progress_call["body"]["params"]["_meta"]["progressToken"] is not None
    # Cancelling a modern call aborts its POST (closing the response stream): the SDK converts its
    # notifications/cancelled into that and never POSTs it; the server cancels the tool.
    assert "notifications/cancelled" not in wire.rpc_methods()
    (cancelled,) = backend.log.find(event="tool_cancelled")
    assert cancelled["protocol_version"] == MODERN_VERSION
    assert backend.log.find(rpc_method="notifications/cancelled") == []


def test_direct_sdk2_client_listens_for_list_changes(backends):
    backend = interactive_backend(backends, "modern", "a")
    listener_cb, wire = Callbacks("listener"), Wire()

    async def scenario():
        async with (
            recorded_client(listener_cb, backend.url, wire) as listener,
            Callbacks("actor").client(backend.url) as actor,
        ):
            async with listener.listen(tools_list_changed=True) as sub:
                honored = sub.honored.tools_list_changed
                assert text_of(await actor.call_tool("add_tool", {"tool_name": "fresh"})) == "added fresh"
                with anyio.fail_after(10):
                    event = await sub.__anext__()
            return honored, event, [t.name for t in (await listener.list_tools()).tools]

    honored, event, names = run(scenario)

    assert honored is True and isinstance(event, ToolsListChanged) and "fresh" in names
    (listen,) = [e for e in wire.posts() if e.get("rpc_method") == "subscriptions/listen"]
    assert listen["content_type"].startswith("text/event-stream")
    assert listen["body"]["params"]["notifications"] == {"toolsListChanged": True}
    # The listen stream's notifications also reach the message handler.
    assert "notifications/tools/list_changed" in listener_cb.notification_methods()


@pytest.mark.parametrize("kind", BACKEND_KINDS)
def test_direct_legacy_client_on_both_fixtures(backends, legacy_sdk, kind):
    """client_v1.py's steps (calls, progress, --cancel, --wait-notification, --relist) and the
    fixtures' legacy-era behaviour, without the gateway."""
    backend = interactive_backend(backends, kind, "a")
    calls = [(tool, spec["args"]) for tool, spec in INTERACTIVE.items()]
    calls += [("progress", {"steps": 2}), ("add_tool", {"tool_name": "fresh"})]

    out = run_v1_client_steps(
        backend.url,
        v1_steps(
            calls=calls,
            cancels=[("sleep", {"seconds": 20}, 1.0)],
            wait_notification="notifications/tools/list_changed",
            relist=True,
        ),
    )

    assert out["_returncode"] == 0, out
    assert out["protocol_version"] == "2025-11-25"
    assert [c["text"] for c in out["calls"][:5]] == [LEGACY_CLIENT_TEXT[t] for t in INTERACTIVE]
    assert out["progress"] == [[1.0, 2.0, "step 1/2"], [2.0, 2.0, "step 2/2"]]
    (cancelled,) = out["cancelled"]
    assert not cancelled["outcome"].startswith("result:"), cancelled
    backend.log.wait_for(timeout=5, event="tool_cancelled", name="sleep")
    (cancel,) = backend.log.find(rpc_method="notifications/cancelled")
    assert json.loads(cancel["body"])["params"]["requestId"] == cancelled["request_id"]
    assert out["waited"] == {"method": "notifications/tools/list_changed", "seen": True}
    assert "fresh" in out["tools_after"] and "fresh" not in out["tools"]


# ---------------------------------------------------------------------------------------------
# Modern client (SDK 2.x, auto mode) through the gateway
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKEND_KINDS)
def test_modern_client_lists_and_calls(backends, start_gateway, legacy_sdk, kind):
    backend, gw, p = start_matrix(backends, start_gateway, kind)
    cb, wire = Callbacks("m"), Wire()

    async def scenario():
        async with recorded_client(cb, gw.url, wire) as client:
            assert_client_stayed_modern(client, wire)
            tools = await client.list_tools()
            echoed = text_of(await client.call_tool(f"{p}_echo", {"text": "modern through the gateway"}))
            added = text_of(await client.call_tool(f"{p}_add", {"a": 2, "b": 40}))
            prompt = await client.get_prompt(f"{p}_greet", {"who": "modern"})
            resource = await client.read_resource(f"{p}+fixture://{p}/static")
            assert_client_stayed_modern(client, wire)
            return tools, echoed, added, prompt, resource

    tools, echoed, added, prompt, resource = run(scenario)

    names = [t.name for t in tools.tools]
    assert set(names) == all_tools(p) and names == sorted(names)
    assert tools.next_cursor is None
    assert tools.ttl_ms >= 0 and tools.cache_scope in ("public", "private")
    assert echoed == "modern through the gateway" and added == "42"
    assert prompt.messages[0].content.text == f"Hello modern, from {p}."
    assert resource.contents[0].text == f"static resource of {p}"
    echo_calls = tool_calls(wire, f"{p}_echo")
    assert echo_calls[0]["headers"]["mcp-name"] == f"{p}_echo"
    assert_gateway_speaks_backend_era(backend, kind)
    (backend_echo,) = backend.log.find(rpc_method="tools/call", name="echo")
    assert body_params(backend_echo)["arguments"] == {"text": "modern through the gateway"}


def test_modern_client_list_cache_hints_do_not_widen_the_backends(backends, start_gateway):
    """server_v2 answers every list with ttlMs 0 and cacheScope "private" (direct-checked). The
    gateway's aggregate must not be fresher (an aggregate's ttl must not exceed its backends') nor
    shareable more widely: re-labelling a backend's "private" list "public" would let shared caches
    serve it across authorization contexts, which the backend forbade."""
    backend = interactive_backend(backends, "modern", "mod")
    gw = start_gateway([backend.config()])
    wire = Wire()

    async def scenario():
        async with recorded_client(Callbacks("m"), gw.url, wire) as client:
            assert_client_stayed_modern(client, wire)
            return [
                await client.list_tools(),
                await client.list_prompts(),
                await client.list_resources(),
                await client.list_resource_templates(),
            ]

    for listed in run(scenario):
        assert (type(listed).__name__, listed.ttl_ms, listed.cache_scope) == (type(listed).__name__, 0, "private")


@pytest.mark.parametrize("kind", BACKEND_KINDS)
def test_modern_client_receives_progress(backends, start_gateway, legacy_sdk, kind):
    backend, gw, p = start_matrix(backends, start_gateway, kind)
    cb, wire = Callbacks("m"), Wire()

    async def scenario():
        async with recorded_client(cb, gw.url, wire) as client:
            assert_client_stayed_modern(client, wire)
            return text_of(await client.call_tool(f"{p}_progress", {"steps": 3}, progress_callback=cb.on_progress))

    assert run(scenario) == "done 3"
    assert cb.progress == [(1.0, 3.0, "step 1/3"), (2.0, 3.0, "step 2/3"), (3.0, 3.0, "step 3/3")]
    (backend_call,) = backend.log.find(rpc_method="tools/call", name="progress")
    assert backend_call.get("progress_token") is not None, "the backend must be given a progress token"
    assert_gateway_speaks_backend_era(backend, kind)


@pytest.mark.parametrize("kind", BACKEND_KINDS)
def test_modern_client_cancels_by_closing_the_response_stream(backends, start_gateway, legacy_sdk, kind):
    backend, gw, p = start_matrix(backends, start_gateway, kind)
    cb, wire = Callbacks("m"), Wire()
    mark = backend.log.mark()

    async def scenario():
        finished: list[str] = []
        async with recorded_client(cb, gw.url, wire) as client:
            assert_client_stayed_modern(client, wire)
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    finished.append(text_of(await client.call_tool(f"{p}_sleep", {"seconds": 30})))

                tg.start_soon(call)
                (sleep_call,) = await in_thread(
                    lambda: backend.log.wait_for(timeout=10, since=mark, rpc_method="tools/call", name="sleep")
                )
                tg.cancel_scope.cancel()  # the SDK aborts the call's POST: the modern cancel
            await in_thread(lambda: backend.log.wait_for(timeout=10, since=mark, event="tool_cancelled", name="sleep"))
            after = text_of(await client.call_tool(f"{p}_echo", {"text": "still usable"}))
            return finished, sleep_call, after

    finished, sleep_call, after = run(scenario)

    assert finished == [] and after == "still usable"
    assert "notifications/cancelled" not in wire.rpc_methods(), "direct-checked: the SDK closes the stream instead"
    cancels = backend.log.find(since=mark, rpc_method="notifications/cancelled")
    if kind == "legacy":
        (cancel,) = cancels
        assert json.loads(cancel["body"])["params"]["requestId"] == sleep_call["rpc_id"], "the backend's own id"
        assert cancel["session"] == sleep_call["session"]
    else:
        assert cancels == [], "a modern backend is cancelled by closing its response stream"
    assert_gateway_speaks_backend_era(backend, kind)


@pytest.mark.parametrize("tool", list(INTERACTIVE))
@pytest.mark.parametrize("kind", BACKEND_KINDS)
def test_modern_client_answers_backend_requests_through_input_required(
    backends, start_gateway, legacy_sdk, kind, tool
):
    backend, gw, p = start_matrix(backends, start_gateway, kind)
    cb, wire = OrderedCallbacks("m"), Wire()
    spec = INTERACTIVE[tool]

    async def scenario():
        async with recorded_client(cb, gw.url, wire) as client:
            assert_client_stayed_modern(client, wire)
            result = text_of(await client.call_tool(f"{p}_{tool}", spec["args"]))
            assert_client_stayed_modern(client, wire)
            return result

    assert run(scenario) == MODERN_CLIENT_TEXT[tool]

    # What the client was asked, exactly once each.
    if kind == "legacy":
        assert cb.order == spec["legacy_sequence"], "one input_required round per backend request, in order"
    else:
        assert sorted(cb.order) == sorted(spec["legacy_sequence"])
    if ELICIT in spec["legacy_sequence"]:
        (elicitation,) = cb.elicitations
        assert elicitation.message == "Your name?"
        assert "answer" in elicitation.requested_schema["properties"]
    if SAMPLE in spec["legacy_sequence"]:
        (sampling,) = cb.sampling
        assert sampling.max_tokens == 50
        assert sampling.messages[0].content.text == ("P+m-answer" if tool == "chain" else spec["args"]["prompt"])

    # The client's rounds: first call, then one retry per round (new id, same name and arguments,
    # the answers and the echoed requestState).
    calls = tool_calls(wire, f"{p}_{tool}")
    rounds = spec["modern_rounds"] if kind == "modern" else [[None]] * len(spec["legacy_sequence"])
    assert len(calls) == len(rounds) + 1, [c["body"]["params"].get("inputResponses") for c in calls]
    assert len({c["rpc_id"] for c in calls}) == len(calls)
    assert not {"inputResponses", "requestState"} & set(calls[0]["body"]["params"])
    for keys, retry in zip(rounds, calls[1:]):
        params = retry["body"]["params"]
        assert params["arguments"] == spec["args"]
        assert isinstance(params.get("requestState"), str) and params["requestState"], params
        if kind == "modern":
            assert sorted(params["inputResponses"]) == sorted(keys), "the backend's inputRequests keys, unchanged"
        else:
            assert len(params["inputResponses"]) == 1

    backend_calls = backend.log.find(rpc_method="tools/call", name=tool)
    if kind == "modern":
        # Every client round reached the backend, which got its own requestState back.
        assert len(backend_calls) == len(rounds) + 1
        answered = backend.log.find(event="input_answered", name=tool)
        assert [a["request_state"] for a in answered] == expected_states(tool, "m-answer")
        for keys, entry in zip(rounds, backend_calls[1:]):
            assert sorted(body_params(entry)["inputResponses"]) == sorted(keys)
    else:
        # One backend call, held open while the client answered each request as an input_required round.
        (backend_call,) = backend_calls
        answers = [e for e in backend.log.find(rpc_kind="response") if e["session"] == backend_call["session"]]
        assert len(answers) == len(spec["legacy_sequence"])
    assert_gateway_speaks_backend_era(backend, kind)


@pytest.mark.parametrize("kind", BACKEND_KINDS)
def test_modern_client_hears_list_changed_through_subscriptions_listen(
    backends, start_gateway, legacy_sdk, connect, kind
):
    backend, gw, p = start_matrix(backends, start_gateway, kind)
    cb, wire = Callbacks("listener"), Wire()

    async def scenario():
        async with recorded_client(cb, gw.url, wire) as listener:
            assert_client_stayed_modern(listener, wire)
            before = [t.name for t in (await listener.list_tools()).tools]
            async with listener.listen(tools_list_changed=True) as sub:
                honored = sub.honored.tools_list_changed
                actor = connect(gw)
                added = await in_thread(lambda: actor.call_tool(f"{p}_add_tool", {"tool_name": "fresh"}))
                assert added["result"]["content"][0]["text"] == "added fresh", added
                with anyio.fail_after(10):
                    event = await sub.__anext__()
            after = [t.name for t in (await listener.list_tools()).tools]
            fresh = text_of(await listener.call_tool(f"{p}_fresh", {}))
            assert_client_stayed_modern(listener, wire)
            return before, honored, event, after, fresh

    before, honored, event, after, fresh = run(scenario)

    assert f"{p}_fresh" not in before
    assert honored is True
    assert isinstance(event, ToolsListChanged)
    assert f"{p}_fresh" in after and fresh == "dynamic fresh"
    (listen,) = [e for e in wire.posts() if e.get("rpc_method") == "subscriptions/listen"]
    assert listen["status"] == 200 and listen["content_type"].startswith("text/event-stream")
    if kind == "modern":
        assert backend.log.find(rpc_method="subscriptions/listen"), (
            "a modern backend announces changes only on subscriptions/listen: the gateway must listen"
        )
    assert_gateway_speaks_backend_era(backend, kind)


# ---------------------------------------------------------------------------------------------
# Legacy clients (Python SDK 1.x, TypeScript SDK) through the gateway
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKEND_KINDS)
def test_legacy_client_lists_and_calls(backends, start_gateway, legacy_sdk, kind):
    backend, gw, p = start_matrix(backends, start_gateway, kind)

    out = run_v1_client_steps(
        gw.url,
        v1_steps(calls=[(f"{p}_echo", {"text": "legacy through the gateway"}), (f"{p}_add", {"a": 1, "b": 2})])
        + ["--prompt", f"{p}_greet", json.dumps({"who": "legacy"}), "--read", f"{p}+fixture://{p}/static"],
    )

    assert out["_returncode"] == 0, out
    assert out["protocol_version"] in HANDSHAKE_VERSIONS
    assert set(out["tools"]) == all_tools(p)
    assert out["calls"] == [
        {"name": f"{p}_echo", "is_error": False, "text": "legacy through the gateway"},
        {"name": f"{p}_add", "is_error": False, "text": "3"},
    ]
    assert out["prompts_got"] == [{"name": f"{p}_greet", "texts": [f"Hello legacy, from {p}."]}]
    assert out["reads"][0]["text"] == f"static resource of {p}"
    assert_gateway_speaks_backend_era(backend, kind)


@pytest.mark.parametrize("kind", BACKEND_KINDS)
def test_legacy_client_receives_progress(backends, start_gateway, legacy_sdk, kind):
    backend, gw, p = start_matrix(backends, start_gateway, kind)

    out = run_v1_client_steps(gw.url, v1_steps(calls=[(f"{p}_progress", {"steps": 3})]))

    assert out["_returncode"] == 0, out
    assert out["calls"][0]["text"] == "done 3"
    assert out["progress"] == [[1.0, 3.0, "step 1/3"], [2.0, 3.0, "step 2/3"], [3.0, 3.0, "step 3/3"]]
    (backend_call,) = backend.log.find(rpc_method="tools/call", name="progress")
    assert backend_call.get("progress_token") is not None
    assert_gateway_speaks_backend_era(backend, kind)


@pytest.mark.parametrize("kind", BACKEND_KINDS)
def test_legacy_client_cancellation_reaches_the_backend(backends, start_gateway, legacy_sdk, kind):
    backend, gw, p = start_matrix(backends, start_gateway, kind)
    mark = backend.log.mark()

    out = run_v1_client_steps(gw.url, v1_steps(cancels=[(f"{p}_sleep", {"seconds": 30}, 1.5)], relist=True))

    assert out["_returncode"] == 0, out
    (cancelled,) = out["cancelled"]
    assert not cancelled["outcome"].startswith("result:"), cancelled
    assert set(out["tools_after"]) == all_tools(p), "the session stays usable after the cancel"
    backend.log.wait_for(timeout=10, since=mark, event="tool_cancelled", name="sleep")
    (sleep_call,) = backend.log.find(since=mark, rpc_method="tools/call", name="sleep")
    cancels = backend.log.find(since=mark, rpc_method="notifications/cancelled")
    if kind == "legacy":
        (cancel,) = cancels
        assert json.loads(cancel["body"])["params"]["requestId"] == sleep_call["rpc_id"], "the backend's own id"
        assert cancel["session"] == sleep_call["session"]
    else:
        assert cancels == [], "a modern backend is cancelled by closing its response stream"
    assert_gateway_speaks_backend_era(backend, kind)


@pytest.mark.parametrize("tool", list(INTERACTIVE))
@pytest.mark.parametrize("kind", BACKEND_KINDS)
def test_legacy_client_answers_backend_requests(backends, start_gateway, legacy_sdk, kind, tool):
    backend, gw, p = start_matrix(backends, start_gateway, kind)
    spec = INTERACTIVE[tool]

    out = run_v1_client_steps(gw.url, v1_steps(calls=[(f"{p}_{tool}", spec["args"])]))

    assert out["_returncode"] == 0, out
    assert out["calls"] == [{"name": f"{p}_{tool}", "is_error": False, "text": LEGACY_CLIENT_TEXT[tool]}]
    backend_calls = backend.log.find(rpc_method="tools/call", name=tool)
    if kind == "modern":
        # The gateway turned each input_required round into real requests to the client and retried
        # the backend with the answers (keyed as asked) and the backend's requestState.
        rounds = spec["modern_rounds"]
        assert len(backend_calls) == len(rounds) + 1
        assert not {"inputResponses", "requestState"} & set(body_params(backend_calls[0]))
        for keys, entry in zip(rounds, backend_calls[1:]):
            params = body_params(entry)
            assert params["arguments"] == spec["args"]
            assert sorted(params["inputResponses"]) == sorted(keys)
            assert isinstance(params.get("requestState"), str)
        answered = backend.log.find(event="input_answered", name=tool)
        assert [a["request_state"] for a in answered] == expected_states(tool, "v1")
        # The backend is told what the legacy client declared (client_v1 has all three callbacks).
        caps = body_params(backend_calls[0])["_meta"][CLIENT_CAPABILITIES_KEY]
        assert {"sampling", "elicitation", "roots"} <= set(caps), caps
    else:
        (backend_call,) = backend_calls
        answers = [e for e in backend.log.find(rpc_kind="response") if e["session"] == backend_call["session"]]
        assert len(answers) == len(spec["legacy_sequence"])
    assert_gateway_speaks_backend_era(backend, kind)


@pytest.mark.parametrize("kind", BACKEND_KINDS)
def test_legacy_client_hears_list_changed_on_its_get_stream(
    backends, start_gateway, legacy_sdk, connect, tmp_path, kind
):
    backend, gw, p = start_matrix(backends, start_gateway, kind)
    ready = tmp_path / "v1-listener-ready"
    listener = V1ClientRun(
        gw.url, v1_steps(ready_file=ready, wait_notification="notifications/tools/list_changed", relist=True)
    )
    try:
        wait_until(ready.exists, 20, what="client_v1 listener connected")
        added = connect(gw).call_tool(f"{p}_add_tool", {"tool_name": "fresh"})
        assert added["result"]["content"][0]["text"] == "added fresh", added
        out = listener.result()
    finally:
        listener.stop()

    assert out["_returncode"] == 0, out
    assert out["waited"] == {"method": "notifications/tools/list_changed", "seen": True}
    assert f"{p}_fresh" not in out["tools"] and f"{p}_fresh" in out["tools_after"]
    if kind == "modern":
        assert backend.log.find(rpc_method="subscriptions/listen"), "the gateway must listen to its modern backend"
    assert_gateway_speaks_backend_era(backend, kind)


@pytest.mark.parametrize("kind", BACKEND_KINDS)
def test_typescript_client_lists_and_calls(backends, start_gateway, legacy_sdk, ts_sdk, kind):
    backend, gw, p = start_matrix(backends, start_gateway, kind)

    out = run_ts_client(gw.url, calls=[(f"{p}_echo", {"text": "ts"}), (f"{p}_add", {"a": 5, "b": 6})])

    assert out["_returncode"] == 0, out
    assert out["protocolVersion"] in HANDSHAKE_VERSIONS
    assert set(out["tools"]) == all_tools(p)
    assert out["calls"] == [
        {"name": f"{p}_echo", "isError": False, "text": "ts"},
        {"name": f"{p}_add", "isError": False, "text": "11"},
    ]
    assert_gateway_speaks_backend_era(backend, kind)


# ---------------------------------------------------------------------------------------------
# Both eras on one endpoint at the same time
# ---------------------------------------------------------------------------------------------


def test_modern_and_legacy_clients_use_the_endpoint_at_the_same_time(backends, start_gateway, legacy_sdk):
    mod = interactive_backend(backends, "modern", "mod", start=False)
    leg = interactive_backend(backends, "legacy", "leg", start=False)
    Backends.ready(mod, leg)
    gw = start_gateway([mod.config(), leg.config()])
    cb, wire = Callbacks("m"), Wire()
    interactive = [(f"{b}_{t}", INTERACTIVE[t]["args"]) for b in ("mod", "leg") for t in ("chain", "ask_all")]
    mark = mod.log.mark()
    # The legacy client first starts a slow call on the modern backend, so that it is mid-call while
    # the modern client works; then it does the interactive calls itself.
    legacy_calls = [("mod_sleep", {"seconds": 2}), *interactive, ("leg_progress", {"steps": 3})]
    legacy = V1ClientRun(gw.url, v1_steps(calls=legacy_calls))

    async def scenario():
        results: dict[str, list[str]] = {}
        try:
            async with recorded_client(cb, gw.url, wire) as client:
                await in_thread(lambda: mod.log.wait_for(timeout=20, since=mark, rpc_method="tools/call", name="sleep"))

                async def call(tool: str, args: dict[str, Any]) -> None:
                    results.setdefault(tool, []).append(text_of(await client.call_tool(tool, args)))

                rounds = 0
                while rounds < 3 or legacy.popen.poll() is None:  # keep going while the legacy client works
                    rounds += 1
                    async with anyio.create_task_group() as tg:
                        for tool, args in [*interactive, ("mod_progress", {"steps": 2}), ("leg_echo", {"text": "m"})]:
                            tg.start_soon(call, tool, args)
                assert_client_stayed_modern(client, wire)
            legacy_out = await in_thread(legacy.result)
        finally:
            legacy.stop()
        return rounds, results, legacy_out

    n, results, legacy_out = run(scenario, timeout=50)

    assert results == {
        "mod_chain": [MODERN_CLIENT_TEXT["chain"]] * n,
        "mod_ask_all": [MODERN_CLIENT_TEXT["ask_all"]] * n,
        "leg_chain": [MODERN_CLIENT_TEXT["chain"]] * n,
        "leg_ask_all": [MODERN_CLIENT_TEXT["ask_all"]] * n,
        "mod_progress": ["done 2"] * n,
        "leg_echo": ["m"] * n,
    }
    assert legacy_out["_returncode"] == 0, legacy_out
    assert legacy_out["protocol_version"] in HANDSHAKE_VERSIONS
    assert [c["text"] for c in legacy_out["calls"]] == [
        "slept 2.0",  # `seconds: float` in both fixtures
        LEGACY_CLIENT_TEXT["chain"],
        LEGACY_CLIENT_TEXT["ask_all"],
        LEGACY_CLIENT_TEXT["chain"],
        LEGACY_CLIENT_TEXT["ask_all"],
        "done 3",
    ]
    assert legacy_out["progress"] == [[1.0, 3.0, "step 1/3"], [2.0, 3.0, "step 2/3"], [3.0, 3.0, "step 3/3"]]
    # Nobody got the other client's questions: per round the modern client answered 4 elicitations,
    # 4 samplings and 2 roots requests (chain + ask_all on each backend), the legacy client the rest.
    assert (len(cb.elicitations), len(cb.sampling), cb.roots_calls) == (4 * n, 4 * n, 2 * n)
    assert_gateway_speaks_backend_era(mod, "modern")
    assert_gateway_speaks_backend_era(leg, "legacy")
