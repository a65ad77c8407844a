"""The service: time to first chunk through it vs in process, and concurrent SSE streams.

Three processes, as in production: the local model (``python -m
chainkit.models.local``), the service (``chainkit serve --model
openai:chainkit-local`` pointed at it) and this script, the client.

1. **TTFT**: the ``haiku`` chain streamed in this process (``chain.astream``,
   time to the first non-empty chunk) against the same chain through the
   service (``POST /chains/haiku/stream``, time to the first non-empty ``data``
   event), alternating, one call at a time. Reports medians, p90, the ratio and the
   milliseconds the service adds.
2. **Concurrent streams**: N SSE streams opened at once (N = 50, 100, 200,
   400, ...), each a different topic; a stream counts as complete when its
   closing ``metadata`` event (usage, timings) counts as many chunks as arrived.
   Reports, per N, how many completed, the wall time, TTFT and stream-duration percentiles, and the
   service process's CPU use. The largest N with every stream complete is what
   one service process sustains (on this machine, sharing its cores with the
   model and the client).

    .venv/bin/python benchmarks/server.py [--calls 40] [--steps 50,100,200,400]
        [--ttft 0] [--token-delay 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import psutil

CHAIN = "haiku"


def percentile(values: list[float], q: float) -> float:
    data = sorted(values)
    if not data:
        return float("nan")
    rank = (len(data) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


# ---------------------------------------------------------------- processes


def start_model(ttft: float, token_delay: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(  # noqa: S603 - our own module
        [
            sys.executable,
            "-m",
            "chainkit.models.local",
            "--port",
            "0",
            "--ttft",
            str(ttft),
            "--token-delay",
            str(token_delay),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"OPENAI_BASE_URL=(\S+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"the local model did not start: {line!r}")
    return proc, match.group(1)


def start_service(base_url: str, max_streams: int) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ, OPENAI_BASE_URL=base_url, OPENAI_API_KEY="chainkit-local")
    env.pop("CHAINKIT_API_TOKEN", None)
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [
            sys.executable,
            "-c",
            "from chainkit.cli import console_main; console_main()",
            "-q",  # no access log: measure the service, not its logging
            "serve",
            "--port",
            "0",
            "--model",
            "openai:chainkit-local",
            "--max-streams",
            str(max_streams),
        ],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    url = ""
    for line in proc.stderr:
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            url = found.group(1)
            break
    if not url:
        proc.kill()
        raise SystemExit("the service did not start")
    # keep draining stderr so the pipe never fills
    threading.Thread(target=lambda: [None for _ in proc.stderr or ()], daemon=True).start()
    return proc, url


# ---------------------------------------------------------------- 1. ttft


async def ttft_in_process(chain: Any, topic: str) -> float:
    started = time.perf_counter()
    first = None
    async for chunk in chain.astream({"topic": topic}):
        if first is None and chunk:
            first = time.perf_counter() - started
    assert first is not None
    return first


async def ttft_service(client: httpx.AsyncClient, topic: str) -> float:
    started = time.perf_counter()
    first = None
    body = {"input": {"topic": topic}}
    async with client.stream("POST", f"/chains/{CHAIN}/stream", json=body) as response:
        assert response.status_code == 200
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif first is None and event == "data" and line != 'data: ""':  # first text
                first = time.perf_counter() - started
    assert first is not None
    return first


@dataclass
class TtftRun:
    """Sequential calls on both paths: time to first chunk, and CPU per call."""

    ttft: dict[str, list[float]] = field(default_factory=lambda: {"in process": [], "service": []})
    cpu: dict[str, float] = field(default_factory=lambda: {"in process": 0.0, "service": 0.0})
    """CPU seconds spent per path: this process for in-process calls, the service's for
    calls through it (the client's own HTTP work is not counted)."""


async def measure_ttft(url: str, base_url: str, calls: int, service_pid: int) -> TtftRun:
    import openai

    from chainkit.chains import get_chain
    from chainkit.models import load_model

    http = openai.DefaultAsyncHttpxClient()
    model = load_model(
        "openai:chainkit-local", base_url=base_url, api_key="chainkit-local", http_async_client=http
    )
    chain = get_chain(CHAIN, model=model)
    run = TtftRun()
    service = psutil.Process(service_pid)

    async def local(topic: str) -> None:
        cpu = time.process_time()
        run.ttft["in process"].append(await ttft_in_process(chain, topic))
        run.cpu["in process"] += time.process_time() - cpu

    async def served(client: httpx.AsyncClient, topic: str) -> None:
        cpu = sum(service.cpu_times()[:2])
        run.ttft["service"].append(await ttft_service(client, topic))
        await asyncio.sleep(0.02)  # let the service finish the response's bookkeeping
        run.cpu["service"] += sum(service.cpu_times()[:2]) - cpu

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for i in range(3):  # warm both paths (connections, first-call imports)
            await ttft_in_process(chain, f"warm {i}")
            await ttft_service(client, f"warm {i}")
        for i in range(calls):
            topic = f"ttft topic {i}"
            if i % 2:
                await served(client, topic)
                await local(topic)
            else:
                await local(topic)
                await served(client, topic)
    await http.aclose()
    return run


# ---------------------------------------------------------------- 2. concurrency


@dataclass
class StreamResult:
    ok: bool
    ttft: float | None = None
    duration: float = 0.0
    chunks: int = 0
    error: str = ""


@dataclass
class Step:
    n: int
    wall: float = 0.0
    results: list[StreamResult] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds per wall second of each process (1.0 = one core busy)."""

    @property
    def completed(self) -> int:
        return sum(r.ok for r in self.results)


async def one_stream(client: httpx.AsyncClient, topic: str, started: float) -> StreamResult:
    texts: list[str] = []
    end: dict[str, Any] | None = None
    ttft = None
    event = ""
    try:
        body = {"input": {"topic": topic}}
        async with client.stream("POST", f"/chains/{CHAIN}/stream", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                return StreamResult(False, error=f"HTTP {response.status_code}")
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event != "end":
                    data = orjson.loads(line[5:])
                    if event == "data":
                        if ttft is None and data:
                            ttft = time.perf_counter() - started
                        texts.append(data)
                    elif event == "metadata":
                        end = data  # the run's ids first, then usage and timings
                    else:
                        return StreamResult(False, error=f"{event}: {data.get('code')}")
    except httpx.HTTPError as exc:
        return StreamResult(False, error=type(exc).__name__)
    duration = time.perf_counter() - started
    if end is None or "timings" not in end:
        return StreamResult(False, ttft, duration, len(texts), "no closing metadata event")
    if end["timings"]["chunks"] != len(texts):
        return StreamResult(False, ttft, duration, len(texts), "chunks lost on the way")
    return StreamResult(True, ttft, duration, len(texts))


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    return {name: sum(psutil.Process(pid).cpu_times()[:2]) for name, pid in pids.items()}


async def run_step(url: str, n: int, pids: dict[str, int]) -> Step:
    step = Step(n)
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    timeout = httpx.Timeout(120, connect=60, pool=120)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        before = cpu_seconds(pids)
        started = time.perf_counter()
        step.results = await asyncio.gather(
            *(one_stream(client, f"stream {n}-{i}", started) for i in range(n))
        )
        step.wall = time.perf_counter() - started
        after = cpu_seconds(pids)
        step.cpu = {name: (after[name] - before[name]) / step.wall for name in pids}
    return step


def report_step(step: Step) -> str:
    ttfts = [r.ttft * 1000 for r in step.results if r.ttft is not None]
    durations = [r.duration for r in step.results if r.ok]
    chunks = sum(r.chunks for r in step.results)
    errors: dict[str, int] = {}
    for r in step.results:
        if not r.ok:
            errors[r.error] = errors.get(r.error, 0) + 1
    return (
        f"| {step.n} | {step.completed}/{step.n} | {step.wall:.2f} s "
        f"| {percentile(ttfts, 50):.0f} / {percentile(ttfts, 95):.0f} ms "
        f"| {percentile(durations, 50):.2f} / {percentile(durations, 95):.2f} s "
        f"| {chunks / step.wall:.0f} "
        f"| {step.cpu['service'] * step.wall / step.n * 1000:.0f} ms "
        f"| {' / '.join(f'{step.cpu[k] * 100:.0f}%' for k in ('service', 'model', 'client'))} "
        f"| {', '.join(f'{k}: {v}' for k, v in errors.items()) or '-'} |"
    )


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40, help="TTFT calls per path")
    parser.add_argument("--steps", default="50,100,200,400", help="concurrent streams per step")
    parser.add_argument("--ttft", type=float, default=0.0, help="the model's time to first token")
    parser.add_argument("--token-delay", type=float, default=0.02, help="seconds between tokens")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",") if s]

    model_proc, base_url = start_model(args.ttft, args.token_delay)
    service_proc, url = start_service(base_url, max_streams=max(steps) + 100)
    try:
        print(
            f"# local model: ttft {args.ttft * 1000:.0f} ms, a token every "
            f"{args.token_delay * 1000:.0f} ms; {os.cpu_count()} cores; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        run = asyncio.run(measure_ttft(url, base_url, args.calls, service_proc.pid))
        local, served = run.ttft["in process"], run.ttft["service"]
        print(f"\n## TTFT, {args.calls} calls each, alternating, one at a time\n")
        print("| path | min | median | p90 | CPU per call |\n| --- | --- | --- | --- | --- |")
        for name, values in run.ttft.items():
            print(
                f"| {name} | {min(values) * 1000:.1f} ms "
                f"| {statistics.median(values) * 1000:.1f} ms "
                f"| {percentile(values, 90) * 1000:.1f} ms "
                f"| {run.cpu[name] / args.calls * 1000:.1f} ms |"
            )
        for label, pick in (("min", min), ("median", statistics.median)):
            ratio = pick(served) / pick(local)
            added = (pick(served) - pick(local)) * 1000
            print(f"service / in process at the {label}: {ratio:.2f}x, {added:+.1f} ms")
        cpu_ratio = run.cpu["service"] / run.cpu["in process"]
        print(f"CPU per call, service process / in process: {cpu_ratio:.2f}x")

        print("\n## Concurrent SSE streams (one service process)\n")
        print(
            "| streams | complete | wall | TTFT p50 / p95 | stream p50 / p95 | chunks/s "
            "| service CPU per stream | CPU service / model / client | errors |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        )
        sustained = 0
        for n in steps:
            pids = {"service": service_proc.pid, "model": model_proc.pid, "client": os.getpid()}
            step = asyncio.run(run_step(url, n, pids))
            print(report_step(step), flush=True)
            if step.completed == n:
                sustained = n
            else:
                break
        print(f"\nsustained with every stream complete: {sustained} concurrent streams")
    finally:
        for proc in (service_proc, model_proc):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
