"""Input a server could read two ways is refused, never guessed at:

- a credential header sent twice (two `Authorization` headers, two wristbands) → 400 with a
  JSON-RPC error naming the header and `WWW-Authenticate: Bearer error="invalid_request"`, on
  POST (both eras), GET and DELETE, before any backend is reached;
- a JSON-RPC `id` that is neither a string nor an integer (object, array, boolean, fraction,
  exponent form) → 400 / -32600, in both eras, for requests and for responses the client sends.
"""

from __future__ import annotations

import json

import httpx
import pytest
from harness import ACCEPT_BOTH, CAPS_KEY, MODERN_VERSION, VERSION_KEY, McpHttp
from idp import OwnIssuer, es256_key_pair

BAD_IDS = {
    "object": {"a": 1},
    "empty object": {},
    "array": [1],
    "true": True,
    "false": False,
    "fraction": 1.5,
    "whole fraction": 1.0,
}
# Python's json cannot write an exponent for an integer-valued float: spell the bytes.
EXPONENT_BODY = '{"jsonrpc":"2.0","id":1e3,"method":"tools/list"}'


@pytest.fixture
def own_issuer(tmp_path):
    return OwnIssuer(tmp_path)


@pytest.fixture
def secured(backends, start_gateway, own_issuer):
    a = backends.v2("a")
    gw = start_gateway(
        [a.config(era="legacy", auth={"client_ids": ["a.local"]})],
        auth={"issuers": [own_issuer.config()], "audiences": ["mcpgate"]},
    )
    return gw, a


def twice(name: str, first: str, second: str, **more: str) -> list[tuple[str, str]]:
    headers = [("Accept", ACCEPT_BOTH), ("Content-Type", "application/json"), (name, first), (name, second)]
    return headers + list(more.items())


def assert_ambiguous(r: httpx.Response, header: str) -> None:
    assert r.status_code == 400, f"HTTP {r.status_code}: {r.text}"
    body = r.json()
    assert body["error"]["code"] == -32600, body
    assert f"more than one {header} header" in body["error"]["message"], body
    assert 'error="invalid_request"' in r.headers.get("www-authenticate", ""), r.headers


def modern_body(method: str = "tools/list", rpc_id=1) -> dict:
    return {
        "jsonrpc": "2.0",
        "id": rpc_id,
        "method": method,
        "params": {"_meta": {VERSION_KEY: MODERN_VERSION, CAPS_KEY: {}}},
    }


MODERN_HEADERS = {"MCP-Protocol-Version": MODERN_VERSION, "Mcp-Method": "tools/list"}


def test_two_authorization_headers_are_refused_on_every_method_and_era(secured, own_issuer):
    gw, a = secured
    good, other = own_issuer.token(), own_issuer.token(sub="user-bob")
    alice = McpHttp(gw.url)
    alice.http.headers["Authorization"] = f"Bearer {good}"
    alice.initialize()
    before = a.log.mark()
    dup = twice("Authorization", f"Bearer {good}", f"Bearer {other}")
    session = [("Mcp-Session-Id", alice.session_id), ("MCP-Protocol-Version", alice.protocol_version)]

    with httpx.Client(timeout=10) as http:
        initialize = http.post(gw.url, headers=dup, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}})
        call = http.post(
            gw.url,
            headers=dup + session,
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "a_echo", "arguments": {}}},
        )
        modern = http.post(gw.url, headers=dup + list(MODERN_HEADERS.items()), json=modern_body())
        get = http.get(gw.url, headers=[("Accept", "text/event-stream"), *dup[2:], *session])
        delete = http.delete(gw.url, headers=dup[2:] + session)

    for case, r in {"initialize": initialize, "call": call, "modern": modern, "GET": get, "DELETE": delete}.items():
        assert r.status_code == 400, f"{case}: {r.status_code} {r.text}"
        assert_ambiguous(r, "Authorization")
    assert a.log.find(since=before, rpc_method="tools/call") == [], "no backend saw the call"
    assert alice.tool_names() == ["a_echo"], "the DELETE with two credentials did not end the session"


def test_two_identical_authorization_headers_are_refused_too(secured, own_issuer):
    gw, _ = secured
    token = own_issuer.token()

    r = httpx.post(gw.url, headers=twice("Authorization", f"Bearer {token}", f"Bearer {token}"), json=modern_body(), timeout=10)

    assert_ambiguous(r, "Authorization")


def test_two_authorization_headers_are_refused_without_auth_configured(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config(era="legacy")])

    r = httpx.post(
        gw.url,
        headers=twice("Authorization", "Bearer one", "Bearer two"),
        json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
        timeout=10,
    )

    assert_ambiguous(r, "Authorization")
    assert "mcp-session-id" not in r.headers


def test_two_wristband_headers_are_refused(backends, start_gateway, tmp_path):
    a = backends.v2("a")
    _, pub = es256_key_pair(tmp_path, "authorizer")
    wristband = {
        "header": "x-authorized-tools",
        "format": "tools",
        "keys": [{"pem_file": str(pub), "kid": "authz-1"}],
        "issuer": "https://authorizer.test",
        "audience": "mcpgate-broker",
    }
    gw = start_gateway([a.config(era="legacy")], auth={"require_token": False, "permissions": {"sources": [{"wristband": wristband}]}})

    r = httpx.post(
        gw.url,
        headers=twice("x-authorized-tools", "a.b.c", "d.e.f"),
        json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
        timeout=10,
    )

    assert_ambiguous(r, "x-authorized-tools")


# ---------------------------------------------------------------------------------------------
# JSON-RPC ids
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def open_gw(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config(era="legacy")])
    gw.backend = a
    return gw


def assert_bad_id(r: httpx.Response) -> None:
    assert r.status_code == 400, f"HTTP {r.status_code}: {r.text}"
    body = r.json()
    assert body["error"]["code"] == -32600, body
    assert "id must be a string or an integer" in body["error"]["message"], body
    assert body["id"] is None, "a bad id is never echoed"


@pytest.mark.parametrize("case", list(BAD_IDS))
def test_legacy_request_with_an_id_of_another_type_is_400_invalid_request(open_gw, connect, case):
    client = connect(open_gw)
    before = open_gw.backend.log.mark()

    r = client.post_raw(
        {"jsonrpc": "2.0", "id": BAD_IDS[case], "method": "tools/call", "params": {"name": "a_echo", "arguments": {"text": "x"}}}
    )

    assert_bad_id(r)
    assert open_gw.backend.log.find(since=before, rpc_method="tools/call") == []


@pytest.mark.parametrize("case", list(BAD_IDS))
def test_legacy_initialize_with_an_id_of_another_type_creates_no_session(open_gw, case):
    body = {"jsonrpc": "2.0", "id": BAD_IDS[case], "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}}}

    r = McpHttp(open_gw.url).post_raw(body, replace_headers={"Accept": ACCEPT_BOTH, "Content-Type": "application/json"})

    assert_bad_id(r)
    assert "mcp-session-id" not in r.headers


def test_exponent_form_id_is_400_invalid_request(open_gw, connect):
    client = connect(open_gw)

    assert_bad_id(client.post_raw(EXPONENT_BODY))


@pytest.mark.parametrize("case", ["object", "array", "true", "fraction"])
def test_client_response_with_an_id_of_another_type_is_400_invalid_request(open_gw, connect, case):
    client = connect(open_gw)

    r = client.post_raw({"jsonrpc": "2.0", "id": BAD_IDS[case], "result": {}})

    assert_bad_id(r)


@pytest.mark.parametrize("case", list(BAD_IDS))
def test_modern_request_with_an_id_of_another_type_is_400_invalid_request(open_gw, case):
    r = httpx.post(
        open_gw.url,
        headers={"Accept": ACCEPT_BOTH, "Content-Type": "application/json", **MODERN_HEADERS},
        content=json.dumps(modern_body(rpc_id=BAD_IDS[case])),
        timeout=10,
    )

    assert_bad_id(r)


def test_modern_response_with_an_id_of_another_type_is_400_invalid_request(open_gw):
    r = httpx.post(
        open_gw.url,
        headers={"Accept": ACCEPT_BOTH, "Content-Type": "application/json", "MCP-Protocol-Version": MODERN_VERSION},
        content=b'{"jsonrpc":"2.0","id":[7],"result":{"_meta":{}}}',
        timeout=10,
    )

    assert_bad_id(r)


@pytest.mark.parametrize("good", ["req-1", "", 0, -5, 123456789012345678901234567890])
def test_string_and_integer_ids_are_echoed_exactly(open_gw, connect, good):
    client = connect(open_gw)

    r = client.post_raw(json.dumps({"jsonrpc": "2.0", "id": good, "method": "ping"}))

    assert r.status_code == 200, r.text
    assert json.loads(r.text)["id"] == good
