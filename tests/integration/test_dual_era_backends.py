"""Dual-era backends: a server that serves both 2025-11-25 sessions and the stateless 2026-07-28
era (the official Python SDK 2.x does) is spoken to in each client's own era.

- `/status` shows both eras (`era: dual`, `eras: [legacy, modern]`).
- A legacy client's call goes out on a legacy backend session opened with that client's
  capabilities, so the backend's own `ctx.elicit` / `ctx.sample` reach the client as real server
  requests (served statelessly they could not ask anything).
- A modern client's call goes out statelessly (2026-07-28 `_meta`, no session).
"""

from __future__ import annotations

from harness import MODERN_VERSION, run_v1_client
from sdk2 import Callbacks, run, text_of


def test_status_shows_both_eras_of_a_dual_era_backend(backends, start_gateway):
    mod = backends.v2("mod")
    gw = start_gateway([mod.config()])

    status = gw.server_status("mod")
    assert (status["era"], status["eras"]) == ("dual", ["legacy", "modern"])


def test_legacy_client_gets_real_server_requests_from_a_dual_era_backend(backends, start_gateway, legacy_sdk):
    mod = backends.v2("mod")
    gw = start_gateway([mod.config()])
    mark = mod.log.mark()

    out = run_v1_client(gw.url, calls=[("mod_elicit", {"question": "Your name?"}), ("mod_sample", {"prompt": "haiku"})])

    assert out["_returncode"] == 0, out
    assert [c["text"] for c in out["calls"]] == ["accept:v1", "sampled:V1SAMPLED"]
    calls = mod.log.find(mark, rpc_method="tools/call")
    assert len(calls) == 2
    assert all(c["session"] for c in calls), "legacy clients' calls travel on a backend session"
    assert all(c["headers"].get("mcp-protocol-version") != MODERN_VERSION for c in calls)
    # The backend session was opened with the client's own capabilities.
    inits = [e for e in mod.log.find(mark, rpc_method="initialize") if "elicitation" in e["body"]]
    assert inits, "the session for the client declared the client's elicitation capability"


def test_modern_client_calls_a_dual_era_backend_statelessly(backends, start_gateway):
    mod = backends.v2("mod")
    gw = start_gateway([mod.config()])
    mark = mod.log.mark()
    callbacks = Callbacks("m")

    async def scenario() -> str:
        async with callbacks.client(gw.url) as client:
            return text_of(await client.call_tool("mod_elicit", {"question": "Your name?"}))

    assert run(scenario) == "accept:m-answer"
    calls = mod.log.find(mark, rpc_method="tools/call")
    assert calls and all(c["headers"].get("mcp-protocol-version") == MODERN_VERSION for c in calls)
    assert all(not c["session"] for c in calls), "no backend session for a modern client"
