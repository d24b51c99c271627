"""The modern (2026-07-28, stateless) era on POST /mcp, byte by byte with httpx.

A POST whose `params._meta` carries `io.modelcontextprotocol/protocolVersion` is a modern request.
These tests pin the gateway's answer to each bad input (status, JSON-RPC code, id echoed), the
catalog answers (`server/discover`, lists with cache hints), the SEP-2243 headers the gateway
checks (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`) and recomputes for a
modern backend, the MRTR bridge to a legacy backend (`input_required` / `requestState`), and
cancellation by closing the response stream.

Backends
- `mod`: server_v2.py (SDK 2.x; the gateway detects it as modern; its lists give `ttlMs: 0`).
- `leg`: server_v1.py (mcp<2; legacy only).
- `hdr`: HEADER_SERVER below, a modern backend on the SDK 2.x low-level `Server` whose tools declare
  `x-mcp-header` with explicit `inputSchema`s: `route` (valid: string `Region`, integer `Count`,
  boolean `Dry`), `plain` (no header) and four invalid declarations (on a `number`, inside
  `items`, duplicated case-insensitively, not an HTTP token). The SDK itself checks the
  `Mcp-Param-*` headers it receives against the body, so a wrong forwarded header would fail there.

Most tests share one gateway (module scope) with the three backends: they only read. Tests that
need their own configuration (cache ttl, auth) start their own.
"""

from __future__ import annotations

import base64
import json
import socket
import sys
import time
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from harness import (
    find_binary,
    start_gateway_retrying,
    ACCEPT_BOTH,
    CAPS_KEY,
    VERSION_KEY,
    MODERN_VERSION,
    PY_FIXTURES,
    VENV1_PY,
    Backend,
    Backends,
    Gateway,
    ProcessRegistry,
    free_port,
    parse_sse,
    python2,
    tool_text,
    wait_until,
)

LOG_LEVEL_KEY = "io.modelcontextprotocol/logLevel"
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"

HEADER_MISMATCH = -32020
UNSUPPORTED_VERSION = -32022
INVALID_PARAMS = -32602
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601

LEGACY_ONLY = ["initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"]
LISTS = {
    "tools/list": "tools",
    "prompts/list": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
}
ELICIT_ARGS = {"question": "Your name?"}
ACCEPT_42 = {"elicitation-1": {"action": "accept", "content": {"answer": "42"}}}


# ---------------------------------------------------------------------------------------------
# The x-mcp-header backend (written next to the test's logs and run with the SDK 2.x python)
# ---------------------------------------------------------------------------------------------

HEADER_SERVER = r'''
"""Modern backend (SDK 2.x low-level Server) whose tools declare x-mcp-header (test_modern_http.py)."""
import argparse
import json
import sys

import anyio

parser = argparse.ArgumentParser()
parser.add_argument("--fixtures", required=True)
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--log", required=True)
parser.add_argument("--ttl-ms", type=int, default=None, help="ttlMs (cacheScope public) on tools/list")
args = parser.parse_args()
sys.path.insert(0, args.fixtures)

import mcp_types as types  # noqa: E402
import uvicorn  # noqa: E402
from fixture_common import RecordingASGI, RequestLog, announce_ready, wait_for_port_then  # noqa: E402
from mcp.server.lowlevel import Server  # noqa: E402

SCHEMAS = {
    "route": {
        "type": "object",
        "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "count": {"type": "integer", "x-mcp-header": "Count"},
            "dry": {"type": "boolean", "x-mcp-header": "Dry"},
            "note": {"type": "string"},
        },
        "required": ["region"],
    },
    "plain": {"type": "object", "properties": {"text": {"type": "string"}}},
    "on_number": {"type": "object", "properties": {"ratio": {"type": "number", "x-mcp-header": "Ratio"}}},
    "in_items": {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"type": "string", "x-mcp-header": "Tag"}}},
    },
    "duplicate": {
        "type": "object",
        "properties": {
            "a": {"type": "string", "x-mcp-header": "Zone"},
            "b": {"type": "string", "x-mcp-header": "zone"},
        },
    },
    "not_token": {"type": "object", "properties": {"a": {"type": "string", "x-mcp-header": "Bad Name"}}},
}


async def list_tools(ctx, params):
    tools = [types.Tool(name=n, description=f"tool {n}", input_schema=s) for n, s in SCHEMAS.items()]
    if args.ttl_ms is None:
        return types.ListToolsResult(tools=tools)
    return types.ListToolsResult(tools=tools, ttl_ms=args.ttl_ms, cache_scope="public")


async def call_tool(ctx, params):
    # The arguments as received, canonical JSON.
    text = json.dumps(params.arguments or {}, sort_keys=True)
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


server = Server("fixture-hdr", version="1.0.0", on_list_tools=list_tools, on_call_tool=call_tool)
app = RecordingASGI(server.streamable_http_app(host="127.0.0.1"), RequestLog(args.log, "hdr"))


async def main():
    wait_for_port_then("127.0.0.1", args.port, lambda: announce_ready("hdr", "streamable-http", args.port))
    await uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning")).serve()


anyio.run(main)
'''

VALID_HEADER_TOOLS = ["hdr_plain", "hdr_route"]
INVALID_HEADER_TOOLS = {
    "on a number property": "hdr_on_number",
    "inside items": "hdr_in_items",
    "duplicated case-insensitively": "hdr_duplicate",
    "not an HTTP token": "hdr_not_token",
}


def header_backend(registry: ProcessRegistry, name: str = "hdr", ttl_ms: int | None = None, start: bool = True) -> Backend:
    script = registry.workdir / "header_server.py"
    script.write_text(HEADER_SERVER)
    port = free_port()
    log = registry.workdir / f"requests-{name}.jsonl"
    argv = [python2(), str(script), "--fixtures", str(PY_FIXTURES), "--port", str(port), "--log", str(log)]
    if ttl_ms is not None:
        argv += ["--ttl-ms", str(ttl_ms)]
    backend = Backend(registry, name, "v2", "streamable-http", port, argv, log)
    backend.launch()
    return backend.wait_ready() if start else backend


# ---------------------------------------------------------------------------------------------
# A raw modern client
# ---------------------------------------------------------------------------------------------


def sentinel(value: str) -> str:
    return "=?base64?" + base64.b64encode(value.encode("utf-8")).decode("ascii") + "?="


def header_value(value: str) -> str:
    """`value` as a header: plain when visible ASCII, else the =?base64?…?= form."""
    plain = value and all(0x21 <= ord(c) <= 0x7E or c == " " for c in value) and value.strip() == value
    return value if plain else sentinel(value)


def decode_header(value: str) -> str:
    if value.startswith("=?base64?") and value.endswith("?="):
        return base64.b64decode(value[len("=?base64?") : -2]).decode("utf-8")
    return value


NAME_MEMBER = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


class Modern:
    """Stateless 2026-07-28 requests: `_meta` and SEP-2243 headers built from the body unless told."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.http = httpx.Client(timeout=30.0)
        if token is not None:
            self.http.headers["Authorization"] = f"Bearer {token}"
        self.next_id = 1

    def close(self) -> None:
        self.http.close()

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def body(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        caps: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        rpc_id: int | None = None,
    ) -> dict[str, Any]:
        """`meta` replaces the whole `_meta`; otherwise version + `caps` (default {})."""
        full = dict(params or {})
        full["_meta"] = meta if meta is not None else {VERSION_KEY: MODERN_VERSION, CAPS_KEY: caps or {}}
        return {"jsonrpc": "2.0", "id": rpc_id if rpc_id is not None else self.new_id(), "method": method, "params": full}

    @staticmethod
    def headers_for(body: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Default headers for `body`; `extra` adds or overrides them, a None value drops one."""
        h: dict[str, Any] = {
            "Accept": ACCEPT_BOTH,
            "Content-Type": "application/json",
            "MCP-Protocol-Version": MODERN_VERSION,
        }
        method = body.get("method")
        if isinstance(method, str):
            h["Mcp-Method"] = method
            member = NAME_MEMBER.get(method)
            params = body.get("params")
            if member and isinstance(params, dict) and isinstance(params.get(member), str):
                h["Mcp-Name"] = header_value(params[member])
        for k, v in (extra or {}).items():
            for existing in [key for key in h if key.lower() == k.lower()]:
                del h[existing]
            if v is not None:
                h[k] = v
        return h

    def post_body(self, body: Any, headers: dict[str, Any] | None = None) -> httpx.Response:
        default_for = body if isinstance(body, dict) else {}
        return self.http.post(self.url, content=json.dumps(body).encode(), headers=self.headers_for(default_for, headers))

    def post(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        headers: dict[str, Any] | None = None,
        caps: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        rpc_id: int | None = None,
    ) -> httpx.Response:
        return self.post_body(self.body(method, params, caps=caps, meta=meta, rpc_id=rpc_id), headers)

    def call(self, name: str, arguments: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
        extra = kw.pop("extra_params", {})
        return self.post("tools/call", {"name": name, "arguments": arguments or {}, **extra}, **kw)


def message(r: httpx.Response) -> dict[str, Any]:
    """The one JSON-RPC response in a POST answer (JSON or SSE)."""
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        msgs = [m for m in parse_sse(r.text) if "id" in m and "method" not in m]
        assert len(msgs) == 1, r.text
        return msgs[0]
    return json.loads(r.text)


def assert_error(r: httpx.Response, status: int, code: int, rpc_id: Any) -> dict[str, Any]:
    assert r.status_code == status, f"HTTP {r.status_code}: {r.text}"
    msg = message(r)
    assert "error" in msg, msg
    assert msg["error"]["code"] == code, msg
    assert msg["id"] == rpc_id, msg
    return msg["error"]


def assert_header_mismatch(r: httpx.Response, rpc_id: Any) -> dict[str, Any]:
    err = assert_error(r, 400, HEADER_MISMATCH, rpc_id)
    assert err["message"].startswith("Header mismatch:"), err
    return err


def result_of(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, f"HTTP {r.status_code}: {r.text}"
    msg = message(r)
    assert "result" in msg, msg
    return msg["result"]


# ---------------------------------------------------------------------------------------------
# Gateways
# ---------------------------------------------------------------------------------------------





class Env:
    def __init__(self, registry: ProcessRegistry, gw: Gateway, mod: Backend, leg: Backend, hdr: Backend) -> None:
        self.registry = registry
        self.gw = gw
        self.mod = mod
        self.leg = leg
        self.hdr = hdr


@pytest.fixture(scope="module")
def shared_env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    binary = find_binary()
    if not VENV1_PY.exists():
        pytest.skip(f"{VENV1_PY} missing: run scripts/setup-test-env.sh")
    registry = ProcessRegistry(tmp_path_factory.mktemp("modern-shared"))
    try:
        backends = Backends(registry)
        mod = backends.v2("mod", start=False)
        leg = backends.v1("leg", start=False)
        hdr = header_backend(registry, start=False)
        Backends.ready(mod, leg, hdr)
        gw = Gateway(registry, binary, registry.workdir)
        start_gateway_retrying(gw, [mod.config(), leg.config(), hdr.config()], ["mod", "leg", "hdr"])
        yield Env(registry, gw, mod, leg, hdr)
    finally:
        registry.stop_all()


@pytest.fixture
def env(shared_env: Env, request: pytest.FixtureRequest) -> Env:
    yield shared_env
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"\n===== shared process output ({shared_env.registry.workdir}) =====\n{shared_env.registry.dump_logs()}")


@pytest.fixture
def client(env: Env) -> Modern:
    c = Modern(env.gw.url)
    yield c
    c.close()


# ---------------------------------------------------------------------------------------------
# MCP-Protocol-Version and _meta
# ---------------------------------------------------------------------------------------------


def test_missing_protocol_version_header_is_400_header_mismatch(client):
    body = client.body("tools/list")

    r = client.post_body(body, {"MCP-Protocol-Version": None})

    assert_header_mismatch(r, body["id"])


def test_protocol_version_header_differing_from_meta_is_400_header_mismatch(client):
    body = client.body("tools/list")

    r = client.post_body(body, {"MCP-Protocol-Version": "2025-11-25"})

    assert_header_mismatch(r, body["id"])


def test_protocol_version_header_with_invalid_characters_is_400_header_mismatch(client):
    body = client.body("tools/list")

    r = client.post_body(body, {"MCP-Protocol-Version": MODERN_VERSION.encode() + b"\xe9"})

    assert_header_mismatch(r, body["id"])


def test_unsupported_meta_version_is_400_unsupported_version_listing_the_supported_one(client):
    body = client.body("tools/list", meta={VERSION_KEY: "2030-01-01", CAPS_KEY: {}})

    r = client.post_body(body, {"MCP-Protocol-Version": "2030-01-01"})

    err = assert_error(r, 400, UNSUPPORTED_VERSION, body["id"])
    assert err["data"] == {"supported": [MODERN_VERSION], "requested": "2030-01-01"}


def test_non_string_meta_version_is_400_invalid_params(client):
    body = client.body("tools/list", meta={VERSION_KEY: 20260728, CAPS_KEY: {}})

    r = client.post_body(body)

    assert_error(r, 400, INVALID_PARAMS, body["id"])


def test_missing_client_capabilities_is_400_invalid_params(client):
    body = client.body("tools/list", meta={VERSION_KEY: MODERN_VERSION})

    r = client.post_body(body)

    assert_error(r, 400, INVALID_PARAMS, body["id"])


@pytest.mark.parametrize("caps", [[], "elicitation", None, 1], ids=["array", "string", "null", "number"])
def test_client_capabilities_not_an_object_is_400_invalid_params(client, caps):
    body = client.body("tools/list", meta={VERSION_KEY: MODERN_VERSION, CAPS_KEY: caps})

    r = client.post_body(body)

    assert_error(r, 400, INVALID_PARAMS, body["id"])


@pytest.mark.parametrize("level", ["verbose", "INFO", 3, None], ids=["unknown-word", "uppercase", "number", "null"])
def test_log_level_not_a_level_is_400_invalid_params(client, level):
    body = client.body("tools/list", meta={VERSION_KEY: MODERN_VERSION, CAPS_KEY: {}, LOG_LEVEL_KEY: level})

    r = client.post_body(body)

    assert_error(r, 400, INVALID_PARAMS, body["id"])


def test_valid_log_level_is_accepted(client):
    body = client.body("tools/list", meta={VERSION_KEY: MODERN_VERSION, CAPS_KEY: {}, LOG_LEVEL_KEY: "warning"})

    assert result_of(client.post_body(body))["tools"]


@pytest.mark.parametrize("params", [["a"], "x", 7], ids=["array", "string", "number"])
def test_params_not_an_object_is_400_invalid_params(client, params):
    body = {"jsonrpc": "2.0", "id": 41, "method": "tools/list", "params": params}

    r = client.post_body(body)

    assert_error(r, 400, INVALID_PARAMS, 41)


# ---------------------------------------------------------------------------------------------
# Mcp-Method
# ---------------------------------------------------------------------------------------------


def test_missing_mcp_method_header_is_400_header_mismatch(client):
    body = client.body("tools/list")

    r = client.post_body(body, {"Mcp-Method": None})

    assert_header_mismatch(r, body["id"])


def test_mcp_method_header_differing_from_body_is_400_header_mismatch(client):
    body = client.body("tools/list")

    r = client.post_body(body, {"Mcp-Method": "prompts/list"})

    assert_header_mismatch(r, body["id"])


def test_mcp_method_header_differing_only_in_case_is_400_header_mismatch(client):
    body = client.body("tools/list")

    r = client.post_body(body, {"Mcp-Method": "Tools/List"})

    assert_header_mismatch(r, body["id"])


# ---------------------------------------------------------------------------------------------
# Mcp-Name
# ---------------------------------------------------------------------------------------------


def test_tools_call_without_mcp_name_is_400_header_mismatch(client, env):
    mark = env.mod.log.mark()
    body = client.body("tools/call", {"name": "mod_echo", "arguments": {"text": "x"}})

    r = client.post_body(body, {"Mcp-Name": None})

    assert_header_mismatch(r, body["id"])
    assert env.mod.log.calls(mark) == [], "a refused call must not reach the backend"


def test_tools_call_naming_another_tool_in_mcp_name_is_400_header_mismatch(client, env):
    mark = env.mod.log.mark()
    body = client.body("tools/call", {"name": "mod_echo", "arguments": {"text": "x"}})

    r = client.post_body(body, {"Mcp-Name": "mod_add"})

    assert_header_mismatch(r, body["id"])
    assert env.mod.log.calls(mark) == []


def test_tools_call_with_the_backends_unprefixed_name_in_mcp_name_is_400_header_mismatch(client):
    body = client.body("tools/call", {"name": "mod_echo", "arguments": {"text": "x"}})

    r = client.post_body(body, {"Mcp-Name": "echo"})

    assert_header_mismatch(r, body["id"])


def test_mcp_name_with_raw_non_ascii_bytes_is_400_header_mismatch(client):
    body = client.body("tools/call", {"name": "mod_echo", "arguments": {"text": "x"}})

    r = client.post_body(body, {"Mcp-Name": b"mod_echo\xc3\xa9"})

    assert_header_mismatch(r, body["id"])


def test_mcp_name_with_invalid_base64_is_400_header_mismatch(client):
    body = client.body("tools/call", {"name": "mod_echo", "arguments": {"text": "x"}})

    r = client.post_body(body, {"Mcp-Name": "=?base64?not*base64!?="})

    assert_header_mismatch(r, body["id"])


def test_mcp_name_whose_base64_is_not_utf8_is_400_header_mismatch(client):
    body = client.body("tools/call", {"name": "mod_echo", "arguments": {"text": "x"}})

    r = client.post_body(body, {"Mcp-Name": "=?base64?/w==?="})  # the single byte 0xFF

    assert_header_mismatch(r, body["id"])


def test_mcp_name_sent_base64_encoded_is_decoded_and_accepted(client):
    r = client.call("mod_echo", {"text": "hi"}, headers={"Mcp-Name": sentinel("mod_echo")})

    result = result_of(r)
    assert tool_text(result) == "hi"
    assert result["resultType"] == "complete"


def test_prompts_get_without_mcp_name_is_400_header_mismatch(client):
    body = client.body("prompts/get", {"name": "mod_greet", "arguments": {"who": "x"}})

    r = client.post_body(body, {"Mcp-Name": None})

    assert_header_mismatch(r, body["id"])


def test_prompts_get_naming_another_prompt_in_mcp_name_is_400_header_mismatch(client):
    body = client.body("prompts/get", {"name": "mod_greet", "arguments": {"who": "x"}})

    r = client.post_body(body, {"Mcp-Name": "leg_greet"})

    assert_header_mismatch(r, body["id"])


def test_resources_read_without_mcp_name_is_400_header_mismatch(client):
    body = client.body("resources/read", {"uri": "mod+fixture://mod/static"})

    r = client.post_body(body, {"Mcp-Name": None})

    assert_header_mismatch(r, body["id"])


def test_resources_read_with_the_backends_own_uri_in_mcp_name_is_400_header_mismatch(client):
    body = client.body("resources/read", {"uri": "mod+fixture://mod/static"})

    r = client.post_body(body, {"Mcp-Name": "fixture://mod/static"})

    assert_header_mismatch(r, body["id"])


def test_resources_read_of_a_non_ascii_uri_with_the_encoded_uri_in_mcp_name_is_answered(client):
    uri = "mod+fixture://mod/items/café"

    r = client.post("resources/read", {"uri": uri}, headers={"Mcp-Name": sentinel(uri)})

    result = result_of(r)
    assert [c["text"] for c in result["contents"]] == ["item café of mod"]
    assert result["resultType"] == "complete"


def test_resources_read_of_a_non_ascii_uri_with_an_encoded_other_uri_in_mcp_name_is_400_header_mismatch(client):
    body = client.body("resources/read", {"uri": "mod+fixture://mod/items/café"})

    r = client.post_body(body, {"Mcp-Name": sentinel("mod+fixture://mod/items/cafe")})

    assert_header_mismatch(r, body["id"])


# ---------------------------------------------------------------------------------------------
# Headers the gateway sends a modern backend: recomputed from the body the backend receives
# ---------------------------------------------------------------------------------------------


def backend_request(backend: Backend, since: int, **match: Any) -> dict[str, Any]:
    entries = backend.log.wait_for(since=since, **match)
    assert len(entries) == 1, entries
    return entries[0]


def test_modern_backend_gets_its_own_tool_name_in_mcp_name(client, env):
    mark = env.mod.log.mark()

    assert tool_text(result_of(client.call("mod_echo", {"text": "hi"}))) == "hi"

    seen = backend_request(env.mod, mark, rpc_method="tools/call")
    assert seen["name"] == "echo"
    assert seen["headers"]["mcp-name"] == "echo"
    assert seen["headers"]["mcp-method"] == "tools/call"
    assert seen["headers"]["mcp-protocol-version"] == MODERN_VERSION


def test_modern_backend_gets_its_own_prompt_name_in_mcp_name(client, env):
    mark = env.mod.log.mark()

    result = result_of(client.post("prompts/get", {"name": "mod_greet", "arguments": {"who": "Ann"}}))

    assert result["messages"][0]["content"]["text"] == "Hello Ann, from mod."
    seen = backend_request(env.mod, mark, rpc_method="prompts/get")
    assert seen["headers"]["mcp-name"] == "greet"


def test_modern_backend_gets_its_own_uri_in_mcp_name_encoded_when_not_ascii(client, env):
    mark = env.mod.log.mark()

    result_of(client.post("resources/read", {"uri": "mod+fixture://mod/items/café"}))

    seen = backend_request(env.mod, mark, rpc_method="resources/read")
    assert seen["uri"] == "fixture://mod/items/café"
    assert seen["headers"]["mcp-name"].startswith("=?base64?"), seen["headers"]
    assert decode_header(seen["headers"]["mcp-name"]) == "fixture://mod/items/café"


# ---------------------------------------------------------------------------------------------
# Mcp-Param-* (x-mcp-header)
# ---------------------------------------------------------------------------------------------


def route(client: Modern, arguments: dict[str, Any], headers: dict[str, Any]) -> tuple[httpx.Response, int]:
    body = client.body("tools/call", {"name": "hdr_route", "arguments": arguments})
    return client.post_body(body, headers), body["id"]


def test_tool_with_valid_x_mcp_header_is_listed_with_its_schema(client):
    tools = {t["name"]: t for t in result_of(client.post("tools/list"))["tools"]}

    assert tools["hdr_route"]["inputSchema"]["properties"]["region"]["x-mcp-header"] == "Region"
    assert "hdr_plain" in tools


@pytest.mark.parametrize("why", list(INVALID_HEADER_TOOLS))
def test_tool_with_invalid_x_mcp_header_is_withheld_from_tools_list(client, env, why):
    name = INVALID_HEADER_TOOLS[why]

    names = [t["name"] for t in result_of(client.post("tools/list"))["tools"]]

    assert name not in names
    assert [n for n in names if n.startswith("hdr_")] == VALID_HEADER_TOOLS
    withheld = env.gw.server_status("hdr")["withheld"]
    assert any(name.removeprefix("hdr_") in w["name"] and w["kind"] == "tool" for w in withheld), withheld


@pytest.mark.parametrize("why", list(INVALID_HEADER_TOOLS))
def test_calling_a_tool_withheld_for_its_x_mcp_header_is_unknown_tool(client, env, why):
    name = INVALID_HEADER_TOOLS[why]
    mark = env.hdr.log.mark()
    body = client.body("tools/call", {"name": name, "arguments": {}})

    r = client.post_body(body)

    assert_error(r, 200, INVALID_PARAMS, body["id"])
    assert env.hdr.log.calls(mark) == []


def test_matching_param_headers_are_accepted_and_recomputed_for_the_backend(client, env):
    mark = env.hdr.log.mark()
    arguments = {"region": "eu-west", "count": 42, "dry": True, "note": "n"}

    r, _ = route(
        client,
        arguments,
        {"Mcp-Param-Region": "eu-west", "Mcp-Param-Count": "42.0", "Mcp-Param-Dry": "true", "Mcp-Param-Extra": "junk"},
    )

    assert json.loads(tool_text(result_of(r))) == arguments
    seen = backend_request(env.hdr, mark, rpc_method="tools/call")
    h = seen["headers"]
    assert h["mcp-name"] == "route"
    assert h["mcp-param-region"] == "eu-west"
    assert h["mcp-param-count"] == "42", "recomputed from the body, not the client's 42.0"
    assert h["mcp-param-dry"] == "true"
    assert "mcp-param-extra" not in h, "a header no tool declares is not forwarded"
    assert not any(k.startswith("mcp-param-") for k in h if k not in ("mcp-param-region", "mcp-param-count", "mcp-param-dry"))


def test_absent_arguments_need_no_param_headers_and_the_backend_gets_none(client, env):
    mark = env.hdr.log.mark()

    r, _ = route(client, {"region": "us"}, {"Mcp-Param-Region": "us"})

    assert json.loads(tool_text(result_of(r))) == {"region": "us"}
    h = backend_request(env.hdr, mark, rpc_method="tools/call")["headers"]
    assert h["mcp-param-region"] == "us"
    assert "mcp-param-count" not in h and "mcp-param-dry" not in h


def test_non_ascii_argument_with_encoded_param_header_is_accepted_and_forwarded_encoded(client, env):
    mark = env.hdr.log.mark()

    r, _ = route(client, {"region": "zürich"}, {"Mcp-Param-Region": sentinel("zürich")})

    assert json.loads(tool_text(result_of(r))) == {"region": "zürich"}
    h = backend_request(env.hdr, mark, rpc_method="tools/call")["headers"]
    assert h["mcp-param-region"].startswith("=?base64?")
    assert decode_header(h["mcp-param-region"]) == "zürich"


def test_param_header_missing_while_argument_has_a_value_is_400_header_mismatch(client, env):
    mark = env.hdr.log.mark()

    r, rpc_id = route(client, {"region": "eu", "count": 3}, {"Mcp-Param-Region": "eu"})

    assert_header_mismatch(r, rpc_id)
    assert env.hdr.log.calls(mark) == []


def test_param_header_present_while_argument_is_absent_is_400_header_mismatch(client):
    r, rpc_id = route(client, {"region": "eu"}, {"Mcp-Param-Region": "eu", "Mcp-Param-Count": "3"})

    assert_header_mismatch(r, rpc_id)


def test_string_param_header_with_another_value_is_400_header_mismatch(client, env):
    mark = env.hdr.log.mark()

    r, rpc_id = route(client, {"region": "eu"}, {"Mcp-Param-Region": "us"})

    assert_header_mismatch(r, rpc_id)
    assert env.hdr.log.calls(mark) == []


def test_string_param_header_differing_only_in_case_is_400_header_mismatch(client):
    r, rpc_id = route(client, {"region": "eu"}, {"Mcp-Param-Region": "EU"})

    assert_header_mismatch(r, rpc_id)


def test_param_header_name_matches_case_insensitively(client):
    r, _ = route(client, {"region": "eu"}, {"mcp-param-region": "eu"})

    assert json.loads(tool_text(result_of(r))) == {"region": "eu"}


def test_plain_ascii_param_header_for_a_non_ascii_argument_is_400_header_mismatch(client):
    r, rpc_id = route(client, {"region": "zürich"}, {"Mcp-Param-Region": "zurich"})

    assert_header_mismatch(r, rpc_id)


def test_param_header_with_invalid_base64_is_400_header_mismatch(client):
    r, rpc_id = route(client, {"region": "eu"}, {"Mcp-Param-Region": "=?base64?%%%?="})

    assert_header_mismatch(r, rpc_id)


def test_param_header_with_raw_non_ascii_bytes_is_400_header_mismatch(client):
    r, rpc_id = route(client, {"region": "zürich"}, {"Mcp-Param-Region": "zürich".encode()})

    assert_header_mismatch(r, rpc_id)


@pytest.mark.parametrize("sent", ["42", "42.0", "42.00"])
def test_integer_param_header_equal_as_a_number_is_accepted(client, sent):
    r, _ = route(client, {"region": "eu", "count": 42}, {"Mcp-Param-Region": "eu", "Mcp-Param-Count": sent})

    assert json.loads(tool_text(result_of(r)))["count"] == 42


@pytest.mark.parametrize("sent", ["43", "42.5", "forty-two"])
def test_integer_param_header_with_another_value_is_400_header_mismatch(client, sent):
    r, rpc_id = route(client, {"region": "eu", "count": 42}, {"Mcp-Param-Region": "eu", "Mcp-Param-Count": sent})

    assert_header_mismatch(r, rpc_id)


def test_integer_param_header_beyond_double_precision_is_compared_exactly(client):
    # 2**53 + 1 and 2**53 are the same double: a float comparison would let this through.
    big = 2**53 + 1
    r, rpc_id = route(client, {"region": "eu", "count": big}, {"Mcp-Param-Region": "eu", "Mcp-Param-Count": str(2**53)})

    assert_header_mismatch(r, rpc_id)


def test_integer_param_header_beyond_double_precision_with_the_exact_value_is_accepted(client):
    big = 2**53 + 1
    r, _ = route(client, {"region": "eu", "count": big}, {"Mcp-Param-Region": "eu", "Mcp-Param-Count": str(big)})

    assert json.loads(tool_text(result_of(r)))["count"] == big


@pytest.mark.parametrize("value", [True, False])
def test_boolean_param_header_true_or_false_is_accepted(client, value):
    sent = "true" if value else "false"
    r, _ = route(client, {"region": "eu", "dry": value}, {"Mcp-Param-Region": "eu", "Mcp-Param-Dry": sent})

    assert json.loads(tool_text(result_of(r)))["dry"] is value


@pytest.mark.parametrize("sent", ["false", "True", "1"])
def test_boolean_param_header_not_equal_to_true_is_400_header_mismatch(client, sent):
    r, rpc_id = route(client, {"region": "eu", "dry": True}, {"Mcp-Param-Region": "eu", "Mcp-Param-Dry": sent})

    assert_header_mismatch(r, rpc_id)


# ---------------------------------------------------------------------------------------------
# Methods, notifications, responses
# ---------------------------------------------------------------------------------------------


LEGACY_ONLY_PARAMS = {
    "initialize": {"protocolVersion": MODERN_VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    "ping": {},
    "logging/setLevel": {"level": "info"},
    "resources/subscribe": {"uri": "mod+fixture://mod/static"},
    "resources/unsubscribe": {"uri": "mod+fixture://mod/static"},
}


@pytest.mark.parametrize("method", LEGACY_ONLY)
def test_legacy_only_method_is_404_method_not_found(client, env, method):
    mark_mod, mark_leg = env.mod.log.mark(), env.leg.log.mark()
    body = client.body(method, LEGACY_ONLY_PARAMS[method])

    r = client.post_body(body)

    assert_error(r, 404, METHOD_NOT_FOUND, body["id"])
    assert env.mod.log.find(mark_mod, rpc_method=method) == []
    assert env.leg.log.find(mark_leg, rpc_method=method) == []


def test_unknown_method_is_404_method_not_found(client):
    body = client.body("tools/frobnicate")

    r = client.post_body(body)

    assert_error(r, 404, METHOD_NOT_FOUND, body["id"])


def test_modern_notification_is_202_with_no_body(client):
    body = client.body("notifications/cancelled", {"requestId": 12345, "reason": "test"})
    del body["id"]

    r = client.post_body(body)

    assert r.status_code == 202
    assert r.content == b""


def test_jsonrpc_response_in_the_modern_era_is_400_invalid_request(client):
    body = {"jsonrpc": "2.0", "id": 9, "result": {"action": "accept"}}

    r = client.post_body(body, {"Mcp-Method": None})

    assert r.status_code == 400, r.text
    assert message(r)["error"]["code"] == INVALID_REQUEST


def test_modern_request_gets_no_session_id(client):
    r = client.post("tools/list")

    assert r.status_code == 200
    assert "mcp-session-id" not in r.headers


# ---------------------------------------------------------------------------------------------
# server/discover and lists
# ---------------------------------------------------------------------------------------------


def test_escaped_meta_keys_are_still_a_modern_request(client):
    body = client.body("tools/list")
    # JSON may escape "/" as "\/": the request is the same one.
    raw = json.dumps(body).replace("io.modelcontextprotocol/", "io.modelcontextprotocol\\/")
    assert "\\/" in raw

    r = client.http.post(client.url, content=raw.encode(), headers=client.headers_for(body, None))

    assert r.status_code == 200, r.text
    assert result_of(r)["resultType"] == "complete"


def test_server_discover_describes_the_gateway(client):
    r = client.post("server/discover")

    result = result_of(r)
    assert result["resultType"] == "complete"
    assert result["supportedVersions"] == [MODERN_VERSION]
    assert isinstance(result["capabilities"], dict)
    assert {"tools", "prompts", "resources"} <= set(result["capabilities"])
    assert isinstance(result["ttlMs"], int) and not isinstance(result["ttlMs"], bool) and result["ttlMs"] >= 0
    # server_v2 (attached here) marks its own lists private: the aggregate may not be public.
    assert result["cacheScope"] == "private"
    assert result["_meta"][SERVER_INFO_KEY]["name"] == "mcpgate"
    assert "Instructions of mod." in result["instructions"]


@pytest.mark.parametrize("method", list(LISTS))
def test_list_is_complete_with_cache_hints(client, method):
    result = result_of(client.post(method))

    assert result["resultType"] == "complete"
    assert isinstance(result["ttlMs"], int) and result["ttlMs"] >= 0
    assert result["cacheScope"] == "private", "server_v2 marks its lists private; so must the aggregate"
    assert result[LISTS[method]], f"{method} listed nothing"


@pytest.mark.parametrize("method", list(LISTS))
def test_empty_cursor_is_the_first_page(client, method):
    first = result_of(client.post(method))

    with_empty = result_of(client.post(method, {"cursor": ""}))

    assert with_empty[LISTS[method]] == first[LISTS[method]]


@pytest.mark.parametrize("method", list(LISTS))
def test_bad_cursor_is_invalid_params(client, method):
    body = client.body(method, {"cursor": "not-a-cursor-of-ours"})

    r = client.post_body(body)

    assert_error(r, 200, INVALID_PARAMS, body["id"])


def test_list_ttl_never_exceeds_the_modern_backends_zero_ttl(client):
    # server_v2's SDK lists say ttlMs 0 (test_server_v2_lists_say_ttl_zero_directly): the gateway
    # may not claim more than that for anything it lists.
    for method in ["server/discover", *LISTS]:
        assert result_of(client.post(method))["ttlMs"] == 0, method


def test_server_v2_lists_say_ttl_zero_directly(env):
    direct = Modern(env.mod.url)
    try:
        result = result_of(direct.post("tools/list"))
    finally:
        direct.close()

    assert result["ttlMs"] == 0


# ---------------------------------------------------------------------------------------------
# Unknown names
# ---------------------------------------------------------------------------------------------


def test_unknown_tool_is_200_invalid_params(client):
    body = client.body("tools/call", {"name": "mod_nope", "arguments": {}})

    assert_error(client.post_body(body), 200, INVALID_PARAMS, body["id"])


def test_unknown_prompt_is_200_invalid_params(client):
    body = client.body("prompts/get", {"name": "mod_nope", "arguments": {}})

    assert_error(client.post_body(body), 200, INVALID_PARAMS, body["id"])


@pytest.mark.parametrize(
    "uri",
    ["nosuch+fixture://x/y", "fixture://mod/static", "mod+fixture://mod/nope"],
    ids=["unknown-server", "not-namespaced", "unknown-on-modern-backend"],
)
def test_unknown_resource_is_200_invalid_params_not_resource_not_found(client, uri):
    body = client.body("resources/read", {"uri": uri})

    assert_error(client.post_body(body), 200, INVALID_PARAMS, body["id"])


# ---------------------------------------------------------------------------------------------
# Cache ttl from the configuration and from backends (own gateways)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def own(registry, mcpgate_bin, legacy_sdk):
    """own(backends, entries=None, **config) -> a started Gateway of this test's own."""

    def make(servers: list[Backend], entries: list[dict[str, Any]] | None = None, ready: list[str] | None = None, **config: Any) -> Gateway:
        """`entries`: the servers' config entries when not plain `b.config()`; `ready`: the
        servers to wait for (default: all)."""
        gw = Gateway(registry, mcpgate_bin, registry.workdir)
        entries = entries if entries is not None else [b.config() for b in servers]
        return start_gateway_retrying(gw, entries, [b.name for b in servers] if ready is None else ready, **config)

    return make


def lists_ttl(url: str) -> dict[str, int]:
    c = Modern(url)
    try:
        return {m: result_of(c.post(m))["ttlMs"] for m in ["server/discover", *LISTS]}
    finally:
        c.close()


def test_ttl_is_the_configured_cache_ttl_with_only_legacy_backends(backends, own):
    leg = backends.v1("leg")
    gw = own([leg], catalog={"cache_ttl": "5s"})

    assert lists_ttl(gw.url) == {m: 5000 for m in ["server/discover", *LISTS]}


def test_lists_are_public_without_auth_when_no_backend_says_private(backends, own):
    leg = backends.v1("leg")
    gw = own([leg])
    c = Modern(gw.url)
    try:
        scopes = {m: result_of(c.post(m))["cacheScope"] for m in ["server/discover", *LISTS]}
    finally:
        c.close()

    assert scopes == {m: "public" for m in ["server/discover", *LISTS]}


def test_ttl_is_lowered_to_the_smallest_modern_backend_ttl(backends, registry, own):
    leg = backends.v1("leg", start=False)
    hdr = header_backend(registry, ttl_ms=3000, start=False)
    Backends.ready(leg, hdr)
    gw = own([leg, hdr], catalog={"cache_ttl": "60s"})

    assert lists_ttl(gw.url) == {m: 3000 for m in ["server/discover", *LISTS]}


def test_ttl_is_the_configured_one_when_smaller_than_the_backends(backends, registry, own):
    hdr = header_backend(registry, ttl_ms=30000)
    gw = own([hdr], catalog={"cache_ttl": "2s"})

    assert lists_ttl(gw.url)["tools/list"] == 2000


# ---------------------------------------------------------------------------------------------
# MRTR bridging: modern client -> legacy backend (server_v1's elicit tool)
# ---------------------------------------------------------------------------------------------

ELICIT_CAPS = {"elicitation": {}}


def first_round(client: Modern) -> dict[str, Any]:
    result = result_of(client.call("leg_elicit", ELICIT_ARGS, caps=ELICIT_CAPS))
    assert result["resultType"] == "input_required", result
    return result


def retry(client: Modern, state: str, responses: Any = ACCEPT_42, arguments: dict[str, Any] | None = None, **kw: Any):
    extra: dict[str, Any] = {"requestState": state}
    if responses is not None:
        extra["inputResponses"] = responses
    body = client.body(
        "tools/call",
        {"name": "leg_elicit", "arguments": arguments or ELICIT_ARGS, **extra},
        caps=kw.pop("caps", ELICIT_CAPS),
    )
    return client.post_body(body), body["id"]


def test_legacy_elicitation_becomes_input_required_with_a_gateway_request_state(client, env):
    mark = env.leg.log.mark()

    result = first_round(client)

    assert set(result) == {"resultType", "inputRequests", "requestState"}
    assert list(result["inputRequests"]) == ["elicitation-1"]
    request = result["inputRequests"]["elicitation-1"]
    assert request["method"] == "elicitation/create"
    assert request["params"]["message"] == "Your name?"
    assert request["params"]["requestedSchema"]["properties"]["answer"]["type"] == "string"
    assert result["requestState"].startswith("mcpgate2.")
    call = backend_request(env.leg, mark, rpc_method="tools/call")
    assert call["name"] == "elicit"
    assert "io.modelcontextprotocol" not in call["body"], "protocol _meta keys never reach a legacy backend"


def test_retry_with_the_answer_and_state_completes_the_call(client, env):
    state = first_round(client)["requestState"]
    mark = env.leg.log.mark()

    r, rpc_id = retry(client, state)

    result = result_of(r)
    assert message(r)["id"] == rpc_id
    assert tool_text(result) == "accept:42"
    assert result["resultType"] == "complete"
    assert env.leg.log.find(mark, rpc_method="tools/call") == [], "the parked call continues; nothing is re-sent"


def test_retry_with_a_modified_request_state_is_invalid_params(client):
    state = first_round(client)["requestState"]
    i = len(state) // 2
    modified = state[:i] + ("A" if state[i] != "A" else "B") + state[i + 1 :]

    r, rpc_id = retry(client, modified)

    assert_error(r, 200, INVALID_PARAMS, rpc_id)


def test_retry_with_a_truncated_request_state_is_invalid_params(client):
    state = first_round(client)["requestState"]

    r, rpc_id = retry(client, state[:-6])

    assert_error(r, 200, INVALID_PARAMS, rpc_id)


def test_request_state_for_other_arguments_is_invalid_params(client):
    state = first_round(client)["requestState"]

    r, rpc_id = retry(client, state, arguments={"question": "Something else?"})

    assert_error(r, 200, INVALID_PARAMS, rpc_id)


def test_request_state_for_another_tool_is_invalid_params(client):
    state = first_round(client)["requestState"]
    body = client.body(
        "tools/call",
        {"name": "leg_echo", "arguments": ELICIT_ARGS, "requestState": state, "inputResponses": ACCEPT_42},
        caps=ELICIT_CAPS,
    )

    assert_error(client.post_body(body), 200, INVALID_PARAMS, body["id"])


def test_replayed_request_state_is_invalid_params_and_nothing_runs_again(client, env):
    state = first_round(client)["requestState"]
    assert tool_text(result_of(retry(client, state)[0])) == "accept:42"
    mark = env.leg.log.mark()

    r, rpc_id = retry(client, state)

    err = assert_error(r, 200, INVALID_PARAMS, rpc_id)
    assert "already used" in err["message"]
    assert env.leg.log.find(mark, rpc_method="tools/call") == []


def test_answer_without_action_is_invalid_params_and_the_state_stays_usable(client):
    state = first_round(client)["requestState"]

    r, rpc_id = retry(client, state, {"elicitation-1": {"content": {"answer": "42"}}})

    assert_error(r, 200, INVALID_PARAMS, rpc_id)
    assert tool_text(result_of(retry(client, state)[0])) == "accept:42"


def test_retry_without_input_responses_asks_again_with_a_new_state(client):
    first = first_round(client)

    r, _ = retry(client, first["requestState"], responses=None)

    again = result_of(r)
    assert again["resultType"] == "input_required"
    assert again["inputRequests"] == first["inputRequests"]
    assert again["requestState"] != first["requestState"]
    assert tool_text(result_of(retry(client, again["requestState"])[0])) == "accept:42"


def test_without_the_elicitation_capability_the_call_is_not_parked(client, env):
    mark = env.leg.log.mark()

    result = result_of(client.call("leg_elicit", ELICIT_ARGS, caps={}))

    assert result["resultType"] == "complete"
    assert result["isError"] is True
    assert "inputRequests" not in result and "requestState" not in result
    assert backend_request(env.leg, mark, rpc_method="tools/call")["name"] == "elicit"


# ---------------------------------------------------------------------------------------------
# MRTR: a state is bound to the principal it was issued to
# ---------------------------------------------------------------------------------------------


def test_request_state_issued_to_alice_is_refused_for_bob(registry, backends, own, tmp_path):
    from idp import Idp

    users = tmp_path / "users.json"
    roles = {"leg.local": ["elicit"]}
    users.write_text(json.dumps({"alice": {"roles": roles}, "bob": {"roles": roles}}))
    idp = Idp(registry, ["--users", str(users)])
    leg = backends.v1("leg")
    gw = own(
        [leg],
        entries=[leg.config(auth={"client_ids": ["leg.local"]})],
        auth={"issuers": [{"issuer": idp.issuer}], "audiences": ["mcpgate"]},
    )
    alice, bob = Modern(gw.url, idp.token("alice")), Modern(gw.url, idp.token("bob"))
    try:
        first = result_of(alice.call("leg_elicit", ELICIT_ARGS, caps=ELICIT_CAPS))
        assert first["resultType"] == "input_required", first
        state = first["requestState"]

        stolen, stolen_id = retry(bob, state)
        assert_error(stolen, 200, INVALID_PARAMS, stolen_id)

        own_retry, _ = retry(alice, state)
        assert tool_text(result_of(own_retry)) == "accept:42", "bob's attempt must not burn alice's state"
        assert result_of(bob.post("tools/list"))["cacheScope"] == "private"
    finally:
        alice.close()
        bob.close()


# ---------------------------------------------------------------------------------------------
# Cancellation: a modern client closing its response stream
# ---------------------------------------------------------------------------------------------


def cancelled_for(backend: Backend, since: int, tool: str) -> tuple[dict[str, Any], dict[str, Any]]:
    call = backend_request(backend, since, rpc_method="tools/call", name=tool)
    cancel = backend.log.wait_for(since=since, rpc_method="notifications/cancelled")[0]
    return call, json.loads(cancel["body"])


def test_closing_the_sse_stream_of_a_legacy_call_cancels_it_at_the_backend(env):
    mark = env.leg.log.mark()
    body = Modern(env.gw.url).body(
        "tools/call",
        {"name": "leg_progress", "arguments": {"steps": 400}},
        meta={VERSION_KEY: MODERN_VERSION, CAPS_KEY: {}, "progressToken": "p-1"},
    )
    with httpx.Client(timeout=httpx.Timeout(10.0, read=15.0)) as http:
        with http.stream("POST", env.gw.url, content=json.dumps(body), headers=Modern.headers_for(body)) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("data:") and "notifications/progress" in line:
                    assert json.loads(line[5:])["params"]["progressToken"] == "p-1"
                    break
        # leaving the block closes the stream mid-call

    call, cancel = cancelled_for(env.leg, mark, "progress")
    assert cancel["params"]["requestId"] == call["rpc_id"]


def test_closing_the_connection_of_a_legacy_call_before_any_byte_cancels_it_at_the_backend(env):
    mark = env.leg.log.mark()
    body = json.dumps(Modern(env.gw.url).body("tools/call", {"name": "leg_sleep", "arguments": {"seconds": 30}}))
    headers = Modern.headers_for(json.loads(body))
    u = urlparse(env.gw.url)
    head = f"POST {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nContent-Length: {len(body.encode())}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection((u.hostname, u.port), timeout=10) as sock:
        sock.sendall(head.encode() + body.encode())
        backend_request(env.leg, mark, rpc_method="tools/call", name="sleep")
    # socket closed before the gateway answered

    call, cancel = cancelled_for(env.leg, mark, "sleep")
    assert cancel["params"]["requestId"] == call["rpc_id"]
    env.leg.log.wait_for(since=mark, event="tool_cancelled", name="sleep")


def test_closing_the_connection_of_a_modern_backend_call_cancels_it_at_the_backend(env):
    mark = env.mod.log.mark()
    body = json.dumps(Modern(env.gw.url).body("tools/call", {"name": "mod_sleep", "arguments": {"seconds": 30}}))
    headers = Modern.headers_for(json.loads(body))
    u = urlparse(env.gw.url)
    head = f"POST {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nContent-Length: {len(body.encode())}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection((u.hostname, u.port), timeout=10) as sock:
        sock.sendall(head.encode() + body.encode())
        backend_request(env.mod, mark, rpc_method="tools/call", name="sleep")

    cancelled = env.mod.log.wait_for(since=mark, event="tool_cancelled", name="sleep")
    assert cancelled[0]["protocol_version"] == MODERN_VERSION


def test_a_modern_backend_call_past_its_timeout_fails_naming_the_server_and_is_cancelled(backends, own):
    """The call's deadline while the gateway waits on a modern backend's answer: the client gets
    the backend-unavailable error (not a hang until the tool ends), and the backend sees its
    request stream closed, which cancels the tool."""
    mod = backends.v2("mod")
    gw = own([mod], entries=[mod.config(timeouts={"connect": "2s", "call": "2s", "discovery": "3s"})])
    client = Modern(gw.url)
    try:
        mark = mod.log.mark()

        started = time.monotonic()
        r = client.call("mod_sleep", {"seconds": 30})
        elapsed = time.monotonic() - started

        assert r.status_code == 200, r.text
        err = message(r)["error"]
        assert err["code"] == -32603 and "mod" in err["message"], err
        assert elapsed < 10, f"the call timeout is 2 s; the answer took {elapsed:.1f} s"
        mod.log.wait_for(since=mark, event="tool_cancelled", name="sleep")
        assert "result" in message(client.call("mod_echo", {"text": "after"})), "the backend still serves"
    finally:
        client.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-v"]))


# ---------------------------------------------------------------------------------------------
# The per-server era setting
# ---------------------------------------------------------------------------------------------


def test_era_legacy_keeps_a_dual_era_backend_on_sessions(backends, own):
    mod = backends.v2("mod")
    gw = own([mod], entries=[mod.config(era="legacy")])

    assert gw.server_status("mod")["era"] == "legacy"
    assert mod.log.find(rpc_method="server/discover") == [], "no probe when the era is pinned"
    assert mod.log.find(rpc_method="initialize"), "discovery used a session"


def test_era_auto_finds_a_dual_era_backend_dual(backends, own):
    mod = backends.v2("mod")
    gw = own([mod])

    status = gw.server_status("mod")
    assert status["era"] == "dual"
    assert status["eras"] == ["legacy", "modern"]


def test_era_modern_refuses_a_legacy_only_backend_with_a_reason(backends, own):
    leg = backends.v1("leg")
    gw = own([leg], entries=[leg.config(era="modern")], ready=[])

    status = gw.wait_servers(["leg"], "unreachable", timeout=20)
    leg_status = next(s for s in status["servers"] if s["name"] == "leg")
    assert "era: modern" in leg_status["last_error"]
