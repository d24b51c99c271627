"""Per-user catalogs (`catalog: per_user`): an official SDK server that lists different tools to
different users, reached with each user's own exchanged token from the real OpenID provider.
Two users see their own backend-side lists merged with the shared catalog; a listing is reused
(no backend round trip) until the backend announces a change; calls are routed and permitted
against the caller's own list; both backend eras."""

from __future__ import annotations

import base64
import json

import pytest
from harness import McpHttp, tool_text, wait_until
from idp import Idp

USERS = {
    "alice": {"roles": {"catalog.local": ["echo", "for_alice", "for_alice_extra", "add_mine"], "a.local": ["echo"]}},
    "bob": {"roles": {"catalog.local": ["for_bob", "for_alice"]}},
}


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def listed_by(backend, user: str) -> list[dict]:
    """The backend's tools/list answers to `user` (its own log of what it showed)."""
    return backend.log.find(event="tools_listed", user=user)


@pytest.fixture(params=["legacy", "auto"], ids=["legacy-backend", "modern-backend"])
def world(request, backends, start_gateway, registry, tmp_path):
    users = tmp_path / "users.json"
    users.write_text(json.dumps(USERS))
    idp = Idp(registry, ["--users", str(users), "--audiences", "catalog.local"])
    cat = backends.v2("cat", flags=["--per-user-tools"], start=False)
    a = backends.v2("a", start=False)
    backends.ready(cat, a)
    servers = [
        cat.config(
            era=request.param,
            catalog="per_user",
            catalog_ttl="10m",
            auth={"client_ids": ["catalog.local"]},
            credentials=[{"token_exchange": {"audience": "catalog.local"}}],
        ),
        a.config(auth={"client_ids": ["a.local"]}),
    ]
    gw = start_gateway(
        servers,
        auth={"issuers": [{"issuer": idp.issuer}], "audiences": ["mcpgate"]},
        credentials={"token_exchange": {"client_id": "mcpgate", "client_secret": {"value": "mcpgate-secret"}}},
    )
    return gw, idp, cat, a


def login(gw, idp, user: str) -> McpHttp:
    c = McpHttp(gw.url)
    c.http.headers["Authorization"] = f"Bearer {idp.token(user)}"
    c.initialize()
    return c


def test_two_users_see_their_own_backend_side_lists_merged_with_the_shared_catalog(world):
    gw, idp, cat, a = world
    alice, bob = login(gw, idp, "alice"), login(gw, idp, "bob")

    assert alice.tool_names() == ["a_echo", "cat_add_mine", "cat_echo", "cat_for_alice"]
    assert bob.tool_names() == ["cat_for_bob"], "bob's role for for_alice does not list what his backend does not show him"
    assert gw.server_status("cat")["tools"] == 0, "the shared catalog holds none of a per-user server's items"

    # Each list came from the backend with that user's own exchanged token, never the caller's.
    assert [e["tools"] for e in listed_by(cat, "alice")][-1:] and "for_alice" in listed_by(cat, "alice")[-1]["tools"]
    assert "for_alice" not in listed_by(cat, "bob")[-1]["tools"]
    for entry in cat.log.find(rpc_method="tools/list"):
        token = entry["headers"].get("authorization", "").removeprefix("Bearer ")
        if token:
            assert claims(token)["aud"] == "catalog.local"


def test_a_cached_listing_costs_no_backend_round_trip_until_the_backend_announces_a_change(world):
    gw, idp, cat, _ = world
    alice = login(gw, idp, "alice")
    assert "cat_for_alice" in alice.tool_names()
    fetched = len(listed_by(cat, "alice"))
    for _ in range(3):
        assert "cat_for_alice" in alice.tool_names()
    assert tool_text(alice.call_tool("cat_echo", {"text": "hi"})["result"]) == "hi"
    assert len(listed_by(cat, "alice")) == fetched, "lists and calls were answered from the cached listing"

    added = alice.call_tool("cat_add_mine", {"suffix": "extra"})
    assert tool_text(added["result"]) == "added for_alice_extra"
    wait_until(lambda: "cat_for_alice_extra" in alice.tool_names(), 15, what="alice's new tool after list_changed")
    assert len(listed_by(cat, "alice")) > fetched, "the announced change made the gateway list again"
    assert tool_text(alice.call_tool("cat_for_alice_extra")["result"]) == "alice's extra"
    assert "cat_for_alice_extra" not in login(gw, idp, "bob").tool_names()


def test_calls_are_routed_and_permitted_against_the_callers_own_list(world):
    gw, idp, cat, _ = world
    alice, bob = login(gw, idp, "alice"), login(gw, idp, "bob")
    assert tool_text(alice.call_tool("cat_for_alice")["result"]) == "for alice"
    assert tool_text(bob.call_tool("cat_for_bob")["result"]) == "for bob"
    (call,) = [e for e in cat.log.find(rpc_method="tools/call", name="for_bob")]
    assert claims(call["headers"]["authorization"].removeprefix("Bearer "))["preferred_username"] == "bob"

    mark = cat.log.mark()
    # Permitted by bob's roles, but not in bob's own list: unknown, and the backend never hears of it.
    assert bob.call_tool("cat_for_alice")["error"] == {"code": -32602, "message": "Unknown tool: cat_for_alice"}
    # Neither in alice's own list nor among her roles: unknown too.
    assert alice.call_tool("cat_for_bob")["error"]["message"] == "Unknown tool: cat_for_bob"
    assert cat.log.find(since=mark, rpc_method="tools/call") == []
