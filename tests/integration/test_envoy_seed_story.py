"""The seed's Alice story with Envoy in front (docs/envoy.md): mcpgate as the ext_proc router
and as the ext_authz policy step, on real parts: the OpenID provider fixture with token
exchange, real OpenBao holding alice's PAT and API key, the three seed backends recording
every credential they receive, and Envoy's gRPC messages replayed with the official protos.

Everything is compared with what the same gateway answers standalone (its own HTTP listener):
the same lists, the same 401 challenge, the same unknown-tool error for a denied call."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from envoy_replay import Authz, FakeEnvoy, denied, ok_headers
from harness import ACCEPT_BOTH, LEGACY_VERSION, Backend, Gateway, McpHttp, ProcessRegistry, find_binary, free_port, start_gateway_retrying
from idp import Idp, es256_key_pair
from test_credentials import ALICE_KEY, CLIENT_IDS, PAT, SEED_TOOLS, gateway_config, seed_backend, users_file, jwt_claims
from vault import Bao

JSON_HEADERS = {"content-type": "application/json", "accept": ACCEPT_BOTH}
ALICE_TOOLS = ["codereview_analyze_pr", "codereview_suggest_fix", "github_list_repos", "weather_get_forecast"]
WRISTBAND_ISSUER = "https://mcpgate.envoy.test"


@dataclass
class Story:
    registry: ProcessRegistry
    idp: Idp
    bao: Bao
    backends: dict[str, Backend]
    gw: Gateway
    grpc: str
    http_authz: str
    jwks: dict[str, Any]

    def envoy(self, **kwargs: Any) -> FakeEnvoy:
        clusters = {CLIENT_IDS[n]: f"http://127.0.0.1:{b.port}" for n, b in self.backends.items()}
        return FakeEnvoy(self.grpc, clusters, **kwargs)

    def reads(self) -> list[str]:
        return self.bao.reads()


def story_config(idp, bao, backends, tmp, grpc_port: int, http_port: int, **ext_proc: Any) -> dict[str, Any]:
    cfg = gateway_config(idp, bao, backends)
    priv, _ = es256_key_pair(tmp, "wristband")
    cfg["auth"]["wristband_issue"] = {"private_key_file": str(priv), "kid": "envoy-1", "issuer": WRISTBAND_ISSUER, "audience": "mcp-broker", "format": "tools"}
    cfg["envoy"] = {"grpc_listen": f"127.0.0.1:{grpc_port}", "http_authz_listen": f"127.0.0.1:{http_port}", "ext_proc": ext_proc or {"credentials": True}}
    return cfg


def start_story(registry: ProcessRegistry, binary, tmp, **ext_proc: Any) -> Story:
    idp = Idp(registry, ["--users", str(users_file(tmp))])
    bao = Bao(registry, tmp)
    bao.put("alice/github.mcp.local", token=PAT)
    bao.put("alice/weather.local", token=ALICE_KEY)
    backends = {name: seed_backend(registry, name) for name in SEED_TOOLS}
    for b in backends.values():
        b.wait_ready()
    grpc_port, http_port = free_port(), free_port()
    cfg = story_config(idp, bao, backends, tmp, grpc_port, http_port, **ext_proc)
    gw = Gateway(registry, binary, tmp)
    servers = cfg.pop("servers")
    start_gateway_retrying(gw, servers, [s["name"] for s in servers], **cfg)
    jwks = httpx.get(gw.base + "/.well-known/mcpgate/wristband-jwks.json").json()
    return Story(registry, idp, bao, backends, gw, f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}", jwks)


@pytest.fixture(scope="module")
def shared_story(tmp_path_factory: pytest.TempPathFactory):
    binary = find_binary()
    tmp = tmp_path_factory.mktemp("envoy-seed")
    registry = ProcessRegistry(tmp)
    try:
        yield start_story(registry, binary, tmp)
    finally:
        registry.stop_all()


@pytest.fixture
def story(shared_story: Story, request: pytest.FixtureRequest):
    yield shared_story
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"\n===== shared process output ({shared_story.registry.workdir}) =====\n{shared_story.registry.dump_logs()}")


def rpc(method: str, params: dict[str, Any] | None = None, id: int | None = 1) -> bytes:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if id is not None:
        msg["id"] = id
    if params is not None:
        msg["params"] = params
    return json.dumps(msg).encode()


def session(envoy: FakeEnvoy, token: str) -> dict[str, str]:
    auth = {**JSON_HEADERS, "authorization": f"Bearer {token}"}
    params = {"protocolVersion": LEGACY_VERSION, "capabilities": {}, "clientInfo": {"name": "agent", "version": "1"}}
    r = envoy.request("POST", "/mcp", auth, rpc("initialize", params))
    assert (r.status, r.via) == (200, "immediate"), r.body
    return {**auth, "mcp-session-id": r.headers["mcp-session-id"], "mcp-protocol-version": LEGACY_VERSION}


def standalone(story: Story, token: str) -> McpHttp:
    c = McpHttp(story.gw.url)
    c.http.headers["Authorization"] = f"Bearer {token}"
    c.initialize()
    return c


def calls(b: Backend, since: int = 0) -> list[dict[str, Any]]:
    return b.log.find(since, rpc_method="tools/call")


def routed(envoy: FakeEnvoy):
    return next(m for n, m in envoy.log if n == "request_body")


# ---------------------------------------------------------------------------------------------
# The router (ext_proc), carrying the credential itself
# ---------------------------------------------------------------------------------------------


def test_alice_tools_list_is_an_immediate_response_with_her_four_tools(story: Story):
    token = story.idp.token("alice")
    envoy = story.envoy()
    r = envoy.request("POST", "/mcp", session(envoy, token), rpc("tools/list"))

    assert (r.status, r.via) == (200, "immediate")
    assert [t["name"] for t in r.json()["result"]["tools"]] == ALICE_TOOLS
    assert r.json()["result"] == standalone(story, token).result("tools/list")


def test_alice_codereview_call_is_routed_with_the_seed_headers_and_an_exchanged_token(story: Story):
    token = story.idp.token("alice")
    envoy = story.envoy()
    headers = session(envoy, token)
    review = story.backends["codereview"]
    mark = review.log.mark()

    r = envoy.request("POST", "/mcp", headers, rpc("tools/call", {"name": "codereview_analyze_pr", "arguments": {}}, id=2))

    m = routed(envoy)
    assert (m.set["x-mcp-toolname"], m.set["x-mcp-servername"], m.set["x-mcp-method"]) == ("analyze_pr", "codereview", "tools/call")
    assert m.set[":authority"] == "codereview.local"
    assert json.loads(m.body)["params"]["name"] == "analyze_pr"
    assert m.set["content-length"] == str(len(m.body))
    claims = jwt_claims(m.set["authorization"].removeprefix("Bearer "))
    assert (claims["aud"], claims["sub"]) == ("codereview.local", "user-alice")
    assert r.messages()[0]["result"]["content"][0]["text"] == "analyze_pr ok"
    (call,) = calls(review, mark)
    assert call["headers"]["authorization"] == m.set["authorization"]
    assert token not in review.log.path.read_text(), "alice's own token never reaches the backend"


def test_alice_github_and_weather_calls_carry_her_secrets_from_openbao(story: Story):
    token = story.idp.token("alice")
    envoy = story.envoy()
    headers = session(envoy, token)
    github, weather = story.backends["github"], story.backends["weather"]
    g_mark, w_mark = github.log.mark(), weather.log.mark()

    envoy.request("POST", "/mcp", headers, rpc("tools/call", {"name": "github_list_repos", "arguments": {}}))
    assert routed(envoy).set["authorization"] == f"Bearer {PAT}"
    envoy.request("POST", "/mcp", headers, rpc("tools/call", {"name": "weather_get_forecast", "arguments": {}}))
    w = routed(envoy)
    assert w.set["x-api-key"] == ALICE_KEY and "authorization" in w.remove

    (g_call,) = calls(github, g_mark)
    (w_call,) = calls(weather, w_mark)
    assert g_call["headers"]["authorization"] == f"Bearer {PAT}"
    assert w_call["headers"]["x-api-key"] == ALICE_KEY and "authorization" not in w_call["headers"]
    assert PAT not in story.gw.stderr() and ALICE_KEY not in story.gw.stderr() and token not in story.gw.stderr()


def test_bob_is_denied_alices_tool_without_reaching_a_backend_vault_or_the_idp(story: Story):
    token = story.idp.token("bob")
    envoy = story.envoy()
    headers = session(envoy, token)
    review = story.backends["codereview"]
    mark, reads, exchanges = review.log.mark(), story.reads(), story.idp.stats()["token_requests"]

    r = envoy.request("POST", "/mcp", headers, rpc("tools/call", {"name": "codereview_analyze_pr", "arguments": {}}, id=5))

    assert (r.status, r.via) == (200, "immediate")
    expected = standalone(story, token).request("tools/call", {"name": "codereview_analyze_pr", "arguments": {}})
    assert r.json() == {**expected, "id": 5}
    assert r.json()["error"] == {"code": -32602, "message": "Unknown tool: codereview_analyze_pr"}
    assert review.log.entries()[mark:] == [], "nothing reached the backend, not even a session"
    assert story.reads() == reads and story.idp.stats()["token_requests"] == exchanges


@pytest.mark.parametrize("token", [None, "not-a-jwt"], ids=["no-token", "bad-token"])
def test_the_401_challenge_is_the_standalone_one(story: Story, token: str | None):
    headers = {**JSON_HEADERS, **({"authorization": f"Bearer {token}"} if token else {})}
    r = story.envoy().request("POST", "/mcp", headers, rpc("tools/list"))
    direct = httpx.post(story.gw.url, headers=headers, content=rpc("tools/list"))

    assert (r.status, r.via) == (401, "immediate")
    assert r.headers["www-authenticate"] == direct.headers["www-authenticate"]
    assert r.json() == direct.json()


# ---------------------------------------------------------------------------------------------
# The policy step (ext_authz), as Envoy asks after the router
# ---------------------------------------------------------------------------------------------


def check_after_router(story: Story, host: str, token: str, body: bytes):
    headers = {**JSON_HEADERS, "authorization": f"Bearer {token}", "x-mcp-toolname": "spoofed"}
    return Authz(story.grpc).check("POST", "/mcp", host, headers, body)


def test_ext_authz_adds_the_exchanged_token_for_codereview_in_place_of_alices(story: Story):
    token = story.idp.token("alice")
    r = check_after_router(story, "codereview.local", token, rpc("tools/call", {"name": "analyze_pr", "arguments": {}}))

    assert r.status.code == 0
    h = ok_headers(r)
    claims = jwt_claims(h["authorization"].removeprefix("Bearer "))
    assert (claims["aud"], claims["sub"]) == ("codereview.local", "user-alice")
    assert h["authorization"] != f"Bearer {token}"
    assert (h["x-mcp-toolname"], h["x-mcp-servername"], h["x-mcp-method"]) == ("analyze_pr", "codereview", "tools/call")
    band = jwt.decode(h["x-authorized-tools"], jwt.PyJWK(story.jwks["keys"][0]).key, algorithms=["ES256"], audience="mcp-broker", issuer=WRISTBAND_ISSUER)
    assert json.loads(band["allowed-tools"]) == {
        "codereview.local": ["analyze_pr", "suggest_fix"],
        "github.mcp.local": ["list_repos"],
        "weather.local": ["get_forecast"],
    }
    assert "authorization" not in r.ok_response.headers_to_remove, "replaced, not removed"


def test_ext_authz_adds_alices_pat_for_github_and_her_key_for_weather(story: Story):
    token = story.idp.token("alice")
    g = check_after_router(story, "github.mcp.local", token, rpc("tools/call", {"name": "list_repos", "arguments": {}}))
    assert ok_headers(g)["authorization"] == f"Bearer {PAT}"
    w = check_after_router(story, "weather.local:8080", token, rpc("tools/call", {"name": "get_forecast", "arguments": {}}))
    assert ok_headers(w)["x-api-key"] == ALICE_KEY
    assert "authorization" in w.ok_response.headers_to_remove, "alice's own token is removed"


def test_ext_authz_denies_bob_with_the_standalone_error(story: Story):
    token = story.idp.token("bob")
    mark = story.backends["codereview"].log.mark()
    r = check_after_router(story, "codereview.local", token, rpc("tools/call", {"name": "analyze_pr", "arguments": {}}, id=8))
    status, _, body = denied(r)
    expected = standalone(story, token).request("tools/call", {"name": "codereview_analyze_pr", "arguments": {}})
    assert (r.status.code, status) == (7, 200)
    assert body == {**expected, "id": 8}
    assert story.backends["codereview"].log.entries()[mark:] == []


def test_ext_authz_without_a_token_gives_the_standalone_challenge(story: Story):
    r = Authz(story.grpc).check("POST", "/mcp", "codereview.local", JSON_HEADERS, rpc("tools/call", {"name": "analyze_pr"}))
    status, headers, body = denied(r)
    direct = httpx.post(story.gw.url, headers=JSON_HEADERS, content=rpc("tools/list"))
    assert (r.status.code, status) == (16, 401)
    assert headers["www-authenticate"] == direct.headers["www-authenticate"] and body == direct.json()


def test_ext_authz_for_the_gateway_adds_the_wristband_and_keeps_the_token(story: Story):
    token = story.idp.token("alice")
    r = Authz(story.grpc).check(
        "POST", "/mcp", "mcp.example.com", {**JSON_HEADERS, "authorization": f"Bearer {token}", "x-mcp-servername": "x"}, rpc("tools/list")
    )
    h = ok_headers(r)
    assert "x-authorized-tools" in h and "authorization" not in h
    assert list(r.ok_response.headers_to_remove) == ["x-mcp-servername"], "the caller's token stays for mcpgate behind; spoofed headers go"


@pytest.mark.parametrize(
    "method,body,message",
    [
        ("POST", None, "configure with_request_body"),
        ("GET", None, "cannot be sent to backend 'codereview' directly"),
        ("POST", rpc("tools/list"), "tools/list is answered by the gateway"),
    ],
    ids=["no-body", "get", "list-to-a-backend"],
)
def test_ext_authz_refuses_what_it_cannot_decide_for_a_backend(story: Story, method: str, body: bytes | None, message: str):
    token = story.idp.token("alice")
    r = Authz(story.grpc).check(method, "/mcp", "codereview.local", {**JSON_HEADERS, "authorization": f"Bearer {token}"}, body)
    status, _, err = denied(r)
    assert status == 403 and message in err["error"]["message"]


def test_ext_authz_http_mode(story: Story):
    alice, bob = story.idp.token("alice"), story.idp.token("bob")
    body = rpc("tools/call", {"name": "list_repos", "arguments": {}})
    ok = httpx.post(story.http_authz + "/mcp", headers={**JSON_HEADERS, "host": "github.mcp.local", "authorization": f"Bearer {alice}"}, content=body)
    assert ok.status_code == 200
    assert ok.headers["authorization"] == f"Bearer {PAT}" and ok.headers["x-mcp-toolname"] == "list_repos"
    weather = httpx.post(
        story.http_authz + "/mcp",
        headers={**JSON_HEADERS, "host": "weather.local", "authorization": f"Bearer {alice}"},
        content=rpc("tools/call", {"name": "get_forecast", "arguments": {}}),
    )
    assert weather.headers["x-envoy-auth-headers-to-remove"] == "authorization"
    no = httpx.post(story.http_authz + "/mcp", headers={**JSON_HEADERS, "host": "github.mcp.local", "authorization": f"Bearer {bob}"}, content=rpc("tools/call", {"name": "delete_repo", "arguments": {}}))
    assert no.status_code == 403, "the HTTP mode cannot deny with 200"
    assert no.json()["error"]["message"] == "Unknown tool: github_delete_repo"
    anon = httpx.post(story.http_authz + "/mcp", headers={**JSON_HEADERS, "host": "github.mcp.local"}, content=body)
    assert anon.status_code == 401 and anon.headers["www-authenticate"].startswith("Bearer ")


# ---------------------------------------------------------------------------------------------
# Router then policy: the chain of docs/envoy.md
# ---------------------------------------------------------------------------------------------


def test_router_then_ext_authz_chain_carries_the_seed_story(registry, mcpgate_bin, tmp_path):
    s = start_story(registry, mcpgate_bin, tmp_path, credentials=False)
    envoy = s.envoy(ext_authz=True)
    alice = s.idp.token("alice")
    headers = session(envoy, alice)

    r = envoy.request("POST", "/mcp", headers, rpc("tools/call", {"name": "codereview_analyze_pr", "arguments": {}}))
    assert "authorization" not in routed(envoy).set, "the router leaves the credential to ext_authz"
    assert r.messages()[0]["result"]["content"][0]["text"] == "analyze_pr ok"
    (call,) = calls(s.backends["codereview"])
    assert jwt_claims(call["headers"]["authorization"].removeprefix("Bearer "))["aud"] == "codereview.local"
    assert call["headers"]["x-mcp-toolname"] == "analyze_pr"

    envoy.request("POST", "/mcp", headers, rpc("tools/call", {"name": "github_list_repos", "arguments": {}}))
    (g,) = calls(s.backends["github"])
    assert g["headers"]["authorization"] == f"Bearer {PAT}"
    for b in s.backends.values():
        assert alice not in b.log.path.read_text(), f"{b.name} received alice's own token"

    bob_headers = session(envoy, s.idp.token("bob"))
    denied_call = envoy.request("POST", "/mcp", bob_headers, rpc("tools/call", {"name": "codereview_analyze_pr", "arguments": {}}))
    assert denied_call.via == "immediate" and denied_call.json()["error"]["message"] == "Unknown tool: codereview_analyze_pr"
