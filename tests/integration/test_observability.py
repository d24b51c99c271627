"""Observability and quotas on real parts: a real Prometheus server scrapes the gateway's admin
listener while the tests drive traffic through a real OpenID provider, real OpenBao and real
SDK backends; a real OTLP receiver (official OpenTelemetry protobufs, gRPC and HTTP) decodes the
gateway's spans; rate limits answer the documented error in both eras and the backend receives
exactly the permitted calls."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from harness import PY_FIXTURES, Backend, McpHttp, free_port, python2, run_cli, tool_text, wait_until
from idp import Idp
from observability import OtlpReceiver, Prometheus
from test_modern_http import Modern
from vault import Bao

TOOLS = {"github": "list_repos,delete_repo", "weather": "get_forecast"}
CLIENT_IDS = {"github": "github.mcp.local", "weather": "weather.local"}
ADMIN_TOKEN = "admin-" + "0123456789abcdef" * 2


def seed(registry, name: str) -> Backend:
    port = free_port()
    log = registry.workdir / f"requests-{name}.jsonl"
    argv = [python2(), str(PY_FIXTURES / "seed_server.py"), "--name", name, "--port", str(port), "--tools", TOOLS[name], "--log", str(log)]
    return Backend(registry, name, "seed", "streamable-http", port, argv, log).launch()


@pytest.fixture
def idp(registry, tmp_path):
    users = {
        "alice": {"roles": {"github.mcp.local": ["list_repos", "delete_repo"], "weather.local": ["get_forecast"], "c.local": ["echo"]}},
        "bob": {"roles": {"github.mcp.local": ["list_repos", "delete_repo"], "weather.local": ["get_forecast"]}},
        "carol": {"roles": {"github.mcp.local": ["list_repos"], "weather.local": ["get_forecast"]}},
    }
    path = tmp_path / "users.json"
    path.write_text(json.dumps(users))
    return Idp(registry, ["--users", str(path)])


@pytest.fixture
def seeds(registry):
    backends = {name: seed(registry, name) for name in TOOLS}
    for b in backends.values():
        b.wait_ready()
    return backends


def servers(seeds, github_credentials=None):
    out = []
    for name, b in seeds.items():
        entry = {**b.config(), "auth": {"client_ids": [CLIENT_IDS[name]]}}
        if name == "github" and github_credentials:
            entry["credentials"] = github_credentials
        out.append(entry)
    return out


def login(gw, idp, user: str, traceparent: str | None = None) -> McpHttp:
    c = McpHttp(gw.url)
    c.http.headers["Authorization"] = f"Bearer {idp.token(user)}"
    if traceparent:
        c.http.headers["traceparent"] = traceparent
    c.initialize()
    return c


def calls_to(backend: Backend, tool: str) -> int:
    return len([e for e in backend.log.entries() if e.get("rpc_method") == "tools/call" and e.get("name") == tool])


RULES = [
    {"name": "github-per-user", "servers": ["github"], "per": ["subject"], "limit": 3, "interval": "1h"},
    {"name": "delete-per-user", "tools": ["delete_repo"], "per": ["subject"], "limit": 1, "interval": "1h"},
]


# ---------------------------------------------------------------------------------------------
# Prometheus
# ---------------------------------------------------------------------------------------------


def test_prometheus_scrapes_calls_per_tool_a_denial_a_vault_miss_and_a_rate_limit(registry, tmp_path, gateway, idp, seeds):
    bao = Bao(registry, tmp_path)
    bao.put("alice/github.mcp.local", token="ghp_alice_test_pat")
    admin_port = free_port()
    gateway.write_config(
        servers(seeds, [{"vault": {"path": "{username}/github.mcp.local"}}]),
        auth={"issuers": [{"issuer": idp.issuer}], "audiences": ["mcpgate"]},
        credentials={"vault": {"address": bao.addr, "auth": {"token": {"value": "root"}}, "cache_ttl": "30s"}},
        admin={"listen": f"127.0.0.1:{admin_port}", "token": ADMIN_TOKEN},
        rate_limits={"rules": [{"name": "github-per-user", "servers": ["github"], "per": ["subject"], "limit": 2, "interval": "1h"}]},
    )
    gw = gateway.start_with_config(ready=["github", "weather"])
    prom = Prometheus(registry, tmp_path, f"127.0.0.1:{admin_port}", token=ADMIN_TOKEN)
    wait_until(prom.up, 30, interval=0.5, what="prometheus scraping the admin listener")

    alice = login(gw, idp, "alice")
    for _ in range(2):
        assert tool_text(alice.call_tool("github_list_repos")["result"]) == "list_repos ok"
    limited = alice.call_tool("github_list_repos")
    assert limited["error"]["code"] == -32029, limited
    assert tool_text(alice.call_tool("weather_get_forecast")["result"]) == "get_forecast ok"
    carol = login(gw, idp, "carol")
    assert carol.call_tool("github_delete_repo")["error"]["message"] == "Unknown tool: github_delete_repo", "denied like an unknown tool"
    refused = carol.call_tool("github_list_repos")
    assert "error" in refused, "carol has no PAT in Vault: the Vault read misses and the call is refused"
    assert "Unknown tool" in alice.call_tool("github_evil\u2603tool")["error"]["message"]

    calls = "mcp_server_operation_duration_seconds_count"
    prom.wait_value(f'{calls}{{mcp_server="github",gen_ai_tool_name="list_repos",error_type=""}}', 2)
    prom.wait_value(f'{calls}{{mcp_server="weather",gen_ai_tool_name="get_forecast",error_type=""}}', 1)
    prom.wait_value(f'{calls}{{gen_ai_tool_name="list_repos",error_type="rate_limited"}}', 1)
    prom.wait_value(f'{calls}{{gen_ai_tool_name="list_repos",error_type="credential_refused"}}', 1)
    prom.wait_value('mcpgate_rate_limited_total{rule="github-per-user"}', 1)
    prom.wait_value('sum(mcpgate_authz_decisions_total{mcp_server="github",kind="tool",decision="deny"})', 1)
    prom.wait_value('mcpgate_credential_cache_total{source="vault",result="miss"}', 2)
    prom.wait_value('mcpgate_credential_cache_total{source="vault",result="hit"}', 1)
    prom.wait_value('sum(mcpgate_credential_failures_total{mcp_server="github"})', 1)
    prom.wait_value('mcpgate_credentials_resolved_total{mcp_server="github",source="vault"}', 2)
    prom.wait_value('mcpgate_requests_total{mcp_method_name="tools/call",mcp_protocol_era="legacy",outcome="ok"}', 3)
    prom.wait_value('mcpgate_requests_total{mcp_method_name="tools/call",mcp_protocol_era="legacy",outcome="error"}', 4)
    prom.wait_value('mcpgate_backend_up{mcp_server="github"}', 1)
    prom.wait_value('mcpgate_catalog_items{mcp_server="github",kind="tool"}', 2)
    assert prom.value('mcp_client_operation_duration_seconds_count{mcp_server="github",gen_ai_tool_name="list_repos",error_type=""}') == 2
    assert prom.value('mcp_client_operation_duration_seconds_count{gen_ai_tool_name="list_repos",error_type="rate_limited"}') is None, (
        "a limited call never reached its backend"
    )

    every = prom.query('{job="mcpgate"}')
    values = {v for s in every for v in s["metric"].values()}
    assert not any("evil" in v for v in values), "a name the client made up never becomes a label value"
    assert not any("alice" in v or "carol" in v for v in values), "the user is never a label"
    assert calls_to(seeds["github"], "list_repos") == 2


def test_metrics_need_the_admin_token_and_stay_off_the_mcp_port_unless_asked(gateway, seeds):
    admin_port = free_port()
    gateway.write_config(servers(seeds), admin={"listen": f"127.0.0.1:{admin_port}", "token": ADMIN_TOKEN})
    gw = gateway.start_with_config(ready=["github", "weather"])
    admin = f"http://127.0.0.1:{admin_port}/metrics"
    assert httpx.get(admin).status_code == 401
    assert httpx.get(admin, headers={"Authorization": "Bearer wrong-token-0123456789abcdef00"}).status_code == 401
    ok = httpx.get(admin, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("application/openmetrics-text")
    assert 'mcpgate_backend_up{mcp_server="github",mcp_protocol_era="dual"} 1' in ok.text
    assert ok.text.rstrip().endswith("# EOF")
    assert httpx.get(gw.base + "/metrics").status_code == 404, "not on the MCP listener by default"


def test_metrics_on_the_main_listener_when_configured(gateway, seeds):
    gateway.write_config(servers(seeds), metrics={"on_main_listener": True})
    gw = gateway.start_with_config(ready=["github", "weather"])
    c = McpHttp(gw.url)
    c.initialize()
    c.call_tool("weather_get_forecast")
    text = httpx.get(gw.base + "/metrics").text
    assert 'mcp_server_operation_duration_seconds_count{mcp_method_name="tools/call",mcp_server="weather",gen_ai_tool_name="get_forecast"} 1' in text
    assert 'mcpgate_requests_total{mcp_method_name="initialize",mcp_protocol_era="legacy",outcome="ok"} 1' in text


# ---------------------------------------------------------------------------------------------
# Rate limits
# ---------------------------------------------------------------------------------------------


def test_rate_limits_answer_the_documented_error_in_both_eras_and_spare_others(gateway, idp, seeds, tmp_path):
    audit = tmp_path / "audit.log"
    gateway.write_config(
        servers(seeds),
        auth={"issuers": [{"issuer": idp.issuer}], "audiences": ["mcpgate"]},
        rate_limits={"rules": RULES},
        audit={"sink": "file", "path": str(audit)},
    )
    gw = gateway.start_with_config(ready=["github", "weather"])
    alice = login(gw, idp, "alice")
    for _ in range(3):
        assert tool_text(alice.call_tool("github_list_repos")["result"]) == "list_repos ok"
    err = alice.call_tool("github_list_repos")["error"]
    assert err["code"] == -32029
    assert err["data"]["rateLimit"] == {"rule": "github-per-user", "limit": 3, "intervalMs": 3600000, "burst": 3, "per": ["subject"]}
    assert 0 < err["data"]["retryAfterMs"] <= 1_200_000
    assert "github-per-user" in err["message"]

    modern = Modern(gw.url, token=idp.token("alice"))
    r = modern.call("github_list_repos")
    assert r.status_code == 200
    assert r.json()["error"]["code"] == -32029 and r.json()["error"]["data"]["rateLimit"]["rule"] == "github-per-user"

    assert tool_text(alice.call_tool("weather_get_forecast")["result"]) == "get_forecast ok", "other servers are not limited"
    assert "github_list_repos" in alice.tool_names(), "lists are never limited into hiding tools"

    bob = login(gw, idp, "bob")
    assert tool_text(bob.call_tool("github_delete_repo")["result"]) == "delete_repo ok", "bob has his own buckets"
    again = bob.call_tool("github_delete_repo")["error"]
    assert again["code"] == -32029 and again["data"]["rateLimit"]["rule"] == "delete-per-user"
    assert tool_text(bob.call_tool("github_list_repos")["result"]) == "list_repos ok"

    carol = login(gw, idp, "carol")
    for _ in range(5):
        assert carol.call_tool("github_delete_repo")["error"]["code"] == -32602, "a denied call takes no token"
    assert tool_text(carol.call_tool("github_list_repos")["result"]) == "list_repos ok"

    assert calls_to(seeds["github"], "list_repos") == 3 + 1 + 1, "the backend received exactly the permitted calls"
    assert calls_to(seeds["github"], "delete_repo") == 1
    lines = wait_until(lambda: [json.loads(x) for x in audit.read_text().splitlines()] if audit.exists() else None, 10, what="audit lines")
    limited = wait_until(lambda: [x for x in (json.loads(y) for y in audit.read_text().splitlines()) if x["event"] == "rate_limit"], 10, what="rate-limit lines")
    assert [(x["subject"], x["rule"], x["name"]) for x in limited] == [
        ("user-alice", "github-per-user", "list_repos"),
        ("user-alice", "github-per-user", "list_repos"),
        ("user-bob", "delete-per-user", "delete_repo"),
    ]
    denied = [x for x in lines if x["event"] == "access" and x["decision"] == "deny"]
    assert denied and all(x["subject"] == "user-carol" and x["name"] == "delete_repo" for x in denied)
    text = audit.read_text()
    assert "Bearer" not in text and "eyJ" not in text, "no token in the audit file"


def test_rate_limit_for_a_cel_group_shares_one_bucket(gateway, idp, seeds):
    gateway.write_config(
        servers(seeds),
        auth={"issuers": [{"issuer": idp.issuer}], "audiences": ["mcpgate"]},
        rate_limits={"rules": [{"name": "weather-group", "servers": ["weather"], "callers": 'subject in ["user-alice", "user-bob"]', "limit": 2, "interval": "1h"}]},
    )
    gw = gateway.start_with_config(ready=["github", "weather"])
    alice, bob, carol = (login(gw, idp, u) for u in ("alice", "bob", "carol"))
    assert "result" in alice.call_tool("weather_get_forecast")
    assert "result" in bob.call_tool("weather_get_forecast")
    assert alice.call_tool("weather_get_forecast")["error"]["code"] == -32029, "alice and bob share the group's bucket"
    assert bob.call_tool("weather_get_forecast")["error"]["code"] == -32029
    for _ in range(3):
        assert "result" in carol.call_tool("weather_get_forecast"), "carol is not in the group"


def test_bad_observability_config_is_refused_with_key_paths(mcpgate_bin, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "servers: [{name: a, url: 'http://127.0.0.1:1/mcp'}]\n"
        "admin: {listen: nowhere, token: short}\n"
        "telemetry: {otlp: {endpoint: 'ftp://x', sampling_ratio: 2}}\n"
        "audit: {sink: file}\n"
        "rate_limits: {rules: [{name: r, servers: [b], limit: 0, interval: 1s, callers: 'claims.x =='}]}\n"
    )
    out = run_cli(mcpgate_bin, ["check", "--config", str(cfg)])
    assert out.returncode == 1
    for key in ["admin.listen", "admin.token", "telemetry.otlp.endpoint", "telemetry.otlp.sampling_ratio", "audit.path", "rate_limits.rules[0].limit", "rate_limits.rules[0].servers[0]", "rate_limits.rules[0].callers"]:
        assert f"error: {key}:" in out.stdout, (key, out.stdout)


# ---------------------------------------------------------------------------------------------
# Traces
# ---------------------------------------------------------------------------------------------

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


def traced_gateway(gateway, seeds, endpoint: str, protocol: str = "grpc", **extra):
    otlp = {"endpoint": endpoint, "protocol": protocol, "resource": {"deployment.environment": "test"}, "export_interval": "100ms", **extra.pop("otlp", {})}
    gateway.write_config(servers(seeds), telemetry={"otlp": otlp}, **extra)
    return gateway.start_with_config(env={"MCPGATE_LOG_FORMAT": "json"}, ready=["github", "weather"])


def test_spans_reach_a_real_otlp_grpc_receiver_as_one_tree_under_the_clients_traceparent(gateway, seeds, registry, tmp_path):
    otlp = OtlpReceiver(registry, tmp_path)
    gw = traced_gateway(gateway, seeds, otlp.grpc, rate_limits={"rules": [{"name": "once", "tools": ["get_forecast"], "limit": 1, "interval": "1h"}]})
    c = McpHttp(gw.url)
    c.http.headers["traceparent"] = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    c.initialize()
    mark = seeds["weather"].log.mark()
    assert tool_text(c.call_tool("weather_get_forecast")["result"]) == "get_forecast ok"

    spans = otlp.trace(CLIENT_TRACE, {"mcp.request", "authenticate", "authorize", "upstream"})
    request = next(
        s for s in otlp.spans() if s["trace_id"] == CLIENT_TRACE and s["name"] == "mcp.request" and s["attributes"].get("mcp.method.name") == "tools/call"
    )
    assert request["parent_span_id"] == CLIENT_SPAN, "the client's span is the parent"
    assert request["kind"] == 2, "SPAN_KIND_SERVER"
    assert request["attributes"]["mcp.protocol.era"] == "legacy"
    assert request["resource"]["service.name"] == "mcpgate" and request["resource"]["deployment.environment"] == "test"
    assert spans["authorize"]["parent_span_id"] == request["span_id"]
    assert spans["authorize"]["attributes"] == {**spans["authorize"]["attributes"], "decision": "allow", "reason": "no_auth"}
    upstream = next(s for s in otlp.spans() if s["name"] == "upstream" and s["parent_span_id"] == request["span_id"])
    assert upstream["kind"] == 3, "SPAN_KIND_CLIENT"
    assert upstream["attributes"]["mcp.server"] == "weather" and upstream["attributes"]["mcp.method.name"] == "tools/call"
    (call,) = seeds["weather"].log.find(since=mark, rpc_method="tools/call")
    assert call["headers"]["traceparent"] == f"00-{CLIENT_TRACE}-{upstream['span_id']}-01", "the backend joins the trace under the upstream span"

    limited = c.call_tool("weather_get_forecast")
    assert limited["error"]["code"] == -32029
    lines = wait_until(
        lambda: [json.loads(x) for x in gw.stderr().splitlines() if x.startswith("{") and '"rate limited"' in x], 10, what="rate-limited log line"
    )
    assert lines[0]["trace_id"] == CLIENT_TRACE and lines[0]["span_id"], "log lines carry the trace and span ids"
    failed = wait_until(
        lambda: [s for s in otlp.spans() if s["trace_id"] == CLIENT_TRACE and s["name"] == "mcp.request" and s["status_code"] == 2], 30, what="error span"
    )
    assert failed[0]["attributes"]["error.type"] == "rate_limited"


def test_a_malformed_traceparent_starts_a_new_trace(gateway, seeds, registry, tmp_path):
    otlp = OtlpReceiver(registry, tmp_path)
    gw = traced_gateway(gateway, seeds, otlp.grpc)
    c = McpHttp(gw.url)
    c.http.headers["traceparent"] = f"00-{CLIENT_TRACE}-zz-01"
    c.initialize()
    mark = seeds["weather"].log.mark()
    assert tool_text(c.call_tool("weather_get_forecast")["result"]) == "get_forecast ok", "never an error"
    (call,) = seeds["weather"].log.find(since=mark, rpc_method="tools/call")
    trace_id = call["headers"]["traceparent"].split("-")[1]
    assert trace_id != CLIENT_TRACE
    spans = otlp.trace(trace_id, {"mcp.request", "upstream"})
    assert spans["mcp.request"]["parent_span_id"] == "", "a root span"


def test_spans_over_otlp_http_protobuf_carry_the_configured_headers(gateway, seeds, registry, tmp_path):
    otlp = OtlpReceiver(registry, tmp_path)
    gw = traced_gateway(gateway, seeds, otlp.http, protocol="http", otlp={"headers": {"x-otlp-key": "k-123"}})
    modern = Modern(gw.url)
    r = modern.post("tools/call", {"name": "weather_get_forecast", "arguments": {}}, headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
    assert r.status_code == 200 and "result" in r.json()
    spans = otlp.trace(CLIENT_TRACE, {"mcp.request", "upstream"})
    assert spans["mcp.request"]["via"] == "http" and spans["mcp.request"]["headers"]["x-otlp-key"] == "k-123"
    assert spans["mcp.request"]["attributes"]["mcp.protocol.era"] == "modern"


def test_a_stuck_otlp_endpoint_never_fails_calls_and_dropped_spans_are_counted(gateway, seeds):
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(16)  # accepts TCP (kernel backlog) and never answers
    admin_port = free_port()
    try:
        gw = traced_gateway(
            gateway,
            seeds,
            f"http://127.0.0.1:{stuck.getsockname()[1]}",
            otlp={"queue_size": 4, "batch_size": 2, "timeout": "60s"},
            admin={"listen": f"127.0.0.1:{admin_port}"},
        )
        c = McpHttp(gw.url)
        c.initialize()
        for _ in range(20):
            assert tool_text(c.call_tool("weather_get_forecast")["result"]) == "get_forecast ok"
        metrics = httpx.get(f"http://127.0.0.1:{admin_port}/metrics").text
        dropped = next(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("mcpgate_trace_spans_dropped_total"))
        assert dropped > 0, "a full queue drops spans and counts them"
    finally:
        stuck.close()



def test_trace_context_reaches_a_legacy_backend_and_vault(gateway, backends, registry, tmp_path, idp):
    otlp = OtlpReceiver(registry, tmp_path)
    bao = Bao(registry, tmp_path)
    bao.put("alice/c.local", token="legacy-backend-key")
    # OpenBao's audit log records a request header only when told to.
    assert bao.http.post("/v1/sys/config/auditing/request-headers/traceparent", json={"hmac": False}).status_code == 204
    legacy = backends.v1("c")
    gateway.write_config(
        [legacy.config(auth={"client_ids": ["c.local"]}, credentials=[{"vault": {"path": "{username}/c.local", "header": "X-API-Key"}}])],
        auth={"issuers": [{"issuer": idp.issuer}], "audiences": ["mcpgate"]},
        credentials={"vault": {"address": bao.addr, "auth": {"token": {"value": "root"}}}},
        telemetry={"otlp": {"endpoint": otlp.grpc, "export_interval": "100ms"}},
    )
    gw = gateway.start_with_config(ready=["c"])
    alice = login(gw, idp, "alice", traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")
    mark = legacy.log.mark()
    assert tool_text(alice.call_tool("c_echo", {"text": "hi"})["result"]) == "hi"
    (call,) = legacy.log.find(since=mark, rpc_method="tools/call")
    assert call["headers"]["x-api-key"] == "legacy-backend-key"
    spans = otlp.trace(CLIENT_TRACE, {"mcp.request", "credential", "upstream"})
    assert call["headers"]["traceparent"] == f"00-{CLIENT_TRACE}-{spans['upstream']['span_id']}-01", "a legacy (session) backend gets it too"
    assert spans["credential"]["attributes"]["mcpgate.credential.source"] == "vault"
    assert "legacy-backend-key" not in json.dumps(otlp.spans()), "never a secret in a span"

    def vault_traceparents() -> list[str]:
        out = []
        for line in bao.audit_path.read_text().splitlines():
            entry = json.loads(line)
            req = entry.get("request", {})
            if entry.get("type") == "request" and req.get("path") == "secret/data/alice/c.local" and req.get("operation") == "read":
                out.append((entry["request"].get("headers") or {}).get("traceparent", [""])[0])
        return out

    (seen,) = wait_until(vault_traceparents, 10, what="the Vault read in OpenBao's audit log")
    assert seen == f"00-{CLIENT_TRACE}-{spans['credential']['span_id']}-01", "Vault is asked under the credential span"


def test_two_replicas_sharing_the_cluster_store_respect_one_limit_together(registry, mcpgate_bin, tmp_path, seeds):
    from cluster import Cluster

    rule = {"name": "weather-shared", "servers": ["weather"], "per": ["server"], "limit": 3, "interval": "1h"}
    cluster = Cluster(registry, mcpgate_bin, tmp_path, servers(seeds), n=2, rate_limits={"store": "shared", "rules": [rule]})
    one, two = (Modern(r.url) for r in cluster.replicas)
    mark = seeds["weather"].log.mark()
    answers = [c.call("weather_get_forecast").json() for c in (one, two, one, two, one)]
    assert ["result" in a for a in answers] == [True, True, True, False, False], "three calls in all, whichever replica serves them"
    assert answers[3]["error"]["code"] == -32029 and answers[3]["error"]["data"]["rateLimit"]["rule"] == "weather-shared"
    assert 0 < answers[4]["error"]["data"]["retryAfterMs"] <= 1_200_000
    assert len(seeds["weather"].log.find(since=mark, rpc_method="tools/call")) == 3, "the backend received exactly the permitted calls"
    keys = [k.decode() for k in cluster_keys(cluster)]
    assert any(k.startswith("test:rl:{weather-shared}:") for k in keys), keys


def cluster_keys(cluster) -> list[bytes]:
    import redis

    return redis.Redis(host="127.0.0.1", port=cluster.redis.port).keys("test:rl:*")
