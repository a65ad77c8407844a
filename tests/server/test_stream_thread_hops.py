"""A streamed chain through the service calls no thread per chunk.

LangChain calls a sync callback handler through the thread pool for every event
of an async run unless the handler says ``run_inline``; the service's usage
handler does, so a stream's chunks stay on the event loop. Counted with a
thread pool that records what it is given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx

from chainkit.models import HttpPool, load_model
from chainkit.models.local import LocalModelServer
from chainkit.server import create_app


class _CountingPool(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.calls: list[Any] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.calls.append(fn)
        return super().submit(fn, *args, **kwargs)


async def test_a_streamed_chain_hops_to_no_thread_per_chunk(
    model_server: LocalModelServer,
) -> None:
    pool = HttpPool(max_connections=4)
    model = load_model(
        "openai:chainkit-local", base_url=model_server.base_url, api_key="x", http_pool=pool
    )
    app = create_app(model=model)
    threads = _CountingPool()
    asyncio.get_running_loop().set_default_executor(threads)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        reply = await client.post("/chains/haiku/stream", json={"input": {"topic": "tea"}})
    await pool.aclose()
    assert reply.status_code == 200
    chunks = reply.text.count("event: data")
    assert chunks >= 5
    assert len(threads.calls) < chunks, threads.calls  # was ~28 hops for ~16 chunks
