"""An async HTTP client that is safe to share across event loops.

``langchain_openai`` caches one ``httpx.AsyncClient`` per (base URL, timeout)
for the whole process. Its pooled connections belong to the event loop that
opened them, so the second ``asyncio.run(...)`` of a program (or the next test,
or a CLI command run twice in one process) reuses sockets of a closed loop:
"RuntimeError: Event loop is closed", and "unclosed transport" warnings when
the dead connections are collected.

:class:`LoopSafeAsyncClient` keeps one connection pool per running event loop
and closes a loop's pool when that loop shuts down: ``asyncio.run`` (and
pytest-asyncio, and ``asyncio.Runner``) finalise the loop's async generators
before closing it, so each pool is tied to a tiny async generator whose
``finally`` closes it. A loop that never closes (Jupyter) keeps its pool, as
it should: connections are reused for the life of the kernel.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2 as httpx  # openai>=3 is built on httpx2, an API-identical httpx
import openai

__all__ = ["LoopSafeAsyncClient"]


async def _close_at_loop_shutdown(transport: httpx.AsyncBaseTransport) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await transport.aclose()


class _PerLoopTransport(httpx.AsyncBaseTransport):
    """One inner transport (one connection pool) per running event loop."""

    def __init__(self, factory: Callable[[], httpx.AsyncBaseTransport]) -> None:
        self._factory = factory
        self._pools: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[httpx.AsyncBaseTransport, AsyncIterator[None]]
        ] = weakref.WeakKeyDictionary()

    async def _pool(self) -> httpx.AsyncBaseTransport:
        loop = asyncio.get_running_loop()
        entry = self._pools.get(loop)
        if entry is None:
            transport = self._factory()
            guard = _close_at_loop_shutdown(transport)
            await guard.__anext__()  # started: the loop now finalises it at shutdown
            entry = self._pools[loop] = (transport, guard)
        return entry[0]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = await self._pool()
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        entry = self._pools.pop(loop, None)
        if entry is not None:
            await entry[0].aclose()


class LoopSafeAsyncClient(openai.DefaultAsyncHttpxClient):
    """openai's default async client (same limits and timeouts), one pool per event loop."""

    def __init__(self, **kwargs: Any) -> None:
        limits = kwargs.pop("limits", openai.DEFAULT_CONNECTION_LIMITS)
        super().__init__(
            transport=_PerLoopTransport(lambda: httpx.AsyncHTTPTransport(limits=limits)),
            **kwargs,
        )
