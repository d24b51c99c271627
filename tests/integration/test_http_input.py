"""The HTTP surface of POST/GET/DELETE /mcp: bad-input statuses from the contract, ping, DELETE."""

from __future__ import annotations

import json

import pytest
from harness import GetStream, McpHttp


@pytest.fixture
def gw_one(backends, start_gateway):
    a = backends.v2("a")
    # Backend sessions are a legacy-era matter: pin the dual-era fixture to it.
    gw = start_gateway([a.config(era="legacy")], limits={"max_body_bytes": 4096})
    gw.backend = a
    return gw


def error_code(response) -> int:
    return json.loads(response.text)["error"]["code"]


def test_malformed_json_is_400_parse_error(gw_one, connect):
    response = connect(gw_one).post_raw(b'{"jsonrpc":"2.0","id":1,"method":')

    assert response.status_code == 400
    assert error_code(response) == -32700


def test_batch_array_is_400_invalid_request(gw_one, connect):
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "ping"}, {"jsonrpc": "2.0", "id": 2, "method": "ping"}]

    response = connect(gw_one).post_raw(json.dumps(batch))

    assert response.status_code == 400
    assert error_code(response) == -32600


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_wrong_content_type_is_415(gw_one, connect, content_type):
    client = connect(gw_one)

    response = client.post_raw({"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Content-Type": content_type})

    assert response.status_code == 415


@pytest.mark.parametrize("accept", ["application/json", "text/event-stream", "text/html"])
def test_accept_without_json_and_event_stream_is_406(gw_one, connect, accept):
    client = connect(gw_one)

    response = client.post_raw({"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Accept": accept})

    assert response.status_code == 406


def test_accept_listing_both_with_parameters_is_accepted(gw_one, connect):
    client = connect(gw_one)
    accept = "text/event-stream;q=0.9, application/json;q=1.0"

    response = client.post_raw({"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Accept": accept})

    assert response.status_code == 200


def test_body_over_max_body_bytes_is_413(gw_one, connect):
    client = connect(gw_one)
    small = client.call_tool("a_echo", {"text": "x" * 1000})
    assert "result" in small

    response = client.post_raw(
        {
            "jsonrpc": "2.0",
            "id": 9,
            "method": "tools/call",
            "params": {"name": "a_echo", "arguments": {"text": "x" * 10000}},
        }
    )

    assert response.status_code == 413


def test_unknown_session_is_404(gw_one):
    client = McpHttp(gw_one.url)
    client.session_id = "no-such-session-0123456789"
    client.protocol_version = "2025-11-25"

    response = client.post_raw({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})

    assert response.status_code == 404


def test_missing_session_on_non_initialize_is_400(gw_one):
    client = McpHttp(gw_one.url)

    response = client.post_raw({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})

    assert response.status_code == 400


def test_unsupported_protocol_version_header_is_400(gw_one, connect):
    client = connect(gw_one)

    response = client.post_raw(
        {"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"MCP-Protocol-Version": "1999-01-01"}
    )

    assert response.status_code == 400


@pytest.mark.parametrize("origin", ["http://evil.example.com", "https://127.0.0.1.evil.example", "null"])
def test_foreign_origin_is_403(gw_one, connect, origin):
    client = connect(gw_one)

    on_session = client.post_raw({"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Origin": origin})
    fresh = McpHttp(gw_one.url)
    on_initialize = fresh.post_raw(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        },
        headers={"Origin": origin},
    )

    assert on_session.status_code == 403
    assert on_initialize.status_code == 403


@pytest.mark.parametrize("origin", ["http://127.0.0.1:5173", "http://localhost:3000", "http://[::1]:8080"])
def test_loopback_origin_is_allowed_by_default(gw_one, connect, origin):
    client = connect(gw_one)

    response = client.post_raw({"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Origin": origin})

    assert response.status_code == 200


def test_allowed_origins_from_config(backends, start_gateway, connect):
    a = backends.v2("a")
    gw = start_gateway([a.config()], allowed_origins=["https://app.example.com"])
    client = connect(gw)
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}

    assert client.post_raw(ping, headers={"Origin": "https://app.example.com"}).status_code == 200
    assert client.post_raw(ping, headers={"Origin": "https://other.example.com"}).status_code == 403


def test_notification_is_accepted_with_202_and_no_body(gw_one, connect):
    response = connect(gw_one).notify("notifications/roots/list_changed")

    assert response.status_code == 202
    assert response.content == b""


def test_ping_is_answered_by_the_gateway(gw_one, connect):
    reply = connect(gw_one).request("ping")

    assert reply["result"] == {}


def test_get_opens_an_event_stream_for_the_session(gw_one, connect):
    client = connect(gw_one)

    with GetStream(client) as stream:
        assert stream.status == 200


def test_delete_ends_the_session_and_closes_backend_sessions(gw_one, connect):
    a = gw_one.backend
    client = connect(gw_one)
    mark = a.log.mark()
    client.call_tool("a_echo", {"text": "open a backend session"})
    (call,) = a.log.find(since=mark, rpc_method="tools/call")
    backend_session = call["session"]

    response = client.delete()

    assert response.status_code == 204
    after = client.post_raw({"jsonrpc": "2.0", "id": 99, "method": "tools/list"})
    assert after.status_code == 404
    a.log.wait_for(timeout=10, since=mark, http_method="DELETE", session=backend_session)


def test_unrelated_session_survives_delete_of_another(gw_one, connect):
    one, two = connect(gw_one), connect(gw_one)

    assert one.delete().status_code == 204

    assert "result" in two.request("ping")
    assert two.tool_names()
