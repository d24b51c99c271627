"""Identity and per-user permissions against a real OpenID provider (tests/fixtures/oidc):
tokens are verified, lists are filtered per caller, calls are enforced on the parsed body, and
every way of presenting a bad identity is refused before any backend is reached."""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest
from harness import ACCEPT_BOTH, REPO, McpHttp, tool_text
from idp import (
    Idp,
    OwnIssuer,
    claims_of,
    header_of,
    hs256_with_public_key,
    public_pem_of_jwk,
    unsigned,
)

# Users' roles in the IdP, keyed by the client ids the servers are configured with.
USERS = {
    "alice": {"roles": {"a.local": ["echo", "add"], "b.local": ["whoami"]}},
    "bob": {"roles": {"b.local": ["echo"]}},
    "carol": {"roles": {}},
}


@pytest.fixture
def idp(registry, tmp_path):
    users = tmp_path / "users.json"
    users.write_text(json.dumps(USERS))
    return Idp(registry, ["--users", str(users)])


@pytest.fixture
def own_issuer(tmp_path):
    return OwnIssuer(tmp_path)


@pytest.fixture
def secured(backends, start_gateway, idp, own_issuer):
    """Gateway with servers a and b, tokens from the IdP (and from the test's own issuer)."""
    a, b = backends.pair()
    auth = {
        "issuers": [{"issuer": idp.issuer}, own_issuer.config()],
        "audiences": ["mcpgate"],
        # Rotation tests need the unknown-kid refetch sooner than the 10 s default allows.
        "jwks": {"refresh_min_interval": "1s"},
    }
    gw = start_gateway(
        [a.config(auth={"client_ids": ["a.local"]}), b.config(auth={"client_ids": ["b.local"]})], auth=auth
    )
    return gw, a, b


def client(gw, token: str | None) -> McpHttp:
    c = McpHttp(gw.url)
    if token is not None:
        c.http.headers["Authorization"] = f"Bearer {token}"
    return c


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def initialize_with(gw, token: str | None):
    """A raw initialize carrying `token` (or none): the response, whatever its status."""
    headers = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return McpHttp(gw.url).post_raw(INITIALIZE, replace_headers=headers)


def calls_received(*backends_) -> list[str]:
    return [name for b in backends_ for name in b.log.calls()]


def test_alice_sees_exactly_her_tools_across_backends(secured, idp):
    gw, a, b = secured
    alice = client(gw, idp.token("alice"))
    alice.initialize()

    assert alice.tool_names() == ["a_add", "a_echo", "b_whoami"]
    assert tool_text(alice.call_tool("a_add", {"a": 1, "b": 2})["result"]) == "3"
    assert tool_text(alice.call_tool("b_whoami")["result"]) == "b"


def test_bob_sees_his_tools_and_a_user_without_roles_sees_none(secured, idp):
    gw, _, _ = secured
    bob = client(gw, idp.token("bob"))
    bob.initialize()
    carol = client(gw, idp.token("carol"))
    carol.initialize()

    assert bob.tool_names() == ["b_echo"]
    assert carol.tool_names() == []
    assert carol.result("prompts/list")["prompts"] == []


def test_hidden_tool_is_refused_like_an_unknown_one_and_the_backend_gets_nothing(secured, idp):
    gw, a, b = secured
    bob = client(gw, idp.token("bob"))
    bob.initialize()

    hidden = bob.call_tool("a_echo", {"text": "x"})
    unknown = bob.call_tool("a_no_such_tool", {"text": "x"})

    assert hidden["error"]["code"] == unknown["error"]["code"] == -32602
    assert hidden["error"]["message"] == "Unknown tool: a_echo"
    assert unknown["error"]["message"] == "Unknown tool: a_no_such_tool"
    assert "echo" not in a.log.calls(), "a denied call must never reach the backend"


def test_hidden_prompt_and_resource_are_refused(secured, idp):
    gw, a, _ = secured
    alice = client(gw, idp.token("alice"))
    alice.initialize()

    prompt = alice.request("prompts/get", {"name": "a_greet", "arguments": {"who": "x"}})
    resource = alice.request("resources/read", {"uri": "a+fixture://a/static"})

    assert prompt["error"]["message"] == "Unknown prompt: a_greet"
    assert resource["error"]["code"] == -32002
    assert a.log.find(rpc_method="prompts/get") == [] and a.log.find(rpc_method="resources/read") == []


def bad_tokens(idp, own_issuer):
    good = idp.token("alice")
    jwk = idp.jwks()["keys"][0]
    now = int(time.time())
    return {
        "malformed": "not.a.jwt",
        "garbage": "x" * 40,
        "expired": own_issuer.token(exp=now - 600, iat=now - 900),
        "not yet valid": own_issuer.token(nbf=now + 600),
        "wrong issuer": own_issuer.token(iss="https://evil.example"),
        "wrong audience": idp.token("alice", audience="someone-else"),
        "token for another resource": idp.token("alice", audience="b.local"),
        "bad signature": own_issuer.foreign_token(),
        "tampered payload": good.split(".")[0]
        + "."
        + unsigned({}, {**claims_of(good), "sub": "user-bob"}).split(".")[1]
        + "."
        + good.split(".")[2],
        "alg none": unsigned({**json.loads('{"alg":"none","typ":"JWT"}'), "kid": jwk["kid"]}, claims_of(good)),
        "HS256 with the public key": hs256_with_public_key(good, public_pem_of_jwk(jwk)),
    }


def test_every_bad_token_gets_401_and_reaches_no_backend(secured, idp, own_issuer):
    gw, a, b = secured
    before = calls_received(a, b)
    cases = {"no token": None, **bad_tokens(idp, own_issuer)}
    for case, token in cases.items():
        r = initialize_with(gw, token)
        assert r.status_code == 401, f"{case}: {r.status_code} {r.text}"
        challenge = r.headers.get("www-authenticate", "")
        assert challenge.startswith("Bearer ") and "resource_metadata=" in challenge, f"{case}: {challenge!r}"
        if token is not None:
            assert 'error="invalid_token"' in challenge, f"{case}: {challenge!r}"
        assert "mcp-session-id" not in r.headers, case
    assert calls_received(a, b) == before


def test_bad_token_on_an_open_session_is_refused(secured, idp, own_issuer):
    gw, a, _ = secured
    alice = client(gw, idp.token("alice"))
    alice.initialize()
    for case, token in bad_tokens(idp, own_issuer).items():
        r = alice.post_raw(
            {
                "jsonrpc": "2.0",
                "id": 5,
                "method": "tools/call",
                "params": {"name": "a_echo", "arguments": {"text": "x"}},
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 401, f"{case}: {r.status_code}"
    assert "echo" not in a.log.calls()


def test_session_reused_with_another_users_token_is_refused(secured, idp):
    gw, a, _ = secured
    alice = client(gw, idp.token("alice"))
    alice.initialize()
    stolen = client(gw, idp.token("bob"))
    stolen.session_id, stolen.protocol_version = alice.session_id, alice.protocol_version

    r = stolen.post_raw(
        {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "a_echo", "arguments": {"text": "x"}}}
    )
    get = stolen.http.get(gw.url, headers=stolen.headers({"Accept": "text/event-stream"}))
    delete = stolen.http.delete(gw.url, headers=stolen.headers())

    assert r.status_code == 403 and get.status_code == 403 and delete.status_code == 403
    assert "echo" not in a.log.calls()
    assert alice.tool_names() == ["a_add", "a_echo", "b_whoami"], "the owner's session still works"


def test_new_signing_key_is_picked_up_without_restart(secured, idp):
    gw, _, _ = secured
    before = idp.token("alice")
    client(gw, before).initialize()

    idp.rotate()
    after = idp.token("alice")
    time.sleep(1.2)  # the gateway refetches keys at most once a second (configured above)

    assert claims_of(after) and before.split(".")[0] != after.split(".")[0], "the IdP signs with a new kid"
    c = client(gw, after)
    c.initialize()
    assert c.tool_names() == ["a_add", "a_echo", "b_whoami"]


def test_token_whose_key_was_removed_is_refused(secured, idp):
    gw, _, _ = secured
    old = idp.token("alice")
    idp.rotate(drop_old=True)
    time.sleep(1.2)  # past the JWKS refresh rate limit, so the gateway can see the new set

    r = initialize_with(gw, old)
    assert r.status_code == 401, r.text
    fresh = client(gw, idp.token("alice"))
    fresh.initialize()


def test_key_replaced_under_the_same_kid_is_picked_up_at_once_and_the_replaced_key_is_refused(backends, start_gateway, idp):
    a = backends.v2("a")
    # No refetch interval: the first token of the new key must be accepted (with the default
    # 10 s, a token within 10 s of the last fetch would wait for the next one).
    auth = {"issuers": [{"issuer": idp.issuer}], "audiences": ["mcpgate"], "jwks": {"refresh_min_interval": "0s"}}
    gw = start_gateway([a.config(auth={"client_ids": ["a.local"]})], auth=auth)
    before = idp.token("alice")
    old_session = client(gw, before)
    old_session.initialize()
    assert old_session.tool_names() == ["a_add", "a_echo"], "the old token is verified and remembered"

    idp.rotate(same_kid=True)
    after = idp.token("alice")
    assert header_of(after)["kid"] == header_of(before)["kid"] and after.split(".")[2] != before.split(".")[2]

    fresh = client(gw, after)
    fresh.initialize()
    assert fresh.tool_names() == ["a_add", "a_echo"], "the first token of the replaced key is accepted"
    r = old_session.post_raw({"jsonrpc": "2.0", "id": 99, "method": "tools/list"})
    assert r.status_code == 401, f"a token of the replaced key is refused, even remembered: {r.status_code} {r.text}"
    assert 'error="invalid_token"' in r.headers.get("www-authenticate", "")


def test_protected_resource_metadata_names_the_issuer(secured, idp):
    gw, _, _ = secured
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        meta = httpx.get(gw.base + path).json()
        assert meta["resource"] == gw.url
        assert idp.issuer in meta["authorization_servers"]
        assert meta["bearer_methods_supported"] == ["header"]
    r = httpx.post(gw.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Accept": ACCEPT_BOTH})
    assert f'resource_metadata="{gw.base}/.well-known/oauth-protected-resource/mcp"' in r.headers["www-authenticate"]


def test_missing_scope_gets_403_insufficient_scope(backends, start_gateway, idp):
    a = backends.v2("a")
    gw = start_gateway(
        [a.config(auth={"client_ids": ["a.local"]})],
        auth={"issuers": [{"issuer": idp.issuer}], "audiences": ["mcpgate"], "required_scopes": ["mcp:tools"]},
    )
    r = initialize_with(gw, idp.token("alice"))
    assert r.status_code == 403
    assert (
        'error="insufficient_scope"' in r.headers["www-authenticate"]
        and 'scope="mcp:tools"' in r.headers["www-authenticate"]
    )
    ok = client(gw, idp.token("alice", scope="openid mcp:tools"))
    ok.initialize()
    assert ok.tool_names() == ["a_add", "a_echo"]


def test_modern_request_naming_a_permitted_tool_in_headers_cannot_call_a_forbidden_one(secured, idp):
    gw, a, _ = secured
    bob = client(gw, idp.token("bob"))
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "a_echo",
            "arguments": {"text": "x"},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }
    r = bob.post_raw(
        body, headers={"Mcp-Method": "tools/call", "Mcp-Name": "b_echo", "MCP-Protocol-Version": "2026-07-28"}
    )
    assert r.status_code == 400
    assert "echo" not in a.log.calls()


def test_client_supplied_wristband_and_internal_headers_never_reach_a_backend(secured, idp):
    gw, _, b = secured
    bob = client(gw, idp.token("bob"))
    bob.initialize()
    forged = {
        "x-mcp-authorized": "eyJhbGciOiJFUzI1NiJ9.e30.x",
        "x-authorized-tools": "forged",
        "x-mcp-toolname": "echo",
    }
    mark = b.log.mark()

    reply = bob.request("tools/call", {"name": "b_echo", "arguments": {"text": "hi"}}, headers=forged)
    hidden = bob.request("tools/call", {"name": "a_echo", "arguments": {"text": "hi"}}, headers=forged)

    assert tool_text(reply["result"]) == "hi"
    assert hidden["error"]["message"] == "Unknown tool: a_echo", "a forged wristband grants nothing"
    for entry in b.log.find(since=mark):
        headers = {k.lower() for k in entry.get("headers", {})}
        assert not headers & set(forged), headers
        assert "authorization" not in headers, "the caller's token must never reach a backend"


def test_audit_lines_are_structured_json_and_no_log_line_holds_a_token(backends, start_gateway, idp):
    a, b = backends.pair()
    gw = start_gateway(
        [a.config(auth={"client_ids": ["a.local"]}), b.config(auth={"client_ids": ["b.local"]})],
        auth={"issuers": [{"issuer": idp.issuer}], "audiences": ["mcpgate"]},
        env={"MCPGATE_LOG_FORMAT": "json"},
    )
    token = idp.token("bob")
    bob = client(gw, token)
    bob.initialize()
    bob.call_tool("b_echo", {"text": "x"})
    bob.call_tool("a_echo", {"text": "x"})

    log = gw.stderr()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    audit = [
        l for l in lines if l.get("target") == "mcpgate::audit" and l["fields"].get("message") == "access decision"
    ]
    decisions = [
        (l["fields"]["subject"], l["fields"]["server"], l["fields"]["name"], l["fields"]["decision"]) for l in audit
    ]
    assert decisions == [("user-bob", "b", "echo", "allow"), ("user-bob", "a", "echo", "deny")]
    assert all(l["timestamp"] and l["fields"]["reason"] and l["fields"]["request_id"] for l in audit)
    assert token not in log and token.split(".")[2] not in log


def test_identity_example_config_serves_alice_only_her_tools(backends, gateway, registry, tmp_path):
    users = tmp_path / "seed-users.json"
    users.write_text(
        json.dumps(
            {
                "alice": {"roles": {"codereview.local": ["echo", "add"], "github.mcp.local": ["whoami"]}},
                "bob": {"roles": {"github.mcp.local": ["echo"]}},
            }
        )
    )
    seed_idp = Idp(registry, ["--users", str(users)])
    a, b = backends.pair()
    env = {
        "MCPGATE_ISSUER": seed_idp.issuer,
        "CODEREVIEW_URL": a.url,
        "GITHUB_URL": b.url,
        "WEATHER_URL": backends.dead_url(),
    }
    text = (REPO / "examples" / "identity.yaml").read_text().replace("127.0.0.1:8080", f"127.0.0.1:{gateway.port}")
    gateway.write_raw_config(text)
    gateway.start_with_config(env=env, ready=["codereview", "github"])

    alice = client(gateway, seed_idp.token("alice"))
    alice.initialize()
    bob = client(gateway, seed_idp.token("bob"))
    bob.initialize()

    assert alice.tool_names() == ["codereview_add", "codereview_echo", "github_whoami"]
    assert tool_text(alice.call_tool("github_whoami")["result"]) == "b"
    assert bob.tool_names() == ["github_echo"]
    assert bob.call_tool("codereview_echo", {"text": "x"})["error"]["message"] == "Unknown tool: codereview_echo"


def test_official_python_sdk_client_with_a_token_sees_and_calls_only_its_tools(secured, idp):
    import httpx2
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError
    from sdk2 import run

    gw, a, _ = secured

    async def scenario():
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {idp.token('bob')}"})
        async with Client(streamable_http_client(gw.url, http_client=http)) as c:
            names = [t.name for t in (await c.list_tools()).tools]
            allowed = await c.call_tool("b_echo", {"text": "hi"})
            try:
                await c.call_tool("a_echo", {"text": "hi"})
                denied = "called"
            except MCPError as e:
                denied = str(e)
            return names, allowed, denied

    names, allowed, denied = run(scenario)

    assert names == ["b_echo"]
    assert allowed.content[0].text == "hi"
    assert denied == "Unknown tool: a_echo"
    assert "echo" not in a.log.calls()
