"""Fault injection, identity side: the IdP rotates its signing key while callers are busy, and its
key endpoint fails. Tokens of every still-published key keep working without a single refusal,
tokens of the new key are accepted as soon as they appear, and a key endpoint that fails never
opens the door."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from harness import McpHttp, tool_text
from idp import Idp, header_of


@pytest.fixture
def idp(registry, tmp_path):
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"alice": {"roles": {"a.local": ["echo"]}}}))
    return Idp(registry, ["--users", str(users)])


@pytest.fixture
def secured(backends, start_gateway, idp):
    """Gateway with the IdP as its only issuer, default key settings (refetch at most every 10 s)."""
    a = backends.v2("a")
    gw = start_gateway([a.config(auth={"client_ids": ["a.local"]})], auth={"issuers": [{"issuer": idp.issuer}], "audiences": ["mcpgate"]})
    return gw


def session(gw, token: str) -> McpHttp:
    c = McpHttp(gw.url)
    c.http.headers["Authorization"] = f"Bearer {token}"
    c.initialize()
    return c


def call_ok(c: McpHttp, text: str) -> bool:
    reply = c.call_tool("a_echo", {"text": text})
    return "result" in reply and tool_text(reply["result"]) == text


WORKERS = 8
ROUNDS = 10


def test_key_rotation_under_load_refuses_no_token_of_a_published_key(secured, idp):
    gw = secured
    old_sessions = [session(gw, idp.token("alice")) for _ in range(WORKERS)]
    old_kid = header_of(idp.token("alice"))["kid"]
    failures: list[str] = []
    lock = threading.Lock()
    rotated = threading.Event()

    def old_key_caller(i: int) -> None:
        # Keeps calling on a session opened with a token of the old key, across the rotation.
        for r in range(ROUNDS * 2):
            if r == ROUNDS:
                rotated.wait(30)
            if not call_ok(old_sessions[i], f"old-{i}-{r}"):
                with lock:
                    failures.append(f"old-key session {i} round {r}")

    new_tokens: list[str] = []
    start_new = threading.Barrier(WORKERS)

    def new_key_caller(i: int) -> None:
        # All at once, right after the rotation: each brings a token signed by the new key.
        start_new.wait(30)
        try:
            c = session(gw, new_tokens[i])
            for r in range(ROUNDS):
                if not call_ok(c, f"new-{i}-{r}"):
                    with lock:
                        failures.append(f"new-key session {i} round {r}")
        except AssertionError as e:
            with lock:
                failures.append(f"new-key session {i}: {e}")

    with ThreadPoolExecutor(max_workers=WORKERS * 2) as pool:
        old = [pool.submit(old_key_caller, i) for i in range(WORKERS)]
        idp.reset_stats()
        idp.rotate()  # the old key stays published
        new_tokens.extend(idp.token("alice") for _ in range(WORKERS))
        rotated.set()
        new = [pool.submit(new_key_caller, i) for i in range(WORKERS)]
        for f in old + new:
            f.result(timeout=60)

    assert header_of(new_tokens[0])["kid"] != old_kid, "the IdP signs with a new key"
    assert failures == []
    # Concurrent first sightings of the new key share one refetch.
    assert idp.stats()["jwks_fetches"] <= 2
    assert call_ok(session(gw, idp.token("alice")), "after"), "new sessions keep working"
