"""Notifications through the gateway: tools/list_changed to clients with an open GET stream,
progress and log notifications on the request's stream, cancellations to the backend."""

from __future__ import annotations

import json
import threading

import anyio
import mcp.types as types
import pytest
from harness import GetStream, rpc_messages, tool_text, wait_until
from sdk2 import Callbacks, run, text_of


def is_list_changed(message: dict) -> bool:
    return message.get("method") == "notifications/tools/list_changed"


@pytest.mark.parametrize(
    "channel",
    ["broadcast", "standalone", "request"],
    ids=[
        "backend-notifies-all-sessions",
        "backend-notifies-caller-session-get-stream",
        "backend-notifies-on-call-stream",
    ],
)
def test_backend_tool_added_reaches_listening_client_and_new_list(backends, start_gateway, connect, channel):
    a, b = backends.pair()
    gw = start_gateway([a.config(), b.config()])
    listener = connect(gw)
    actor = connect(gw)
    assert "a_fresh" not in listener.tool_names()
    actor.call_tool("a_echo", {"text": "warm up: the actor's backend session exists before the change"})

    with GetStream(listener) as stream:
        added = actor.call_tool("a_add_tool", {"tool_name": "fresh", "channel": channel})
        assert tool_text(added["result"]) == "added fresh"
        stream.wait_for(is_list_changed, timeout=10)

    wait_until(lambda: "a_fresh" in listener.tool_names(), 5, what="a_fresh in tools/list")
    assert tool_text(listener.call_tool("a_fresh")["result"]) == "dynamic fresh"
    assert "a_fresh" in connect(gw).tool_names()


def test_list_change_told_to_one_session_reaches_it_even_when_the_catalog_looks_unchanged(backends, start_gateway, connect):
    """A backend may list per session (or per user): when it tells the client's own session that
    its list changed, that client hears it once the gateway has re-listed, whether or not the
    shared catalog changed. Here the second `add_tool` re-registers the same tool, so the
    catalog stays the same, and only this session was told."""
    a = backends.v2("a")
    gw = start_gateway([a.config()])
    client = connect(gw)
    other = connect(gw)

    with GetStream(client) as stream, GetStream(other) as bystander:
        client.call_tool("a_add_tool", {"tool_name": "same", "channel": "standalone"})
        stream.wait_for(is_list_changed)
        wait_until(lambda: "a_same" in client.tool_names(), 5, what="a_same listed")
        bystander.wait_for(is_list_changed)  # the catalog changed: everyone with a stream hears it

        client.call_tool("a_add_tool", {"tool_name": "same", "channel": "standalone"})
        stream.wait_for(nth(is_list_changed, 2))


def nth(predicate, n: int):
    """A predicate true at the n-th message `predicate` matches (for `GetStream.wait_for`, which
    looks at the messages already seen first)."""
    count = {"n": 0}

    def check(message: dict) -> bool:
        if predicate(message):
            count["n"] += 1
        return count["n"] >= n

    return check


def test_python_sdk_client_is_told_about_list_changes(backends, start_gateway, connect):
    a = backends.v2("a")
    gw = start_gateway([a.config(era="legacy")])
    callbacks = Callbacks("listener")

    async def scenario():
        # A session's GET stream (the modern client's subscriptions/listen: test_eras).
        async with callbacks.client(gw.url, mode="legacy") as client:
            before = [t.name for t in (await client.list_tools()).tools]
            actor = connect(gw)
            await anyio.to_thread.run_sync(lambda: actor.call_tool("a_add_tool", {"tool_name": "late_tool"}))
            with anyio.fail_after(10):
                while not any(isinstance(n, types.ToolListChangedNotification) for n in callbacks.notifications):
                    await anyio.sleep(0.05)
            with anyio.fail_after(5):
                while True:
                    after = [t.name for t in (await client.list_tools()).tools]
                    if "a_late_tool" in after:
                        return before, after
                    await anyio.sleep(0.1)

    before, after = run(scenario)

    assert "a_late_tool" not in before and "a_late_tool" in after


def test_progress_notifications_are_relayed_with_the_clients_token(backends, start_gateway, connect):
    a = backends.v2("a")
    gw = start_gateway([a.config()])
    client = connect(gw)
    body = {
        "jsonrpc": "2.0",
        "id": 31,
        "method": "tools/call",
        "params": {"name": "a_progress", "arguments": {"steps": 3}, "_meta": {"progressToken": "client-token-1"}},
    }

    response = client.post_raw(body)

    messages = rpc_messages(response)
    progress = [m for m in messages if m.get("method") == "notifications/progress"]
    assert [p["params"]["progress"] for p in progress] == [1, 2, 3]
    assert all(p["params"]["progressToken"] == "client-token-1" for p in progress)
    assert all(p["params"]["total"] == 3 for p in progress)
    assert messages[-1]["id"] == 31 and tool_text(messages[-1]["result"]) == "done 3"


def test_progress_tokens_of_concurrent_clients_do_not_mix(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config()])
    one, two = Callbacks("one"), Callbacks("two")

    async def scenario():
        async def call(cb: Callbacks, steps: int) -> str:
            async with cb.client(gw.url) as client:
                return text_of(await client.call_tool("a_progress", {"steps": steps}, progress_callback=cb.on_progress))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, one, 2)
            tg.start_soon(call, two, 4)

    run(scenario)

    assert [p[0] for p in one.progress] == [1, 2]
    assert [p[0] for p in two.progress] == [1, 2, 3, 4]


def test_log_notifications_are_relayed_on_the_request_stream(backends, start_gateway, connect):
    a = backends.v2("a")
    gw = start_gateway([a.config()])
    client = connect(gw)

    response = client.post_raw(
        {
            "jsonrpc": "2.0",
            "id": 5,
            "method": "tools/call",
            "params": {"name": "a_log_message", "arguments": {"text": "hello log"}},
        }
    )

    logs = [m for m in rpc_messages(response) if m.get("method") == "notifications/message"]
    assert len(logs) == 1
    assert logs[0]["params"]["data"] == "hello log" and logs[0]["params"]["level"] == "info"


def test_cancellation_is_relayed_to_the_backend_with_its_own_request_id(backends, start_gateway, connect):
    a = backends.v2("a")
    gw = start_gateway([a.config(era="legacy")])  # a legacy backend session (modern: test_eras)
    client = connect(gw)
    caller = client.fork(id_base=500)
    mark = a.log.mark()
    worker = threading.Thread(target=lambda: _swallow(caller.call_tool, "a_sleep", {"seconds": 20}), daemon=True)
    worker.start()
    (sleep_call,) = a.log.wait_for(timeout=10, since=mark, rpc_method="tools/call", name="sleep")

    accepted = client.notify("notifications/cancelled", {"requestId": 500, "reason": "test"})

    assert accepted.status_code == 202
    (cancel,) = a.log.wait_for(timeout=10, since=mark, rpc_method="notifications/cancelled")
    params = json.loads(cancel["body"])["params"]
    assert params["requestId"] == sleep_call["rpc_id"], "the backend must see the id it was sent, not the client's"
    assert cancel["session"] == sleep_call["session"]
    caller.close()


def _swallow(fn, *args):
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - the cancelled request may never be answered
        pass
