"""The runner on Ray vs the local runner, CPU-bound: items per second, per-item overhead.

The local model answers at once (no latency), so what is measured is the CPU
cost of running LangChain chains, the runner, and (for Ray) moving blocks and
records between processes. The model server runs in a subprocess of its own.

Configurations, interleaved over ``--repeat`` rounds (the best round of each
is reported; the machine is shared):

- ``local``: ``run_batch`` in this process;
- ``ray x1``, ``ray x2``: ``run_batch(..., backend="ray")`` with 1 and 2
  worker actors on a local Ray instance (``num_cpus`` = this machine's CPUs),
  warm (a warm-up batch started the workers; their start-up time is reported
  separately).

Every run writes its result file, as a real batch would. The per-item overhead
of Ray is the wall time per item of ``ray x1`` minus that of ``local``; the
driver's own CPU per item (this process, which reads inputs and writes
records) bounds how many items a second one driver can take in.

    .venv/bin/python benchmarks/ray_scaling.py --n 2000 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from chainkit.runners import run_batch
from chainkit.runners._ray import release_ray_workers, run_batch_ray


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - this interpreter, chainkit's own module
        [sys.executable, "-m", "chainkit.models.local", "--port", str(port)],
        stderr=subprocess.PIPE,
    )
    assert server.stderr is not None
    line = server.stderr.readline().decode()
    if not re.search(r"http://", line):
        raise RuntimeError(f"the local model did not start: {line}")
    return server, f"http://127.0.0.1:{port}/v1"


def make_chain(base_url: str) -> Any:
    model = ChatOpenAI(
        base_url=base_url,
        api_key="chainkit-local",
        model="chainkit-local",
        temperature=0,
        max_tokens=16,
    )
    prompt = ChatPromptTemplate.from_template("Tell me a fact about number {n}")
    return prompt | model | StrOutputParser()


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def one_run(
    kind: str, chain: Any, n: int, concurrency: int, folder: Path
) -> dict[str, float]:
    inputs = [{"n": i} for i in range(n)]
    output = folder / f"{kind.replace(' ', '')}.jsonl"
    common: dict[str, Any] = {
        "max_concurrency": concurrency,
        "output": output,
        "overwrite": True,
        "progress": False,
    }
    cpu0, wall0 = cpu(), time.perf_counter()
    if kind == "local":
        report: Any = await run_batch(chain, inputs, **common)
        startup = worker_cpu = 0.0
    else:
        workers = int(kind.split("x")[1])
        report = await run_batch_ray(chain, inputs, workers=workers, **common)
        startup, worker_cpu = report.startup, report.worker_cpu
    wall = time.perf_counter() - wall0 - startup
    assert report.succeeded == n, report
    driver_cpu = cpu() - cpu0
    return {
        "wall": wall,
        "driver_cpu": driver_cpu,
        "cpu": driver_cpu + worker_cpu,
        "startup": startup,
    }


async def main(n: int, repeat: int, concurrency: int) -> None:
    import ray

    server, base_url = start_server()
    try:
        t0 = time.perf_counter()
        ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False)
        print(f"Ray started in {time.perf_counter() - t0:.1f} s; {os.cpu_count()} CPUs")
        chain = make_chain(base_url)
        kinds = ["local", "ray x1", "ray x2"]
        best: dict[str, dict[str, float]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for kind in kinds[1:]:  # warm-up: start the workers, import everything
                cold = await one_run(kind, chain, 200, concurrency, folder)
                print(f"warm-up {kind}: workers ready in {cold['startup']:.1f} s")
            await one_run("local", chain, 200, concurrency, folder)
            for round_ in range(repeat):
                for kind in kinds:
                    result = await one_run(kind, chain, n, concurrency, folder)
                    rate = n / result["wall"]
                    print(
                        f"round {round_ + 1} {kind:7} {rate:7.0f} items/s  "
                        f"driver CPU {1e6 * result['driver_cpu'] / n:6.0f} us/item  "
                        f"all CPU {1e6 * result['cpu'] / n:6.0f} us/item"
                    )
                    if kind not in best or result["wall"] < best[kind]["wall"]:
                        best[kind] = result
        release_ray_workers()
    finally:
        server.terminate()
        server.wait(timeout=10)

    local = best["local"]["wall"] / n
    print(f"\nN={n}, max_concurrency={concurrency} per process, best of {repeat} rounds:")
    print("| run | items/s | vs local | wall per item | CPU per item (driver + workers) |")
    print("| --- | --- | --- | --- | --- |")
    for kind in kinds:
        wall = best[kind]["wall"] / n
        print(
            f"| {kind} | {1 / wall:.0f} | {local / wall:.2f}x | {1e3 * wall:.2f} ms | "
            f"{1e3 * best[kind]['cpu'] / n:.2f} ms ({1e3 * best[kind]['driver_cpu'] / n:.2f} + "
            f"{1e3 * (best[kind]['cpu'] - best[kind]['driver_cpu']) / n:.2f}) |"
        )
    wall_overhead = best["ray x1"]["wall"] / n - local
    cpu_overhead = (best["ray x1"]["cpu"] - best["local"]["cpu"]) / n
    print(
        f"\nRay's per-item overhead (ray x1 - local): {1e3 * wall_overhead:.2f} ms wall, "
        f"{1e3 * cpu_overhead:.2f} ms CPU"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="items per run")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--concurrency", type=int, default=16, help="max_concurrency")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.repeat, args.concurrency))
