"""Fault injection, dependency side: the IdP's token endpoint and keys, and Vault (OpenBao), each
behind a fault-injecting proxy (tests/fixtures/python/fault_proxy.py) that makes them answer 500
or 503 or answer slowly. The call that needs the failing dependency gets a clear error naming
the server and the credential source within the dependency's timeout (plus a margin, as a hang
guard), the calls that do not need it keep working, nothing stays broken once the dependency
recovers, and failing keys never let an unverifiable token in."""

from __future__ import annotations

import json
import sys
import time

import httpx
import pytest
from harness import PY_FIXTURES, McpHttp, free_port, tool_text, wait_until
from idp import Idp, header_of
from test_credentials import login, seed_backend
from vault import Bao

DEP_TIMEOUT = 2  # vault.timeout and token_exchange.timeout below
MARGIN = 5


class FaultProxy:
    """fault_proxy.py in front of a real service."""

    def __init__(self, registry, name: str, upstream: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = registry.start(f"proxy-{name}", [sys.executable, str(PY_FIXTURES / "fault_proxy.py"), "--name", name, "--port", str(self.port), "--upstream", upstream])
        wait_until(lambda: "FIXTURE READY" in self.proc.stdout(), 20, what=f"proxy {name} ready")

    def fault(self, path: str, **spec) -> None:
        r = httpx.post(f"{self.url}/__fault", json={"path": path, **spec}, timeout=5)
        assert r.status_code == 200, r.text

    def clear(self, path: str) -> None:
        self.fault(path, clear=True)


@pytest.fixture
def world(registry, tmp_path, backends):
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"alice": {"roles": {"codereview.local": ["analyze_pr"], "weather.local": ["get_forecast"], "bravo.local": ["echo"]}}}))
    idp = Idp(registry, ["--users", str(users)])
    bao = Bao(registry, tmp_path)
    bao.put("alice/weather.local", token="wk_alice_test_api_key")
    idp_proxy = FaultProxy(registry, "idp", idp.issuer)
    bao_proxy = FaultProxy(registry, "bao", bao.addr)
    review, weather = seed_backend(registry, "codereview"), seed_backend(registry, "weather")
    bravo = backends.v2("bravo", start=False)
    for b in (review, weather, bravo):
        b.wait_ready()
    return idp, idp_proxy, bao_proxy, review, weather, bravo


def start(gateway, world, **jwks):
    idp, idp_proxy, bao_proxy, review, weather, bravo = world
    servers = [
        {**review.config(), "auth": {"client_ids": ["codereview.local"]}, "credentials": [{"token_exchange": {"audience": "codereview.local"}}]},
        {**weather.config(), "auth": {"client_ids": ["weather.local"]}, "credentials": [{"vault": {"path": "{username}/weather.local", "header": "X-API-Key"}}]},
        bravo.config(auth={"client_ids": ["bravo.local"]}),
    ]
    issuer = {"issuer": idp.issuer, "jwks_uri": f"{idp_proxy.url}/jwks"}
    gateway.write_config(
        servers,
        auth={"issuers": [issuer], "audiences": ["mcpgate"], "jwks": jwks or {}},
        credentials={
            "vault": {"address": bao_proxy.url, "auth": {"token": {"value": "root"}}, "cache_ttl": "0s", "timeout": f"{DEP_TIMEOUT}s"},
            "token_exchange": {
                "client_id": "mcpgate",
                "client_secret": {"value": "mcpgate-secret"},
                "token_endpoint": f"{idp_proxy.url}/token",
                "timeout": f"{DEP_TIMEOUT}s",
            },
        },
    )
    return gateway.start_with_config(ready=[s["name"] for s in servers])


def timed_call(client: McpHttp, tool: str) -> tuple[dict, float]:
    started = time.monotonic()
    reply = client.call_tool(tool)
    return reply, time.monotonic() - started


FAULTS = {"500": {"status": 500}, "503": {"status": 503}, "slow": {"delay_ms": (DEP_TIMEOUT + 2) * 1000}}


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize(
    ("dependency", "path", "broken", "source"),
    [("vault", "/v1/secret/", "weather_get_forecast", "vault"), ("idp", "/token", "codereview_analyze_pr", "token_exchange")],
    ids=["vault", "idp-token-endpoint"],
)
def test_a_failing_dependency_fails_only_the_calls_that_need_it_clearly_and_not_for_long(world, gateway, dependency, path, broken, source, fault):
    idp, idp_proxy, bao_proxy, *_ = world
    proxy = bao_proxy if dependency == "vault" else idp_proxy
    gw = start(gateway, world)
    alice, _ = login(gw, idp, "alice")
    healthy = "codereview_analyze_pr" if dependency == "vault" else "weather_get_forecast"

    proxy.fault(path, **FAULTS[fault])
    reply, elapsed = timed_call(alice, broken)

    assert elapsed < DEP_TIMEOUT + MARGIN
    error = reply["error"]
    server = broken.split("_")[0]
    assert error["code"] == -32603
    assert server in error["message"] and source in error["message"], error
    if fault != "slow":
        assert fault in error["message"], f"the status is named: {error}"
    else:
        assert "timed out" in error["message"] or "time" in error["message"], error
    assert tool_text(alice.call_tool(healthy)["result"]).endswith(" ok"), "calls not needing it keep working"
    assert tool_text(alice.call_tool("bravo_echo", {"text": "x"})["result"]) == "x"

    proxy.clear(path)
    assert tool_text(alice.call_tool(broken)["result"]).endswith(" ok"), "nothing stays broken after recovery"


def test_failing_issuer_keys_keep_known_keys_working_and_never_admit_an_unverifiable_token(world, gateway):
    idp, idp_proxy, *_ = world
    gw = start(gateway, world, refresh_min_interval="1s")
    before = idp.token("alice")
    alice, _ = login(gw, idp, "alice")

    idp_proxy.fault("/jwks", status=500)
    # Known key: new sessions with new tokens of that key are verified from the cached keys.
    again = McpHttp(gw.url)
    again.http.headers["Authorization"] = f"Bearer {idp.token('alice')}"
    again.initialize()
    assert tool_text(again.call_tool("bravo_echo", {"text": "cached keys"})["result"]) == "cached keys"

    idp.rotate()
    rotated = idp.token("alice")
    assert header_of(rotated)["kid"] != header_of(before)["kid"]
    r = httpx.post(gw.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={**alice.headers(), "Authorization": f"Bearer {rotated}"})
    assert r.status_code in (401, 503), f"a token whose key cannot be fetched is refused: {r.status_code} {r.text}"
    assert tool_text(alice.call_tool("bravo_echo", {"text": "old session"})["result"]) == "old session"

    idp_proxy.clear("/jwks")

    def accepted() -> bool:
        c = httpx.post(gw.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={**alice.headers(), "Authorization": f"Bearer {rotated}"})
        return c.status_code != 401 and c.status_code != 503

    wait_until(accepted, 15, interval=0.5, what="the new key accepted once the keys can be fetched again")
