"""The front door under connections that hold it without finishing a request (slowloris):
request heads, request bodies and idle connections are bounded by `limits.*_timeout`, one
address holds at most `limits.max_connections_per_ip` connections, and at
`limits.max_connections` idle connections make room for new callers while busy ones are never
cut. Normal callers keep being served throughout.

Every connection here comes from the loopback; attackers use their own loopback addresses
(127.0.0.2, 127.0.0.3: all of 127/8 is local on Linux) so the per-IP cap tells them from the
normal caller on 127.0.0.1. Waits are hang guards only: nothing asserts how fast a thing
happened.
"""

from __future__ import annotations

import json
import resource
import signal
import socket
import subprocess
import time

import httpx
import pytest
from harness import McpHttp, wait_until

HALF_HEAD = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


@pytest.fixture(autouse=True)
def enough_file_descriptors():
    """Thousands of sockets in this process: raise the soft limit as far as the hard one goes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(8192, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def connect_from(source: str, port: int) -> socket.socket | None:
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    except OSError:
        return None


def stalled(port: int, n: int, source: str, payloads: tuple[bytes, ...] = (b"", HALF_HEAD)) -> list[socket.socket]:
    """`n` connections from `source`, each sending one of `payloads` in turn and then nothing."""
    socks = []
    for i in range(n):
        s = connect_from(source, port)
        if s is None:
            continue
        payload = payloads[i % len(payloads)]
        try:
            if payload:
                s.sendall(payload)
        except OSError:
            pass  # already refused and closed by the gateway
        socks.append(s)
    return socks


def closed_by_gateway(s: socket.socket) -> bool:
    """True once the gateway closed (or reset) the connection; False while it is still open."""
    s.setblocking(False)
    try:
        return s.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def read_until_closed(s: socket.socket, guard: float = 60.0) -> bytes:
    """Everything the gateway sends until it closes the connection (a reset counts as closed:
    the kernel resets a connection closed with unread input)."""
    s.settimeout(guard)
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_thousand_stalled_connections_neither_starve_a_caller_nor_outlive_the_head_timeout(backends, start_gateway):
    a = backends.v2("a")
    limits = {"header_read_timeout": "10s", "max_connections_per_ip": 500, "max_connections": 4000}
    gw = start_gateway([a.config(era="legacy")], limits=limits)

    attack = stalled(gw.port, 2000, "127.0.0.2")
    caller = McpHttp(gw.url)
    caller.initialize()
    names = caller.tool_names()
    held = [s for s in attack if not closed_by_gateway(s)]
    conns = gw.status()["connections"]

    assert "a_echo" in names, "the normal caller was served while the attacker held its connections"
    assert len(attack) == 2000
    assert len(held) == 500, "one address holds at most max_connections_per_ip connections"
    assert conns["open"] >= 500
    wait_until(lambda: gw.status()["connections"]["refused"]["over_per_ip_limit"] == 1500, 30, what="1500 refusals")

    wait_until(lambda: all(closed_by_gateway(s) for s in held), 60, what="stalled connections closed by the gateway")
    conns = gw.status()["connections"]
    assert conns["closed"]["header_timeout"] >= 500, conns
    assert conns["open"] <= 3, f"only the caller's and this status request's connections remain: {conns}"
    assert caller.tool_names() == names, "the caller is still served after the attack"
    close_all(attack)


@pytest.mark.timeout(120)
def test_a_burst_of_connections_while_the_gateway_cannot_accept_waits_in_the_queue_not_on_a_retransmit(backends, start_gateway):
    """The kernel holds connections the gateway has not accepted yet in the listener's queue;
    one that finds the queue full loses its SYN and waits a second for the retransmit. With the
    runtime's default queue (128) a reconnect storm stalls callers; the gateway asks for the
    kernel's maximum. The gateway is stopped (SIGSTOP) so nothing is accepted meanwhile."""
    a = backends.v2("a")
    limits = {"max_connections": 4000, "max_connections_per_ip": 0, "header_read_timeout": "60s"}
    gw = start_gateway([a.config(era="legacy")], limits=limits)
    somaxconn = int(open("/proc/sys/net/core/somaxconn").read())
    burst = min(1000, somaxconn)

    gw.proc.send_signal(signal.SIGSTOP)
    try:
        queued, lost = [], 0
        for _ in range(burst):
            try:
                # Two seconds spans the first retransmit (at one second), which a stopped
                # gateway would not answer either: a dropped SYN is a timeout here.
                queued.append(socket.create_connection(("127.0.0.1", gw.port), timeout=2, source_address=("127.0.0.4", 0)))
            except OSError:
                lost += 1
                if lost > 3:
                    break
    finally:
        gw.proc.send_signal(signal.SIGCONT)

    assert lost == 0, f"{lost} connection(s) dropped after {len(queued)} queued: the listener's queue is too short"
    assert len(queued) == burst
    wait_until(lambda: gw.status()["connections"]["open"] >= burst, 30, what=f"{burst} queued connections accepted")
    caller = McpHttp(gw.url)
    caller.initialize()
    assert "a_echo" in caller.tool_names(), "a caller is served once the burst is accepted"
    close_all(queued)


@pytest.mark.timeout(120)
def test_at_the_global_cap_idle_connections_make_room_and_callers_are_served(backends, start_gateway):
    a = backends.v2("a")
    limits = {"max_connections": 200, "max_connections_per_ip": 0, "header_read_timeout": "60s"}
    gw = start_gateway([a.config(era="legacy")], limits=limits)

    attack = stalled(gw.port, 600, "127.0.0.3")
    caller = McpHttp(gw.url)
    caller.initialize()

    assert "a_echo" in caller.tool_names()
    # The kernel completes connections before the gateway accepts them: wait for all 600.
    wait_until(lambda: gw.status()["connections"]["closed"]["evicted"] >= 400, 30, what="400 evictions")
    wait_until(lambda: gw.status()["connections"]["open"] <= 200, 30, what="open connections back under the cap")
    assert gw.status()["connections"]["refused"]["over_limit"] == 0, "idle connections were closed for room instead"
    assert "a_echo" in caller.tool_names()
    close_all(attack)


def test_connections_with_a_request_in_flight_are_never_evicted(backends, start_gateway, gateway):
    a = backends.v2("a")
    cfg = {"limits": {"max_connections": 3, "max_connections_per_ip": 0}}
    gw = start_gateway([a.config(era="legacy")], **cfg)
    sessions = []
    for _ in range(3):  # a session has one GET stream: a second one would end the first
        session = McpHttp(gw.url)
        session.initialize()
        session.close()
        sessions.append(session)
    # Only the status request's own connection may remain (an idle one would make room).
    wait_until(lambda: gw.status()["connections"]["open"] == 1, 30, what="the sessions' connections closed")
    streams = []
    for session in sessions:
        s = connect_from("127.0.0.1", gw.port)
        assert s is not None
        s.sendall(
            f"GET /mcp HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nMcp-Session-Id: {session.session_id}\r\n"
            f"MCP-Protocol-Version: {session.protocol_version}\r\n\r\n".encode()
        )
        s.settimeout(30)
        assert s.recv(4096).startswith(b"HTTP/1.1 200"), "a GET stream is open (a request in flight)"
        streams.append(s)

    extra = connect_from("127.0.0.1", gw.port)
    assert extra is not None
    extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    refused = read_until_closed(extra, 30)

    assert refused == b"", "at the cap with every connection busy, a new connection is closed unanswered"
    assert all(not closed_by_gateway(s) for s in streams), "no stream was cut to make room"

    # Raising the cap by reloading the config applies to the next connection.
    gateway.write_config([a.config(era="legacy")], limits={"max_connections": 10, "max_connections_per_ip": 0})
    gateway.sighup()
    wait_until(lambda: httpx.get(gw.base + "/healthz", timeout=5).status_code == 200, 30, what="room after reload")
    assert gw.status()["connections"]["refused"]["over_limit"] >= 1
    close_all(streams)


def test_a_body_that_never_completes_gets_408_and_the_connection_closed(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config(era="legacy")], limits={"body_read_timeout": "1s"})
    s = connect_from("127.0.0.1", gw.port)
    assert s is not None
    s.sendall(
        b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        b'Content-Length: 200\r\n\r\n{"jsonrpc":"2.0","id":1,'
    )

    answer = read_until_closed(s)

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    assert b"connection: close" in head.lower()
    error = json.loads(body)["error"]
    assert error["code"] == -32600 and error["message"] == "request body not received within 1s"


def test_silent_half_sent_and_idle_connections_are_closed(backends, start_gateway):
    a = backends.v2("a")
    limits = {"header_read_timeout": "1s", "idle_connection_timeout": "2s"}
    gw = start_gateway([a.config(era="legacy")], limits=limits)
    silent = connect_from("127.0.0.1", gw.port)
    half = connect_from("127.0.0.1", gw.port)
    idle = connect_from("127.0.0.1", gw.port)
    kept_then_half = connect_from("127.0.0.1", gw.port)
    assert silent and half and idle and kept_then_half
    half.sendall(HALF_HEAD)
    for s in (idle, kept_then_half):
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(30)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
    kept_then_half.sendall(HALF_HEAD)  # a keep-alive connection that starts a request and stalls

    for s in (silent, half, idle, kept_then_half):
        assert read_until_closed(s) in (b"",), "closed without an answer"

    closed = gw.status()["connections"]["closed"]
    assert closed["header_timeout"] >= 3 and closed["idle"] >= 1, closed


def test_an_event_stream_outlives_the_idle_timeout(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config(era="legacy")], limits={"header_read_timeout": "1s", "idle_connection_timeout": "1s"})
    session = McpHttp(gw.url)
    session.initialize()
    s = connect_from("127.0.0.1", gw.port)
    assert s is not None
    s.sendall(
        f"GET /mcp HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nMcp-Session-Id: {session.session_id}\r\n"
        f"MCP-Protocol-Version: {session.protocol_version}\r\n\r\n".encode()
    )
    s.settimeout(30)
    assert s.recv(4096).startswith(b"HTTP/1.1 200")

    time.sleep(3)  # three idle timeouts with nothing on the wire

    assert not closed_by_gateway(s), "a response in progress is never an idle connection"
    s.close()


def test_http2_callers_are_served_with_prior_knowledge(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config(era="legacy")])

    out = subprocess.run(
        ["curl", "-sS", "--http2-prior-knowledge", "-m", "20", "-w", "\\n%{http_version}", gw.base + "/status"],
        capture_output=True,
        text=True,
        timeout=30,
    )

    body, _, version = out.stdout.rpartition("\n")
    assert out.returncode == 0, out.stderr
    assert version == "2"
    assert json.loads(body)["connections"]["open"] >= 1
