"""chainkit's inline parsers vs LangChain's stock parsers: client CPU per streamed chunk.

Two measures, each the minimum over ``--rounds`` (other processes on a shared
machine only ever add CPU time):

1. the parser alone: ``atransform`` over the same 2,000 message chunks, as a
   chain's async stream feeds it (``StrOutputParser`` vs ``InlineStrOutputParser``,
   ``JsonOutputParser`` vs ``InlineJsonOutputParser``);
2. the whole chain on the local model (served by a subprocess, so this process's
   CPU time is the client's alone): ``--streams`` concurrent ``astream`` calls
   of ``stock_chain`` (``prompt | ChatOpenAI | StrOutputParser()``), of
   ``make_chain`` (chainkit's), and of ``prompt | ChatOpenAI`` with no parser
   (the floor).

Run::

    .venv/bin/python benchmarks/chain_parsers.py [--streams 20] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.output_parsers import JsonOutputParser, StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable

from chainkit.chains import InlineJsonOutputParser, InlineStrOutputParser, make_chain, stock_chain

sys.path.insert(0, str(Path(__file__).parent))
from capture_overhead import start_server, story_model

TEMPLATE = "Write a short story about {topic}."
CHUNKS = 2_000


def cpu_per_chunk(
    loop: asyncio.AbstractEventLoop,
    runs: dict[str, Callable[[], Coroutine[Any, Any, int]]],
    rounds: int,
) -> dict[str, float]:
    """Minimum client CPU microseconds per chunk of each run over ``rounds``.

    One warm-up each, then the runs interleaved round by round, so that a change
    in the machine's load hits every run alike.
    """
    for run in runs.values():
        loop.run_until_complete(run())
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.process_time()
            chunks = loop.run_until_complete(run())
            best[name] = min(best[name], (time.process_time() - start) / chunks * 1e6)
    return best


def parser_alone(loop: asyncio.AbstractEventLoop, rounds: int) -> list[str]:
    text = [AIMessageChunk(content=f"word{i} ") for i in range(CHUNKS)]
    payload = json.dumps({"items": [f"item {i}" for i in range(60)]})
    pieces = [payload[i : i + 8] for i in range(0, len(payload), 8)]
    json_chunks = [AIMessageChunk(content=p) for p in pieces]

    def over(parser: Runnable[Any, Any], chunks: list[Any]) -> Callable[[], Any]:
        async def run() -> int:
            async def source() -> AsyncIterator[Any]:
                for chunk in chunks:
                    yield chunk

            return sum([1 async for _ in parser.atransform(source())]) or 1

        return run

    lines = []
    for label, stock, ours, chunks in (
        ("str ", StrOutputParser(), InlineStrOutputParser(), text),
        ("json", JsonOutputParser(), InlineJsonOutputParser(), json_chunks),
    ):
        cost = cpu_per_chunk(loop, {"a": over(stock, chunks), "b": over(ours, chunks)}, rounds)
        a, b = cost["a"], cost["b"]
        lines.append(
            f"{label} parser alone: stock {a:7.1f} us/chunk, inline {b:7.1f} ({b / a:.2f}x)"
        )
    return lines


def whole_chain(loop: asyncio.AbstractEventLoop, streams: int, rounds: int) -> list[str]:
    proc, base_url = start_server()
    try:
        model = story_model(base_url)
        chains: dict[str, Runnable[Any, Any]] = {
            "stock chain (StrOutputParser)": stock_chain(TEMPLATE, model=model),
            "chainkit chain (inline parser)": make_chain(TEMPLATE, model=model, name="story"),
            "prompt | model, no parser": ChatPromptTemplate.from_template(TEMPLATE) | model,
        }

        def over(chain: Runnable[Any, Any]) -> Callable[[], Any]:
            async def one(i: int) -> int:
                return sum([1 async for _ in chain.astream({"topic": f"topic {i}"})])

            async def run() -> int:
                return sum(await asyncio.gather(*(one(i) for i in range(streams))))

            return run

        cost = cpu_per_chunk(loop, {name: over(chain) for name, chain in chains.items()}, rounds)
    finally:
        proc.terminate()
        proc.wait(10)
    stock, ours, floor = cost.values()
    lines = [f"{name:32s} {value:7.1f} us/chunk" for name, value in cost.items()]
    lines.append(f"chainkit / stock: {ours / stock:.2f}x")
    lines.append(
        f"parser's share above the floor: stock {stock - floor:+.1f} us/chunk, "
        f"chainkit {ours - floor:+.1f} us/chunk"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    loop = asyncio.new_event_loop()
    try:
        print("\n".join(parser_alone(loop, args.rounds)))
        print(f"\nwhole chain, {args.streams} concurrent astream calls on the local model:")
        print("\n".join(whole_chain(loop, args.streams, args.rounds)))
    finally:
        loop.close()


if __name__ == "__main__":
    main()
