"""Scale-out: three `mcpgate` replicas sharing one real Redis, behind a real HAProxy (round robin,
no affinity). Consecutive requests of one session provably land on different replicas (each
response names its replica), and the session behaves as with one gateway.

Backends: `a` = server_v2.py (SDK 2.x, dual-era: legacy clients get a legacy backend session),
`leg` = server_v1.py (mcp<2, legacy only: modern clients reach it through the era bridge)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
from cluster import CLUSTER_KEY, Cluster, replica_of
from harness import (
    ACCEPT_BOTH,
    GetStream,
    McpHttp,
    ProcessRegistry,
    Backends,
    find_binary,
    free_port,
    interactive_backend,
    parse_sse,
    run_cli,
    run_ts_client,
    run_v1_client,
    tool_text,
    ts_client_available,
    wait_until,
)
from sdk2 import Callbacks, Wire, recorded_client, run, text_of


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory):
    binary = find_binary()
    registry = ProcessRegistry(tmp_path_factory.mktemp("scale-out"))
    try:
        backends = Backends(registry)
        a = backends.v2("a", start=False)
        leg = interactive_backend(backends, "legacy", "leg", start=False)
        Backends.ready(a, leg)
        cluster = Cluster(registry, binary, registry.workdir, [a.config(), leg.config()])
        yield cluster, a, leg
    finally:
        registry.stop_all()


@pytest.fixture
def env(shared_cluster, request: pytest.FixtureRequest):
    yield shared_cluster
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"\n===== cluster output =====\n{shared_cluster[0].registry.dump_logs()}")


def test_consecutive_requests_of_one_session_are_served_by_different_replicas(env):
    cluster, _, _ = env
    client = McpHttp(cluster.url)
    try:
        client.initialize()
        served = {replica_of(client.init_response)}
        for _ in range(5):
            r = client.post_raw({"jsonrpc": "2.0", "id": client._id(), "method": "tools/list"})
            assert r.status_code == 200, r.text
            assert "a_echo" in r.text
            served.add(replica_of(r))
        assert served == {"r1", "r2", "r3"}
    finally:
        client.delete()
        client.close()


def test_a_legacy_sdk_session_spans_the_replicas_with_one_backend_initialize(env, legacy_sdk):
    cluster, a, _ = env
    mark = a.log.mark()
    out = run_v1_client(
        cluster.url,
        calls=[("a_echo", {"text": "hi"}), ("a_progress", {"steps": 3}), ("a_elicit", {"question": "Name?"}), ("a_sample", {"prompt": "p"})],
        reads=["a+fixture://a/static"],
        prompts=[("a_greet", {"who": "x"})],
    )
    assert out["_returncode"] == 0, out
    assert [c["text"] for c in out["calls"]] == ["hi", "done 3", "accept:v1", "sampled:V1SAMPLED"]
    assert [p[0] for p in out["progress"]] == [1, 2, 3], "progress on the stream of its call"
    assert out["reads"][0]["text"].startswith("static")
    # The client's requests went to three replicas; its backend session was opened once.
    inits = [e for e in a.log.find(mark, rpc_method="initialize") if "elicitation" in e["body"]]
    assert len(inits) == 1, f"one initialize for the client's backend session, not one per replica: {len(inits)}"
    sessions = {e["session"] for e in a.log.find(mark, rpc_method="tools/call")}
    assert len(sessions) == 1, "every replica resumed the same backend session"


def test_an_elicitation_answered_on_another_replica_reaches_the_backend_that_asked(env):
    cluster, a, _ = env
    client = McpHttp(cluster.url)
    try:
        client.initialize(capabilities={"elicitation": {}})
        body = {"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": {"name": "a_elicit", "arguments": {"question": "Who?"}}}
        with client.http.stream("POST", client.url, content=json.dumps(body), headers=client.headers()) as call:
            asked_by = replica_of(call)
            lines = call.iter_lines()
            request = next_message(lines)
            assert request["method"] == "elicitation/create"
            answer = {"jsonrpc": "2.0", "id": request["id"], "result": {"action": "accept", "content": {"answer": "from-another-replica"}}}
            r = client.post_raw(answer)
            assert r.status_code == 202
            assert replica_of(r) != asked_by, "the answer went to another replica"
            final = next_message(lines)
        assert final["id"] == 41
        assert tool_text(final["result"]) == "accept:from-another-replica"
    finally:
        client.delete()
        client.close()


def next_message(lines) -> dict[str, Any]:
    for line in lines:
        if line.startswith("data:") and line[5:].strip():
            return json.loads(line[5:])
    raise AssertionError("the stream ended")


def test_a_get_stream_on_one_replica_hears_a_list_change_caused_through_another(env):
    cluster, a, _ = env
    client = McpHttp(cluster.url)
    try:
        client.initialize()
        with GetStream(client) as stream:
            for _ in range(3):  # whichever replicas the next requests land on
                r = client.post_raw({"jsonrpc": "2.0", "id": client._id(), "method": "tools/call", "params": {"name": "a_add_tool", "arguments": {"tool_name": f"cross_{time.monotonic_ns()}", "channel": "standalone"}}})
                assert r.status_code == 200
            stream.wait_for(lambda m: m.get("method") == "notifications/tools/list_changed", timeout=15)
    finally:
        client.delete()
        client.close()


def test_a_cancel_sent_to_another_replica_stops_the_call(env):
    cluster, a, _ = env
    mark = a.log.mark()
    client = McpHttp(cluster.url)
    try:
        client.initialize()
        body = {"jsonrpc": "2.0", "id": 77, "method": "tools/call", "params": {"name": "a_sleep", "arguments": {"seconds": 30}}}
        done: dict[str, Any] = {}

        def call() -> None:
            with client.fork().http.stream("POST", client.url, content=json.dumps(body), headers=client.headers()) as r:
                done["replica"] = replica_of(r)
                done["text"] = "".join(r.iter_text())

        t = threading.Thread(target=call, daemon=True)
        t.start()
        a.log.wait_for(since=mark, rpc_method="tools/call", name="sleep")
        r = client.post_raw({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 77, "reason": "test"}})
        assert r.status_code == 202
        a.log.wait_for(since=mark, event="tool_cancelled", name="sleep", timeout=15)
        t.join(timeout=20)
        assert done.get("replica") and replica_of(r) != done["replica"], "the cancel went to another replica"
    finally:
        client.delete()
        client.close()


def test_delete_on_any_replica_ends_the_session_everywhere(env):
    cluster, _, _ = env
    client = McpHttp(cluster.url)
    client.initialize()
    for replica in cluster.replicas:  # every replica has served (and cached) the session
        direct = McpHttp(replica.url)
        direct.session_id, direct.protocol_version = client.session_id, client.protocol_version
        assert direct.post_raw({"jsonrpc": "2.0", "id": 1, "method": "ping"}).status_code == 200
    assert client.delete().status_code == 204
    for replica in cluster.replicas:
        direct = McpHttp(replica.url)
        direct.session_id, direct.protocol_version = client.session_id, client.protocol_version
        wait_until(lambda d=direct: d.post_raw({"jsonrpc": "2.0", "id": 2, "method": "ping"}).status_code == 404, 5, what=f"404 on {replica.replica_id}")
    client.close()


@pytest.mark.parametrize(
    "make_id",
    [
        pytest.param(lambda real: "k1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA", id="forged"),
        pytest.param(lambda real: real[:-2] + ("AA" if not real.endswith("AA") else "BB"), id="tampered-tag"),
        pytest.param(lambda real: real[:-5], id="truncated"),
        pytest.param(lambda real: "k9" + real[2:], id="unknown-key"),
        pytest.param(lambda real: "0123456789abcdef0123456789abcdef", id="old-format"),
    ],
)
def test_a_forged_or_altered_session_id_is_an_unknown_session(env, make_id):
    cluster, _, _ = env
    client = McpHttp(cluster.url)
    try:
        client.initialize()
        real = client.session_id
        client.session_id = make_id(real)
        r = client.post_raw({"jsonrpc": "2.0", "id": 5, "method": "tools/list"})
        assert r.status_code == 404, r.text
        assert r.json()["error"]["message"] == "Session not found"
        assert real not in r.text
    finally:
        client.session_id = real
        client.delete()
        client.close()


def test_a_modern_client_resumes_a_parked_call_on_whichever_replica_its_retry_reaches(env):
    """SDK 2.x client, legacy backend: the elicitation parks the call on one replica; the retry
    with `requestState` lands on another, which forwards it to the call's replica."""
    cluster, _, leg = env
    callbacks = Callbacks("m")
    wire = Wire()
    replicas: list[str] = []
    original = wire._on_response

    async def record(response: Any) -> None:
        replicas.append(response.headers.get("x-mcpgate-replica"))
        await original(response)

    wire._on_response = record  # type: ignore[method-assign]

    async def scenario() -> str:
        async with recorded_client(callbacks, cluster.url, wire) as client:
            return text_of(await client.call_tool("leg_elicit", {"question": "Name?"}))

    assert run(scenario) == "accept:m-answer"
    calls = [r for e, r in zip(wire.exchanges, replicas, strict=False) if e.get("rpc_method") == "tools/call"]
    assert len(calls) >= 2 and len(set(calls[-2:])) == 2, f"the retry reached another replica: {calls}"


def test_the_typescript_sdk_client_works_through_the_load_balancer(env):
    if not ts_client_available():
        pytest.skip("TypeScript SDK not installed")
    cluster, _, _ = env
    out = run_ts_client(cluster.url, calls=[("a_echo", {"text": "ts"}), ("a_add", {"a": 2, "b": 3})])
    assert [c["text"] for c in out["calls"]] == ["ts", "5"], out


# ---------------------------------------------------------------------------------------------
# Clusters of their own: failures, limits, restarts
# ---------------------------------------------------------------------------------------------


def own_cluster(registry, tmp_path, backends, **config):
    a = backends.v2("a")
    return Cluster(registry, find_binary(), tmp_path, [a.config()], **config), a


def call_echo(client: McpHttp, text: str) -> httpx.Response:
    return client.post_raw({"jsonrpc": "2.0", "id": client._id(), "method": "tools/call", "params": {"name": "a_echo", "arguments": {"text": text}}})


def test_killing_the_replica_that_served_the_last_request_loses_nothing(registry, tmp_path, backends):
    cluster, _ = own_cluster(registry, tmp_path, backends)
    client = McpHttp(cluster.url)
    client.initialize()
    last = call_echo(client, "before")
    assert last.status_code == 200
    cluster.replica(replica_of(last)).kill()  # kill -9
    for i in range(6):
        r = call_echo(client, f"after-{i}")
        assert r.status_code == 200, r.text
        assert tool_text(json.loads(r.text)["result"]) == f"after-{i}"


def test_a_store_outage_gives_clear_errors_and_service_comes_back_by_itself(registry, tmp_path, backends):
    cluster, _ = own_cluster(registry, tmp_path, backends)
    cluster.redis.stop()
    r = McpHttp(cluster.url).post_raw(
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        replace_headers={"Accept": ACCEPT_BOTH, "Content-Type": "application/json"},
    )
    assert r.status_code == 503
    assert r.json()["error"]["message"].startswith("session store"), r.text
    cluster.redis.start()

    def initializes() -> bool:
        c = McpHttp(cluster.url)
        try:
            c.initialize()
            return call_echo(c, "back").status_code == 200
        except AssertionError:
            return False
        finally:
            c.close()

    wait_until(initializes, 20, interval=0.5, what="new sessions once the store is back")


def test_max_sessions_holds_across_replicas(registry, tmp_path, backends):
    cluster, _ = own_cluster(registry, tmp_path, backends, limits={"max_sessions": 2, "evict_idle_after": "1h"})
    seen = set()
    for _ in range(2):
        c = McpHttp(cluster.url)
        c.initialize()
        seen.add(replica_of(c.init_response))
    third = McpHttp(cluster.url).post_raw(
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        replace_headers={"Accept": ACCEPT_BOTH, "Content-Type": "application/json"},
    )
    assert len(seen) == 2, "the two sessions were made by two replicas"
    assert third.status_code == 503


def test_an_idle_session_expires_on_every_replica(registry, tmp_path, backends):
    cluster, _ = own_cluster(registry, tmp_path, backends, limits={"session_idle_timeout": "2s"})
    client = McpHttp(cluster.url)
    client.initialize()
    assert call_echo(client, "x").status_code == 200
    time.sleep(3)  # past the idle timeout (a limit, not a timed assertion)
    assert call_echo(client, "y").status_code == 404


def test_a_rolling_restart_under_load_fails_no_call(registry, tmp_path, backends):
    cluster, _ = own_cluster(registry, tmp_path, backends)
    client = McpHttp(cluster.url)
    client.initialize()
    results: dict[str, Any] = {"ok": 0, "failed": []}
    stop = threading.Event()

    def load() -> None:
        c = client.fork(id_base=10_000)
        while not stop.is_set():
            try:
                r = call_echo(c, "steady")
                if r.status_code == 200 and "steady" in r.text:
                    results["ok"] += 1
                else:
                    results["failed"].append(f"{r.status_code} {r.text[:200]}")
            except httpx.HTTPError as e:
                results["failed"].append(repr(e))

    t = threading.Thread(target=load, daemon=True)
    t.start()
    try:
        for replica in cluster.replicas:
            replica.stop()  # SIGTERM: readyz 503, grace, drain, exit
            cluster.restart(replica)
            cluster.wait_all_up()
    finally:
        stop.set()
        t.join(timeout=30)
    assert results["failed"] == [], results["failed"][:5]
    assert results["ok"] > 20, results


def test_a_session_id_is_bound_to_its_identity_on_every_replica(registry, tmp_path, backends):
    """A stolen session id replayed with another caller's token gets 403, whichever replica."""
    import json as _json

    from idp import Idp

    users = tmp_path / "users.json"
    users.write_text(_json.dumps({"alice": {"roles": {"a.local": ["echo"]}}, "bob": {"roles": {"a.local": ["echo"]}}}))
    idp = Idp(registry, ["--users", str(users)])
    a = backends.v2("a")
    auth = {"issuers": [{"issuer": idp.issuer}], "audiences": ["mcpgate"]}
    cluster = Cluster(registry, find_binary(), tmp_path, [a.config(auth={"client_ids": ["a.local"]})], auth=auth)
    alice = McpHttp(cluster.url)
    alice.http.headers["Authorization"] = f"Bearer {idp.token('alice')}"
    alice.initialize()
    thief = McpHttp(cluster.url)
    thief.http.headers["Authorization"] = f"Bearer {idp.token('bob')}"
    thief.session_id, thief.protocol_version = alice.session_id, alice.protocol_version
    served = set()
    for _ in range(3):
        r = thief.post_raw({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert r.status_code == 403, r.text
        served.add(replica_of(r))
    assert len(served) == 3
    assert call_echo(alice, "mine").status_code == 200
    assert CLUSTER_KEY not in r.text


def test_a_virtual_server_session_stays_bound_to_its_path_on_every_replica(tmp_path_factory):
    """The virtual-server binding is part of the stored session: a session made on `/mcp/ops`
    at one replica is resumed at another on that path with that selection, and is unknown
    (404) on the main path at both."""
    binary = find_binary()
    registry = ProcessRegistry(tmp_path_factory.mktemp("scale-out-virtual"))
    try:
        a = Backends(registry).v2("a")
        virtual = [{"name": "ops", "include": [{"kind": "tool", "name": "a_echo"}]}]
        cluster = Cluster(registry, binary, registry.workdir, [a.config()], n=2, virtual_servers=virtual)
        r1, r2 = cluster.replicas
        ops = McpHttp(r1.base + "/mcp/ops")
        ops.initialize()
        assert replica_of(ops.init_response) == "r1"
        resumed = McpHttp(r2.base + "/mcp/ops")
        resumed.session_id, resumed.protocol_version = ops.session_id, ops.protocol_version
        assert resumed.tool_names() == ["a_echo"], "the other replica shows the virtual server's selection"
        mark = a.log.mark()
        refused = resumed.call_tool("a_add", {"a": 1, "b": 2})
        assert refused["error"] == {"code": -32602, "message": "Unknown tool: a_add"}, refused
        assert a.log.find(since=mark, rpc_method="tools/call") == []
        for r in (r2, r1):
            stranger = McpHttp(r.url)
            stranger.session_id, stranger.protocol_version = ops.session_id, ops.protocol_version
            answer = stranger.post_raw({"jsonrpc": "2.0", "id": 7, "method": "tools/list"})
            assert answer.status_code == 404 and answer.json()["error"]["message"] == "Session not found", (r.replica_id, answer.text)
            stranger.close()
        assert tool_text(resumed.call_tool("a_echo", {"text": "hi"})["result"]) == "hi"
        assert resumed.delete().status_code == 204
        ops.close()
        resumed.close()
    finally:
        registry.stop_all()


def test_pins_approved_at_one_replica_are_served_by_every_replica(tmp_path_factory):
    """In a cluster the pins live in the store: each replica has a pin file of its own (empty),
    nothing is served in enforce mode until approved, and one approval through one replica's
    admin endpoint lifts the quarantine on every replica. The files stay untouched."""
    binary = find_binary()
    registry = ProcessRegistry(tmp_path_factory.mktemp("scale-out-pins"))
    token = "scale-out-pins-admin-token-0123456789"
    admin_ports: dict[str, int] = {}

    def admin(r) -> dict:
        admin_ports[r.replica_id] = admin_ports.get(r.replica_id) or free_port()
        return {"listen": f"127.0.0.1:{admin_ports[r.replica_id]}", "token": token}

    try:
        a = Backends(registry).v2("a")
        cluster = Cluster(registry, binary, registry.workdir, [a.config(pinning="enforce")], n=2,
                          pins=lambda r: {"file": str(r.workdir / "pins.yaml")}, admin=admin)
        r1, r2 = cluster.replicas

        def tools_at(r) -> list[str]:
            c = McpHttp(r.url)
            c.initialize()
            try:
                return c.tool_names()
            finally:
                c.close()

        def quarantined_at(r) -> int:
            return len(httpx.get(r.base + "/status", timeout=5).json()["servers"][0].get("quarantined", []))

        wait_until(lambda: quarantined_at(r1) > 0 and quarantined_at(r2) > 0, 20, what="tools quarantined on both replicas")
        assert tools_at(r1) == [] and tools_at(r2) == [], "nothing approved: nothing served"
        out = run_cli(binary, ["pins", "approve", "--all", "--admin", f"http://127.0.0.1:{admin_ports['r1']}"],
                      env={"MCPGATE_ADMIN_TOKEN": token})
        assert out.returncode == 0, out.stderr
        wait_until(lambda: quarantined_at(r2) == 0, 20, what="the approval made at r1 reaching r2")
        served = tools_at(r2)
        assert "a_echo" in served and served == tools_at(r1), served
        mark = a.log.mark()
        c = McpHttp(r2.url)
        c.initialize()
        assert tool_text(c.call_tool("a_echo", {"text": "pinned"})["result"]) == "pinned"
        c.close()
        assert a.log.find(since=mark, rpc_method="tools/call"), "the call reached the backend"
        for r in (r1, r2):
            pin_file = r.workdir / "pins.yaml"
            assert not pin_file.exists(), f"{r.replica_id}: the pins live in the store, not in the file"
    finally:
        registry.stop_all()
