"""The official Python MCP SDK 2.x client, in process (pytest runs in venv-mcp2).

`run(fn)` runs `async fn()` under anyio with a deadline. `Callbacks` answers the server-initiated
requests a backend sends through the gateway, and records what it saw.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import mcp.types as types
from mcp.client import Client


def run(fn: Callable[[], Awaitable[Any]], timeout: float = 40.0) -> Any:
    async def wrapper() -> Any:
        with anyio.fail_after(timeout):
            return await fn()

    return anyio.run(wrapper)


class Callbacks:
    """Client-side handlers for sampling, elicitation and roots, tagged with `tag` so that two
    clients can tell whose answer came back."""

    def __init__(self, tag: str = "client") -> None:
        self.tag = tag
        self.sampling: list[types.CreateMessageRequestParams] = []
        self.elicitations: list[Any] = []
        self.roots_calls = 0
        self.notifications: list[Any] = []
        self.progress: list[tuple[float, float | None, str | None]] = []

    async def on_sampling(self, context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        self.sampling.append(params)
        first = params.messages[0].content
        prompt = getattr(first, "text", "")
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f"{self.tag}-sampled-{prompt}"),
            model="test-model",
        )

    async def on_elicitation(self, context: Any, params: Any) -> types.ElicitResult:
        self.elicitations.append(params)
        return types.ElicitResult(action="accept", content={"answer": f"{self.tag}-answer"})

    async def on_roots(self, context: Any) -> types.ListRootsResult:
        self.roots_calls += 1
        return types.ListRootsResult(roots=[types.Root(uri=f"file:///{self.tag}/root", name=self.tag)])

    async def on_message(self, message: Any) -> None:
        self.notifications.append(message)

    async def on_progress(self, progress: float, total: float | None, message: str | None) -> None:
        self.progress.append((progress, total, message))

    def client(self, url: str, mode: str = "auto", **kwargs: Any) -> Client:
        kwargs.setdefault("cache", None)  # every list goes to the gateway (list_changed tests)
        return Client(
            url,
            mode=mode,
            sampling_callback=self.on_sampling,
            elicitation_callback=self.on_elicitation,
            list_roots_callback=self.on_roots,
            message_handler=self.on_message,
            **kwargs,
        )

    def notification_methods(self) -> list[str]:
        return [getattr(n, "method", type(n).__name__) for n in self.notifications]


def text_of(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


# ---------------------------------------------------------------------------------------------
# Wire recording (added for the era tests: what did the SDK client really send?)
# ---------------------------------------------------------------------------------------------


class Wire:
    """Records every HTTP exchange of one SDK 2.x client (via httpx2 event hooks): HTTP method,
    JSON-RPC method/id from the body, the MCP headers, and the response status and session id."""

    HEADERS = ("mcp-protocol-version", "mcp-method", "mcp-name", "mcp-session-id")

    def __init__(self) -> None:
        self.exchanges: list[dict[str, Any]] = []

    async def _on_request(self, request: Any) -> None:
        entry: dict[str, Any] = {"http_method": request.method, "request": request}
        entry["headers"] = {h: request.headers.get(h) for h in self.HEADERS if request.headers.get(h) is not None}
        try:
            body = json.loads(request.content) if request.content else None
        except (ValueError, RuntimeError):  # not JSON / a streaming body
            body = None
        entry["body"] = body
        if isinstance(body, dict):
            entry["rpc_method"] = body.get("method")
            entry["rpc_id"] = body.get("id")
            if "method" not in body:
                entry["rpc_kind"] = "response"
        self.exchanges.append(entry)

    async def _on_response(self, response: Any) -> None:
        for entry in reversed(self.exchanges):
            if entry.get("request") is response.request:
                entry["status"] = response.status_code
                entry["session_id"] = response.headers.get("mcp-session-id")
                entry["content_type"] = response.headers.get("content-type")
                break

    def http_client(self) -> Any:
        import httpx2

        return httpx2.AsyncClient(
            timeout=httpx2.Timeout(30.0, read=300.0),
            event_hooks={"request": [self._on_request], "response": [self._on_response]},
        )

    def transport(self, url: str) -> Any:
        """A Transport for `Client(...)`: streamable HTTP through the recording httpx2 client."""
        from contextlib import asynccontextmanager

        from mcp.client.streamable_http import streamable_http_client

        @asynccontextmanager
        async def connect():
            async with self.http_client() as http:
                async with streamable_http_client(url, http_client=http) as streams:
                    yield streams

        return connect()

    def posts(self) -> list[dict[str, Any]]:
        return [e for e in self.exchanges if e["http_method"] == "POST"]

    def rpc_methods(self) -> list[str]:
        """JSON-RPC methods of every POSTed request/notification, in order."""
        return [e["rpc_method"] for e in self.posts() if e.get("rpc_method")]

    def session_ids(self) -> list[str]:
        """Every Mcp-Session-Id the server handed out or the client sent."""
        seen = [e.get("session_id") for e in self.exchanges] + [
            e["headers"].get("mcp-session-id") for e in self.exchanges
        ]
        return [s for s in seen if s]


def recorded_client(callbacks: Callbacks, url: str, wire: Wire, mode: str = "auto", **kwargs: Any) -> Client:
    """Like `callbacks.client(url, mode)`, but every HTTP exchange lands in `wire`."""
    kwargs.setdefault("cache", None)
    return Client(
        wire.transport(url),
        mode=mode,
        sampling_callback=callbacks.on_sampling,
        elicitation_callback=callbacks.on_elicitation,
        list_roots_callback=callbacks.on_roots,
        message_handler=callbacks.on_message,
        **kwargs,
    )
