"""`subscriptions/listen` through the gateway (2026-07-28): list changes and resource updates.

A modern client POSTs `subscriptions/listen`; the answer is an SSE stream that starts with
`notifications/subscriptions/acknowledged` (the honoured subset of what was asked, stamped with
`_meta["io.modelcontextprotocol/subscriptionId"]` = the request id), then carries
`notifications/{tools,prompts,resources}/list_changed` for the kinds asked and
`notifications/resources/updated` (gateway URI `<server>+<backend uri>`) for the URIs honoured.
Resource subscriptions live at the owning backend for the life of the stream: a modern backend
gets its own `subscriptions/listen`, a legacy one `resources/subscribe` on a backend session
opened for this stream alone (closed, with a DELETE, when the client's stream ends).

Backends (both with --resource-updates: the tool `touch_resource(uri)` marks a resource updated):
- `mod`: server_v2.py (SDK 2.x; detected modern). Its listen handler logs `listen_started` /
  `listen_ended` and does not honour URIs ending in "/refused".
- `leg`: server_v1.py (mcp<2; legacy). Serves resources/subscribe (declares `subscribe: true`),
  refuses URIs ending in "/refused", logs `resource_subscribed` with the backend session id.

Streams are read by a background thread per listener (raw httpx, every byte visible). Nothing
waits for a fixed time: absence is shown by a later sentinel message on the same stream.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from harness import (
    GetStream,
    McpHttp,
    find_binary,
    start_gateway_retrying,
    ACCEPT_BOTH,
    CAPS_KEY,
    VERSION_KEY,
    shut_down,
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

SUB_KEY = "io.modelcontextprotocol/subscriptionId"
ACK = "notifications/subscriptions/acknowledged"
UPDATED = "notifications/resources/updated"
TOOLS_CHANGED = "notifications/tools/list_changed"
PROMPTS_CHANGED = "notifications/prompts/list_changed"
RESOURCES_CHANGED = "notifications/resources/list_changed"
LIST_CHANGED = {TOOLS_CHANGED, PROMPTS_CHANGED, RESOURCES_CHANGED}

KINDS = ["leg", "mod"]  # the two backends, by server name
_unique = itertools.count(1)


def unique(prefix: str) -> str:
    """A fresh name (tool names, ids) so tests sharing a gateway never see each other's events."""
    return f"{prefix}{next(_unique)}_{os.getpid()}"


# ---------------------------------------------------------------------------------------------
# Backends and gateways
# ---------------------------------------------------------------------------------------------


def subscription_backend(backends: Backends, name: str, start: bool = True) -> Backend:
    """`leg` = server_v1.py (mcp<2), anything else = server_v2.py (SDK 2.x, configured `era: modern`:
    spoken to in the 2026-07-28 era only); both --resource-updates."""
    port = free_port()
    log = backends._log(name)
    if name == "leg":
        script, py, sdk = "server_v1.py", str(VENV1_PY), "v1"
    else:
        script, py, sdk = "server_v2.py", python2(), "v2"
    argv = [py, str(PY_FIXTURES / script), "--name", name, "--port", str(port), "--log", str(log)]
    argv += ["--resource-updates"]
    backend = Backend(backends.registry, name, sdk, "streamable-http", port, argv, log)
    if sdk == "v2":
        backend.config_defaults["era"] = "modern"
    backend.launch()
    return backend.wait_ready() if start else backend





def find_binary_with_v1() -> Path:
    binary = find_binary()
    if not VENV1_PY.exists():
        pytest.skip(f"{VENV1_PY} missing: run scripts/setup-test-env.sh")
    return binary


class Env:
    def __init__(self, registry: ProcessRegistry, gw: Gateway, backends: dict[str, Backend]) -> None:
        self.registry = registry
        self.gw = gw
        self.backends = backends

    def backend(self, name: str) -> Backend:
        return self.backends[name]


@pytest.fixture(scope="module")
def shared_env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    """One gateway over `leg` and `mod` for the module (tests use their own tool names and ids)."""
    binary = find_binary_with_v1()
    registry = ProcessRegistry(tmp_path_factory.mktemp("subscriptions-shared"))
    try:
        backends = Backends(registry)
        leg = subscription_backend(backends, "leg", start=False)
        mod = subscription_backend(backends, "mod", start=False)
        Backends.ready(leg, mod)
        gw = Gateway(registry, binary, registry.workdir)
        start_gateway_retrying(gw, [leg.config(), mod.config()], ["leg", "mod"])
        assert gw.server_status("mod")["era"] == "modern", gw.status()
        assert gw.server_status("leg")["era"] == "legacy", gw.status()
        yield Env(registry, gw, {"leg": leg, "mod": mod})
    finally:
        registry.stop_all()


@pytest.fixture
def env(shared_env: Env, request: pytest.FixtureRequest) -> Env:
    yield shared_env
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"\n===== shared process output ({shared_env.registry.workdir}) =====\n{shared_env.registry.dump_logs()}")


# ---------------------------------------------------------------------------------------------
# A raw modern client: one-shot requests and listen streams
# ---------------------------------------------------------------------------------------------


def modern_headers(method: str, name: str | None = None, token: str | None = None) -> dict[str, str]:
    h = {
        "Accept": ACCEPT_BOTH,
        "Content-Type": "application/json",
        "MCP-Protocol-Version": MODERN_VERSION,
        "Mcp-Method": method,
    }
    if name is not None:
        h["Mcp-Name"] = name
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    return h


def modern_body(method: str, params: dict[str, Any], rpc_id: Any) -> dict[str, Any]:
    full = dict(params)
    full["_meta"] = {VERSION_KEY: MODERN_VERSION, CAPS_KEY: {}}
    return {"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": full}


def modern_request(url: str, method: str, params: dict[str, Any], name: str | None = None, token: str | None = None):
    """A stateless request; returns its JSON-RPC response message."""
    rpc_id = next(_unique)
    body = json.dumps(modern_body(method, params, rpc_id))
    r = httpx.post(url, content=body, headers=modern_headers(method, name, token), timeout=30)
    assert r.status_code == 200, f"{method}: HTTP {r.status_code} {r.text}"
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        msgs = [m for m in parse_sse(r.text) if m.get("id") == rpc_id and "method" not in m]
    else:
        msgs = [json.loads(r.text)]
    assert len(msgs) == 1, r.text
    return msgs[0]


def call_tool(url: str, name: str, arguments: dict[str, Any], token: str | None = None) -> str:
    msg = modern_request(url, "tools/call", {"name": name, "arguments": arguments}, name=name, token=token)
    assert "result" in msg and not msg["result"].get("isError"), msg
    return tool_text(msg["result"])


def touch(env_or_url: Any, server: str, backend_uri: str, token: str | None = None) -> str:
    """Ask backend `server` (through the gateway) to mark `backend_uri` updated."""
    url = env_or_url if isinstance(env_or_url, str) else env_or_url.gw.url
    return call_tool(url, f"{server}_touch_resource", {"uri": backend_uri}, token)


class Listen:
    """One `subscriptions/listen` POST whose SSE answer is read by a background thread."""

    def __init__(
        self,
        url: str,
        notifications: dict[str, Any],
        rpc_id: Any = None,
        token: str | None = None,
    ) -> None:
        self.url = url
        self.rpc_id = rpc_id if rpc_id is not None else unique("listen-")
        self.body = modern_body("subscriptions/listen", {"notifications": notifications}, self.rpc_id)
        self.headers = modern_headers("subscriptions/listen", token=token)
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.status: int | None = None
        self.content_type: str | None = None
        self.error_body: str | None = None
        self.ended = threading.Event()
        self.opened = threading.Event()
        self._http = httpx.Client(timeout=httpx.Timeout(10.0, read=None))
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def open(self) -> Listen:
        self._thread.start()
        assert self.opened.wait(20), "subscriptions/listen: no response headers within 20 s"
        return self

    def __enter__(self) -> Listen:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the client's side of the stream (the socket is shut down: a blocked read wakes)."""
        shut_down(self._response)
        self._thread.join(timeout=5)
        self._http.close()

    def _run(self) -> None:
        try:
            with self._http.stream("POST", self.url, content=json.dumps(self.body), headers=self.headers) as r:
                self._response = r
                self.status = r.status_code
                self.content_type = r.headers.get("content-type", "")
                if not self.content_type.startswith("text/event-stream"):
                    self.error_body = r.read().decode(errors="replace")
                    self.opened.set()
                    return
                self.opened.set()
                data: list[str] = []
                for line in r.iter_lines():
                    if line.startswith("data:"):
                        data.append(line[5:].lstrip(" "))
                    elif line == "" and data:
                        try:
                            self.messages.put(json.loads("\n".join(data)))
                        except ValueError:
                            self.messages.put({"_unparsable": "\n".join(data)})
                        data = []
        except Exception:  # noqa: BLE001 - closed by the test or by the gateway
            pass
        finally:
            self.opened.set()
            self.ended.set()

    def next_message(self, timeout: float = 15.0) -> dict[str, Any]:
        try:
            m = self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message on listen stream {self.rpc_id!r} within {timeout}s; saw {self.seen}")
        self.seen.append(m)
        return m

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
        """The first message (already seen or new) matching `predicate`."""
        for m in self.seen:
            if predicate(m):
                return m
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.next_message(max(0.01, deadline - time.monotonic()))
            if predicate(m):
                return m
        raise AssertionError(f"no matching message on listen stream {self.rpc_id!r} within {timeout}s; saw {self.seen}")

    def wait_for_count(self, predicate: Callable[[dict[str, Any]], bool], count: int, timeout: float = 15.0) -> None:
        """Until `count` messages (seen so far) match `predicate`."""
        deadline = time.monotonic() + timeout
        while sum(1 for m in self.seen if predicate(m)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"fewer than {count} matching messages within {timeout}s; saw {self.seen}")
            self.next_message(max(0.01, deadline - time.monotonic()))

    def ack(self) -> dict[str, Any]:
        """The acknowledgement, which must be the stream's first message."""
        assert self.status == 200, f"subscriptions/listen: HTTP {self.status} {self.error_body}"
        assert self.content_type.startswith("text/event-stream"), (self.content_type, self.error_body)
        first = self.seen[0] if self.seen else self.next_message()
        assert first.get("method") == ACK, f"first message is not the acknowledgement: {first}"
        return first

    def honoured(self) -> dict[str, Any]:
        return self.ack()["params"]["notifications"]


@contextmanager
def listening(url: str, notifications: dict[str, Any], **kw: Any) -> Iterator[Listen]:
    stream = Listen(url, notifications, **kw).open()
    try:
        stream.ack()
        yield stream
    finally:
        stream.close()


def is_update(uri: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("method") == UPDATED and m.get("params", {}).get("uri") == uri


def methods(stream: Listen) -> list[str]:
    return [m.get("method") for m in stream.seen]


def static(server: str) -> str:
    return f"fixture://{server}/static"


def exposed(server: str, backend_uri: str) -> str:
    return f"{server}+{backend_uri}"


def subscribe_entries(backend: Backend, since: int = 0) -> list[dict[str, Any]]:
    """What the backend was asked, per era: legacy `resource_subscribed` events, modern listen
    streams (`listen_started`) that carried resource subscriptions."""
    if backend.kind == "v1":
        return backend.log.find(since, event="resource_subscribed")
    return [e for e in backend.log.find(since, event="listen_started") if e["resource_subscriptions"]]


# ---------------------------------------------------------------------------------------------
# The acknowledgement
# ---------------------------------------------------------------------------------------------


def test_ack_comes_first_with_the_request_id_and_only_the_kinds_asked(env):
    uris = [exposed("leg", static("leg")), exposed("mod", static("mod"))]
    rpc_id = unique("ack-")
    with listening(
        env.gw.url,
        {"toolsListChanged": True, "promptsListChanged": False, "resourceSubscriptions": uris},
        rpc_id=rpc_id,
    ) as stream:
        ack = stream.ack()

    assert stream.status == 200 and stream.content_type.startswith("text/event-stream")
    assert "id" not in ack, "the acknowledgement is a notification"
    assert ack["params"]["_meta"][SUB_KEY] == rpc_id
    # Only what was asked and honoured: no prompts (asked false), no resources (not asked).
    assert ack["params"]["notifications"] == {"toolsListChanged": True, "resourceSubscriptions": uris}


def test_ack_keeps_a_numeric_request_id_as_a_number(env):
    with listening(env.gw.url, {"promptsListChanged": True, "resourcesListChanged": True}, rpc_id=4242) as stream:
        ack = stream.ack()

    assert ack["params"]["_meta"][SUB_KEY] == 4242
    assert ack["params"]["notifications"] == {"promptsListChanged": True, "resourcesListChanged": True}


def test_ack_of_a_resource_reached_through_a_template(env):
    """A URI that only matches a resource template exists (it can be read) and is honoured."""
    uris = [exposed("leg", "fixture://leg/items/7"), exposed("mod", "fixture://mod/items/7")]
    for uri in uris:
        read = modern_request(env.gw.url, "resources/read", {"uri": uri}, name=uri)
        assert "result" in read, read

    with listening(env.gw.url, {"resourceSubscriptions": uris}) as stream:
        honoured = stream.honoured()

    assert honoured == {"resourceSubscriptions": uris}


def test_ack_leaves_out_uris_of_unknown_servers_and_unprefixed_uris(env):
    leg_mark, mod_mark = env.backend("leg").log.mark(), env.backend("mod").log.mark()
    asked = [
        "nosuch+fixture://nosuch/static",  # no server of that name
        static("leg"),  # the backend's own URI, not the gateway's
        "not a uri at all",
        exposed("leg", static("leg")),
    ]
    with listening(env.gw.url, {"resourceSubscriptions": asked}) as stream:
        honoured = stream.honoured()

    assert honoured == {"resourceSubscriptions": [exposed("leg", static("leg"))]}
    assert [e["uri"] for e in subscribe_entries(env.backend("leg"), leg_mark)] == [static("leg")]
    assert subscribe_entries(env.backend("mod"), mod_mark) == [], "nothing of mod was asked for"


def test_ack_with_nothing_honoured_has_no_resource_subscriptions(env):
    with listening(env.gw.url, {"toolsListChanged": True, "resourceSubscriptions": ["nosuch+x://y"]}) as stream:
        honoured = stream.honoured()

    assert honoured.get("resourceSubscriptions", []) == []
    assert honoured.get("toolsListChanged") is True


@pytest.mark.parametrize("server", KINDS)
def test_ack_leaves_out_unknown_uris_of_a_known_server(env, server):
    """`<server>+fixture://<server>/nope` matches neither a resource nor a template of `server`."""
    unknown = exposed(server, f"fixture://{server}/nope")
    read = modern_request(env.gw.url, "resources/read", {"uri": unknown}, name=unknown)
    assert "error" in read, f"the URI must not exist for this test to mean anything: {read}"
    known = exposed(server, static(server))

    with listening(env.gw.url, {"resourceSubscriptions": [unknown, known]}) as stream:
        honoured = stream.honoured()

    assert honoured.get("resourceSubscriptions") == [known], (
        f"an unknown URI must not be acknowledged; ack was {stream.ack()}"
    )


@pytest.mark.parametrize("server", KINDS)
def test_ack_leaves_out_uris_the_backend_refused(env, server):
    backend = env.backend(server)
    mark = backend.log.mark()
    refused = exposed(server, f"fixture://{server}/items/refused")
    known = exposed(server, static(server))

    with listening(env.gw.url, {"resourceSubscriptions": [refused, known]}) as stream:
        honoured = stream.honoured()

    assert honoured == {"resourceSubscriptions": [known]}
    if backend.kind == "v1":
        backend.log.wait_for(since=mark, event="resource_subscribe_refused", uri=f"fixture://{server}/items/refused")
    else:
        (started,) = subscribe_entries(backend, mark)
        assert started["resource_subscriptions"] == [static(server)], "the backend honoured only the static one"


def test_legacy_backend_session_is_closed_when_it_honoured_nothing(env):
    leg = env.backend("leg")
    mark = leg.log.mark()
    refused = exposed("leg", "fixture://leg/items/refused")

    with listening(env.gw.url, {"toolsListChanged": True, "resourceSubscriptions": [refused]}) as stream:
        honoured = stream.honoured()
        (attempt,) = leg.log.wait_for(since=mark, event="resource_subscribe_refused")
        # The stream is still open, but the session opened for it has nothing to carry.
        leg.log.wait_for(since=mark, http_method="DELETE", session=attempt["session"])

    assert honoured.get("resourceSubscriptions", []) == []


# ---------------------------------------------------------------------------------------------
# List changes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("server", KINDS)
def test_list_changes_reach_only_listeners_that_asked_for_that_kind(env, server):
    tool = unique("fresh_")
    sentinel = exposed("leg", static("leg"))
    with (
        listening(env.gw.url, {"toolsListChanged": True}) as tools_listener,
        listening(
            env.gw.url, {"promptsListChanged": True, "resourcesListChanged": True, "resourceSubscriptions": [sentinel]}
        ) as others_listener,
    ):
        assert call_tool(env.gw.url, f"{server}_add_tool", {"tool_name": tool}) == f"added {tool}"

        changed = tools_listener.wait_for(lambda m: m.get("method") in LIST_CHANGED)
        # The gateway's catalog has the new tool once listeners are told.
        tools = modern_request(env.gw.url, "tools/list", {})["result"]["tools"]
        assert f"{server}_{tool}" in [t["name"] for t in tools]
        # Sentinel: a resource update on the other stream, after the change was announced.
        touch(env, "leg", static("leg"))
        others_listener.wait_for(is_update(sentinel))

    assert changed["method"] == TOOLS_CHANGED, changed
    assert changed["params"]["_meta"][SUB_KEY] == tools_listener.rpc_id
    assert set(changed["params"]) == {"_meta"}
    assert not LIST_CHANGED & set(methods(others_listener)), (
        f"a listener that did not ask for tools got {methods(others_listener)}"
    )
    assert set(methods(tools_listener)) <= {ACK, TOOLS_CHANGED}, methods(tools_listener)


# ---------------------------------------------------------------------------------------------
# Resource updates
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("server", KINDS)
def test_resource_update_reaches_the_client_with_the_gateway_uri_and_subscription_id(env, server):
    backend = env.backend(server)
    mark = backend.log.mark()
    uri = exposed(server, static(server))
    rpc_id = unique("updates-")

    with listening(env.gw.url, {"resourceSubscriptions": [uri]}, rpc_id=rpc_id) as stream:
        assert stream.honoured() == {"resourceSubscriptions": [uri]}
        touch(env, server, static(server))
        update = stream.wait_for(is_update(uri))

    assert "id" not in update, "an update is a notification"
    assert update["params"] == {"uri": uri, "_meta": {SUB_KEY: rpc_id}}, update
    # The backend was asked for its own URI.
    (entry,) = subscribe_entries(backend, mark)
    if backend.kind == "v1":
        assert entry["uri"] == static(server)
    else:
        assert entry["resource_subscriptions"] == [static(server)]
        (listen,) = [
            e
            for e in backend.log.find(mark, rpc_method="subscriptions/listen")
            if "resourceSubscriptions" in e["body"]
        ]
        sent = json.loads(listen["body"])
        assert sent["params"]["notifications"] == {"resourceSubscriptions": [static(server)]}
        assert listen["headers"]["mcp-method"] == "subscriptions/listen"
        assert sent["params"]["_meta"][VERSION_KEY] == MODERN_VERSION


def test_legacy_subscription_uses_a_backend_session_of_its_own(env):
    """Calls by the same (anonymous) caller never travel on the stream's backend session."""
    leg = env.backend("leg")
    mark = leg.log.mark()
    uri = exposed("leg", static("leg"))

    with listening(env.gw.url, {"resourceSubscriptions": [uri]}) as stream:
        stream.honoured()
        (subscribed,) = leg.log.wait_for(since=mark, event="resource_subscribed")
        assert call_tool(env.gw.url, "leg_echo", {"text": "x"}) == "x"
        touch(env, "leg", static("leg"))
        stream.wait_for(is_update(uri))

    session = subscribed["session"]
    assert session, subscribed
    on_session = {e.get("rpc_method") for e in leg.log.find(mark) if e.get("session") == session}
    assert "tools/call" not in on_session, f"the stream's backend session carried {on_session}"
    (sent,) = [e for e in leg.log.find(mark, event="resource_update_sent") if e["uri"] == static("leg")]
    assert session in sent["sessions"], "the update went out on the stream's backend session"


def test_updates_of_one_backend_do_not_reach_a_listener_of_the_other(env):
    leg_uri, mod_uri = exposed("leg", static("leg")), exposed("mod", static("mod"))
    with (
        listening(env.gw.url, {"resourceSubscriptions": [leg_uri]}) as leg_listener,
        listening(env.gw.url, {"resourceSubscriptions": [mod_uri]}) as mod_listener,
    ):
        touch(env, "mod", static("mod"))
        mod_listener.wait_for(is_update(mod_uri))
        touch(env, "leg", static("leg"))
        leg_listener.wait_for(is_update(leg_uri))
        # Sentinel for the mod listener: a second mod update after the leg one.
        touch(env, "mod", static("mod"))
        mod_listener.wait_for_count(lambda m: m.get("method") == UPDATED, 2)

    assert [m["params"]["uri"] for m in leg_listener.seen if m.get("method") == UPDATED] == [leg_uri]
    assert {m["params"]["uri"] for m in mod_listener.seen if m.get("method") == UPDATED} == {mod_uri}


@pytest.mark.parametrize("server", KINDS)
def test_two_listeners_share_one_backend_subscription_and_keep_their_own_ids(env, server):
    backend = env.backend(server)
    mark = backend.log.mark()
    uri = exposed(server, static(server))
    first_id, second_id = 9001 + next(_unique), unique("second-")

    with (
        listening(env.gw.url, {"resourceSubscriptions": [uri]}, rpc_id=first_id) as first,
        listening(env.gw.url, {"resourceSubscriptions": [uri]}, rpc_id=second_id) as second,
    ):
        touch(env, server, static(server))
        one = first.wait_for(is_update(uri))
        two = second.wait_for(is_update(uri))

    assert first.ack()["params"]["_meta"][SUB_KEY] == first_id
    assert second.ack()["params"]["_meta"][SUB_KEY] == second_id
    assert one["params"]["_meta"][SUB_KEY] == first_id
    assert two["params"]["_meta"][SUB_KEY] == second_id
    entries = subscribe_entries(backend, mark)
    assert len(entries) == 1, f"one backend subscription for both streams (same credential): {entries}"


# ---------------------------------------------------------------------------------------------
# Closing the stream ends the backend subscription
# ---------------------------------------------------------------------------------------------


def test_closing_the_stream_closes_the_legacy_backend_session(env):
    leg = env.backend("leg")
    mark = leg.log.mark()
    uri = exposed("leg", static("leg"))

    stream = Listen(env.gw.url, {"resourceSubscriptions": [uri]}).open()
    try:
        assert stream.honoured() == {"resourceSubscriptions": [uri]}
        (subscribed,) = leg.log.wait_for(since=mark, event="resource_subscribed")
        assert leg.log.find(mark, http_method="DELETE", session=subscribed["session"]) == []
    finally:
        stream.close()

    def ended() -> bool:
        after = leg.log.find(mark)
        deleted = [e for e in after if e.get("http_method") == "DELETE" and e.get("session") == subscribed["session"]]
        unsubscribed = [
            e for e in after if e.get("event") == "resource_unsubscribed" and e.get("session") == subscribed["session"]
        ]
        return bool(deleted or unsubscribed)

    wait_until(ended, 15, what="the stream's backend session DELETEd (or resources/unsubscribe)")


def test_closing_the_stream_ends_the_modern_backend_listen(env):
    mod = env.backend("mod")
    mark = mod.log.mark()
    uri = exposed("mod", static("mod"))

    stream = Listen(env.gw.url, {"resourceSubscriptions": [uri]}).open()
    try:
        assert stream.honoured() == {"resourceSubscriptions": [uri]}
        (started,) = wait_until(lambda: subscribe_entries(mod, mark), 10, what="mod listen_started")
        assert not [e for e in mod.log.find(mark, event="listen_ended") if e["request_id"] == started["request_id"]]
    finally:
        stream.close()

    ended = wait_until(
        lambda: [
            e
            for e in mod.log.find(mark, event="listen_ended")
            if e["request_id"] == started["request_id"] and e["resource_subscriptions"] == [static("mod")]
        ],
        15,
        what="the backend's listen stream for the subscription to end",
    )
    assert ended


@pytest.mark.parametrize("server", KINDS)
def test_after_closing_a_stream_updates_still_reach_the_remaining_listener(env, server):
    uri = exposed(server, static(server))
    with listening(env.gw.url, {"resourceSubscriptions": [uri]}) as staying:
        leaving = Listen(env.gw.url, {"resourceSubscriptions": [uri]}).open()
        leaving.honoured()
        leaving.close()
        touch(env, server, static(server))
        update = staying.wait_for(is_update(uri))

    assert update["params"]["_meta"][SUB_KEY] == staying.rpc_id


# ---------------------------------------------------------------------------------------------
# Permissions: a resource the caller may not read is not subscribed
# ---------------------------------------------------------------------------------------------


def test_forbidden_resources_are_not_acknowledged_nor_subscribed(registry, backends, tmp_path):
    from idp import Idp

    roles = {
        "leg.local": ["resource:" + static("leg"), "touch_resource"],
        "mod.local": ["resource:" + static("mod"), "touch_resource"],
    }
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"alice": {"roles": roles}, "bob": {"roles": {}}}))
    idp = Idp(registry, ["--users", str(users)])
    leg = subscription_backend(backends, "leg", start=False)
    mod = subscription_backend(backends, "mod", start=False)
    Backends.ready(leg, mod)
    gw = Gateway(registry, find_binary_with_v1(), tmp_path)
    start_gateway_retrying(
        gw,
        [leg.config(auth={"client_ids": ["leg.local"]}), mod.config(auth={"client_ids": ["mod.local"]})],
        ["leg", "mod"],
        auth={"issuers": [{"issuer": idp.issuer}], "audiences": ["mcpgate"]},
    )
    alice, bob = idp.token("alice"), idp.token("bob")
    allowed = [exposed("leg", static("leg")), exposed("mod", static("mod"))]
    forbidden = [exposed("leg", "fixture://leg/items/1"), exposed("mod", "fixture://mod/items/1")]
    leg_mark, mod_mark = leg.log.mark(), mod.log.mark()

    with (
        listening(gw.url, {"resourceSubscriptions": forbidden + allowed}, token=alice) as alice_stream,
        listening(gw.url, {"toolsListChanged": True, "resourceSubscriptions": allowed}, token=bob) as bob_stream,
    ):
        alice_honoured = alice_stream.honoured()
        bob_honoured = bob_stream.honoured()
        # Alice's subscriptions work.
        touch(gw.url, "leg", static("leg"), token=alice)
        alice_stream.wait_for(is_update(allowed[0]))
        touch(gw.url, "mod", static("mod"), token=alice)
        alice_stream.wait_for(is_update(allowed[1]))

    assert alice_honoured == {"resourceSubscriptions": allowed}
    assert bob_honoured == {"toolsListChanged": True}, "bob may read nothing"
    # Forbidden URIs never reached a backend; bob's request reached none at all.
    assert [e["uri"] for e in leg.log.find(leg_mark, event="resource_subscribed")] == [static("leg")]
    mod_subscriptions = [e["resource_subscriptions"] for e in subscribe_entries(mod, mod_mark)]
    assert mod_subscriptions == [[static("mod")]], mod_subscriptions
    assert not [e for e in leg.log.find(leg_mark, rpc_method="resources/subscribe") if "items" in e.get("uri", "")]
    mod_listens = [e["body"] for e in mod.log.find(mod_mark, rpc_method="subscriptions/listen")]
    assert not [b for b in mod_listens if "items/1" in b], mod_listens


# ---------------------------------------------------------------------------------------------
# The SDK 2.x client's own listen API
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("server", KINDS)
def test_sdk2_client_listen_subscribes_a_resource_through_the_gateway(env, server):
    import anyio
    from mcp.client import Client
    from mcp.client.subscriptions import ResourceUpdated
    from sdk2 import run, text_of

    uri = exposed(server, static(server))

    async def scenario():
        async with Client(env.gw.url, cache=None) as client:
            version = client.session.protocol_version
            async with client.listen(resource_subscriptions=[uri]) as sub:
                honoured = list(sub.honored.resource_subscriptions or [])
                touched = text_of(await client.call_tool(f"{server}_touch_resource", {"uri": static(server)}))
                with anyio.fail_after(15):
                    event = await sub.__anext__()
                return version, sub.subscription_id, honoured, touched, event

    version, sub_id, honoured, touched, event = run(scenario)

    assert version == MODERN_VERSION, "the SDK client must talk 2026-07-28 to the gateway"
    assert isinstance(sub_id, str) and sub_id.startswith("listen-")
    assert honoured == [uri]
    assert touched.startswith(f"updated {static(server)}")
    assert isinstance(event, ResourceUpdated) and event.uri == uri


# ---------------------------------------------------------------------------------------------
# A legacy session subscribing to a resource of a backend that speaks 2026-07-28
# ---------------------------------------------------------------------------------------------


def test_legacy_resources_subscribe_to_a_modern_backend_goes_through_its_listen_stream(env):
    mod = env.backend("mod")
    mark = mod.log.mark()
    uri = exposed("mod", static("mod"))
    client = McpHttp(env.gw.url)
    try:
        client.initialize()
        with GetStream(client) as stream:
            assert client.result("resources/subscribe", {"uri": uri}) == {}
            (started,) = mod.log.wait_for(since=mark, event="listen_started")
            assert started["resource_subscriptions"] == [static("mod")]

            touch(env, "mod", static("mod"))
            update = stream.wait_for(lambda m: m.get("method") == UPDATED)
            assert update["params"]["uri"] == uri

            assert client.result("resources/unsubscribe", {"uri": uri}) == {}
            mod.log.wait_for(since=mark, event="listen_ended")
    finally:
        client.delete()
        client.close()


def test_legacy_subscription_to_a_modern_backend_ends_with_the_session(env):
    mod = env.backend("mod")
    mark = mod.log.mark()
    client = McpHttp(env.gw.url)
    try:
        client.initialize()
        assert client.result("resources/subscribe", {"uri": exposed("mod", static("mod"))}) == {}
        mod.log.wait_for(since=mark, event="listen_started")
        assert client.delete().status_code == 204
        mod.log.wait_for(since=mark, event="listen_ended")
    finally:
        client.close()


def test_legacy_subscription_a_modern_backend_refuses_is_an_error_naming_it(env):
    client = McpHttp(env.gw.url)
    try:
        client.initialize()
        uri = exposed("mod", "fixture://mod/items/refused")
        reply = client.request("resources/subscribe", {"uri": uri})
        assert reply["error"]["code"] == -32602
        assert "server 'mod' did not accept a subscription" in reply["error"]["message"]
    finally:
        client.delete()
        client.close()


# ---------------------------------------------------------------------------------------------
# Limits on listen streams
# ---------------------------------------------------------------------------------------------


def test_a_principal_gets_at_most_its_quota_of_listen_streams(backends, tmp_path):
    """limits.max_listen_streams_per_principal: the next stream gets 429 / -32029 with a reason;
    closing one frees a slot."""
    binary = find_binary_with_v1()
    mod = subscription_backend(backends, "mod")
    gw = Gateway(backends.registry, binary, tmp_path)
    start_gateway_retrying(gw, [mod.config()], ["mod"], limits={"max_listen_streams_per_principal": 2})
    with listening(gw.url, {"toolsListChanged": True}), listening(gw.url, {"toolsListChanged": True}) as second:
        r = httpx.post(gw.url, json=modern_body("subscriptions/listen", {"notifications": {"toolsListChanged": True}}, 77), headers=modern_headers("subscriptions/listen"), timeout=10)
        assert r.status_code == 429
        assert r.json()["error"]["code"] == -32029
        assert "2 subscriptions/listen streams" in r.json()["error"]["message"]
        second.close()
        # The slot comes back once the gateway has noticed the stream is gone.
        wait_until(lambda: listen_opens(gw.url), 10, what="a stream opens again after one closed")


def listen_opens(url: str) -> bool:
    with httpx.stream("POST", url, json=modern_body("subscriptions/listen", {"notifications": {"toolsListChanged": True}}, 78), headers=modern_headers("subscriptions/listen"), timeout=10) as r:
        return r.status_code == 200
