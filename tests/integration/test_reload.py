"""Config reload on file change and on SIGHUP: unchanged servers keep their sessions, an invalid new
config leaves the running one in place."""

from __future__ import annotations

import time

import pytest
from harness import tool_text, wait_until

RELOAD_WAIT = 15.0


def backend_session_of_last_call(backend, since: int) -> str:
    calls = backend.log.find(since=since, rpc_method="tools/call")
    assert calls, f"{backend.name} got no tools/call"
    return calls[-1]["session"]


@pytest.mark.parametrize("atomic", [True, False], ids=["rename-over", "rewrite-in-place"])
def test_file_change_adds_a_server_and_keeps_sessions_of_unchanged_ones(backends, gateway, connect, atomic):
    a, b = backends.pair()
    gateway.write_config([a.config()])
    gateway.start_with_config(ready=["a"])
    client = connect(gateway)
    mark = a.log.mark()
    client.call_tool("a_echo", {"text": "before"})
    session_before = backend_session_of_last_call(a, mark)
    mark = a.log.mark()

    gateway.write_config([a.config(), b.config()], atomic=atomic)  # no signal: the file watcher reloads

    wait_until(lambda: "b_echo" in client.tool_names(), RELOAD_WAIT, what="b_echo after reload")
    assert tool_text(client.call_tool("b_echo", {"text": "new"})["result"]) == "new"
    assert tool_text(client.call_tool("a_echo", {"text": "after"})["result"]) == "after"
    assert backend_session_of_last_call(a, mark) == session_before, "unchanged server a must keep its session"
    assert a.log.find(since=mark, rpc_method="initialize") == [], "unchanged server a must not be re-initialised"
    assert gateway.proc.alive()

    gateway.write_config([a.config()], atomic=atomic)  # the watch must survive the first change

    wait_until(lambda: "b_echo" not in client.tool_names(), RELOAD_WAIT, what="b_echo gone after second change")


def test_sighup_reloads_the_config_and_keeps_the_gateway_running(backends, gateway, connect):
    a, b = backends.pair()
    gateway.write_config([a.config(), b.config()])
    gateway.start_with_config(ready=["a", "b"])
    client = connect(gateway)
    client.call_tool("a_echo", {"text": "warm"})
    mark = a.log.mark()

    gateway.write_config([a.config()])
    gateway.sighup()

    wait_until(lambda: not any(n.startswith("b_") for n in client.tool_names()), RELOAD_WAIT, what="b_ tools gone")
    assert gateway.proc.alive(), "SIGHUP must reload, not terminate"
    assert tool_text(client.call_tool("a_echo", {"text": "still"})["result"]) == "still"
    assert a.log.find(since=mark, rpc_method="initialize") == []
    assert [s["name"] for s in gateway.status()["servers"]] == ["a"]
    reply = client.call_tool("b_echo", {"text": "gone"})
    assert reply["error"]["code"] == -32602


def test_sighup_without_changes_is_harmless(backends, start_gateway, connect):
    a = backends.v2("a")
    gw = start_gateway([a.config()])
    client = connect(gw)
    client.call_tool("a_echo", {"text": "x"})
    mark = a.log.mark()

    gw.sighup()
    time.sleep(1.0)
    gw.sighup()
    time.sleep(1.0)

    assert gw.proc.alive()
    assert tool_text(client.call_tool("a_echo", {"text": "y"})["result"]) == "y"
    assert a.log.find(since=mark, rpc_method="initialize") == []


def test_invalid_new_config_keeps_the_running_one(backends, gateway, connect):
    a, b = backends.pair()
    gateway.write_config([a.config()])
    gateway.start_with_config(ready=["a"])
    client = connect(gateway)
    stderr_before = len(gateway.stderr())

    gateway.write_raw_config(f"listen: 127.0.0.1:{gateway.port}\nservers: [{{name: a, url: {a.url}, colour: red}}]\n")
    gateway.sighup()
    wait_until(lambda: "colour" in gateway.stderr()[stderr_before:], RELOAD_WAIT, what="reload error logged")

    assert gateway.proc.alive()
    assert "a_echo" in client.tool_names()
    assert tool_text(client.call_tool("a_echo", {"text": "old config"})["result"]) == "old config"
    assert "a_echo" in connect(gateway).tool_names()

    gateway.write_config([a.config(), b.config()])  # a later valid config is applied
    gateway.sighup()
    wait_until(lambda: "b_echo" in client.tool_names(), RELOAD_WAIT, what="valid config applied after invalid one")


def test_changed_server_url_switches_to_the_new_backend(backends, gateway, connect):
    a = backends.v2("a")
    a2 = backends.v2("a", extra_tools=1, log_name="a2")  # same name, another port, one more tool
    gateway.write_config([a.config()])
    gateway.start_with_config(ready=["a"])
    client = connect(gateway)

    gateway.write_config([a2.config()])
    gateway.sighup()

    wait_until(lambda: "a_extra_000" in client.tool_names(), RELOAD_WAIT, what="tools of the new backend")
    assert tool_text(client.call_tool("a_echo", {"text": "moved"})["result"]) == "moved"
    assert a2.log.calls() == ["echo"]
