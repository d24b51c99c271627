"""Server requests a backend sends on its GET stream instead of the call's own stream.

The official TypeScript SDK's example server `elicitationFormExample` asks with
`server.elicitInput(...)`, which names no related request: the SDK sends it on the session's
standalone GET stream, and drops it when that stream is not open yet. The gateway must have its
GET stream to the backend open before the first call of a session, and must hand the request to
the call that caused it, so the client sees it whatever stream it reads."""

from __future__ import annotations

from typing import Any

import mcp.types as types
from harness import run_v1_client
from sdk2 import Callbacks, run, text_of

REGISTRATION = {"username": "alice", "email": "alice@example.com", "password": "correct-horse", "newsletter": True}


def example(backends: Any) -> Any:
    return backends.sdk_example("ex", "elicitationFormExample.js")


def test_legacy_client_answers_an_elicitation_sent_on_the_backends_get_stream(backends, start_gateway, legacy_sdk):
    ex = example(backends)
    gw = start_gateway([ex.config(timeouts={"call": "20s"})])

    out = run_v1_client(gw.url, calls=[("ex_register_user", {})], elicit_content=REGISTRATION, timeout=40)

    assert out["_returncode"] == 0, out
    [call] = out["calls"]
    assert not call["is_error"], call
    assert "Registration successful" in call["text"]
    assert "Username: alice" in call["text"] and "Newsletter: Yes" in call["text"]


def test_every_call_of_a_session_gets_its_get_stream_elicitation(backends, start_gateway, legacy_sdk):
    ex = example(backends)
    gw = start_gateway([ex.config(timeouts={"call": "20s"})])

    out = run_v1_client(gw.url, calls=[("ex_register_user", {}), ("ex_register_user", {})], elicit_content=REGISTRATION, timeout=40)

    assert out["_returncode"] == 0, out
    assert [("Username: alice" in c["text"]) for c in out["calls"]] == [True, True]


def test_modern_client_gets_a_get_stream_elicitation_as_input_required(backends, start_gateway):
    ex = example(backends)
    gw = start_gateway([ex.config(timeouts={"call": "20s"})])
    callbacks = Callbacks("modern")
    answers: list[Any] = []

    async def on_elicitation(context: Any, params: Any) -> types.ElicitResult:
        answers.append(params)
        return types.ElicitResult(action="accept", content=REGISTRATION)

    callbacks.on_elicitation = on_elicitation  # type: ignore[method-assign]

    async def scenario() -> str:
        async with callbacks.client(gw.url) as client:
            return text_of(await client.call_tool("ex_register_user", {}))

    text = run(scenario)
    assert "Registration successful" in text and "Username: alice" in text
    assert [a.message for a in answers] == ["Please provide your registration information:"]
