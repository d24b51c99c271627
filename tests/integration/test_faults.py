"""Fault injection, backend side: a backend (tests/fixtures/python/fault_server.py) that answers
with malformed bodies, truncates them, stalls after its headers, resets mid-stream or floods
notifications. Every call ends within its timeout (plus a margin, as a hang guard) with a
JSON-RPC error that says what went wrong, a broken answer is never sent to the backend again,
the other backends keep working, and a flood does not grow the gateway's memory."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from harness import GetStream, McpHttp, parse_sse, tool_text, wait_until

CALL_TIMEOUT = 3
FAST = {"connect": "2s", "call": f"{CALL_TIMEOUT}s", "discovery": "3s"}
MARGIN = 5  # hang guard only: nothing asserts how fast an error comes


@pytest.fixture
def junk_gateway(backends, start_gateway):
    junk = backends.fault("junk", start=False)
    bravo = backends.v2("bravo", start=False)
    backends.ready(junk, bravo)
    gw = start_gateway([junk.config(timeouts=FAST), bravo.config()])
    return gw, junk


def timed_call(client: McpHttp, tool: str, arguments: dict | None = None) -> tuple[dict, float]:
    started = time.monotonic()
    reply = client.call_tool(tool, arguments)
    return reply, time.monotonic() - started


def assert_others_work(client: McpHttp) -> None:
    assert tool_text(client.call_tool("bravo_echo", {"text": "other backend"})["result"]) == "other backend"
    assert tool_text(client.call_tool("junk_echo", {"text": "same backend"})["result"]) == "same backend"


INVALID = {
    "two_messages": "the JSON body holds 2 JSON-RPC messages; one response was expected",
    "two_responses": "the JSON body holds 2 JSON-RPC messages; one response was expected",
    "wrong_id": "the JSON body answers another request id",
    "notification_only": "the JSON body is not a JSON-RPC response",
    "half_json": "the body ended before it was complete",
    "half_json_eof": "the JSON body is not valid JSON",
    "accepted": "the backend accepted the request (202) without answering it",
}


@pytest.mark.parametrize("tool", list(INVALID))
def test_a_malformed_answer_is_an_invalid_response_error_and_is_not_sent_again(junk_gateway, connect, tool):
    gw, junk = junk_gateway
    client = connect(gw)
    mark = junk.log.mark()

    reply, elapsed = timed_call(client, f"junk_{tool}")

    assert elapsed < CALL_TIMEOUT + MARGIN
    error = reply["error"]
    assert error["code"] == -32603
    assert error["message"] == f"invalid response from backend 'junk': {INVALID[tool]}"
    assert error["data"] == {"server": "junk", "reason": "invalid_response"}
    # The backend may have acted on the request: a broken answer is not a reason to send it twice.
    assert len(junk.log.find(since=mark, rpc_method="tools/call", name=tool)) == 1
    assert_others_work(client)


def test_a_backend_that_stalls_after_its_headers_times_out_and_the_connection_is_released(junk_gateway, connect):
    gw, junk = junk_gateway
    client = connect(gw)

    reply, elapsed = timed_call(client, "junk_stall_after_headers")

    assert elapsed < CALL_TIMEOUT + MARGIN
    assert reply["error"]["message"] == f"server 'junk' did not answer within {CALL_TIMEOUT}s"
    assert reply["error"]["data"] == {"server": "junk", "reason": "timeout"}
    junk.log.wait_for(event={"stall_ended": True})  # the gateway closed the stalled connection
    assert_others_work(client)


def test_a_stream_that_stalls_after_an_event_relays_the_event_then_times_out_and_cancels(junk_gateway, connect):
    gw, junk = junk_gateway
    client = connect(gw)
    mark = junk.log.mark()

    reply, elapsed = timed_call(client, "junk_stall_sse")

    assert elapsed < CALL_TIMEOUT + MARGIN
    assert [n["params"]["data"] for n in client.notifications] == ["one event, then trouble"]
    assert reply["error"]["data"] == {"server": "junk", "reason": "timeout"}
    (call,) = junk.log.find(since=mark, rpc_method="tools/call", name="stall_sse")
    (cancel,) = junk.log.wait_for(since=mark, rpc_method="notifications/cancelled")
    assert json.loads(cancel["body"])["params"]["requestId"] == call["rpc_id"]
    assert_others_work(client)


def test_a_connection_reset_mid_stream_is_an_unavailable_error_and_the_next_call_works(junk_gateway, connect):
    gw, junk = junk_gateway
    client = connect(gw)

    reply, elapsed = timed_call(client, "junk_reset_mid_sse")

    assert elapsed < CALL_TIMEOUT + MARGIN
    assert reply["error"]["message"] == "server 'junk' is unavailable: backend connection closed"
    assert reply["error"]["data"] == {"server": "junk", "reason": "unavailable"}
    assert_others_work(client)


def rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


FLOOD_COUNT = 50_000
FLOOD_SIZE = 2_000  # ~100 MB of notifications in all
GROWTH_LIMIT_MIB = 48


def flood_backend(backends, transport: str):
    if transport == "stdio":
        return backends.fault_stdio("junk")
    return backends.fault("junk", start=False)


@pytest.mark.parametrize("transport", ["streamable_http", "stdio"])
def test_a_notification_flood_to_a_slow_client_does_not_grow_the_gateways_memory(backends, start_gateway, connect, transport):
    junk = flood_backend(backends, transport)
    bravo = backends.v2("bravo", start=False)
    backends.ready(bravo, *([junk] if transport != "stdio" else []))
    gw = start_gateway([junk.config(timeouts={"call": "50s"}), bravo.config()])
    client = connect(gw)
    assert tool_text(client.call_tool("junk_echo", {"text": "warm"})["result"]) == "warm"
    pid = gw.proc.pid
    before = rss_kib(pid)

    body = {"jsonrpc": "2.0", "id": 99, "method": "tools/call", "params": {"name": "junk_flood", "arguments": {"count": FLOOD_COUNT, "size": FLOOD_SIZE}}}
    with httpx.Client(timeout=httpx.Timeout(10.0, read=60.0)) as http, http.stream("POST", client.url, json=body, headers=client.headers()) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        chunks = r.iter_bytes()
        received = [next(chunks)]
        # The client stops reading while the backend writes as fast as it can. Bounded queues
        # push back to the backend; unbounded ones would hold the flood in the gateway.
        junk.log.wait_for(event={"flood_sent": 0})
        time.sleep(3)
        during = rss_kib(pid)
        assert tool_text(client.call_tool("bravo_echo", {"text": "during the flood"})["result"]) == "during the flood"
        received.extend(chunks)

    messages = parse_sse(b"".join(received).decode())
    assert len([m for m in messages if m.get("method") == "notifications/message"]) == FLOOD_COUNT, "nothing lost"
    assert messages[-1]["id"] == 99 and tool_text(messages[-1]["result"]) == "flood answered"
    growth_mib = (during - before) / 1024
    assert growth_mib < GROWTH_LIMIT_MIB, f"RSS grew {growth_mib:.0f} MiB while a client was not reading a ~100 MB flood"


def test_a_flood_on_the_backends_get_stream_to_a_client_not_reading_its_stream_is_bounded(backends, start_gateway, connect):
    junk = backends.fault("junk", start=False)
    bravo = backends.v2("bravo", start=False)
    backends.ready(junk, bravo)
    gw = start_gateway([junk.config(), bravo.config()])
    client = connect(gw)
    pid = gw.proc.pid
    headers = client.headers({"Accept": "text/event-stream"})
    headers.pop("Content-Type")
    with httpx.Client(timeout=httpx.Timeout(10.0, read=60.0)) as http, http.stream("GET", client.url, headers=headers) as stream:
        assert stream.status_code == 200
        # The first call opens the gateway's backend session, and with it the backend's GET stream.
        assert tool_text(client.call_tool("junk_echo", {"text": "warm"})["result"]) == "warm"
        wait_until(lambda: junk.log.find(http_method="GET"), 10, what="the gateway's GET stream to the backend")
        before = rss_kib(pid)

        reply = client.call_tool("junk_flood_get", {"count": FLOOD_COUNT, "size": FLOOD_SIZE})
        assert tool_text(reply["result"]) == "flood_get answered"
        junk.log.wait_for(event={"flood_get_sent": 0})
        time.sleep(3)
        during = rss_kib(pid)

        assert tool_text(client.call_tool("bravo_echo", {"text": "still fine"})["result"]) == "still fine"
        growth_mib = (during - before) / 1024
        assert growth_mib < GROWTH_LIMIT_MIB, f"RSS grew {growth_mib:.0f} MiB while a client was not reading its GET stream"
        # The gateway closed the stream of the client that fell behind: it ends after what was
        # already queued, short of the whole flood.
        rest = parse_sse(b"".join(stream.iter_bytes()).decode())
        assert 0 < len(rest) < FLOOD_COUNT

    with GetStream(client):  # and the client can open a new one
        pass
