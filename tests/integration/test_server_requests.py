"""Server-initiated requests (sampling, elicitation, roots) are relayed to the client whose call caused
them, and the client's answer goes back to the backend."""

from __future__ import annotations

import json
import time

import anyio
from harness import rpc_messages, run_v1_client, tool_text
from sdk2 import Callbacks, run, text_of


def test_sampling_request_is_relayed_to_the_client_and_answered(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config()])
    callbacks = Callbacks("c1")

    async def scenario():
        async with callbacks.client(gw.url) as client:
            return text_of(await client.call_tool("a_sample", {"prompt": "haiku"}))

    assert run(scenario) == "sampled:c1-sampled-haiku"
    assert len(callbacks.sampling) == 1
    assert callbacks.sampling[0].max_tokens == 50


def test_elicitation_request_is_relayed_to_the_client_and_answered(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config()])
    callbacks = Callbacks("c1")

    async def scenario():
        async with callbacks.client(gw.url) as client:
            return text_of(await client.call_tool("a_elicit", {"question": "Your name?"}))

    assert run(scenario) == "accept:c1-answer"
    assert callbacks.elicitations[0].message == "Your name?"


def test_roots_request_is_relayed_to_the_client_and_answered(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config()])
    callbacks = Callbacks("c1")

    async def scenario():
        async with callbacks.client(gw.url) as client:
            return text_of(await client.call_tool("a_roots", {}))

    assert run(scenario) == "file:///c1/root"
    assert callbacks.roots_calls == 1


def test_server_requests_go_to_the_client_that_caused_them(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config()])
    one, two = Callbacks("one"), Callbacks("two")
    results: dict[str, str] = {}

    async def scenario():
        async def use(cb: Callbacks) -> None:
            async with cb.client(gw.url) as client:
                results[cb.tag] = text_of(await client.call_tool("a_sample", {"prompt": cb.tag}))
                results[cb.tag + "-roots"] = text_of(await client.call_tool("a_roots", {}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(use, one)
            tg.start_soon(use, two)

    run(scenario)

    assert results == {
        "one": "sampled:one-sampled-one",
        "two": "sampled:two-sampled-two",
        "one-roots": "file:///one/root",
        "two-roots": "file:///two/root",
    }
    assert len(one.sampling) == len(two.sampling) == 1


def test_concurrent_requests_from_two_backends_do_not_collide(backends, start_gateway):
    a, b = backends.pair()
    gw = start_gateway([a.config(), b.config()])
    callbacks = Callbacks("me")

    async def scenario():
        out: dict[str, str] = {}
        async with callbacks.client(gw.url) as client:

            async def call(tool: str, prompt: str) -> None:
                out[tool] = text_of(await client.call_tool(tool, {"prompt": prompt}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call, "a_sample", "from-a")
                tg.start_soon(call, "b_sample", "from-b")
        return out

    assert run(scenario) == {"a_sample": "sampled:me-sampled-from-a", "b_sample": "sampled:me-sampled-from-b"}


def test_legacy_python_client_answers_relayed_requests(backends, start_gateway, legacy_sdk):
    a = backends.v2("a")
    gw = start_gateway([a.config()])

    out = run_v1_client(gw.url, calls=[("a_sample", {"prompt": "p"}), ("a_elicit", {"question": "q"}), ("a_roots", {})])

    assert out["_returncode"] == 0, out
    assert [c["text"] for c in out["calls"]] == ["sampled:V1SAMPLED", "accept:v1", "file:///v1-root"]


def test_backend_is_offered_only_the_capabilities_the_client_declared(backends, start_gateway, connect):
    a = backends.v2("a")
    gw = start_gateway([a.config(era="legacy")])  # capabilities in initialize (modern: in _meta)

    mark = a.log.mark()
    plain = connect(gw, capabilities={})
    plain.call_tool("a_echo", {"text": "x"})
    plain_inits = [json.loads(e["body"]) for e in a.log.find(since=mark, rpc_method="initialize")]

    mark = a.log.mark()
    rich = connect(gw, capabilities={"sampling": {}, "roots": {"listChanged": True}, "elicitation": {}})
    rich.call_tool("a_echo", {"text": "y"})
    rich_inits = [json.loads(e["body"]) for e in a.log.find(since=mark, rpc_method="initialize")]

    assert plain_inits and rich_inits, "each client session gets its own backend session"
    plain_caps = plain_inits[-1]["params"]["capabilities"]
    rich_caps = rich_inits[-1]["params"]["capabilities"]
    assert not {"sampling", "roots", "elicitation"} & set(plain_caps), plain_caps
    assert {"sampling", "roots", "elicitation"} <= set(rich_caps), rich_caps


def test_server_request_to_client_without_the_capability_is_refused_by_the_gateway(backends, start_gateway, connect):
    a = backends.v2("a")
    gw = start_gateway([a.config()])
    client = connect(gw, capabilities={})
    started = time.monotonic()

    response = client.post_raw(
        {
            "jsonrpc": "2.0",
            "id": 5,
            "method": "tools/call",
            "params": {"name": "a_sample", "arguments": {"prompt": "?"}},
        }
    )

    elapsed = time.monotonic() - started
    messages = rpc_messages(response)
    assert not [m for m in messages if m.get("method") == "sampling/createMessage"], (
        "a client that did not declare sampling must not be sent sampling/createMessage"
    )
    (reply,) = [m for m in messages if m.get("id") == 5]
    # The backend is told no (its tool then fails) or the call errors; either way promptly.
    if "result" in reply:
        assert reply["result"]["isError"] is True, reply
        assert "sampled:" not in tool_text(reply["result"])
    else:
        assert reply["error"]["code"] < 0
    assert elapsed < 10, f"took {elapsed:.1f}s: the gateway should refuse at once, not wait for the call timeout"
