"""The openai-batch backend vs the local backend, on the local model: driver CPU and memory.

N inputs (10,000 by default) through ``prompt | ChatOpenAI | StrOutputParser``
against a local model server in its own process (``python -m
chainkit.models.local``), once per backend, each driver in a fresh child
process so that CPU time and peak RSS are its own:

- ``local``: ``run_batch(chain, inputs, max_concurrency=64)`` (one HTTP request
  per input);
- ``openai-batch``: ``run_batch(chain, inputs, backend="openai-batch")``
  (requests written into batch files, uploaded, polled, results downloaded).

Reported: driver CPU seconds (user + system) and peak RSS of each, and their
ratios (batch / local); then the time from start to the last record of an
openai-batch run against a server started with ``--batch-delay`` (a provider's
queue: each batch takes that long), split into several batch files.

Run::

    .venv/bin/python benchmarks/provider_batch.py             # N=10000, delay 5 s
    .venv/bin/python benchmarks/provider_batch.py --n 2000 --delay 2
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PROMPT = "Tell me a fact about number {n}"


def start_server(*options: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "chainkit.models.local", "--port", "0", *options],
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


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(10)
    if proc.stderr is not None:
        proc.stderr.close()


def drive(backend: str, base_url: str, n: int, output: str, max_requests: int) -> dict[str, Any]:
    """One run in this (child) process: the numbers as a dict."""
    import asyncio
    import resource
    import time

    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_openai import ChatOpenAI

    from chainkit.runners import ProviderBatchSettings, run_batch

    model = ChatOpenAI(
        model="gpt-4o-mini",
        base_url=base_url,
        api_key="chainkit-local",
        temperature=0,  # type: ignore[arg-type]
    )
    chain = ChatPromptTemplate.from_template(PROMPT) | model | StrOutputParser()
    inputs = ({"n": i} for i in range(n))
    options: dict[str, Any] = {"output": output, "progress": False, "overwrite": True}
    if backend == "openai-batch":
        options["backend"] = backend
        options["provider"] = ProviderBatchSettings(
            max_requests=max_requests, poll_interval=0.2, poll_max=0.5
        )
    else:
        options["max_concurrency"] = 64
    before = resource.getrusage(resource.RUSAGE_SELF)
    rss_before = before.ru_maxrss
    t0 = time.perf_counter()
    report = asyncio.run(run_batch(chain, inputs, **options))
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "backend": backend,
        "n": n,
        "succeeded": report.succeeded,
        "wall": wall,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "peak_rss_mb": after.ru_maxrss / 1024,
        "rss_growth_mb": (after.ru_maxrss - rss_before) / 1024,
    }


def run_child(
    backend: str, base_url: str, n: int, output: Path, max_requests: int
) -> dict[str, Any]:
    code = (
        "import json, sys; sys.path.insert(0, 'benchmarks'); import provider_batch as b; "
        f"row = b.drive({backend!r}, {base_url!r}, {n}, {str(output)!r}, {max_requests}); "
        "print(json.dumps(row))"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{backend} run failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--delay", type=float, default=5.0, help="the server's --batch-delay")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server, base_url = start_server()
        try:
            local = run_child("local", base_url, args.n, folder / "local.jsonl", 50_000)
            batch = run_child("openai-batch", base_url, args.n, folder / "batch.jsonl", 50_000)
        finally:
            stop(server)
        files = 4
        server, base_url = start_server("--batch-delay", str(args.delay))
        try:
            queued = run_child(
                "openai-batch", base_url, args.n, folder / "queued.jsonl", -(-args.n // files)
            )
        finally:
            stop(server)
    for row in (local, batch, queued):
        print(
            f"{row['backend']:<13} n={row['n']:<6} ok={row['succeeded']:<6} "
            f"wall {row['wall']:7.2f} s  cpu {row['cpu']:6.2f} s  "
            f"peak rss {row['peak_rss_mb']:6.1f} MB (+{row['rss_growth_mb']:.1f} MB in the run)"
        )
    print(
        f"ratios batch/local: driver cpu {batch['cpu'] / local['cpu']:.2f}, "
        f"peak rss {batch['peak_rss_mb'] / local['peak_rss_mb']:.2f}, "
        f"rss growth {batch['rss_growth_mb'] / max(local['rss_growth_mb'], 0.1):.2f}"
    )
    print(
        f"--batch-delay {args.delay:g}: {args.n} inputs in {files} batch files, last record "
        f"after {queued['wall']:.2f} s ({queued['wall'] / args.delay:.2f} x the delay)"
    )


if __name__ == "__main__":
    main()
