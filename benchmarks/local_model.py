"""How much CPU the local model server spends per request and per streamed token.

Starts the server in a subprocess (``python -m chainkit.models.local --port 0``),
drives it with one shared ``openai.AsyncOpenAI`` client at concurrency 64, and
reads the server's CPU time from /proc (psutil) around each phase:

1. N non-streamed chat requests (varied prompts);
2. streamed chat requests totalling at least 100,000 completion tokens.

Targets (issue 2): <= 0.4 s server CPU per 1,000 requests and <= 1.5 s per
100,000 streamed tokens. For scale, the same requests are also sent to a bare
httptools server that answers fixed bytes (the floor any Python HTTP server
pays on this machine at this moment: on a busy shared machine every figure
rises, the floor with them). Run::

    .venv/bin/python benchmarks/local_model.py [--requests 3000] [--tokens 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass

import openai
import psutil

CONCURRENCY = 64
TARGET_PER_1K_REQUESTS = 0.4
TARGET_PER_100K_TOKENS = 1.5


@dataclass
class Phase:
    name: str
    count: int
    unit: str
    server_cpu: float
    client_cpu: float
    wall: float


FLOOR_SERVER = r"""
import asyncio, socket, sys, httptools, uvloop
body = (b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":'
        b'[{"index":0,"message":{"role":"assistant","content":"Here is a fact."},'
        b'"logprobs":null,"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":9,"completion_tokens":5,"total_tokens":14}}')
head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
response = head % len(body) + body
class Protocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
    def data_received(self, data):
        self.parser.feed_data(data)
    def on_message_complete(self):
        self.transport.write(response)
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(4096)
print(f"OPENAI_BASE_URL=http://127.0.0.1:{sock.getsockname()[1]}/v1", file=sys.stderr, flush=True)
async def main():
    await asyncio.get_running_loop().create_server(Protocol, sock=sock)
    await asyncio.Event().wait()
uvloop.run(main())
"""


def start_server(*, floor: bool = False) -> tuple[subprocess.Popen[str], str]:
    args = ["-c", FLOOR_SERVER] if floor else ["-m", "chainkit.models.local", "--port", "0"]
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and code
        [sys.executable, *args],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"OPENAI_BASE_URL=(\S+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, match.group(1)


def cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def run_pool(n: int, work: object) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker() -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await work(i)  # type: ignore[operator]

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def measure(name: str, unit: str, server: psutil.Process, coro_factory: object) -> Phase:
    s0, c0, w0 = cpu(server), time.process_time(), time.perf_counter()
    count = await coro_factory()  # type: ignore[operator]
    s1, c1, w1 = cpu(server), time.process_time(), time.perf_counter()
    return Phase(name, count, unit, s1 - s0, c1 - c0, w1 - w0)


async def floor(n_requests: int) -> Phase:
    """The same non-streamed load on a bare httptools server answering fixed bytes."""
    proc, base_url = start_server(floor=True)
    server = psutil.Process(proc.pid)
    try:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)

        async def one(i: int) -> None:
            await client.chat.completions.create(
                model="chainkit-local",
                messages=[{"role": "user", "content": f"Tell me a fact about the number {i}"}],
            )

        async def requests() -> int:
            await run_pool(n_requests, one)
            return n_requests

        await run_pool(300, one)
        phase = await measure("floor", "requests", server, requests)
        await client.close()
        return phase
    finally:
        proc.terminate()
        proc.wait(10)


async def main(n_requests: int, n_tokens: int) -> list[Phase]:
    proc, base_url = start_server()
    server = psutil.Process(proc.pid)
    try:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)

        async def one(i: int) -> int:
            r = await client.chat.completions.create(
                model="chainkit-local",
                messages=[{"role": "user", "content": f"Tell me a fact about the number {i}"}],
                temperature=0,
            )
            assert r.usage is not None
            return r.usage.completion_tokens

        async def warmup() -> int:
            await run_pool(300, one)
            return 300

        async def non_streamed() -> int:
            await run_pool(n_requests, one)
            return n_requests

        streamed_tokens = 0

        async def one_stream(i: int) -> None:
            # The SDK's raw streaming response: its pydantic parsing of every chunk would
            # cost the client ~50x the server's CPU and only slow the run down.
            nonlocal streamed_tokens
            async with client.chat.completions.with_streaming_response.create(
                model="chainkit-local",
                messages=[{"role": "user", "content": f"Write a story about lighthouse {i}"}],
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            ) as response:
                tail = b""
                async for data in response.iter_bytes():
                    tail = (tail + data)[-400:]
            usage = re.search(rb'"completion_tokens":(\d+)', tail)
            assert usage is not None, tail
            streamed_tokens += int(usage.group(1))

        async def streamed() -> int:
            # a story is ~190 tokens: size the batch from one probe, then top up
            batch = max(CONCURRENCY, n_tokens // 150)
            await run_pool(batch, one_stream)
            while streamed_tokens < n_tokens:
                await run_pool(CONCURRENCY, one_stream)
            return streamed_tokens

        await warmup()
        phases = [
            await measure("non-streamed requests", "requests", server, non_streamed),
            await measure("streamed tokens", "tokens", server, streamed),
        ]
        await client.close()
        return phases
    finally:
        proc.terminate()
        proc.wait(10)


def report(phases: list[Phase]) -> None:
    req, tok, base = phases
    rows = [
        (
            "server CPU s / 1,000 requests",
            req.server_cpu / req.count * 1000,
            req.client_cpu / req.count * 1000,
            TARGET_PER_1K_REQUESTS,
        ),
        (
            "server CPU s / 100,000 streamed tokens",
            tok.server_cpu / tok.count * 100_000,
            tok.client_cpu / tok.count * 100_000,
            TARGET_PER_100K_TOKENS,
        ),
        (
            "floor: bare httptools, per 1,000 requests",
            base.server_cpu / base.count * 1000,
            base.client_cpu / base.count * 1000,
            TARGET_PER_1K_REQUESTS,
        ),
    ]
    print(f"\nlocal model benchmark: concurrency {CONCURRENCY}, {os.cpu_count()} CPUs")
    print(f"  {req.count} non-streamed requests in {req.wall:.1f} s wall")
    print(f"  {tok.count} streamed tokens in {tok.wall:.1f} s wall\n")
    head = ("measure", "server", "client", "target", "server/target")
    print(f"| {head[0]:40} | {head[1]:>8} | {head[2]:>8} | {head[3]:>7} | {head[4]:>13} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 10}|{'-' * 9}|{'-' * 15}|")
    for name, server, client, target in rows:
        ratio = server / target
        print(f"| {name:40} | {server:8.3f} | {client:8.3f} | {target:7.2f} | {ratio:13.2f} |")
    ok = all(server <= target for _, server, _, target in rows[:2])
    print(f"\n{'within' if ok else 'OVER'} target")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--tokens", type=int, default=100_000)
    args = parser.parse_args()
    measured = asyncio.run(main(args.requests, args.tokens))
    measured.append(asyncio.run(floor(args.requests)))
    report(measured)
