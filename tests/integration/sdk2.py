"""The official Python MCP SDK 2.x client, in process (pytest runs in venv-mcp2).

`run(fn)` runs `async fn()` under anyio with a deadline. `Callbacks` answers the server-initiated
requests a backend sends through the gateway, and records what it saw.
"""

from __future__ import annotations

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
