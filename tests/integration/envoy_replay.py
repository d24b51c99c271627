"""Envoy's side of the ext_proc and ext_authz protocols, replayed with a real gRPC client built
from Envoy's official protos (PyPI `xds-protos` + `grpcio`): no Envoy binary runs on these
machines, so the tests send exactly the messages Envoy sends, in Envoy's order, and apply the
answers the way Envoy applies them.

- `ProcStream`: one ext_proc stream (one HTTP request); `send()` one message, get its answer.
- `msg_*`: the ProcessingRequest messages Envoy sends (headers with pseudo-headers and
  `raw_value`, body chunks, protocol_config on the first message).
- `FakeEnvoy`: a small data path around the real services, as the bootstrap in docs/envoy.md
  configures Envoy: ext_proc (request headers + buffered or streamed body, response headers +
  streamed or buffered body), optionally ext_authz after it (with_request_body), routes by the
  route header (`:authority` by default) to clusters with `auto_host_rewrite`. The upstream is
  the real backend, called over HTTP; what the client gets is what Envoy would send it.
- `Authz`: ext_authz `Check` calls (gRPC) and the HTTP mode.
"""

from __future__ import annotations

import json
import queue
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2, external_auth_pb2_grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc

BodyMode = processing_mode_pb2.ProcessingMode.BodySendMode
SECRET_HEADER = "x-mcpgate-envoy-secret"


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------


def header_map(headers: dict[str, str] | list[tuple[str, str]]) -> base_pb2.HeaderMap:
    items = headers.items() if isinstance(headers, dict) else headers
    return base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k.lower(), raw_value=v.encode()) for k, v in items])


def request_headers_of(method: str, path: str, authority: str, headers: dict[str, str]) -> list[tuple[str, str]]:
    out = [(":method", method), (":path", path), (":authority", authority), (":scheme", "http")]
    out += [(k.lower(), v) for k, v in headers.items()]
    return out


def msg_request_headers(
    headers: list[tuple[str, str]], end_of_stream: bool = False, request_mode: str | None = "BUFFERED", response_mode: str = "STREAMED"
) -> ep.ProcessingRequest:
    m = ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=header_map(headers), end_of_stream=end_of_stream))
    if request_mode is not None:
        m.protocol_config.CopyFrom(
            ep.ProtocolConfiguration(request_body_mode=BodyMode.Value(request_mode), response_body_mode=BodyMode.Value(response_mode))
        )
    return m


def msg_request_body(body: bytes, end_of_stream: bool = True) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(request_body=ep.HttpBody(body=body, end_of_stream=end_of_stream))


def msg_response_headers(status: int, headers: list[tuple[str, str]], end_of_stream: bool = False) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(
        response_headers=ep.HttpHeaders(headers=header_map([(":status", str(status)), *headers]), end_of_stream=end_of_stream)
    )


def msg_response_body(body: bytes, end_of_stream: bool = True) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(response_body=ep.HttpBody(body=body, end_of_stream=end_of_stream))


def value_of(h: base_pb2.HeaderValue) -> str:
    return h.raw_value.decode() if h.raw_value else h.value


@dataclass
class Mutation:
    """A phase's answer, read: header changes, body change, route cache, immediate response."""

    set: dict[str, str] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)
    body: bytes | None = None  # replacement body
    clear_body: bool = False
    clear_route_cache: bool = False
    immediate: ep.ImmediateResponse | None = None
    mode_override: Any = None
    kind: str = ""

    @property
    def immediate_status(self) -> int:
        assert self.immediate is not None, f"expected an immediate response, got {self.kind}"
        return self.immediate.status.code

    @property
    def immediate_headers(self) -> dict[str, str]:
        assert self.immediate is not None
        return {o.header.key: value_of(o.header) for o in self.immediate.headers.set_headers}

    def immediate_json(self) -> Any:
        assert self.immediate is not None
        return json.loads(self.immediate.body)


def read(resp: ep.ProcessingResponse) -> Mutation:
    kind = resp.WhichOneof("response")
    m = Mutation(kind=kind or "")
    if resp.HasField("mode_override"):
        m.mode_override = resp.mode_override
    if kind == "immediate_response":
        m.immediate = resp.immediate_response
        return m
    if kind in ("request_trailers", "response_trailers"):
        return m
    common = getattr(resp, kind).response
    m.set = {o.header.key: value_of(o.header) for o in common.header_mutation.set_headers}
    m.remove = list(common.header_mutation.remove_headers)
    m.clear_route_cache = common.clear_route_cache
    which = common.body_mutation.WhichOneof("mutation")
    if which == "body":
        m.body = common.body_mutation.body
    elif which == "clear_body":
        m.clear_body = common.body_mutation.clear_body
    return m


def apply(headers: list[tuple[str, str]], m: Mutation) -> list[tuple[str, str]]:
    """Envoy applying a HeaderMutation: removals, then sets (overwrite-or-add)."""
    out = [(k, v) for k, v in headers if k not in m.remove and k not in m.set]
    out += list(m.set.items())
    return out


# ---------------------------------------------------------------------------------------------
# Streams
# ---------------------------------------------------------------------------------------------


class ProcStream:
    """One ext_proc stream: each `send` waits for the service's answer to that message."""

    def __init__(self, target: str, secret: str | None = None, timeout: float = 30.0) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = ep_grpc.ExternalProcessorStub(self.channel)
        self._q: queue.Queue[ep.ProcessingRequest | None] = queue.Queue()
        metadata = [(SECRET_HEADER, secret)] if secret else None

        def outgoing():
            while True:
                m = self._q.get()
                if m is None:
                    return
                yield m

        self._responses = self.stub.Process(outgoing(), metadata=metadata, timeout=timeout)

    def send(self, msg: ep.ProcessingRequest) -> Mutation:
        self._q.put(msg)
        return read(next(self._responses))

    def ended(self) -> bool:
        """Whether the service closed the stream (no further answer)."""
        try:
            next(self._responses)
            return False
        except StopIteration:
            return True

    def close(self) -> None:
        self._q.put(None)
        self.channel.close()


@dataclass
class ClientResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    # What happened on the way: "immediate" (answered by the processor) or "upstream".
    via: str = "upstream"
    upstream_request: dict[str, Any] | None = None

    def json(self) -> Any:
        return json.loads(self.body)

    def messages(self) -> list[Any]:
        """The JSON-RPC messages of a JSON or SSE body."""
        if self.headers.get("content-type", "").startswith("text/event-stream"):
            out = []
            for block in self.body.decode().split("\n\n"):
                data = [line[5:].lstrip() for line in block.splitlines() if line.startswith("data:")]
                if data:
                    out.append(json.loads("\n".join(data)))
            return out
        return [self.json()] if self.body else []


class FakeEnvoy:
    """Envoy's data path as docs/envoy.md configures it, around the real services."""

    def __init__(
        self,
        grpc_target: str,
        clusters: dict[str, str],
        *,
        secret: str | None = None,
        authority: str = "mcp.example.com",
        route_header: str = ":authority",
        request_mode: str = "BUFFERED",
        response_mode: str = "STREAMED",
        ext_authz: bool = False,
        honour_mode_override: bool = True,
        chunk: int = 7,
    ) -> None:
        self.target = grpc_target
        self.clusters = clusters  # route value -> backend base URL (http://127.0.0.1:PORT)
        self.secret = secret
        self.authority = authority
        self.route_header = route_header
        self.request_mode = request_mode
        self.response_mode = response_mode
        self.ext_authz = ext_authz
        self.honour_mode_override = honour_mode_override
        self.chunk = chunk
        self.http = httpx.Client(timeout=30)
        self.log: list[tuple[str, Mutation]] = []

    def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> ClientResponse:
        self.log = []
        s = ProcStream(self.target, self.secret)
        try:
            return self._request(s, method, path, headers, body)
        finally:
            s.close()

    def _step(self, s: ProcStream, name: str, msg: ep.ProcessingRequest) -> Mutation:
        m = s.send(msg)
        self.log.append((name, m))
        return m

    def _request(self, s: ProcStream, method: str, path: str, headers: dict[str, str], body: bytes) -> ClientResponse:
        hdrs = request_headers_of(method, path, self.authority, headers)
        if body:
            hdrs.append(("content-length", str(len(body))))
        m = self._step(s, "request_headers", msg_request_headers(hdrs, end_of_stream=not body, request_mode=self.request_mode, response_mode=self.response_mode))
        if m.immediate is not None:
            return immediate(m)
        hdrs = apply(hdrs, m)
        mode = self.request_mode
        if m.mode_override is not None and self.honour_mode_override and m.mode_override.request_body_mode:
            mode = BodyMode.Name(m.mode_override.request_body_mode)
        if body:
            if mode == "STREAMED":
                pieces = [body[i : i + self.chunk] for i in range(0, len(body), self.chunk)]
                for i, piece in enumerate(pieces):
                    m = self._step(s, "request_body", msg_request_body(piece, end_of_stream=i == len(pieces) - 1))
                    if m.immediate is not None:
                        return immediate(m)
                    assert m.clear_body or m.body is not None, "a streamed chunk must be held back"
                hdrs = apply(hdrs, m)
                body = m.body or b""
            else:
                m = self._step(s, "request_body", msg_request_body(body, end_of_stream=True))
                if m.immediate is not None:
                    return immediate(m)
                hdrs = apply(hdrs, m)
                if m.body is not None:
                    body = m.body
        headers_now = dict(hdrs)
        if self.ext_authz:
            denied = self._authz(headers_now, body)
            if isinstance(denied, ClientResponse):
                return denied
            headers_now = denied
        return self._upstream(s, headers_now, body)

    def _authz(self, headers: dict[str, str], body: bytes) -> dict[str, str] | ClientResponse:
        r = Authz(self.target, self.secret).check(headers.get(":method", "POST"), headers.get(":path", "/"), headers.get(":authority", ""), headers, body)
        if r.status.code != 0:
            d = r.denied_response
            return ClientResponse(d.status.code, {o.header.key: o.header.value for o in d.headers}, d.body.encode(), via="ext_authz")
        ok = r.ok_response
        out = {k: v for k, v in headers.items() if k not in ok.headers_to_remove}
        for o in ok.headers:
            out[o.header.key] = o.header.value
        return out

    def _upstream(self, s: ProcStream, headers: dict[str, str], body: bytes) -> ClientResponse:
        route_value = headers.get(self.route_header, "")
        base = self.clusters.get(route_value) or self.clusters.get(route_value.split(":")[0])
        assert base is not None, f"no route for {self.route_header}={route_value!r} (headers {headers})"
        fwd = {k: v for k, v in headers.items() if not k.startswith(":") and k not in ("host", "content-length")}
        upstream = {"url": base + headers[":path"], "headers": fwd, "body": body}
        with self.http.stream(headers[":method"], base + headers[":path"], headers=fwd, content=body) as r:
            resp_headers = [(k.lower(), v) for k, v in r.headers.items()]
            m = self._step(s, "response_headers", msg_response_headers(r.status_code, resp_headers))
            if m.immediate is not None:
                out = immediate(m)
                out.upstream_request = upstream
                return out
            resp_headers = apply(resp_headers, m)
            chunks = list(r.iter_raw()) if self.response_mode == "STREAMED" else [r.read()]
        out_body = b""
        if not chunks:
            chunks = [b""]
        for i, c in enumerate(chunks):
            m = self._step(s, "response_body", msg_response_body(c, end_of_stream=i == len(chunks) - 1))
            if m.immediate is not None:
                return immediate(m)
            if m.body is not None:
                out_body += m.body
            elif not m.clear_body:
                out_body += c
        hdrs = dict(resp_headers)
        return ClientResponse(r.status_code, hdrs, out_body, upstream_request=upstream)


def immediate(m: Mutation) -> ClientResponse:
    return ClientResponse(m.immediate_status, m.immediate_headers, m.immediate.body, via="immediate")


# ---------------------------------------------------------------------------------------------
# ext_authz
# ---------------------------------------------------------------------------------------------


class Authz:
    def __init__(self, target: str, secret: str | None = None) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = external_auth_pb2_grpc.AuthorizationStub(self.channel)
        self.metadata = [(SECRET_HEADER, secret)] if secret else None

    def check(
        self, method: str, path: str, host: str, headers: dict[str, str], body: bytes | None = None, raw: bool = True
    ) -> external_auth_pb2.CheckResponse:
        """A CheckRequest as Envoy builds it: lower-case header map including pseudo-headers,
        host, method, path; the body as `raw_body` (pack_as_bytes) or `body`."""
        all_headers = {":method": method, ":path": path, ":authority": host, **{k.lower(): v for k, v in headers.items() if not k.startswith(":")}}
        http = attribute_context_pb2.AttributeContext.HttpRequest(method=method, path=path, host=host, headers=all_headers, protocol="HTTP/1.1")
        if body:
            if raw:
                http.raw_body = body
            else:
                http.body = body.decode()
            http.size = len(body)
        req = external_auth_pb2.CheckRequest(
            attributes=attribute_context_pb2.AttributeContext(request=attribute_context_pb2.AttributeContext.Request(http=http))
        )
        return self.stub.Check(req, metadata=self.metadata, timeout=30)


def ok_headers(r: external_auth_pb2.CheckResponse) -> dict[str, str]:
    return {o.header.key: o.header.value for o in r.ok_response.headers}


def denied(r: external_auth_pb2.CheckResponse) -> tuple[int, dict[str, str], Any]:
    d = r.denied_response
    return d.status.code, {o.header.key: o.header.value for o in d.headers}, json.loads(d.body) if d.body else None
