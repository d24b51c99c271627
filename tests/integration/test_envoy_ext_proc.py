"""mcpgate as Envoy's ext_proc router, against the real binary and real SDK backends.

Envoy itself cannot run here: `envoy_replay` sends the exact ProcessingRequest sequence Envoy
sends (request headers with pseudo-headers and raw values, buffered or streamed body, response
headers, streamed body) over a real gRPC client from Envoy's official protos, and applies the
answers as Envoy does. Every header mutation, body mutation and immediate response is asserted;
answers that mcpgate gives itself are compared with what the same gateway answers standalone.

Backends `a` and `b` are server_v2.py (SDK 2.x, SSE answers); routes `a.local` and `b.local`.
No auth here (identity and credentials: test_envoy_seed_story.py).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from envoy_replay import (
    FakeEnvoy,
    ProcStream,
    msg_request_body,
    msg_request_headers,
    msg_response_body,
    msg_response_headers,
    request_headers_of,
)
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from harness import (
    ACCEPT_BOTH,
    CAPS_KEY,
    LEGACY_VERSION,
    MODERN_VERSION,
    VERSION_KEY,
    Backend,
    Backends,
    Gateway,
    McpHttp,
    ProcessRegistry,
    find_binary,
    free_port,
    start_gateway_retrying,
)

JSON_HEADERS = {"content-type": "application/json", "accept": ACCEPT_BOTH}


@dataclass
class Env:
    registry: ProcessRegistry
    gw: Gateway
    a: Backend
    b: Backend
    grpc: str

    def envoy(self, **kwargs: Any) -> FakeEnvoy:
        clusters = {"a.local": f"http://127.0.0.1:{self.a.port}", "b.local": f"http://127.0.0.1:{self.b.port}"}
        return FakeEnvoy(self.grpc, clusters, **kwargs)


def envoy_section(port: int, **extra: Any) -> dict[str, Any]:
    return {"grpc_listen": f"127.0.0.1:{port}", "routes": {"a": "a.local", "b": "b.local"}, **extra}


@pytest.fixture(scope="module")
def shared_env(tmp_path_factory: pytest.TempPathFactory):
    binary = find_binary()
    registry = ProcessRegistry(tmp_path_factory.mktemp("envoy-ext-proc"))
    try:
        backends = Backends(registry)
        a, b = backends.pair()
        gw = Gateway(registry, binary, registry.workdir)
        port = free_port()
        start_gateway_retrying(gw, [a.config(), b.config()], ["a", "b"], envoy=envoy_section(port))
        yield Env(registry, gw, a, b, f"127.0.0.1:{port}")
    finally:
        registry.stop_all()


@pytest.fixture
def env(shared_env: Env, request: pytest.FixtureRequest):
    yield shared_env
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"\n===== shared process output ({shared_env.registry.workdir}) =====\n{shared_env.registry.dump_logs()}")


def rpc(method: str, params: dict[str, Any] | None = None, id: int | str | None = 1) -> bytes:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if id is not None:
        msg["id"] = id
    if params is not None:
        msg["params"] = params
    return json.dumps(msg).encode()


def initialize(envoy: FakeEnvoy, capabilities: dict[str, Any] | None = None) -> dict[str, str]:
    """A session through Envoy; returns the headers a client sends on it."""
    params = {"protocolVersion": LEGACY_VERSION, "capabilities": capabilities or {}, "clientInfo": {"name": "t", "version": "1"}}
    r = envoy.request("POST", "/mcp", JSON_HEADERS, rpc("initialize", params))
    assert (r.status, r.via) == (200, "immediate"), r.body
    headers = {**JSON_HEADERS, "mcp-session-id": r.headers["mcp-session-id"], "mcp-protocol-version": LEGACY_VERSION}
    n = envoy.request("POST", "/mcp", headers, rpc("notifications/initialized", id=None))
    assert (n.status, n.via, n.body) == (202, "immediate", b"")
    return headers


def step(envoy: FakeEnvoy, name: str):
    return next(m for n, m in envoy.log if n == name)


# ---------------------------------------------------------------------------------------------
# Answers mcpgate gives itself (immediate responses), equal to standalone
# ---------------------------------------------------------------------------------------------


def test_initialize_is_answered_by_mcpgate_with_its_own_session(env: Env):
    envoy = env.envoy()
    params = {"protocolVersion": LEGACY_VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    r = envoy.request("POST", "/mcp", JSON_HEADERS, rpc("initialize", params))

    assert (r.status, r.via) == (200, "immediate")
    assert step(envoy, "request_headers").set == {}, "nothing changes before the body is seen"
    sid = r.headers["mcp-session-id"]
    assert re.fullmatch(r"[\w-]+\.[\w-]{22}\.[\w-]{22}", sid), f"a signed gateway session id: {sid}"
    standalone = McpHttp(env.gw.url)
    standalone_result = standalone.initialize()
    assert r.json()["result"] == standalone_result, "the same initialize result as standalone"
    assert [e for e in env.a.log.entries() if e.get("session") == sid] == [], "the gateway's session id never reaches a backend"


def test_tools_list_is_an_immediate_response_identical_to_standalone(env: Env):
    envoy = env.envoy()
    headers = initialize(envoy)
    calls_before = len(env.a.log.entries())
    r = envoy.request("POST", "/mcp", headers, rpc("tools/list", id=7))

    assert (r.status, r.via, r.headers["content-type"]) == (200, "immediate", "application/json")
    standalone = McpHttp(env.gw.url)
    standalone.initialize()
    expected = standalone.request("tools/list", None)
    assert r.json()["result"] == expected["result"]
    assert r.json()["id"] == 7
    assert len(env.a.log.entries()) == calls_before, "lists come from the catalog, not from a backend"


def test_tool_call_is_routed_with_seed_headers_and_rewritten_body(env: Env):
    envoy = env.envoy()
    headers = initialize(envoy)
    body = b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"a_echo","arguments":{"text":"hi","big":123456789012345678901234567890}}}'
    mark = env.a.log.mark()
    r = envoy.request("POST", "/mcp", {**headers, "authorization": "Bearer client-token", "x-mcp-toolname": "spoofed", "x-mcp-servername": "b"}, body)

    routed = step(envoy, "request_body")
    expected_body = body.replace(b'"name":"a_echo"', b'"name":"echo"')
    assert routed.body == expected_body, "only the name changes; other bytes (a 30-digit integer) stay"
    assert routed.set["content-length"] == str(len(expected_body))
    assert routed.set["x-mcp-method"] == "tools/call"
    assert routed.set["x-mcp-toolname"] == "echo"
    assert routed.set["x-mcp-servername"] == "a"
    assert routed.set[":authority"] == "a.local"
    assert routed.set[":path"] == "/mcp"
    assert routed.set["mcp-protocol-version"] == LEGACY_VERSION
    assert routed.clear_route_cache, "Envoy must pick the route again after :authority changed"
    assert "authorization" in routed.remove, "the caller's token never goes on"
    backend_sid = routed.set["mcp-session-id"]
    assert backend_sid != headers["mcp-session-id"]
    # The backend session is the one the gateway opened for this client (initialize and
    # notifications/initialized under the same id).
    opened = env.a.log.find(mark, rpc_method="notifications/initialized")
    assert [e["session"] for e in opened] == [backend_sid]
    (call,) = env.a.log.find(mark, rpc_method="tools/call")
    assert call["session"] == backend_sid and call["name"] == "echo"
    assert "authorization" not in call["headers"] and "x-mcp-toolname" in call["headers"]
    assert call["headers"]["x-mcp-toolname"] == "echo", "the client's spoofed header was replaced"

    (result,) = r.messages()
    assert result["id"] == 3 and result["result"]["content"][0]["text"] == "hi"
    assert step(envoy, "response_headers").set == {"mcp-session-id": headers["mcp-session-id"]}, "the backend's session id is never shown"


def test_backend_session_is_per_client_session_and_reused(env: Env):
    envoy = env.envoy()
    first, second = initialize(envoy), initialize(envoy)

    def backend_session(headers: dict[str, str]) -> str:
        envoy.request("POST", "/mcp", headers, rpc("tools/call", {"name": "b_echo", "arguments": {"text": "x"}}))
        return step(envoy, "request_body").set["mcp-session-id"]

    s1, s1_again, s2 = backend_session(first), backend_session(first), backend_session(second)
    assert s1 == s1_again != s2


def test_resource_uris_are_renamespaced_on_the_way_back(env: Env):
    envoy = env.envoy(response_mode="BUFFERED")
    headers = initialize(envoy)
    r = envoy.request("POST", "/mcp", headers, rpc("resources/read", {"uri": "a+fixture://a/static"}))

    routed = json.loads(step(envoy, "request_body").body)
    assert routed["params"]["uri"] == "fixture://a/static"
    (msg,) = r.messages()
    assert msg["result"]["contents"][0]["uri"] == "a+fixture://a/static"
    standalone = McpHttp(env.gw.url)
    standalone.initialize()
    assert msg["result"] == standalone.result("resources/read", {"uri": "a+fixture://a/static"})


def test_unknown_and_denied_names_get_the_standalone_error_without_reaching_a_backend(env: Env):
    envoy = env.envoy()
    headers = initialize(envoy)
    mark = env.a.log.mark()
    r = envoy.request("POST", "/mcp", headers, rpc("tools/call", {"name": "a_nope", "arguments": {}}, id=9))

    assert (r.status, r.via) == (200, "immediate")
    standalone = McpHttp(env.gw.url)
    standalone.initialize()
    assert r.json() == standalone.request("tools/call", {"name": "a_nope", "arguments": {}}) | {"id": 9}
    assert r.json()["error"]["message"] == "Unknown tool: a_nope"
    assert env.a.log.find(mark, rpc_method="tools/call") == []


def test_server_requests_are_renumbered_and_the_answer_goes_back_to_the_backend(env: Env):
    envoy = env.envoy()
    headers = initialize(envoy, capabilities={"sampling": {}})
    grpc_target = env.grpc
    # The call: routed by the router, sent upstream by "Envoy", its SSE answer fed back chunk by chunk.
    s = ProcStream(grpc_target)
    hdrs = request_headers_of("POST", "/mcp", "mcp.example.com", headers)
    s.send(msg_request_headers(hdrs))
    routed = s.send(msg_request_body(rpc("tools/call", {"name": "a_sample", "arguments": {"prompt": "p?"}}, id=11)))
    fwd = {k: v for k, v in {**dict(hdrs), **routed.set}.items() if not k.startswith(":") and k not in routed.remove and k != "content-length"}
    with httpx.Client(timeout=30).stream("POST", f"http://127.0.0.1:{env.a.port}{routed.set[':path']}", headers=fwd, content=routed.body) as up:
        m = s.send(msg_response_headers(up.status_code, [(k.lower(), v) for k, v in up.headers.items()]))
        assert "content-length" not in m.set
        chunks = up.iter_raw()
        seen = b""
        while b"sampling/createMessage" not in seen:
            seen += next(chunks)
        m = s.send(msg_response_body(seen, end_of_stream=False))
        (original,) = [json.loads(line[5:]) for line in seen.decode().splitlines() if line.startswith("data:")]
        (request,) = [json.loads(line[5:]) for line in m.body.decode().splitlines() if line.startswith("data:")]
        assert request["method"] == "sampling/createMessage"
        assert request["id"] != original["id"] and request["id"].startswith("mcpgate-r."), "the backend's id is replaced by a signed gateway id"
        # The client's answer, through Envoy: routed to the same backend session under the backend's id.
        answer = {"jsonrpc": "2.0", "id": request["id"], "result": {"role": "assistant", "model": "m", "content": {"type": "text", "text": "yes"}}}
        r = envoy.request("POST", "/mcp", headers, json.dumps(answer).encode())
        back = step(envoy, "request_body")
        assert back.set[":authority"] == "a.local" and back.set["mcp-session-id"] == routed.set["mcp-session-id"]
        assert json.loads(back.body)["id"] == original["id"], "the backend gets its own id back"
        assert r.status == 202
        rest = b"".join(chunks)
    final = s.send(msg_response_body(rest, end_of_stream=True))
    (result,) = [json.loads(line[5:]) for line in final.body.decode().splitlines() if line.startswith("data:")]
    assert result["id"] == 11 and "sampled:yes" in json.dumps(result["result"])
    s.close()


def test_cancellation_goes_to_the_backend_that_has_the_call(env: Env):
    envoy = env.envoy()
    headers = initialize(envoy)
    s = ProcStream(env.grpc)
    hdrs = request_headers_of("POST", "/mcp", "mcp.example.com", headers)
    s.send(msg_request_headers(hdrs))
    routed = s.send(msg_request_body(rpc("tools/call", {"name": "b_sleep", "arguments": {"seconds": 5}}, id="call-1")))
    assert routed.set[":authority"] == "b.local"

    cancel = rpc("notifications/cancelled", {"requestId": "call-1", "reason": "user"}, id=None)
    c = ProcStream(env.grpc)
    c.send(msg_request_headers(hdrs))
    relayed = c.send(msg_request_body(cancel))
    assert relayed.set[":authority"] == "b.local"
    assert relayed.set["mcp-session-id"] == routed.set["mcp-session-id"]
    assert relayed.body == cancel, "ids are the client's own on the backend session: the body is unchanged"
    c.close()
    s.close()
    # Once the call's stream is over, a late cancellation has nowhere to go: accepted, not routed.
    deadline = time.monotonic() + 5
    while True:
        late = env.envoy().request("POST", "/mcp", headers, cancel)
        if late.via == "immediate" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert (late.status, late.via) == (202, "immediate")


# ---------------------------------------------------------------------------------------------
# Streamed bodies
# ---------------------------------------------------------------------------------------------


def test_streamed_body_asks_for_buffering_and_is_routed_when_envoy_honours_it(env: Env):
    envoy = env.envoy(request_mode="STREAMED", honour_mode_override=True)
    headers = initialize(envoy)
    r = envoy.request("POST", "/mcp", headers, rpc("tools/call", {"name": "a_echo", "arguments": {"text": "buffered"}}))

    asked = step(envoy, "request_headers")
    assert asked.mode_override.request_body_mode == 2, "BUFFERED requested in the headers answer"
    assert step(envoy, "request_body").set[":authority"] == "a.local"
    assert r.via == "upstream" and r.messages()[0]["result"]["content"][0]["text"] == "buffered"


def test_streamed_body_chunks_are_held_back_and_the_call_answered_by_mcpgate(env: Env):
    envoy = env.envoy(request_mode="STREAMED", honour_mode_override=False, chunk=5)
    headers = initialize(envoy)
    body = rpc("tools/call", {"name": "a_echo", "arguments": {"text": "streamed"}})
    mark = env.a.log.mark()
    r = envoy.request("POST", "/mcp", {**headers, "authorization": "Bearer t"}, body)

    *chunk_answers, last = [m for n, m in envoy.log if n == "request_body"]
    assert len(chunk_answers) == -(-len(body) // 5) - 1, "every chunk but the last was answered"
    assert all(m.clear_body for m in chunk_answers), "no partial body reaches the upstream Envoy already picked"
    assert last.immediate is not None
    assert "authorization" in step(envoy, "request_headers").remove, "the headers went on before the body: the token was removed"
    assert (r.status, r.via) == (200, "immediate")
    (msg,) = r.messages()
    assert msg["result"]["content"][0]["text"] == "streamed"
    (call,) = env.a.log.find(mark, rpc_method="tools/call")
    assert call["headers"].get("x-mcp-toolname") is None, "the gateway called the backend itself"


# ---------------------------------------------------------------------------------------------
# Other methods and paths
# ---------------------------------------------------------------------------------------------


def test_get_stream_is_405_and_delete_ends_the_session(env: Env):
    envoy = env.envoy()
    headers = initialize(envoy)
    g = envoy.request("GET", "/mcp", {"accept": "text/event-stream", "mcp-session-id": headers["mcp-session-id"]})
    assert (g.status, g.via, g.headers["allow"]) == (405, "immediate", "POST, DELETE")

    d = envoy.request("DELETE", "/mcp", {"mcp-session-id": headers["mcp-session-id"]})
    assert (d.status, d.via) == (204, "immediate")
    after = envoy.request("POST", "/mcp", headers, rpc("tools/list"))
    assert (after.status, after.json()["error"]["message"]) == (404, "Session not found")


def test_modern_call_is_routed_statelessly_with_backend_headers(env: Env):
    envoy = env.envoy()
    meta = {VERSION_KEY: MODERN_VERSION, CAPS_KEY: {}}
    body = rpc("tools/call", {"name": "b_echo", "arguments": {"text": "now"}, "_meta": meta}, id=5)
    headers = {**JSON_HEADERS, "mcp-protocol-version": MODERN_VERSION, "mcp-method": "tools/call", "mcp-name": "b_echo"}
    r = envoy.request("POST", "/mcp", headers, body)

    routed = step(envoy, "request_body")
    assert routed.set["mcp-name"] == "echo", "Mcp-Name recomputed from the backend's name"
    assert routed.set[":authority"] == "b.local"
    assert "mcp-session-id" not in routed.set, "stateless: no backend session"
    assert json.loads(routed.body)["params"]["_meta"] == meta, "_meta passes unchanged"
    (msg,) = r.messages()
    assert msg["id"] == 5 and msg["result"]["content"][0]["text"] == "now"


def test_modern_header_disagreeing_with_body_gets_the_standalone_400(env: Env):
    envoy = env.envoy()
    meta = {VERSION_KEY: MODERN_VERSION, CAPS_KEY: {}}
    body = rpc("tools/call", {"name": "b_echo", "arguments": {"text": "x"}, "_meta": meta}, id=5)
    headers = {**JSON_HEADERS, "mcp-protocol-version": MODERN_VERSION, "mcp-method": "tools/call", "mcp-name": "a_echo"}
    r = envoy.request("POST", "/mcp", headers, body)
    standalone = httpx.post(env.gw.url, headers=headers, content=body)
    assert (r.status, r.via) == (400, "immediate")
    assert (r.status, r.json()) == (standalone.status_code, standalone.json())
    assert r.json()["error"]["code"] == -32020


def test_modern_lists_are_answered_and_listen_streams_refused(env: Env):
    envoy = env.envoy()
    meta = {VERSION_KEY: MODERN_VERSION, CAPS_KEY: {}}
    headers = {**JSON_HEADERS, "mcp-protocol-version": MODERN_VERSION}
    body = rpc("tools/list", {"_meta": meta}, id=2)
    r = envoy.request("POST", "/mcp", {**headers, "mcp-method": "tools/list"}, body)
    direct = httpx.post(env.gw.url, headers={**headers, "mcp-method": "tools/list"}, content=body)
    assert (r.status, r.via, r.json()) == (200, "immediate", direct.json())

    listen = envoy.request("POST", "/mcp", {**headers, "mcp-method": "subscriptions/listen"}, rpc("subscriptions/listen", {"_meta": meta}, id=3))
    assert (listen.status, listen.via) == (404, "immediate"), "a stream cannot be an immediate response"
    assert listen.json()["error"]["code"] == -32601 and listen.json()["id"] == 3


def test_discovery_metadata_path_is_answered_by_the_front_door(env: Env):
    r = env.envoy().request("GET", "/healthz", {})
    assert (r.status, r.via, r.body) == (200, "immediate", httpx.get(env.gw.base + "/healthz").content)


# ---------------------------------------------------------------------------------------------
# Bad input: every case answered, closed, never a hang
# ---------------------------------------------------------------------------------------------


BAD_BODIES = [
    ("malformed", b'{"jsonrpc":"2.0","id":1,', JSON_HEADERS, 400, -32700),
    ("batch", b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', JSON_HEADERS, 400, -32600),
    ("duplicate-key", b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a_echo","name":"b_echo"}}', JSON_HEADERS, 400, -32600),
    ("not-json-content-type", b'{"jsonrpc":"2.0","id":1,"method":"ping"}', {**JSON_HEADERS, "content-type": "text/plain"}, 415, -32600),
    ("no-sse-accept", b'{"jsonrpc":"2.0","id":1,"method":"ping"}', {**JSON_HEADERS, "accept": "application/json"}, 406, -32600),
]


@pytest.mark.parametrize("name,body,headers,status,code", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_bodies_get_the_standalone_answer(env: Env, name: str, body: bytes, headers: dict[str, str], status: int, code: int):
    session = initialize(env.envoy())
    headers = {**headers, "mcp-session-id": session["mcp-session-id"]}
    r = env.envoy().request("POST", "/mcp", headers, body)
    standalone = httpx.post(env.gw.url, headers=headers, content=body)
    assert (r.status, r.via) == (status, "immediate")
    assert r.json()["error"]["code"] == code
    assert (r.status, r.json()) == (standalone.status_code, standalone.json())


@pytest.mark.parametrize(
    "headers,status,message",
    [
        ({}, 400, "Bad Request: Mcp-Session-Id header is required"),
        ({"mcp-session-id": "0" * 32}, 404, "Session not found"),
        ({"mcp-session-id": "x", "mcp-protocol-version": "1999-01-01"}, 400, 'Bad Request: unsupported MCP-Protocol-Version "1999-01-01"'),
    ],
    ids=["missing-session", "unknown-session", "unsupported-version"],
)
def test_session_errors_get_the_standalone_answer(env: Env, headers: dict[str, str], status: int, message: str):
    r = env.envoy().request("POST", "/mcp", {**JSON_HEADERS, **headers}, rpc("tools/call", {"name": "a_echo", "arguments": {}}))
    assert (r.status, r.via, r.json()["error"]["message"]) == (status, "immediate", message)


def test_oversize_body_is_413(env: Env):
    body = rpc("tools/call", {"name": "a_echo", "arguments": {"text": "x" * (4 * 1024 * 1024)}})
    r = env.envoy().request("POST", "/mcp", JSON_HEADERS, body)
    assert (r.status, r.via) == (413, "immediate")
    assert r.json()["error"]["message"] == "request body larger than 4194304 bytes"


def test_a_body_in_too_many_chunks_is_413(env: Env):
    headers = initialize(env.envoy())
    body = rpc("tools/call", {"name": "a_echo", "arguments": {"text": "y" * 3000}})
    envoy = env.envoy(request_mode="STREAMED", honour_mode_override=False, chunk=2)
    r = envoy.request("POST", "/mcp", headers, body)
    assert (r.status, r.via) == (413, "immediate")
    assert len([n for n, _ in envoy.log if n == "request_body"]) == 1025, "refused at chunk max_body_chunks + 1"


def test_a_partial_buffer_is_413(env: Env):
    headers = initialize(env.envoy())
    s = ProcStream(env.grpc)
    s.send(msg_request_headers(request_headers_of("POST", "/mcp", "mcp.example.com", headers), request_mode="BUFFERED_PARTIAL"))
    m = s.send(msg_request_body(b'{"jsonrpc":"2.0","id":1,"method":"tools/call","par', end_of_stream=False))
    assert m.immediate_status == 413
    s.close()


@pytest.mark.parametrize("mode", ["FULL_DUPLEX_STREAMED", "GRPC"])
def test_unsupported_body_modes_fail_closed(env: Env, mode: str):
    s = ProcStream(env.grpc)
    m = s.send(msg_request_headers(request_headers_of("POST", "/mcp", "mcp.example.com", JSON_HEADERS), request_mode=mode))
    assert m.immediate_status == 500
    assert "request_body_mode is not supported" in m.immediate_json()["error"]["message"]
    s.close()


def test_unknown_message_and_out_of_order_messages_fail_closed(env: Env):
    s = ProcStream(env.grpc)
    m = s.send(ep.ProcessingRequest())
    assert m.immediate_status == 500 and "does not know" in m.immediate_json()["error"]["message"]
    s.close()
    s = ProcStream(env.grpc)
    m = s.send(msg_response_headers(200, []))
    assert m.immediate_status == 500 and "response_headers arrived out of order" in m.immediate_json()["error"]["message"]
    s.close()


def test_observability_mode_fails_closed(env: Env):
    s = ProcStream(env.grpc)
    msg = msg_request_headers(request_headers_of("POST", "/mcp", "mcp.example.com", JSON_HEADERS))
    msg.observability_mode = True
    m = s.send(msg)
    assert m.immediate_status == 500 and "observability_mode is not supported" in m.immediate_json()["error"]["message"]
    s.close()


def test_trailers_are_acknowledged_without_changes(env: Env):
    s = ProcStream(env.grpc)
    m = s.send(ep.ProcessingRequest(request_trailers=ep.HttpTrailers()))
    assert m.kind == "request_trailers"
    s.close()


def test_backend_losing_the_session_gets_the_standalone_error_and_a_fresh_session_next(env: Env):
    envoy = env.envoy()
    headers = initialize(envoy)
    envoy.request("POST", "/mcp", headers, rpc("tools/call", {"name": "a_echo", "arguments": {"text": "1"}}))
    first = step(envoy, "request_body").set["mcp-session-id"]
    s = ProcStream(env.grpc)
    hdrs = request_headers_of("POST", "/mcp", "mcp.example.com", headers)
    s.send(msg_request_headers(hdrs))
    s.send(msg_request_body(rpc("tools/call", {"name": "a_echo", "arguments": {"text": "2"}}, id=4)))
    m = s.send(msg_response_headers(404, [("content-type", "application/json")]))
    assert m.immediate_status == 200
    assert m.immediate_json() == {"jsonrpc": "2.0", "id": 4, "error": {"code": -32603, "message": "server 'a' is unavailable: backend session expired", "data": {"reason": "unavailable", "server": "a"}}}
    s.close()
    envoy.request("POST", "/mcp", headers, rpc("tools/call", {"name": "a_echo", "arguments": {"text": "3"}}))
    assert step(envoy, "request_body").set["mcp-session-id"] != first


def test_a_request_that_never_continues_does_not_hang_the_service(env: Env):
    """A stream Envoy abandons mid-request leaves nothing behind: the next stream is served."""
    s = ProcStream(env.grpc, timeout=2)
    s.send(msg_request_headers(request_headers_of("POST", "/mcp", "mcp.example.com", JSON_HEADERS)))
    s.close()
    r = env.envoy().request("POST", "/mcp", JSON_HEADERS, rpc("ping"))
    assert r.status == 400 and r.json()["error"]["message"] == "Bad Request: Mcp-Session-Id header is required"


# ---------------------------------------------------------------------------------------------
# Configured behaviour: failure mode open, shared secret
# ---------------------------------------------------------------------------------------------


def test_failure_mode_open_lets_the_phase_continue_without_the_callers_token(registry, backends, mcpgate_bin, tmp_path):
    a = backends.v2("a")
    gw = Gateway(registry, mcpgate_bin, tmp_path)
    port = free_port()
    gw.write_config([a.config()], envoy={"grpc_listen": f"127.0.0.1:{port}", "failure_mode": "open"})
    gw.start_with_config(ready=["a"])
    s = ProcStream(f"127.0.0.1:{port}")
    m = s.send(msg_response_headers(200, []))
    assert m.kind == "response_headers" and m.immediate is None
    s.close()
    s = ProcStream(f"127.0.0.1:{port}")
    m = s.send(msg_request_headers([(":method", "POST"), (":path", "/mcp"), (":authority", "x"), ("authorization", "Bearer t"), ("x-mcp-toolname", "x")], request_mode="GRPC"))
    assert m.kind == "request_headers" and sorted(m.remove) == ["authorization", "x-mcp-toolname"]
    s.close()
    # A message it does not know cannot be continued: the stream ends, Envoy's own
    # failure_mode_allow decides.
    s = ProcStream(f"127.0.0.1:{port}")
    s._q.put(ep.ProcessingRequest())
    assert s.ended()
    s.close()


def test_bad_input_is_still_refused_when_failure_mode_is_open(registry, backends, mcpgate_bin, tmp_path):
    a = backends.v2("a")
    gw = Gateway(registry, mcpgate_bin, tmp_path)
    port = free_port()
    gw.write_config([a.config()], envoy={"grpc_listen": f"127.0.0.1:{port}", "failure_mode": "open"})
    gw.start_with_config(ready=["a"])
    r = FakeEnvoy(f"127.0.0.1:{port}", {}).request("POST", "/mcp", JSON_HEADERS, b"{not json")
    assert (r.status, r.via) == (400, "immediate")


def test_without_the_shared_secret_the_service_refuses(registry, backends, mcpgate_bin, tmp_path):
    a = backends.v2("a")
    gw = Gateway(registry, mcpgate_bin, tmp_path)
    port = free_port()
    secret = "s3cret-s3cret-s3cret"
    http_port = free_port()
    gw.write_config([a.config()], envoy={"grpc_listen": f"127.0.0.1:{port}", "http_authz_listen": f"127.0.0.1:{http_port}", "shared_secret": secret})
    gw.start_with_config(ready=["a"])
    assert httpx.get(f"http://127.0.0.1:{http_port}/.well-known/oauth-protected-resource").status_code == 401
    allowed = httpx.get(f"http://127.0.0.1:{http_port}/.well-known/oauth-protected-resource", headers={"x-mcpgate-envoy-secret": secret})
    assert allowed.status_code == 200, "the HTTP mode checks the secret too"
    s = ProcStream(f"127.0.0.1:{port}")
    with pytest.raises(grpc.RpcError) as err:
        s.send(msg_request_headers(request_headers_of("POST", "/mcp", "x", JSON_HEADERS)))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    s.close()
    r = FakeEnvoy(f"127.0.0.1:{port}", {}, secret=secret).request("POST", "/mcp", JSON_HEADERS, rpc("ping"))
    assert r.status == 400, "with the secret the request is processed"


def test_with_the_main_endpoint_off_envoy_is_refused_there_and_virtual_servers_still_answer(registry, backends, mcpgate_bin, tmp_path):
    """`expose_full_catalog: false` holds through Envoy: the main path is answered 404 (as
    standalone), never routed; a virtual server's path is answered by the gateway's front door
    with only its selection."""
    a = backends.v2("a")
    gw = Gateway(registry, mcpgate_bin, tmp_path)
    port = free_port()
    gw.write_config(
        [a.config()],
        envoy={"grpc_listen": f"127.0.0.1:{port}", "routes": {"a": "a.local"}},
        expose_full_catalog=False,
        virtual_servers=[{"name": "ops", "include": [{"kind": "tool", "name": "a_echo"}]}],
    )
    gw.start_with_config(ready=["a"])
    envoy = FakeEnvoy(f"127.0.0.1:{port}", {"a.local": f"http://127.0.0.1:{a.port}"})
    params = {"protocolVersion": LEGACY_VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    main = envoy.request("POST", "/mcp", JSON_HEADERS, rpc("initialize", params))
    assert (main.status, main.via) == (404, "immediate"), main.body
    assert httpx.post(gw.url, headers=JSON_HEADERS, content=rpc("initialize", params)).status_code == 404, "the same as standalone"
    listed = envoy.request("POST", "/mcp", JSON_HEADERS, rpc("tools/list", id=2))
    assert listed.status == 404 and b"a_echo" not in listed.body

    ops = envoy.request("POST", "/mcp/ops", JSON_HEADERS, rpc("initialize", params))
    assert (ops.status, ops.via) == (200, "immediate"), ops.body
    headers = {**JSON_HEADERS, "mcp-session-id": ops.headers["mcp-session-id"], "mcp-protocol-version": LEGACY_VERSION}
    tools = envoy.request("POST", "/mcp/ops", headers, rpc("tools/list", id=3))
    assert tools.status == 200, tools.body
    text = tools.body.decode()
    payload = json.loads(text[text.index("{") : text.rindex("}") + 1])
    assert [t["name"] for t in payload["result"]["tools"]] == ["a_echo"]
