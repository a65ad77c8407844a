"""The one place that makes HTTP clients for OpenAI-compatible models.

Whoever needs to talk to an OpenAI-compatible server (what ``load_model`` and
``load_llm`` return, the runner's per-batch pool, the service, the CLI, Ray
workers, the provider batch backend) gets its clients from an :class:`HttpPool`:

- ``pool.session()``: an ``aiohttp.ClientSession`` for the running event loop
  (the lean Chat Completions path, see ``_lean``);
- ``pool.httpx_client``: an ``httpx2.AsyncClient`` for the openai SDK (what the
  lean path does not cover, and plain ``openai.AsyncOpenAI`` users), with one
  connection pool per event loop.

Both are sized to ``max_connections`` and bound to their event loop: pooled
connections belong to the loop that opened them, so the second
``asyncio.run(...)`` of a program (the next test, a CLI command run twice in
one process) gets fresh ones. A loop's clients are closed when that loop shuts
down (``asyncio.run``, pytest-asyncio and ``asyncio.Runner`` finalise the
loop's async generators before closing it; each pool is tied to a tiny async
generator whose ``finally`` closes it), or at once by ``await pool.aclose()``
(a batch, a service at shutdown). A loop that never closes (Jupyter) keeps its
clients for the life of the kernel, as it should.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable

import aiohttp
import httpx2
import openai

__all__ = ["DEFAULT_MAX_CONNECTIONS", "HttpPool", "default_pool"]

DEFAULT_MAX_CONNECTIONS = 1000  # the openai SDK's own default
_KEEPALIVE_SECONDS = 30.0
_CLOSE_TIMEOUT = 10.0


class _LoopClients:
    """What one pool opened on one event loop; closed together."""

    def __init__(self, guard: AsyncGenerator[None, None]) -> None:
        self.guard = guard
        self.session: aiohttp.ClientSession | None = None
        self.transport: httpx2.AsyncBaseTransport | None = None

    async def aclose(self) -> None:
        session, self.session = self.session, None
        transport, self.transport = self.transport, None
        if session is not None:
            await session.close()
        if transport is not None:
            await transport.aclose()


async def _close_at_loop_shutdown(clients: list[_LoopClients]) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        for entry in clients:
            await entry.aclose()


# What is open on each loop, held by the loop's life (not the pool's): a pool
# dropped without aclose() keeps its clients until the loop shuts down and closes
# them, instead of the garbage collector finding an open session ("Unclosed
# client session") in the same pass as the pool.
_OPEN: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set[_LoopClients]] = (
    weakref.WeakKeyDictionary()
)


def _start(guard: AsyncIterator[None]) -> None:
    """Run ``guard`` to its ``yield`` (nothing in it awaits, so one step does it)."""
    step = guard.__anext__().__await__()
    with contextlib.suppress(StopIteration):
        step.send(None)


class HttpPool:
    """HTTP clients for OpenAI-compatible servers: per event loop, sized, closed.

    ``max_connections`` bounds the open connections per loop (give a batch its
    ``max_concurrency``); the same number are kept alive between requests.
    """

    def __init__(self, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        if max_connections < 1:
            raise ValueError(f"HttpPool(max_connections={max_connections}) needs at least 1")
        self.max_connections = max_connections
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = (
            weakref.WeakKeyDictionary()
        )
        self._httpx_client: openai.DefaultAsyncHttpxClient | None = None

    def __repr__(self) -> str:
        return f"HttpPool(max_connections={self.max_connections})"

    def _clients(self) -> _LoopClients:
        loop = asyncio.get_running_loop()
        entry = self._loops.get(loop)
        if entry is None:
            holder: list[_LoopClients] = []
            guard = _close_at_loop_shutdown(holder)
            entry = _LoopClients(guard)
            holder.append(entry)
            _start(guard)  # from now on the loop finalises it at shutdown
            self._loops[loop] = entry
            _OPEN.setdefault(loop, set()).add(entry)
        return entry

    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session of the running event loop (made on first use)."""
        entry = self._clients()
        session = entry.session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections,
                limit_per_host=0,
                keepalive_timeout=_KEEPALIVE_SECONDS,
                ttl_dns_cache=300,
            )
            session = entry.session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                trust_env=False,
            )
        return session

    def _transport(self) -> httpx2.AsyncBaseTransport:
        entry = self._clients()
        if entry.transport is None:
            limits = httpx2.Limits(
                max_connections=self.max_connections,
                max_keepalive_connections=min(self.max_connections, 100),
                keepalive_expiry=_KEEPALIVE_SECONDS,
            )
            entry.transport = httpx2.AsyncHTTPTransport(limits=limits)
        return entry.transport

    @property
    def httpx_client(self) -> openai.DefaultAsyncHttpxClient:
        """An ``httpx2.AsyncClient`` for the openai SDK, one connection pool per loop.

        openai's defaults (timeouts, redirects); pass it as ``http_client=`` to
        ``openai.AsyncOpenAI`` or ``http_async_client=`` to langchain-openai.
        """
        if self._httpx_client is None:
            self._httpx_client = _SdkClient(self._transport)
        return self._httpx_client

    async def aclose(self) -> None:
        """Close the clients this pool opened, on this loop and on others still running.

        (A sync call runs the lean path on ``chainkit._bridge``'s loop thread: its
        clients are closed there.) Clients of a loop that is stopped but not
        closed stay open until that loop shuts down.
        """
        current = asyncio.get_running_loop()
        for loop, entry in list(self._loops.items()):
            if loop is current:
                await _close(loop, entry)
            elif loop.is_running():
                done = asyncio.run_coroutine_threadsafe(_close(loop, entry), loop)
                with contextlib.suppress(Exception):  # that loop stopped meanwhile
                    await asyncio.wait_for(asyncio.wrap_future(done), _CLOSE_TIMEOUT)
            else:
                continue
            self._loops.pop(loop, None)


async def _close(loop: asyncio.AbstractEventLoop, entry: _LoopClients) -> None:
    """Close ``entry`` on its own ``loop`` (the running one)."""
    _OPEN.get(loop, set()).discard(entry)
    await entry.aclose()
    await entry.guard.aclose()


class _PerLoopTransport(httpx2.AsyncBaseTransport):
    """Hands each request to the pool's transport of the running loop."""

    def __init__(self, transport: Callable[[], httpx2.AsyncBaseTransport]) -> None:
        self._transport = transport

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self._transport().handle_async_request(request)

    async def aclose(self) -> None:
        """The pool owns the per-loop transports; it closes them."""


class _SdkClient(openai.DefaultAsyncHttpxClient):
    """openai's default async client (same timeouts), on an :class:`HttpPool`'s connections."""

    def __init__(self, transport: Callable[[], httpx2.AsyncBaseTransport]) -> None:
        super().__init__(transport=_PerLoopTransport(transport))


_DEFAULT: list[HttpPool] = []


def default_pool() -> HttpPool:
    """The process-wide pool of models made without one (per loop, closed with the loop)."""
    if not _DEFAULT:
        _DEFAULT.append(HttpPool())
    return _DEFAULT[0]
