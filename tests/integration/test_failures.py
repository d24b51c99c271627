"""Backend failures: down, killed, slow, garbage, restarted. The other servers keep working and errors
name the failing server, within its call timeout."""

from __future__ import annotations

import time

import httpx
import pytest
from harness import tool_text, wait_until

FAST = {"connect": "2s", "call": "3s", "discovery": "3s"}


def assert_backend_error(reply: dict, server: str) -> None:
    assert "error" in reply, f"expected a JSON-RPC error naming {server!r}, got {reply}"
    assert reply["error"]["code"] == -32603, reply
    assert server in reply["error"]["message"], reply


def test_killed_backend_leaves_the_other_server_listed_and_callable(backends, start_gateway, connect):
    alpha, bravo = backends.pair(("alpha", "bravo"))
    gw = start_gateway([alpha.config(timeouts=FAST), bravo.config(timeouts=FAST)])
    client = connect(gw)
    assert tool_text(client.call_tool("alpha_echo", {"text": "before"})["result"]) == "before"

    alpha.kill()

    assert "bravo_echo" in client.tool_names()
    assert tool_text(client.call_tool("bravo_echo", {"text": "still here"})["result"]) == "still here"
    started = time.monotonic()
    reply = client.call_tool("alpha_echo", {"text": "after"})
    assert time.monotonic() - started < 3 + 5
    assert_backend_error(reply, "alpha")
    status = gw.wait_servers(["alpha"], "unreachable", timeout=20)
    alpha_status = next(s for s in status["servers"] if s["name"] == "alpha")
    assert alpha_status["last_error"]
    assert gw.server_status("bravo")["state"] == "ready"
    assert connect(gw).tool_names(), "new sessions still work"


def test_backend_down_at_start_does_not_block_the_others(backends, start_gateway, connect):
    bravo = backends.v2("bravo")
    ghost = {"name": "ghost", "url": backends.dead_url(), "timeouts": FAST}
    gw = start_gateway([ghost, bravo.config()], ready=["bravo"])

    client = connect(gw)
    names = client.tool_names()

    assert "bravo_echo" in names and not any(n.startswith("ghost_") for n in names)
    assert tool_text(client.call_tool("bravo_echo", {"text": "ok"})["result"]) == "ok"
    status = gw.wait_servers(["ghost"], "unreachable", timeout=20)
    assert next(s for s in status["servers"] if s["name"] == "ghost")["last_error"]
    assert httpx.get(gw.base + "/readyz").status_code == 200


def test_backend_that_comes_up_later_is_picked_up(backends, start_gateway, connect):
    late = backends.v2("late", start=None)  # configured, not running yet
    gw = start_gateway([late.config(timeouts=FAST)], ready=[], catalog={"refresh_interval": "1s"})
    gw.wait_servers(["late"], "unreachable", timeout=20)

    late.start()

    gw.wait_servers(["late"], "ready", timeout=30)
    wait_until(lambda: "late_echo" in connect(gw).tool_names(), 15, what="late_echo listed")


def test_slow_backend_call_fails_within_its_timeout_naming_the_server(backends, start_gateway, connect):
    alpha, bravo = backends.pair(("alpha", "bravo"))
    gw = start_gateway([alpha.config(timeouts=FAST), bravo.config(timeouts=FAST)])
    client = connect(gw)

    started = time.monotonic()
    reply = client.call_tool("alpha_sleep", {"seconds": 30})
    elapsed = time.monotonic() - started

    assert_backend_error(reply, "alpha")
    assert 2.0 <= elapsed < 3 + 4, f"call timeout is 3s, took {elapsed:.1f}s"
    assert tool_text(client.call_tool("bravo_echo", {"text": "fine"})["result"]) == "fine"
    assert tool_text(client.call_tool("alpha_echo", {"text": "fast"})["result"]) == "fast"


def test_slow_call_does_not_block_other_calls_of_the_same_client(backends, start_gateway, connect):
    import threading

    alpha, bravo = backends.pair(("alpha", "bravo"))
    gw = start_gateway([alpha.config(), bravo.config()])
    client = connect(gw)
    slow_reply: dict = {}
    slow = threading.Thread(target=lambda: slow_reply.update(client.fork().call_tool("alpha_sleep", {"seconds": 3})))
    slow.start()
    time.sleep(0.3)

    started = time.monotonic()
    fast = client.call_tool("bravo_echo", {"text": "meanwhile"})
    assert time.monotonic() - started < 2
    slow.join(15)

    assert tool_text(fast["result"]) == "meanwhile"
    assert tool_text(slow_reply["result"]) == "slept 3.0"


@pytest.mark.parametrize("tool", ["garbage_json", "garbage_ctype"])
def test_garbage_answer_is_an_error_naming_the_server(backends, start_gateway, connect, tool):
    junk = backends.raw("junk", start=False)
    bravo = backends.v2("bravo", start=False)
    backends.ready(junk, bravo)
    gw = start_gateway([junk.config(timeouts=FAST), bravo.config()])
    client = connect(gw)

    started = time.monotonic()
    reply = client.call_tool(f"junk_{tool}")

    assert time.monotonic() - started < 3 + 4
    assert_backend_error(reply, "junk")
    assert tool_text(client.call_tool("bravo_echo", {"text": "ok"})["result"]) == "ok"
    assert tool_text(client.call_tool("junk_echo", {"text": "sane"})["result"]) == "sane"


def test_backend_answering_garbage_to_every_call_keeps_lists_served(backends, start_gateway, connect):
    junk = backends.raw("junk", garbage=True, start=False)
    bravo = backends.v2("bravo", start=False)
    backends.ready(junk, bravo)
    gw = start_gateway([junk.config(timeouts=FAST), bravo.config()])
    client = connect(gw)

    names = client.tool_names()
    reply = client.call_tool("junk_echo", {"text": "x"})

    assert "junk_echo" in names and "bravo_echo" in names
    assert_backend_error(reply, "junk")


def test_backend_session_lost_is_reinitialised_once_transparently(backends, start_gateway, connect):
    raw = backends.raw("rawsrv")
    gw = start_gateway([raw.config()])
    client = connect(gw)
    assert tool_text(client.call_tool("rawsrv_echo", {"text": "one"})["result"]) == "one"
    mark = raw.log.mark()

    client.call_tool("rawsrv_forget_sessions")  # the backend now answers 404 to every old session
    reply = client.call_tool("rawsrv_echo", {"text": "two"})

    assert tool_text(reply["result"]) == "two"
    calls = raw.log.find(since=mark, rpc_method="tools/call", name="echo")
    assert len(calls) == 2, "one attempt on the lost session, one retry after re-initialising"
    assert calls[0]["session"] != calls[1]["session"]
    assert len(raw.log.find(since=mark, rpc_method="initialize")) >= 1


def test_restarted_backend_is_used_again_without_client_visible_errors(backends, start_gateway, connect):
    a = backends.v2("a")
    gw = start_gateway([a.config(timeouts=FAST)])
    client = connect(gw)
    assert tool_text(client.call_tool("a_echo", {"text": "before"})["result"]) == "before"

    a.restart()  # same port, new process: every old backend session is unknown (404)

    reply = client.call_tool("a_echo", {"text": "after"})
    assert tool_text(reply["result"]) == "after"
