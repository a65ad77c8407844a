"""A model from load_model works across event loops without leaking sockets.

langchain_openai shares one cached async HTTP client per base URL; its pooled
connections belong to the loop that opened them. chainkit gives each model a
client with one pool per loop, closed when that loop shuts down.
"""

from __future__ import annotations

import asyncio
import gc
import warnings

from chainkit.models import load_model


def test_one_model_serves_several_asyncio_runs_and_closes_each_pool() -> None:
    model = load_model("local", temperature=0, max_tokens=8)

    async def ask() -> str:
        # several concurrent requests so the pool holds several connections
        replies = await asyncio.gather(
            *(model.ainvoke(f"Tell me a fact about number {i}") for i in range(4))
        )
        return str(replies[0].content)

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        first = asyncio.run(ask())
        second = asyncio.run(ask())  # a stale pool would raise "Event loop is closed"
        third = asyncio.run(ask())
        gc.collect()  # an unclosed transport would warn here
    assert first == second == third
    assert first


def test_streaming_across_loops() -> None:
    model = load_model("local", temperature=0)

    async def stream() -> str:
        return "".join(
            [str(chunk.content) async for chunk in model.astream("Write a haiku about tea.")]
        )

    assert asyncio.run(stream()) == asyncio.run(stream())
