"""The signed wristband round trip between two gateway processes: one acts as the external
authorizer (verifies the caller's token, signs what they may call), the other as a broker that
trusts only that signature. Forged, tampered, expired and missing wristbands grant nothing."""

from __future__ import annotations

import json
import time

import httpx
import jwt
import pytest
from harness import Gateway, McpHttp, tool_text
from idp import Idp, es256_key_pair

USERS = {
    "alice": {"roles": {"a.local": ["echo", "add"], "b.local": ["whoami"]}},
    "bob": {"roles": {"b.local": ["echo"]}},
}
ISSUER, AUDIENCE = "https://authorizer.mcpgate.test", "mcpgate-broker"


@pytest.fixture
def pair_of_gateways(backends, registry, mcpgate_bin, tmp_path):
    users = tmp_path / "users.json"
    users.write_text(json.dumps(USERS))
    idp = Idp(registry, ["--users", str(users)])
    a, b = backends.pair()
    servers = [a.config(auth={"client_ids": ["a.local"]}), b.config(auth={"client_ids": ["b.local"]})]
    priv, _ = es256_key_pair(tmp_path, "authorizer")

    authorizer = Gateway(registry, mcpgate_bin, tmp_path / "authorizer")
    (tmp_path / "authorizer").mkdir()
    authorizer.write_config(
        servers,
        auth={
            "issuers": [{"issuer": idp.issuer}],
            "audiences": ["mcpgate"],
            "wristband_issue": {
                "private_key_file": str(priv),
                "kid": "authz-1",
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "format": "tools",
                "ttl": "60s",
            },
        },
    )
    authorizer.start_with_config(ready=["a", "b"])

    # The broker trusts the authorizer's published key, fetched once and pinned in its config.
    jwks_path = tmp_path / "authorizer-jwks.json"
    jwks_path.write_text(httpx.get(authorizer.base + "/.well-known/mcpgate/wristband-jwks.json").text)
    broker = Gateway(registry, mcpgate_bin, tmp_path / "broker")
    (tmp_path / "broker").mkdir()
    broker.write_config(
        servers,
        auth={
            "require_token": False,
            "permissions": {
                "sources": [
                    {
                        "wristband": {
                            "header": "x-authorized-tools",
                            "format": "tools",
                            "keys": [{"jwks_file": str(jwks_path)}],
                            "issuer": ISSUER,
                            "audience": AUDIENCE,
                            "leeway": "0s",
                        }
                    }
                ]
            },
        },
    )
    broker.start_with_config(ready=["a", "b"])
    return idp, authorizer, broker, priv, (a, b)


def wristband_for(idp, authorizer, user: str) -> str:
    r = httpx.post(authorizer.base + "/authorize", headers={"Authorization": f"Bearer {idp.token(user)}"})
    assert r.status_code == 200, r.text
    assert r.headers["x-authorized-tools"] == r.json()["wristband"]
    return r.json()["wristband"]


def broker_client(broker, wristband: str | None) -> McpHttp:
    c = McpHttp(broker.url)
    if wristband is not None:
        c.http.headers["x-authorized-tools"] = wristband
    c.initialize()
    return c


def test_broker_shows_exactly_what_the_authorizer_signed(pair_of_gateways):
    idp, authorizer, broker, _, _ = pair_of_gateways
    band = wristband_for(idp, authorizer, "alice")

    claims = jwt.decode(band, options={"verify_signature": False})
    assert claims["iss"] == ISSUER and claims["sub"] == "user-alice"
    assert json.loads(claims["allowed-tools"]) == {"a.local": ["add", "echo"], "b.local": ["whoami"]}

    alice = broker_client(broker, band)
    assert alice.tool_names() == ["a_add", "a_echo", "b_whoami"]
    assert tool_text(alice.call_tool("b_whoami")["result"]) == "b"
    bob = broker_client(broker, wristband_for(idp, authorizer, "bob"))
    assert bob.tool_names() == ["b_echo"]
    assert bob.call_tool("a_echo", {"text": "x"})["error"]["message"] == "Unknown tool: a_echo"


def test_authorizer_refuses_to_sign_without_a_valid_token(pair_of_gateways):
    _, authorizer, _, _, _ = pair_of_gateways
    assert httpx.post(authorizer.base + "/authorize").status_code == 401
    assert httpx.post(authorizer.base + "/authorize", headers={"Authorization": "Bearer nope"}).status_code == 401


def forged(priv_path, **claims) -> str:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-bob",
        "iat": now,
        "exp": now + 60,
        "allowed-tools": json.dumps({"a.local": ["echo"]}),
    }
    body.update(claims)
    return jwt.encode(
        {k: v for k, v in body.items() if v is not None},
        priv_path.read_bytes(),
        algorithm="ES256",
        headers={"kid": "authz-1"},
    )


def test_missing_tampered_expired_and_foreign_wristbands_grant_nothing(pair_of_gateways, tmp_path):
    idp, authorizer, broker, priv, (a, b) = pair_of_gateways
    genuine = wristband_for(idp, authorizer, "bob")
    header, payload, sig = genuine.split(".")
    widened = json.loads(jwt.utils.base64url_decode(payload))
    widened["allowed-tools"] = json.dumps({"a.local": ["echo", "add"], "b.local": ["echo", "whoami"]})
    tampered = ".".join([header, jwt.utils.base64url_encode(json.dumps(widened).encode()).decode(), sig])
    other_priv, _ = es256_key_pair(tmp_path, "stranger")
    cases = {
        "missing": None,
        "tampered": tampered,
        "expired": forged(priv, exp=int(time.time()) - 5),
        "no exp": forged(priv, exp=None),
        "wrong issuer": forged(priv, iss="https://someone-else"),
        "wrong audience": forged(priv, aud="another-broker"),
        "signed by another key": forged(other_priv),
        "not a JWT": "garbage",
    }
    before = a.log.calls() + b.log.calls()
    for case, band in cases.items():
        c = broker_client(broker, band)
        assert c.tool_names() == [], case
        assert c.call_tool("a_echo", {"text": "x"})["error"]["message"] == "Unknown tool: a_echo", case
    assert a.log.calls() + b.log.calls() == before, "no denied call reached a backend"
    # the genuine one still works, so the refusals above were about the wristbands
    assert broker_client(broker, genuine).tool_names() == ["b_echo"]


def test_authorizer_does_not_trust_a_wristband_the_client_brings(pair_of_gateways):
    idp, authorizer, _, priv, (a, _) = pair_of_gateways
    c = McpHttp(authorizer.url)
    c.http.headers["Authorization"] = f"Bearer {idp.token('bob')}"
    c.http.headers["x-authorized-tools"] = forged(priv, **{"allowed-tools": json.dumps({"a.local": ["echo"]})})
    c.initialize()
    assert c.tool_names() == ["b_echo"], "the gateway that issues wristbands ignores client-supplied ones"
    assert c.call_tool("a_echo", {"text": "x"})["error"]["message"] == "Unknown tool: a_echo"
    assert "echo" not in a.log.calls()


def test_broker_session_stays_with_the_wristband_subject_that_opened_it(pair_of_gateways):
    idp, authorizer, broker, _, (a, _) = pair_of_gateways
    alice = broker_client(broker, wristband_for(idp, authorizer, "alice"))
    bob = McpHttp(broker.url)
    bob.http.headers["x-authorized-tools"] = wristband_for(idp, authorizer, "bob")
    bob.session_id, bob.protocol_version = alice.session_id, alice.protocol_version

    r = bob.post_raw({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "a_echo", "arguments": {"text": "x"}}})

    assert r.status_code == 403
    assert "echo" not in a.log.calls()
    assert alice.tool_names() == ["a_add", "a_echo", "b_whoami"]
