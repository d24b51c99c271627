"""Session quotas: one caller cannot lock everyone else out of legacy sessions.

- `limits.max_sessions_per_principal`: a principal at its quota gets 429 / -32029 with a reason,
  unless one of its own sessions has been idle `limits.evict_idle_after`, which then makes room.
  Other principals are not affected.
- `limits.max_sessions` (the whole pool): when full, an idle session of the principal holding the
  most sessions makes room; with none idle long enough, 503.
- `limits.refuse_sessions_without_access`: a caller whose permissions show nothing gets 403.
Real OpenID provider (tests/fixtures/oidc); tokens carry Keycloak-style roles."""

from __future__ import annotations

import json
import time

import pytest
from harness import ACCEPT_BOTH, McpHttp, wait_until
from idp import Idp

USERS = {
    "alice": {"roles": {"a.local": ["echo"]}},
    "bob": {"roles": {"a.local": ["echo"]}},
    "carol": {"roles": {}},
}

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


@pytest.fixture
def idp(registry, tmp_path):
    users = tmp_path / "users.json"
    users.write_text(json.dumps(USERS))
    return Idp(registry, ["--users", str(users)])


def gateway(backends, start_gateway, idp, **limits):
    a = backends.v2("a")
    auth = {"issuers": [{"issuer": idp.issuer}], "audiences": ["mcpgate"]}
    return start_gateway([a.config(auth={"client_ids": ["a.local"]})], auth=auth, limits=limits)


def initialize(gw, token: str):
    headers = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    return McpHttp(gw.url).post_raw(INITIALIZE, replace_headers=headers)


def session_works(gw, token: str, session_id: str) -> int:
    headers = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json", "Authorization": f"Bearer {token}", "Mcp-Session-Id": session_id}
    body = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    return McpHttp(gw.url).post_raw(body, replace_headers=headers).status_code


def test_a_principal_at_its_session_quota_is_refused_and_others_are_not(backends, start_gateway, idp):
    gw = gateway(backends, start_gateway, idp, max_sessions_per_principal=2, evict_idle_after="1h")
    alice, bob = idp.token("alice"), idp.token("bob")
    assert [initialize(gw, alice).status_code for _ in range(2)] == [200, 200]

    third = initialize(gw, alice)
    assert third.status_code == 429
    assert third.json()["error"]["code"] == -32029
    assert "already holds 2 sessions" in third.json()["error"]["message"]
    assert initialize(gw, bob).status_code == 200


def test_an_idle_session_of_the_same_principal_makes_room(backends, start_gateway, idp):
    gw = gateway(backends, start_gateway, idp, max_sessions_per_principal=2, evict_idle_after="1s")
    alice = idp.token("alice")
    oldest = initialize(gw, alice).headers["mcp-session-id"]
    time.sleep(1.2)  # oldest becomes evictable (a quota rule, not a timing assertion)
    recent = initialize(gw, alice).headers["mcp-session-id"]
    assert session_works(gw, alice, recent) == 200

    third = initialize(gw, alice)
    assert third.status_code == 200
    assert session_works(gw, alice, oldest) == 404, "the longest-idle session made room"
    assert session_works(gw, alice, recent) == 200


def test_a_full_pool_takes_room_from_the_principal_holding_most_sessions(backends, start_gateway, idp):
    gw = gateway(backends, start_gateway, idp, max_sessions=3, max_sessions_per_principal=10, evict_idle_after="1s")
    alice, bob = idp.token("alice"), idp.token("bob")
    alices = [initialize(gw, alice).headers["mcp-session-id"] for _ in range(2)]
    bobs = initialize(gw, bob).headers["mcp-session-id"]
    time.sleep(1.2)
    assert session_works(gw, bob, bobs) == 200  # bob's session is recent again

    newcomer = initialize(gw, bob)
    assert newcomer.status_code == 200
    assert sorted(session_works(gw, alice, s) for s in alices) == [200, 404], "one of alice's made room"
    assert session_works(gw, bob, bobs) == 200


def test_a_full_pool_with_nothing_idle_refuses_with_503(backends, start_gateway, idp):
    gw = gateway(backends, start_gateway, idp, max_sessions=2, evict_idle_after="1h")
    alice = idp.token("alice")
    assert [initialize(gw, alice).status_code for _ in range(2)] == [200, 200]
    full = initialize(gw, idp.token("bob"))
    assert full.status_code == 503
    assert "too many sessions" in full.json()["error"]["message"]


def test_a_caller_who_may_see_nothing_gets_no_session_when_configured(backends, start_gateway, idp):
    gw = gateway(backends, start_gateway, idp, refuse_sessions_without_access=True)
    refused = initialize(gw, idp.token("carol"))
    assert refused.status_code == 403
    assert "may use no tool, prompt or resource" in refused.json()["error"]["message"]
    assert initialize(gw, idp.token("alice")).status_code == 200


def test_without_the_setting_a_caller_who_sees_nothing_still_gets_a_session(backends, start_gateway, idp):
    gw = gateway(backends, start_gateway, idp)
    carol = idp.token("carol")
    r = initialize(gw, carol)
    assert r.status_code == 200
    wait_until(lambda: session_works(gw, carol, r.headers["mcp-session-id"]) == 200, 5, what="carol's empty session answers")
