"""The seed's Alice story end to end, on real components: an OpenID provider with token exchange,
OpenBao holding per-user secrets, and three backends that record every credential they receive.
Each backend gets a credential for itself only; the caller's token reaches none of them; a
forbidden call costs no Vault or IdP request; every failure is refused with a clear error."""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from harness import PY_FIXTURES, Backend, McpHttp, free_port, python2, tool_text
from idp import Idp
from vault import Bao

PAT = "ghp_alice0test0personal0access0token0"
ALICE_KEY = "wk_alice_test_api_key"
BOB_KEY = "wk_bob_test_api_key"
SEED_TOOLS = {"codereview": "analyze_pr,suggest_fix", "github": "list_repos,delete_repo", "weather": "get_forecast"}
CLIENT_IDS = {"codereview": "codereview.local", "github": "github.mcp.local", "weather": "weather.local"}


def seed_backend(registry, name: str) -> Backend:
    port = free_port()
    log = registry.workdir / f"requests-{name}.jsonl"
    argv = [python2(), str(PY_FIXTURES / "seed_server.py"), "--name", name, "--port", str(port), "--tools", SEED_TOOLS[name], "--log", str(log)]
    return Backend(registry, name, "seed", "streamable-http", port, argv, log).launch()


@pytest.fixture
def world(registry, tmp_path):
    """IdP, OpenBao with alice's PAT and API key (bob has only an API key), three backends."""
    idp = Idp(registry, ["--users", str(users_file(tmp_path))])
    bao = Bao(registry, tmp_path)
    bao.put("alice/github.mcp.local", token=PAT)
    bao.put("alice/weather.local", token=ALICE_KEY)
    bao.put("bob/weather.local", token=BOB_KEY)
    backends = {name: seed_backend(registry, name) for name in SEED_TOOLS}
    for b in backends.values():
        b.wait_ready()
    return idp, bao, backends


def users_file(tmp_path, extra: dict | None = None):
    users = {
        "alice": {"roles": {"codereview.local": ["analyze_pr", "suggest_fix"], "github.mcp.local": ["list_repos"], "weather.local": ["get_forecast"]}},
        "bob": {"roles": {"github.mcp.local": ["list_repos"], "weather.local": ["get_forecast"]}},
        **(extra or {}),
    }
    path = tmp_path / "users.json"
    path.write_text(json.dumps(users))
    return path


def gateway_config(idp, bao, backends, vault_token: str = "root", exchange: dict | None = None, github_chain=None):
    servers = []
    chains = {
        "codereview": [{"token_exchange": {"audience": "codereview.local", "require_tool_role": True}}],
        "github": github_chain
        or [{"vault": {"path": "{username}/github.mcp.local"}}, {"token_exchange": {"audience": "github.mcp.local"}}],
        "weather": [{"vault": {"path": "{username}/weather.local", "header": "X-API-Key"}}],
    }
    for name, b in backends.items():
        servers.append({**b.config(), "auth": {"client_ids": [CLIENT_IDS[name]]}, "credentials": chains[name]})
    return {
        "servers": servers,
        "auth": {"issuers": [{"issuer": idp.issuer}], "audiences": ["mcpgate"]},
        "credentials": {
            "vault": {"address": bao.addr, "auth": {"token": {"value": vault_token}}, "cache_ttl": "30s"},
            "token_exchange": {"client_id": "mcpgate", "client_secret": {"value": "mcpgate-secret"}, **(exchange or {})},
        },
    }


def start(gateway, cfg):
    servers = cfg.pop("servers")
    gateway.write_config(servers, **cfg)
    return gateway.start_with_config(ready=[s["name"] for s in servers])


def login(gw, idp, user: str) -> tuple[McpHttp, str]:
    token = idp.token(user)
    c = McpHttp(gw.url)
    c.http.headers["Authorization"] = f"Bearer {token}"
    c.initialize()
    return c, token


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def tool_calls(backend: Backend) -> list[dict]:
    return [e for e in backend.log.entries() if e.get("rpc_method") == "tools/call"]


def test_alice_story_each_backend_gets_only_its_own_credential(world, gateway):
    idp, bao, backends = world
    gw = start(gateway, gateway_config(idp, bao, backends))
    alice, token = login(gw, idp, "alice")

    assert alice.tool_names() == ["codereview_analyze_pr", "codereview_suggest_fix", "github_list_repos", "weather_get_forecast"]
    for tool in ("codereview_analyze_pr", "codereview_suggest_fix", "github_list_repos", "weather_get_forecast"):
        assert tool_text(alice.call_tool(tool)["result"]).endswith(" ok"), tool

    review = tool_calls(backends["codereview"])
    assert len(review) == 2
    for call in review:
        claims = jwt_claims(call["headers"]["authorization"].removeprefix("Bearer "))
        assert claims["aud"] == "codereview.local" and claims["sub"] == "user-alice"
        assert set(claims["resource_access"]) == {"codereview.local"}, "roles narrowed to this backend"
    (github,) = tool_calls(backends["github"])
    assert github["headers"]["authorization"] == f"Bearer {PAT}"
    (weather,) = tool_calls(backends["weather"])
    assert weather["headers"]["x-api-key"] == ALICE_KEY and "authorization" not in weather["headers"]
    for b in backends.values():
        assert token not in b.log.path.read_text(), f"{b.name} received alice's own token"
    assert token not in gw.stderr() and PAT not in gw.stderr() and ALICE_KEY not in gw.stderr()


def test_bob_without_a_pat_falls_back_to_token_exchange(world, gateway):
    idp, bao, backends = world
    gw = start(gateway, gateway_config(idp, bao, backends))
    bob, _ = login(gw, idp, "bob")

    assert tool_text(bob.call_tool("github_list_repos")["result"]) == "list_repos ok"
    (call,) = tool_calls(backends["github"])
    claims = jwt_claims(call["headers"]["authorization"].removeprefix("Bearer "))
    assert (claims["aud"], claims["sub"]) == ("github.mcp.local", "user-bob")


def test_without_a_fallback_a_missing_secret_fails_closed(world, gateway):
    idp, bao, backends = world
    gw = start(gateway, gateway_config(idp, bao, backends, github_chain=[{"vault": {"path": "{username}/github.mcp.local"}}]))
    bob, _ = login(gw, idp, "bob")

    error = bob.call_tool("github_list_repos")["error"]
    assert error["message"] == 'server "github": no credential for this caller from vault'
    assert tool_calls(backends["github"]) == []


def test_forbidden_tool_costs_no_vault_or_idp_request(world, gateway):
    idp, bao, backends = world
    gw = start(gateway, gateway_config(idp, bao, backends))
    alice, _ = login(gw, idp, "alice")
    reads_before, exchanges_before = bao.reads(), idp.stats()["token_requests"]

    reply = alice.call_tool("github_delete_repo")

    assert reply["error"]["message"] == "Unknown tool: github_delete_repo"
    assert bao.reads() == reads_before
    assert idp.stats()["token_requests"] == exchanges_before
    assert tool_calls(backends["github"]) == []


def test_vault_reads_are_cached(world, gateway):
    idp, bao, backends = world
    gw = start(gateway, gateway_config(idp, bao, backends))
    alice, _ = login(gw, idp, "alice")
    for _ in range(5):
        alice.call_tool("weather_get_forecast")
    assert bao.reads().count("secret/data/alice/weather.local") == 1


def test_hundred_concurrent_first_calls_make_one_token_exchange(world, gateway):
    idp, bao, backends = world
    gw = start(gateway, gateway_config(idp, bao, backends))
    clients = [login(gw, idp, "alice")[0] for _ in range(20)]
    idp.reset_stats()

    def call(i: int) -> dict:
        conn = clients[i % 20].fork(10_000 + i)
        conn.http.headers["Authorization"] = clients[i % 20].http.headers["Authorization"]
        return conn.call_tool("codereview_analyze_pr")

    with ThreadPoolExecutor(max_workers=100) as pool:
        replies = list(pool.map(call, range(100)))

    failed = [r for r in replies if "result" not in r]
    assert failed == []
    assert all(tool_text(r["result"]) == "analyze_pr ok" for r in replies)
    assert idp.stats()["token_exchange"] == {"user-alice": {"codereview.local": 1}}


@pytest.mark.parametrize(
    "username",
    ["alice/../bob", "alice%2f..%2fbob", "bob\n", "..", "\u0430lice"],
    ids=["dot-dot-slash", "percent-encoded-slash", "newline", "dot-dot", "cyrillic-a"],
)
def test_path_injection_usernames_are_refused_without_touching_vault(registry, tmp_path, gateway, username):
    idp = Idp(registry, ["--users", str(users_file(tmp_path, {"mallory": {"roles": {"weather.local": ["get_forecast"]}, "claims": {"preferred_username": username}}}))])
    bao = Bao(registry, tmp_path)
    bao.put("bob/weather.local", token=BOB_KEY)
    weather = seed_backend(registry, "weather").wait_ready()
    gw = start(gateway, gateway_config(idp, bao, {"weather": weather}))
    mallory, _ = login(gw, idp, "mallory")

    error = mallory.call_tool("weather_get_forecast")["error"]

    assert "weather" in error["message"] and "identity" in error["message"]
    assert bao.reads() == [], "no Vault request on behalf of an unsafe identity"
    assert tool_calls(weather) == []


def failing_call(world, gateway, tool: str, setup, **cfg_kwargs):
    idp, bao, backends = world
    gw = start(gateway, gateway_config(idp, bao, backends, **cfg_kwargs))
    alice, _ = login(gw, idp, "alice")
    setup(idp, bao)
    reply = alice.call_tool(tool)
    server = tool.split("_")[0]
    assert tool_calls(backends[server]) == [], "a failed credential step never calls the backend"
    return reply["error"]["message"]


def test_vault_down_fails_closed_naming_server_and_source(world, gateway):
    message = failing_call(world, gateway, "weather_get_forecast", lambda idp, bao: bao.stop())
    assert "weather" in message and "vault" in message


def test_vault_refusing_the_gateway_token_fails_closed(world, gateway):
    idp, bao, backends = world
    limited = bao.policy_token('path "secret/data/nobody/*" { capabilities = ["read"] }')
    message = failing_call(world, gateway, "weather_get_forecast", lambda idp, bao: None, vault_token=limited)
    assert "weather" in message and "vault" in message and "403" in message


@pytest.mark.parametrize("mode", ["down", "refuse", "wrong_aud"])
def test_token_exchange_failures_fail_closed(world, gateway, mode):
    message = failing_call(world, gateway, "codereview_analyze_pr", lambda idp, bao: idp.mode(token_exchange=mode))
    assert "codereview" in message and "token_exchange" in message


def test_expired_exchanged_token_is_exchanged_again(world, gateway):
    idp, bao, backends = world
    idp.mode(exchange_ttl=3)
    gw = start(gateway, gateway_config(idp, bao, backends, exchange={"refresh_before": "1s"}))
    alice, _ = login(gw, idp, "alice")
    idp.reset_stats()

    alice.call_tool("codereview_analyze_pr")
    alice.call_tool("codereview_analyze_pr")
    time.sleep(2.5)
    alice.call_tool("codereview_analyze_pr")

    assert idp.stats()["token_exchange"] == {"user-alice": {"codereview.local": 2}}
    tokens = [c["headers"]["authorization"] for c in tool_calls(backends["codereview"])]
    assert tokens[0] == tokens[1] != tokens[2]
