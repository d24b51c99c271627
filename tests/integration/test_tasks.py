"""The Tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663) through the gateway.

A modern backend that answers a modern client's `tools/call` with `resultType: "task"` names the task
with its own id; the client is shown a gateway-signed id (`mcpgate-task-<key>.<payload>.<tag>`) instead, bound to
the backend, the backend's id and the caller. `tasks/get|update|cancel` with that id are routed to the
backend with `params.taskId` and the `Mcp-Name` header set to the backend's id, and `taskId` in the
answer is swapped back. An id that is unknown, expired, the backend's own or another caller's gets
200 with JSON-RPC -32602 "Unknown task: <id>".

Backends
- `jobs` (and `jobs2`): tests/fixtures/python/server_tasks.py, a real tasks server on the Python SDK
  2.x (`Extension` with `tasks/*` methods and a `tools/call` interceptor). `slow_job` becomes a task
  ("backend-task-N", pollIntervalMs 100) when the request's capabilities declare the extension and
  runs inline otherwise; `approve_job` is a task that waits for `tasks/update` (inputRequests key
  "approval"). It refuses a `tasks/*` request whose `Mcp-Name` is not its params.taskId (400/-32020)
  and logs every request (headers, body) and task event.
- `a`: server_v2.py, an ordinary modern backend without the extension (tasks must never reach it).

All requests are raw httpx 2026-07-28 requests (`_meta` + SEP-2243 headers). Polling uses short
sleeps under an overall deadline; nothing asserts timings.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

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
    Backend,
    Backends,
    Gateway,
    McpHttp,
    ProcessRegistry,
    free_port,
    parse_sse,
    python2,
    tool_text,
    wait_until,
)

TASKS = "io.modelcontextprotocol/tasks"
TASK_CAPS = {"extensions": {TASKS: {}}}

INVALID_PARAMS = -32602
HEADER_MISMATCH = -32020
MISSING_CAPABILITY = -32021

GATEWAY_ID = re.compile(r"^mcpgate-task-[A-Za-z0-9-]{1,16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$")
BACKEND_ID_MARK = "backend-task-"  # every id server_tasks.py mints starts with this
NAME_MEMBER = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
TASK_METHODS = ["tasks/get", "tasks/update", "tasks/cancel"]
POLL_DEADLINE = 20.0


# ---------------------------------------------------------------------------------------------
# A raw modern client
# ---------------------------------------------------------------------------------------------


class Modern:
    """Stateless 2026-07-28 requests with `_meta` and the SEP-2243 headers derived from the body."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.http = httpx.Client(timeout=30.0)
        if token is not None:
            self.http.headers["Authorization"] = f"Bearer {token}"
        self.next_id = 1

    def close(self) -> None:
        self.http.close()

    def post(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        caps: dict[str, Any] | None = None,
        headers: dict[str, str | None] | None = None,
    ) -> tuple[httpx.Response, int]:
        """POST one request; `caps` defaults to declaring the tasks extension. `headers` adds or
        overrides headers (a None value drops one). Returns (response, request id)."""
        rpc_id = self.next_id
        self.next_id += 1
        full = dict(params or {})
        full["_meta"] = {VERSION_KEY: MODERN_VERSION, CAPS_KEY: TASK_CAPS if caps is None else caps}
        body = {"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": full}
        h: dict[str, str] = {
            "Accept": ACCEPT_BOTH,
            "Content-Type": "application/json",
            "MCP-Protocol-Version": MODERN_VERSION,
            "Mcp-Method": method,
        }
        member = "taskId" if method in TASK_METHODS else NAME_MEMBER.get(method)
        if member and isinstance(full.get(member), str):
            h["Mcp-Name"] = full[member]
        for k, v in (headers or {}).items():
            for existing in [key for key in h if key.lower() == k.lower()]:
                del h[existing]
            if v is not None:
                h[k] = v
        return self.http.post(self.url, content=json.dumps(body).encode(), headers=h), rpc_id

    def call(self, tool: str, arguments: dict[str, Any], **kw: Any) -> tuple[httpx.Response, int]:
        return self.post("tools/call", {"name": tool, "arguments": arguments}, **kw)

    def task(self, method: str, task_id: str, **extra: Any) -> tuple[httpx.Response, int]:
        headers = extra.pop("headers", None)
        return self.post(method, {"taskId": task_id, **extra}, headers=headers)


def message(r: httpx.Response) -> dict[str, Any]:
    """The one JSON-RPC response in a POST answer (JSON or SSE)."""
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        msgs = [m for m in parse_sse(r.text) if "id" in m and "method" not in m]
        assert len(msgs) == 1, r.text
        return msgs[0]
    return json.loads(r.text)


def result_of(r: httpx.Response, rpc_id: int) -> dict[str, Any]:
    assert r.status_code == 200, f"HTTP {r.status_code}: {r.text}"
    msg = message(r)
    assert msg.get("id") == rpc_id, msg
    assert "result" in msg, msg
    return msg["result"]


def error_of(r: httpx.Response, status: int, code: int, rpc_id: int) -> dict[str, Any]:
    assert r.status_code == status, f"HTTP {r.status_code}: {r.text}"
    msg = message(r)
    assert "error" in msg, msg
    assert msg["error"]["code"] == code, msg
    assert msg["id"] == rpc_id, msg
    return msg["error"]


def assert_unknown_task(r: httpx.Response, rpc_id: int, task_id: str) -> None:
    err = error_of(r, 200, INVALID_PARAMS, rpc_id)
    assert err["message"] == f"Unknown task: {task_id}", err


def assert_no_backend_id(r: httpx.Response) -> None:
    assert BACKEND_ID_MARK not in r.text, f"the backend's task id leaked to the client: {r.text}"


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


def tasks_backend(registry: ProcessRegistry, name: str, start: bool = True) -> Backend:
    """server_tasks.py called `name` (its tools are `<name>_slow_job`, ... behind the gateway)."""
    port = free_port()
    log = registry.workdir / f"requests-{name}.jsonl"
    argv = [python2(), str(PY_FIXTURES / "server_tasks.py"), "--name", name, "--port", str(port), "--log", str(log)]
    backend = Backend(registry, name, "v2", "streamable-http", port, argv, log)
    backend.launch()
    return backend.wait_ready() if start else backend





class Env:
    def __init__(self, registry: ProcessRegistry, gw: Gateway, jobs: Backend, other: Backend) -> None:
        self.registry = registry
        self.gw = gw
        self.jobs = jobs
        self.other = other


@pytest.fixture(scope="module")
def shared_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    binary = find_binary()
    registry = ProcessRegistry(tmp_path_factory.mktemp("tasks-shared"))
    try:
        jobs = tasks_backend(registry, "jobs", start=False)
        other = Backends(registry).v2("a", start=False)
        Backends.ready(jobs, other)
        gw = Gateway(registry, binary, registry.workdir)
        start_gateway_retrying(gw, [jobs.config(), other.config()], ["jobs", "a"])
        yield Env(registry, gw, jobs, other)
    finally:
        registry.stop_all()


@pytest.fixture
def env(shared_env: Env, request: pytest.FixtureRequest) -> Iterator[Env]:
    yield shared_env
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"\n===== shared process output ({shared_env.registry.workdir}) =====\n{shared_env.registry.dump_logs()}")


@pytest.fixture
def client(env: Env) -> Iterator[Modern]:
    c = Modern(env.gw.url)
    yield c
    c.close()


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def body_params(entry: dict[str, Any]) -> dict[str, Any]:
    return json.loads(entry["body"]).get("params") or {}


def task_requests(backend: Backend, since: int = 0, method: str | None = None) -> list[dict[str, Any]]:
    """`tasks/*` requests the backend received over HTTP."""
    return [
        e
        for e in backend.log.entries()[since:]
        if e.get("http_method") == "POST" and e.get("rpc_method") in ([method] if method else TASK_METHODS)
    ]


def created_backend_id(backend: Backend, since: int) -> str:
    """The id of the one task the backend created since `since` (its `task_created` event)."""
    events = backend.log.wait_for(since=since, event="task_created")
    assert len(events) == 1, events
    return events[0]["task_id"]


def start_task(client: Modern, backend: Backend, tool: str, arguments: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """Call a task tool; returns (gateway id, backend id, CreateTaskResult as the client saw it)."""
    mark = backend.log.mark()
    r, rid = client.call(tool, arguments)
    created = result_of(r, rid)
    assert created.get("resultType") == "task", created
    assert_no_backend_id(r)
    return created["taskId"], created_backend_id(backend, mark), created


def poll(client: Modern, gid: str, statuses: set[str]) -> tuple[dict[str, Any], int]:
    """tasks/get until the status is one of `statuses`; every answer names `gid`, never the backend's
    id. Returns (last result, number of polls)."""
    deadline = time.monotonic() + POLL_DEADLINE
    polls = 0
    while True:
        r, rid = client.task("tasks/get", gid)
        polls += 1
        res = result_of(r, rid)
        assert res["taskId"] == gid, res
        assert res.get("resultType") == "complete", res
        assert_no_backend_id(r)
        if res["status"] in statuses:
            return res, polls
        assert res["status"] in {"working", "input_required"}, res
        assert time.monotonic() < deadline, f"task {gid} still {res['status']} after {POLL_DEADLINE}s: {res}"
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------------------------


def test_backend_advertises_the_extension_directly(env):
    """Pins the fixture: server_tasks.py declares the extension in its own server/discover."""
    c = Modern(env.jobs.url)
    try:
        r, rid = c.post("server/discover")
        assert result_of(r, rid)["capabilities"]["extensions"] == {TASKS: {}}
    finally:
        c.close()


def test_discover_advertises_the_tasks_extension(client):
    r, rid = client.post("server/discover")
    caps = result_of(r, rid)["capabilities"]
    assert TASKS in (caps.get("extensions") or {}), caps


def test_discover_without_a_tasks_backend_does_not_advertise_it(registry, backends):
    a = backends.v2("a")
    gw = start_gateway_retrying(Gateway(registry, find_binary(), registry.workdir), [a.config()], ["a"])
    c = Modern(gw.url)
    try:
        r, rid = c.post("server/discover")
        caps = result_of(r, rid)["capabilities"]
        assert TASKS not in (caps.get("extensions") or {}), caps
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# Creation and polling
# ---------------------------------------------------------------------------------------------


def test_tool_call_returns_a_task_under_a_gateway_minted_id(client, env):
    mark = env.jobs.log.mark()
    gid, bid, created = start_task(client, env.jobs, "jobs_slow_job", {"seconds": 0.3})
    assert GATEWAY_ID.match(gid), gid
    assert bid.startswith(BACKEND_ID_MARK) and gid != bid
    assert created["status"] in {"working", "completed"}, created
    assert created["ttlMs"] == 60000 and created["pollIntervalMs"] == 100, created
    # The backend saw its own tool name and the caller's capabilities with the extension.
    call = env.jobs.log.find(since=mark, rpc_method="tools/call")
    assert len(call) == 1, call
    assert call[0]["headers"].get("mcp-name") == "slow_job", call[0]["headers"]
    assert body_params(call[0])["_meta"][CAPS_KEY]["extensions"] == {TASKS: {}}, call[0]["body"]


def test_each_task_gets_its_own_gateway_id(client, env):
    first = start_task(client, env.jobs, "jobs_slow_job", {"seconds": 0.1})
    second = start_task(client, env.jobs, "jobs_slow_job", {"seconds": 0.1})
    assert first[0] != second[0] and first[1] != second[1]


def test_tasks_get_reaches_the_backend_with_its_own_id_and_completes(client, env):
    other_mark = env.other.log.mark()
    gid, bid, _ = start_task(client, env.jobs, "jobs_slow_job", {"seconds": 0.3})
    mark = env.jobs.log.mark()
    done, polls = poll(client, gid, {"completed"})
    assert tool_text(done["result"]) == "job done after 0.3s", done
    gets = task_requests(env.jobs, mark)
    assert len(gets) == polls, [e["body"] for e in gets]
    for e in gets:
        assert e["rpc_method"] == "tasks/get"
        assert body_params(e)["taskId"] == bid, e["body"]
        assert e["headers"].get("mcp-name") == bid, e["headers"]
        assert e["headers"].get("mcp-method") == "tasks/get", e["headers"]
        assert e["headers"].get("mcp-protocol-version") == MODERN_VERSION, e["headers"]
        assert body_params(e)["_meta"][VERSION_KEY] == MODERN_VERSION, e["body"]
    assert task_requests(env.other, other_mark) == [], "a tasks/* request went to the backend without the task"


def test_tasks_cancel_is_routed_to_the_backend(client, env):
    gid, bid, _ = start_task(client, env.jobs, "jobs_slow_job", {"seconds": 30})
    mark = env.jobs.log.mark()
    r, rid = client.task("tasks/cancel", gid)
    ack = result_of(r, rid)
    assert ack.get("resultType") == "complete", ack
    assert "taskId" not in ack and "status" not in ack, ack
    cancels = task_requests(env.jobs, mark, "tasks/cancel")
    assert len(cancels) == 1, cancels
    assert body_params(cancels[0])["taskId"] == bid
    assert cancels[0]["headers"].get("mcp-name") == bid, cancels[0]["headers"]
    assert env.jobs.log.find(since=mark, event="task_cancel", task_id=bid), "the backend did not cancel its task"
    cancelled, _ = poll(client, gid, {"cancelled"})
    assert "result" not in cancelled, cancelled


def test_tasks_update_answers_the_tasks_input_requests(client, env):
    gid, bid, _ = start_task(client, env.jobs, "jobs_approve_job", {"question": "Ship it?"})
    waiting, _ = poll(client, gid, {"input_required"})
    requests = waiting["inputRequests"]
    assert list(requests) == ["approval"], waiting
    assert requests["approval"]["method"] == "elicitation/create", requests
    assert requests["approval"]["params"]["message"] == "Ship it?", requests

    mark = env.jobs.log.mark()
    answer = {"approval": {"action": "accept", "content": {"answer": "yes"}}}
    r, rid = client.task("tasks/update", gid, inputResponses=answer)
    ack = result_of(r, rid)
    assert ack.get("resultType") == "complete", ack
    assert_no_backend_id(r)
    updates = task_requests(env.jobs, mark, "tasks/update")
    assert len(updates) == 1, updates
    assert body_params(updates[0])["taskId"] == bid
    assert body_params(updates[0])["inputResponses"] == answer, updates[0]["body"]
    assert updates[0]["headers"].get("mcp-name") == bid, updates[0]["headers"]

    done, _ = poll(client, gid, {"completed"})
    assert tool_text(done["result"]) == "approved accept:yes", done


# ---------------------------------------------------------------------------------------------
# Clients that did not declare the extension
# ---------------------------------------------------------------------------------------------


def test_modern_client_without_the_extension_gets_an_ordinary_result(client, env):
    mark = env.jobs.log.mark()
    r, rid = client.call("jobs_slow_job", {"seconds": 0.1}, caps={})
    res = result_of(r, rid)
    assert res.get("resultType") == "complete", res
    assert tool_text(res) == "job done after 0.1s", res
    assert env.jobs.log.find(since=mark, event="task_created") == []
    call = env.jobs.log.find(since=mark, rpc_method="tools/call")
    assert len(call) == 1 and body_params(call[0])["_meta"][CAPS_KEY] == {}, call


def test_task_only_tool_without_the_extension_is_missing_required_capability(client):
    r, rid = client.call("jobs_approve_job", {"question": "?"}, caps={})
    err = error_of(r, 400, MISSING_CAPABILITY, rid)
    assert err["data"]["requiredCapabilities"] == {"extensions": {TASKS: {}}}, err


def test_legacy_session_gets_an_ordinary_result(env):
    legacy = McpHttp(env.gw.url)
    try:
        legacy.initialize()
        mark = env.jobs.log.mark()
        msg = legacy.call_tool("jobs_slow_job", {"seconds": 0.1})
        assert "result" in msg, msg
        assert tool_text(msg["result"]) == "job done after 0.1s", msg
        assert msg["result"].get("resultType") != "task", msg
        assert env.jobs.log.find(since=mark, event="task_created") == []
    finally:
        legacy.close()


def test_legacy_session_declaring_the_extension_never_gets_an_unpollable_task(env):
    """A legacy (initialize) client has no tasks/* methods on its session (the gateway answers them
    -32601), so a task created for its call could never be polled; and the backend's own id must
    not reach any client. Whatever the gateway does about it (not forwarding the extension in the
    capabilities it builds for the backend, or finishing the task itself), the client must get the
    ordinary result of its call."""
    legacy = McpHttp(env.gw.url)
    try:
        legacy.initialize({"extensions": {TASKS: {}}})
        msg = legacy.call_tool("jobs_slow_job", {"seconds": 0.1})
        raw = legacy.last_response.text if legacy.last_response is not None else ""
        assert BACKEND_ID_MARK not in raw, f"the backend's task id reached a legacy client: {raw}"
        assert "result" in msg, msg
        assert msg["result"].get("resultType") != "task", msg
        assert tool_text(msg["result"]) == "job done after 0.1s", msg
    finally:
        legacy.close()


# ---------------------------------------------------------------------------------------------
# Ids the gateway does not know
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", TASK_METHODS)
def test_unknown_task_id_is_invalid_params_and_reaches_no_backend(client, env, method):
    mark, other_mark = env.jobs.log.mark(), env.other.log.mark()
    for task_id in ["mcpgate-task-" + "0" * 32, "no-such-task"]:
        extra = {"inputResponses": {}} if method == "tasks/update" else {}
        r, rid = client.task(method, task_id, **extra)
        assert_unknown_task(r, rid, task_id)
    assert task_requests(env.jobs, mark) == [] and task_requests(env.other, other_mark) == []


@pytest.mark.parametrize("method", TASK_METHODS)
def test_the_backends_own_task_id_is_unknown(client, env, method):
    _, bid, _ = start_task(client, env.jobs, "jobs_slow_job", {"seconds": 0.1})
    mark = env.jobs.log.mark()
    extra = {"inputResponses": {}} if method == "tasks/update" else {}
    r, rid = client.task(method, bid, **extra)
    assert_unknown_task(r, rid, bid)
    assert task_requests(env.jobs, mark) == [], "the backend's raw id must not be routable"


def test_expired_task_id_is_unknown(client, env):
    """The mapping lives as long as the backend's ttlMs (here 1 ms)."""
    gid, bid, created = start_task(client, env.jobs, "jobs_slow_job", {"seconds": 0.1, "ttl_ms": 1})
    assert created["ttlMs"] == 1, created
    time.sleep(0.05)
    mark = env.jobs.log.mark()
    r, rid = client.task("tasks/get", gid)
    assert_unknown_task(r, rid, gid)
    assert task_requests(env.jobs, mark) == []


def test_task_id_that_is_not_a_string_is_invalid_params(client, env):
    mark = env.jobs.log.mark()
    r, rid = client.post("tasks/get", {"taskId": 7}, headers={"Mcp-Name": "7"})
    assert r.status_code in (200, 400), r.text
    err = message(r)["error"]
    assert err["code"] == INVALID_PARAMS and message(r)["id"] == rid, err
    assert task_requests(env.jobs, mark) == []


# ---------------------------------------------------------------------------------------------
# Mcp-Name on tasks/*
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("mcpgate-task-" + "f" * 32, id="another-id"),
        pytest.param(None, id="missing"),
        pytest.param("backend", id="backend-id"),
    ],
)
def test_mcp_name_mismatch_on_tasks_get_is_400_header_mismatch(client, env, name):
    gid, bid, _ = start_task(client, env.jobs, "jobs_slow_job", {"seconds": 0.1})
    header = bid if name == "backend" else name
    mark = env.jobs.log.mark()
    r, rid = client.task("tasks/get", gid, headers={"Mcp-Name": header})
    err = error_of(r, 400, HEADER_MISMATCH, rid)
    assert err["message"].startswith("Header mismatch:"), err
    assert task_requests(env.jobs, mark) == []
    # The id itself still works with the right header.
    r, rid = client.task("tasks/get", gid)
    assert result_of(r, rid)["taskId"] == gid


def test_mcp_name_base64_encoded_is_accepted(client, env):
    import base64

    gid, _, _ = start_task(client, env.jobs, "jobs_slow_job", {"seconds": 0.1})
    encoded = "=?base64?" + base64.b64encode(gid.encode()).decode() + "?="
    r, rid = client.task("tasks/get", gid, headers={"Mcp-Name": encoded})
    assert result_of(r, rid)["taskId"] == gid


# ---------------------------------------------------------------------------------------------
# Two tasks backends minting the same ids
# ---------------------------------------------------------------------------------------------


def test_same_backend_ids_on_two_backends_route_to_their_own_backend(registry):
    jobs = tasks_backend(registry, "jobs", start=False)
    jobs2 = tasks_backend(registry, "jobs2", start=False)
    Backends.ready(jobs, jobs2)
    gw = start_gateway_retrying(
        Gateway(registry, find_binary(), registry.workdir), [jobs.config(), jobs2.config()], ["jobs", "jobs2"]
    )
    c = Modern(gw.url)
    try:
        g1, b1, _ = start_task(c, jobs, "jobs_slow_job", {"seconds": 0.2})
        g2, b2, _ = start_task(c, jobs2, "jobs2_slow_job", {"seconds": 0.4})
        assert b1 == b2 == "backend-task-1", (b1, b2)  # both backends minted the same id
        assert g1 != g2
        m1, m2 = jobs.log.mark(), jobs2.log.mark()
        done1, n1 = poll(c, g1, {"completed"})
        assert tool_text(done1["result"]) == "job done after 0.2s"
        assert len(task_requests(jobs, m1)) == n1 and task_requests(jobs2, m2) == []
        m1, m2 = jobs.log.mark(), jobs2.log.mark()
        done2, n2 = poll(c, g2, {"completed"})
        assert tool_text(done2["result"]) == "job done after 0.4s"
        assert len(task_requests(jobs2, m2)) == n2 and task_requests(jobs, m1) == []
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# Another caller's task
# ---------------------------------------------------------------------------------------------


def test_another_users_task_id_is_unknown(registry, tmp_path):
    from idp import Idp

    users = tmp_path / "users.json"
    roles = {"jobs.local": ["slow_job"]}
    users.write_text(json.dumps({"alice": {"roles": roles}, "bob": {"roles": roles}}))
    idp = Idp(registry, ["--users", str(users)])
    jobs = tasks_backend(registry, "jobs")
    gw = start_gateway_retrying(
        Gateway(registry, find_binary(), registry.workdir),
        [jobs.config(auth={"client_ids": ["jobs.local"]})],
        ["jobs"],
        auth={"issuers": [{"issuer": idp.issuer}], "audiences": ["mcpgate"]},
    )
    alice, bob = Modern(gw.url, idp.token("alice")), Modern(gw.url, idp.token("bob"))
    try:
        gid, _, _ = start_task(alice, jobs, "jobs_slow_job", {"seconds": 0.2})
        mark = jobs.log.mark()
        for method in TASK_METHODS:
            extra = {"inputResponses": {}} if method == "tasks/update" else {}
            r, rid = bob.task(method, gid, **extra)
            assert_unknown_task(r, rid, gid)
        assert task_requests(jobs, mark) == [], "bob's requests must not reach the backend"
        done, _ = poll(alice, gid, {"completed"})
        assert tool_text(done["result"]) == "job done after 0.2s", "bob's attempts must not disturb alice's task"
    finally:
        alice.close()
        bob.close()
