"""The runner against the local model: wall time vs the ideal bound and the usual baselines.

One benchmark process drives every variant; the local model runs in its own
process (``python -m chainkit.models.local``) so that its CPU does not compete
with the client being measured for the GIL. Each variant gets a fresh server
with the same seed, and every variant sends byte-identical requests, so each
input gets the *same* latency in every variant (the server draws it from a
seeded lognormal, median 300 ms, p99 2 s, keyed by the request body).

Variants, N inputs at concurrency C:

- ``runner``: ``run_batch(chain, inputs, max_concurrency=C)`` (sliding window);
- ``fixed batches + gather``: the second seed's loop, batches of C, each gathered;
- ``Semaphore + AsyncOpenAI``: ``asyncio.Semaphore(C)`` around raw SDK calls;
- ``chain.abatch``: ``chain.abatch(inputs, config={"max_concurrency": C})``;
- the runner's other strategies (``fixed-batches``, ``abatch``, ``gather``).

The ideal bound is ``max(sum of latencies / C, longest latency)``, with the
latencies measured by the server (request start to answer).

Memory: peak RSS of a child process that runs N inputs (a generator) through
``prompt | chat model | parser`` with a zero-latency fake chat model and short
outputs, into a JSONL result file; N = 10,000 and 100,000 show that memory is
flat in N.

Run::

    .venv/bin/python benchmarks/runner.py                 # timing and memory
    .venv/bin/python benchmarks/runner.py --skip-memory   # timing only
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LATENCY = "lognormal:median=0.3,p99=2.0"
PROMPT = "Tell me a fact about number {n}"
TARGET_IDEAL = 1.10
TARGET_SEMAPHORE = 1.05
TARGET_RSS_MB = 300.0


@dataclass
class Result:
    name: str
    wall: float
    ok: int
    ideal: float
    latency_sum: float
    latency_max: float
    cpu: float = 0.0  # client CPU seconds (this process)


def start_server(seed: int, latency: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "chainkit.models.local",
            "--port",
            "0",
            "--seed",
            str(seed),
            "--latency",
            latency,
            "--request-log",
        ],
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


def server_log(base_url: str) -> list[dict[str, Any]]:
    root = base_url.rsplit("/v1", 1)[0]
    with urllib.request.urlopen(f"{root}/stats?log=1", timeout=30) as response:  # noqa: S310
        data = json.loads(response.read())
    log: list[dict[str, Any]] = data["log"]
    return log


def make_chain(base_url: str) -> Any:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(
        base_url=base_url, api_key="bench", model="chainkit-local", temperature=0, max_tokens=16
    )
    return ChatPromptTemplate.from_template(PROMPT) | model | StrOutputParser()


def inputs(n: int) -> list[dict[str, int]]:
    return [{"n": i} for i in range(n)]


# ---------------------------------------------------------------- variants


async def v_runner(base_url: str, n: int, c: int, strategy: str = "sliding") -> int:
    from chainkit.runners import run_batch

    report = await run_batch(
        make_chain(base_url), inputs(n), max_concurrency=c, progress=False, strategy=strategy
    )
    return report.succeeded


async def v_fixed_batches(base_url: str, n: int, c: int) -> int:
    chain = make_chain(base_url)
    values = inputs(n)
    ok = 0
    for start in range(0, n, c):
        results = await asyncio.gather(
            *(chain.ainvoke(v) for v in values[start : start + c]), return_exceptions=True
        )
        ok += sum(not isinstance(r, BaseException) for r in results)
    return ok


async def v_semaphore(base_url: str, n: int, c: int) -> int:
    import openai
    from langchain_core.prompts import ChatPromptTemplate

    chain = make_chain(base_url)
    model = chain.steps[1]
    prompt = ChatPromptTemplate.from_template(PROMPT)
    # the very request body ChatOpenAI sends, so the server draws the same latency
    payloads = [model._get_request_payload(prompt.invoke(v)) for v in inputs(n)]
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    semaphore = asyncio.Semaphore(c)

    async def one(payload: dict[str, Any]) -> str:
        async with semaphore:
            response = await client.chat.completions.create(**payload)
            return response.choices[0].message.content or ""

    results = await asyncio.gather(*(one(p) for p in payloads), return_exceptions=True)
    await client.close()
    return sum(not isinstance(r, BaseException) for r in results)


async def v_abatch(base_url: str, n: int, c: int) -> int:
    chain = make_chain(base_url)
    results = await chain.abatch(inputs(n), config={"max_concurrency": c}, return_exceptions=True)
    return sum(not isinstance(r, BaseException) for r in results)


def measure(
    name: str,
    run: Callable[[str, int, int], Awaitable[int]],
    *,
    n: int,
    c: int,
    seed: int,
    latency: str,
) -> Result:
    proc, base_url = start_server(seed, latency)
    try:
        asyncio.run(_warm(base_url))
        gc.collect()
        start, cpu_start = time.perf_counter(), time.process_time()
        ok = asyncio.run(run(base_url, n, c))  # type: ignore[arg-type]
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        log = [e for e in server_log(base_url) if e["endpoint"].endswith("/chat/completions")]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    latencies = [e["t_end"] - e["t_start"] for e in log if "bench-warmup" not in e["prompt"]]
    total, longest = sum(latencies), max(latencies)
    return Result(name, wall, ok, max(total / c, longest), total, longest, cpu)


async def _warm(base_url: str) -> None:
    """One request, so that server start-up costs are not measured."""
    import openai

    async with openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0) as client:
        await client.chat.completions.create(
            model="chainkit-local",
            messages=[{"role": "user", "content": "bench-warmup"}],
            max_tokens=1,
            extra_headers={"X-Chainkit-Faults": "latency=fixed:0"},
        )


# ---------------------------------------------------------------- memory


def memory_child(n: int, base_url: str | None) -> None:
    """Run ``n`` inputs through the runner with short outputs; print RSS figures.

    The model is a zero-latency fake chat model, or the local model at ``base_url``
    (``max_tokens=4``) when one is given.
    """
    from langchain_core.language_models import FakeListChatModel
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_openai import ChatOpenAI

    from chainkit.runners import run_batch_sync

    model: Any = (
        ChatOpenAI(base_url=base_url, api_key="bench", model="chainkit-local", max_tokens=4)
        if base_url
        else FakeListChatModel(responses=["A short fact."])
    )
    chain = ChatPromptTemplate.from_template(PROMPT) | model | StrOutputParser()
    gc.collect()
    base = _rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.jsonl"
        start = time.perf_counter()
        report = run_batch_sync(
            chain, ({"n": i} for i in range(n)), max_concurrency=50, output=out, progress=False
        )
        wall = time.perf_counter() - start
        size = out.stat().st_size
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(
        json.dumps(
            {
                "n": n,
                "ok": report.succeeded,
                "base_mb": round(base, 1),
                "peak_mb": round(peak, 1),
                "wall": round(wall, 1),
                "file_mb": round(size / 2**20, 1),
            }
        )
    )


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def measure_memory(n: int, model: str) -> dict[str, Any]:
    proc, base_url = start_server(0, "fixed:0") if model == "local" else (None, "")
    try:
        done = subprocess.run(  # noqa: S603 - this very script
            [sys.executable, __file__, "--memory-child", str(n), "--memory-url", base_url],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
    data: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return data


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency", default=LATENCY)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the four main variants this many times, interleaved; keep each one's best",
    )
    parser.add_argument(
        "--no-strategies", action="store_true", help="skip the runner's other strategies"
    )
    parser.add_argument("--memory-sizes", default="10000,100000")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument(
        "--memory-model",
        choices=("fake", "local"),
        default="fake",
        help="fake: a zero-latency fake chat model; local: the local model over HTTP",
    )
    parser.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--memory-url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.memory_url or None)
        return 0

    importlib.import_module("langchain_openai")  # imported before any clock starts
    importlib.import_module("chainkit.runners")
    ok = True
    if not args.skip_timing:
        ok = timing(args) and ok
    if not args.skip_memory:
        ok = memory(args) and ok
    return 0 if ok else 1


def timing(args: argparse.Namespace) -> bool:
    """Wall times of the variants; True when the targets are met."""
    n, c = args.n, args.concurrency
    main_variants: list[tuple[str, Callable[..., Awaitable[int]]]] = [
        ("runner (sliding)", v_runner),
        ("fixed batches + gather (seed)", v_fixed_batches),
        ("Semaphore + AsyncOpenAI", v_semaphore),
        ("chain.abatch", v_abatch),
    ]
    others: list[tuple[str, Callable[..., Awaitable[int]]]] = [
        ("runner strategy=fixed-batches", _strategy("fixed-batches")),
        ("runner strategy=abatch", _strategy("abatch")),
        ("runner strategy=gather (unbounded)", _strategy("gather")),
    ]
    schedule = main_variants * max(1, args.rounds)
    if not args.no_strategies:
        schedule += others
    best: dict[str, Result] = {}
    print(
        f"N={n}, concurrency={c}, latency {args.latency}, seed {args.seed}, "
        f"rounds {max(1, args.rounds)}"
    )
    for name, run in schedule:
        result = measure(name, run, n=n, c=c, seed=args.seed, latency=args.latency)
        if name not in best or result.wall < best[name].wall:
            best[name] = result
        print(
            f"  {name:<36} {result.wall:7.2f} s  {result.wall / result.ideal:5.2f}x ideal  "
            f"client CPU {1000 * result.cpu / n:.2f} ms/request  "
            f"(ok {result.ok}/{n}, latencies sum {result.latency_sum:.1f} s, "
            f"max {result.latency_max:.2f} s, ideal {result.ideal:.2f} s)",
            flush=True,
        )
    results = list(best.values())
    runner, fixed, semaphore, abatch = (best[name] for name, _ in main_variants)
    print("  best of the rounds:")
    for result in results:
        print(
            f"    {result.name:<36} {result.wall:7.2f} s  {result.wall / result.ideal:5.2f}x ideal"
            f"  {1000 * result.cpu / n:.2f} ms CPU/request"
        )
    checks = [
        ("runner <= 1.10x ideal", runner.wall <= TARGET_IDEAL * runner.ideal),
        ("runner <= 1.05x Semaphore", runner.wall <= TARGET_SEMAPHORE * semaphore.wall),
        ("runner faster than fixed batches", runner.wall < fixed.wall),
        ("runner faster than chain.abatch", runner.wall < abatch.wall),
        ("every variant answered every input", all(r.ok == n for r in results)),
    ]
    print(
        f"  runner / Semaphore = {runner.wall / semaphore.wall:.3f}, "
        f"runner / fixed batches = {runner.wall / fixed.wall:.3f}, "
        f"runner / abatch = {runner.wall / abatch.wall:.3f}"
    )
    for label, passed in checks:
        print(f"  [{'ok' if passed else 'MISSED'}] {label}")
    return all(passed for _, passed in checks)


def memory(args: argparse.Namespace) -> bool:
    """Peak RSS for each size in a fresh process; True when under the target and flat."""
    what = "local model over HTTP, max_tokens=4" if args.memory_model == "local" else "fake"
    print(f"memory: {what} chat model, zero latency, generator input, JSONL output")
    peaks = []
    for size in (int(s) for s in args.memory_sizes.split(",")):
        data = measure_memory(size, args.memory_model)
        peaks.append(data["peak_mb"])
        print(
            f"  N={size:>7}: peak RSS {data['peak_mb']:.1f} MB (after imports "
            f"{data['base_mb']:.1f} MB), {data['wall']:.1f} s, "
            f"output {data['file_mb']:.1f} MB, ok {data['ok']}",
            flush=True,
        )
    under = all(p < TARGET_RSS_MB for p in peaks)
    flat = max(peaks) - min(peaks) < 0.1 * min(peaks) + 10
    print(f"  [{'ok' if under else 'MISSED'}] peak RSS < {TARGET_RSS_MB:.0f} MB")
    print(f"  [{'ok' if flat else 'MISSED'}] flat in N")
    return under and flat


def _strategy(strategy: str) -> Callable[[str, int, int], Awaitable[int]]:
    async def run(base_url: str, n: int, c: int) -> int:
        return await v_runner(base_url, n, c, strategy=strategy)

    return run


if __name__ == "__main__":
    sys.exit(main())
