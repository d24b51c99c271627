"""Lossless pass-through of results and arguments; bodies with duplicate keys are rejected."""

from __future__ import annotations

import json

import pytest
from harness import rpc_messages  # also puts tests/fixtures/python on sys.path

import raw_server  # noqa: E402  (tests/fixtures/python/raw_server.py)

BIG_INT_TEXT = raw_server.BIG_INT  # "123456789012345678901234567890"


@pytest.mark.parametrize("backend_sse", [False, True], ids=["backend-json", "backend-sse"])
def test_result_with_unknown_fields_and_big_integer_arrives_byte_identical(
    backends, start_gateway, connect, backend_sse
):
    raw = backends.raw("raw", sse=backend_sse)
    gw = start_gateway([raw.config()])
    client = connect(gw)

    response = client.post_raw(
        {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "raw_lossless", "arguments": {}}}
    )

    assert response.status_code == 200
    assert raw_server.LOSSLESS_RESULT in response.text, (
        "the backend's result bytes must appear verbatim in the gateway's response body; got:\n" + response.text
    )
    (reply,) = [m for m in rpc_messages(response) if m.get("id") == 7]
    result = reply["result"]
    assert result["structuredContent"]["zebra"] == int(BIG_INT_TEXT)
    assert result["unknownTopLevel"]["big"] == int(BIG_INT_TEXT)
    assert list(result["structuredContent"]) == ["zebra", "alpha", "mixed"]
    assert list(result["structuredContent"]["alpha"]) == ["omega", "beta", "alpha"]
    assert result["_meta"] == {"com.example.vendor/trace": {"zz": "1", "aa": "2"}, "io.acme/flag": True}
    assert result["content"][0]["zUnknown"] == {"z": 1, "a": 2}


def test_request_arguments_reach_the_backend_byte_identical(backends, start_gateway, connect):
    raw = backends.raw("raw")
    gw = start_gateway([raw.config()])
    client = connect(gw)
    arguments = '{"text":"x","big":' + BIG_INT_TEXT + ',"zz":{"b":1,"a":2},"f":1.50,"_meta_like":{"v":null}}'
    body = '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"raw_echo","arguments":' + arguments + "}}"
    mark = raw.log.mark()

    response = client.post_raw(body)

    assert response.status_code == 200, response.text
    (call,) = raw.log.find(since=mark, rpc_method="tools/call")
    assert call["name"] == "echo"
    assert arguments in call["body"], f"arguments changed on the way: {call['body']}"


def test_big_integer_request_id_is_echoed_unchanged(backends, start_gateway, connect):
    raw = backends.raw("raw")
    gw = start_gateway([raw.config()])
    client = connect(gw)

    response = client.post_raw('{"jsonrpc":"2.0","id":' + BIG_INT_TEXT + ',"method":"ping"}')

    assert response.status_code == 200
    assert '"id":' + BIG_INT_TEXT in response.text.replace(" ", "")


@pytest.mark.parametrize(
    "params",
    [
        '{"name":"raw_echo","name":"raw_lossless","arguments":{}}',
        '{"name":"raw_echo","arguments":{"text":"a","text":"b"}}',
    ],
    ids=["duplicate-tool-name-key", "duplicate-argument-key"],
)
def test_body_with_duplicate_keys_is_rejected(backends, start_gateway, connect, params):
    raw = backends.raw("raw")
    gw = start_gateway([raw.config()])
    client = connect(gw)
    mark = raw.log.mark()

    response = client.post_raw('{"jsonrpc":"2.0","id":4,"method":"tools/call","params":' + params + "}")

    assert response.status_code == 400, response.text
    assert json.loads(response.text)["error"]["code"] == -32600
    assert raw.log.find(since=mark, rpc_method="tools/call") == [], "a rejected body must not reach the backend"


def test_duplicate_top_level_key_is_rejected(backends, start_gateway, connect):
    raw = backends.raw("raw")
    gw = start_gateway([raw.config()])
    client = connect(gw)

    response = client.post_raw('{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}')

    assert response.status_code == 400
    assert json.loads(response.text)["error"]["code"] == -32600
