"""Near the wire: client CPU of a model call and of a streamed chunk, lean path vs stock.

The local model runs in a subprocess (``python -m chainkit.models.local``), so
this process's CPU time (``time.process_time``) is the client's alone. CPU time,
not wall time: the machine is shared, and other processes only ever add to a
wall clock. Each figure is the minimum over ``--rounds`` interleaved rounds.

Non-streamed calls (``ainvoke``, ``--calls`` per round, ``--concurrency`` at once):

- ``stock chain``: ``ChatPromptTemplate | ChatOpenAI | StrOutputParser()`` with
  langchain-openai's own client (the openai SDK on httpx2);
- ``chainkit chain``: ``make_chain(template, model=load_model(...))``: the same
  ``ChatOpenAI`` class on the lean aiohttp+orjson path, chainkit's inline parser;
- ``bare SDK call``: ``AsyncOpenAI().chat.completions.create(...)``, nothing else.

Streamed chunks (``astream``, ``--streams`` concurrent, ``max_tokens=--tokens``):
the two chains, and the bare SDK stream, per chunk.

Run::

    .venv/bin/python benchmarks/model_client.py [--rounds 7] [--calls 200] [--streams 20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import openai
from langchain_openai import ChatOpenAI

from chainkit.chains import make_chain, stock_chain
from chainkit.models import load_model

sys.path.insert(0, str(Path(__file__).parent))
from capture_overhead import start_server

TEMPLATE = "Tell me a fact about {topic}."
STORY = "Write a long story about {topic}."

Run = Callable[[], Coroutine[Any, Any, int]]


def best_cpu(
    loop: asyncio.AbstractEventLoop, runs: dict[str, Run], rounds: int
) -> dict[str, float]:
    """Minimum client CPU microseconds per unit (call or chunk) of each run."""
    for run in runs.values():  # warm-up: imports, connections, caches
        loop.run_until_complete(run())
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.process_time()
            units = loop.run_until_complete(run())
            best[name] = min(best[name], (time.process_time() - start) / units * 1e6)
    return best


def calls(chain: Any, n: int, concurrency: int) -> Run:
    async def run() -> int:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await chain.ainvoke({"topic": f"number {i % 50}"})

        await asyncio.gather(*(one(i) for i in range(n)))
        return n

    return run


def sdk_calls(client: openai.AsyncOpenAI, n: int, concurrency: int, tokens: int) -> Run:
    async def run() -> int:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await client.chat.completions.create(
                    model="chainkit-local",
                    messages=[
                        {"role": "user", "content": TEMPLATE.format(topic=f"number {i % 50}")}
                    ],
                    max_tokens=tokens,
                    temperature=0,
                )

        await asyncio.gather(*(one(i) for i in range(n)))
        return n

    return run


def streams(chain: Any, n: int) -> Run:
    async def run() -> int:
        async def one(i: int) -> int:
            return sum([1 async for _ in chain.astream({"topic": f"a lighthouse {i}"})])

        return sum(await asyncio.gather(*(one(i) for i in range(n)))) or 1

    return run


def sdk_streams(client: openai.AsyncOpenAI, n: int, tokens: int) -> Run:
    async def run() -> int:
        async def one(i: int) -> int:
            stream = await client.chat.completions.create(
                model="chainkit-local",
                messages=[{"role": "user", "content": STORY.format(topic=f"a lighthouse {i}")}],
                max_tokens=tokens,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
            return sum([1 async for _ in stream])

        return sum(await asyncio.gather(*(one(i) for i in range(n)))) or 1

    return run


def table(title: str, figures: dict[str, float], unit: str, base: str) -> None:
    print(f"\n{title}")
    print(f"| run | client CPU {unit} | vs {base} |")
    print("| --- | --- | --- |")
    for name, value in figures.items():
        print(f"| {name} | {value:.0f} us | {value / figures[base]:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=200, help="max_tokens of a stream")
    args = parser.parse_args()

    proc, base_url = start_server()
    loop = asyncio.new_event_loop()
    try:
        settings: dict[str, Any] = {"temperature": 0, "max_tokens": 24, "max_retries": 0}
        stock_model = ChatOpenAI(
            model="chainkit-local", base_url=base_url, api_key="x", stream_usage=True, **settings
        )
        lean_model = load_model("openai:chainkit-local", base_url=base_url, api_key="x", **settings)
        sdk = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)
        one_call = best_cpu(
            loop,
            {
                "stock chain": calls(
                    stock_chain(TEMPLATE, model=stock_model), args.calls, args.concurrency
                ),
                "chainkit chain": calls(
                    make_chain(TEMPLATE, model=lean_model), args.calls, args.concurrency
                ),
                "bare SDK call": sdk_calls(sdk, args.calls, args.concurrency, 24),
            },
            args.rounds,
        )
        table("Non-streamed call (ainvoke)", one_call, "per call", "stock chain")
        ratio = one_call["chainkit chain"] / one_call["bare SDK call"]
        print(f"chainkit chain / bare SDK call: {ratio:.2f}x")

        stream_settings = {**settings, "max_tokens": args.tokens}
        stock_stream = ChatOpenAI(
            model="chainkit-local",
            base_url=base_url,
            api_key="x",
            stream_usage=True,
            **stream_settings,
        )
        lean_stream = load_model(
            "openai:chainkit-local", base_url=base_url, api_key="x", **stream_settings
        )
        per_chunk = best_cpu(
            loop,
            {
                "stock chain": streams(stock_chain(STORY, model=stock_stream), args.streams),
                "chainkit chain": streams(make_chain(STORY, model=lean_stream), args.streams),
                "bare SDK stream": sdk_streams(sdk, args.streams, args.tokens),
            },
            args.rounds,
        )
        table("Streamed chunk (astream)", per_chunk, "per chunk", "stock chain")
        loop.run_until_complete(sdk.close())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
