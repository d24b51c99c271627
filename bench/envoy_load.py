"""Load driver for mcpgate's Envoy services (docs/benchmarks.md, scenario 8): plays Envoy's side
of ext_proc and ext_authz with a real gRPC client from Envoy's official protos (PyPI
`xds-protos` + `grpcio`, the test venv's), closed loop at a fixed concurrency.

    envoy_load.py --target 127.0.0.1:9100 --op call --concurrency 16 --duration 8

Ops, one unit each:
- `call`: a routed `tools/call` as Envoy processes it: one ext_proc stream with request
  headers, request body (the router routes it and rewrites the body), response headers and
  response body (a JSON answer, fed back without a real upstream hop);
- `list`: `tools/list` (request headers, request body → immediate response);
- `authz`: one ext_authz `Check` of the routed call (host = the backend's route value, body).

Each worker first opens its own gateway session through ext_proc. 1 s of warm-up is not
measured; the last line printed is JSON: calls (measured), calls_total (with warm-up),
throughput, p50/p90/p99/max in microseconds, errors."""

from __future__ import annotations

import argparse
import json
import queue
import threading
import time

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2, external_auth_pb2_grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc

BodyMode = processing_mode_pb2.ProcessingMode.BodySendMode
JSON = [("content-type", "application/json"), ("accept", "application/json, text/event-stream")]


def headers(pairs: list[tuple[str, str]]) -> base_pb2.HeaderMap:
    return base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs])


def request_headers(extra: list[tuple[str, str]], first: bool = True) -> ep.ProcessingRequest:
    pairs = [(":method", "POST"), (":path", "/mcp"), (":authority", "mcp.bench.local"), (":scheme", "http"), *JSON, *extra]
    m = ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=headers(pairs)))
    if first:
        m.protocol_config.request_body_mode = BodyMode.Value("BUFFERED")
        m.protocol_config.response_body_mode = BodyMode.Value("STREAMED")
    return m


class Stream:
    """One ext_proc stream (one HTTP request through Envoy)."""

    def __init__(self, stub: ep_grpc.ExternalProcessorStub) -> None:
        self.q: queue.SimpleQueue = queue.SimpleQueue()

        def outgoing():
            while (m := self.q.get()) is not None:
                yield m

        self.responses = stub.Process(outgoing(), timeout=30)

    def send(self, m: ep.ProcessingRequest) -> ep.ProcessingResponse:
        self.q.put(m)
        return next(self.responses)

    def close(self) -> None:
        self.q.put(None)


def body(method: str, params: dict | None = None, id: int | None = 1) -> bytes:
    msg: dict = {"jsonrpc": "2.0", "method": method}
    if id is not None:
        msg["id"] = id
    if params is not None:
        msg["params"] = params
    return json.dumps(msg, separators=(",", ":")).encode()


def session(stub) -> str:
    s = Stream(stub)
    s.send(request_headers([]))
    init = body("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}})
    r = s.send(ep.ProcessingRequest(request_body=ep.HttpBody(body=init, end_of_stream=True)))
    s.close()
    sid = next(o.header.raw_value.decode() or o.header.value for o in r.immediate_response.headers.set_headers if o.header.key == "mcp-session-id")
    s = Stream(stub)
    s.send(request_headers([("mcp-session-id", sid), ("mcp-protocol-version", "2025-11-25")]))
    s.send(ep.ProcessingRequest(request_body=ep.HttpBody(body=body("notifications/initialized", id=None), end_of_stream=True)))
    s.close()
    return sid


def one_call(stub, sid: str, tool: str, n: int) -> bool:
    s = Stream(stub)
    try:
        s.send(request_headers([("mcp-session-id", sid), ("mcp-protocol-version", "2025-11-25")]))
        routed = s.send(ep.ProcessingRequest(request_body=ep.HttpBody(body=body("tools/call", {"name": tool, "arguments": {"text": "hi"}}, n), end_of_stream=True)))
        if routed.WhichOneof("response") != "request_body":
            return False
        resp = [(":status", "200"), ("content-type", "application/json"), ("content-length", "80")]
        s.send(ep.ProcessingRequest(response_headers=ep.HttpHeaders(headers=headers(resp))))
        answer = b'{"jsonrpc":"2.0","id":%d,"result":{"content":[{"type":"text","text":"hi"}]}}' % n
        r = s.send(ep.ProcessingRequest(response_body=ep.HttpBody(body=answer, end_of_stream=True)))
        return r.WhichOneof("response") == "response_body"
    finally:
        s.close()


def one_list(stub, sid: str, _tool: str, n: int) -> bool:
    s = Stream(stub)
    try:
        s.send(request_headers([("mcp-session-id", sid), ("mcp-protocol-version", "2025-11-25")]))
        r = s.send(ep.ProcessingRequest(request_body=ep.HttpBody(body=body("tools/list", id=n), end_of_stream=True)))
        return r.WhichOneof("response") == "immediate_response" and r.immediate_response.status.code == 200
    finally:
        s.close()


def authz_check(stub, host: str, tool: str, n: int) -> bool:
    raw = body("tools/call", {"name": tool, "arguments": {"text": "hi"}}, n)
    hdrs = {":method": "POST", ":path": "/mcp", ":authority": host, **dict(JSON)}
    http = attribute_context_pb2.AttributeContext.HttpRequest(method="POST", path="/mcp", host=host, headers=hdrs, raw_body=raw, size=len(raw))
    req = external_auth_pb2.CheckRequest(attributes=attribute_context_pb2.AttributeContext(request=attribute_context_pb2.AttributeContext.Request(http=http)))
    return stub.Check(req, timeout=30).status.code == 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--op", choices=["call", "list", "authz"], default="call")
    ap.add_argument("--tool", default="b_echo", help="exposed name (call), backend name (authz)")
    ap.add_argument("--host", default="b.local", help="route value of the backend (authz)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--duration", type=float, default=8.0)
    args = ap.parse_args()

    channel = grpc.insecure_channel(args.target)
    proc_stub = ep_grpc.ExternalProcessorStub(channel)
    authz_stub = external_auth_pb2_grpc.AuthorizationStub(channel)
    start = time.monotonic()
    measure_from = start + 1.0
    stop_at = measure_from + args.duration
    latencies: list[list[float]] = [[] for _ in range(args.concurrency)]
    totals = [0] * args.concurrency
    errors = [0] * args.concurrency

    def worker(w: int) -> None:
        sid = session(proc_stub) if args.op != "authz" else ""
        n = 0
        while (now := time.monotonic()) < stop_at:
            n += 1
            try:
                if args.op == "call":
                    ok = one_call(proc_stub, sid, args.tool, n)
                elif args.op == "list":
                    ok = one_list(proc_stub, sid, args.tool, n)
                else:
                    ok = authz_check(authz_stub, args.host, args.tool, n)
            except grpc.RpcError:
                ok = False
            done = time.monotonic()
            totals[w] += 1
            if not ok:
                errors[w] += 1
            elif now >= measure_from:
                latencies[w].append(done - now)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = sorted(x for per in latencies for x in per)

    def pct(p: float) -> int:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1e6) if lat else 0

    print(json.dumps({
        "op": args.op,
        "concurrency": args.concurrency,
        "calls": len(lat),
        "calls_total": sum(totals),
        "throughput": round(len(lat) / args.duration, 1),
        "p50_us": pct(0.5),
        "p90_us": pct(0.9),
        "p99_us": pct(0.99),
        "max_us": pct(1.0),
        "errors": sum(errors),
    }))


if __name__ == "__main__":
    main()
