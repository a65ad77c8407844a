"""A batch killed with SIGKILL at several points, then resumed: exactly one record per input."""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.context
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import orjson

from chainkit.runners import run_batch
from chainkit.testing import local_model_server
from tests.runners.conftest import fact_chain, fact_inputs

N = 160


def batch_child(base_url: str, output: str, n: int) -> None:
    """The batch, in a child process (forked from a forkserver with LangChain preloaded)."""
    from chainkit.runners import run_batch_sync
    from tests.runners.conftest import fact_chain_at

    chain = fact_chain_at(base_url, max_tokens=8)
    inputs = [{"n": i} for i in range(n)]
    run_batch_sync(chain, inputs, output=output, resume=True, max_concurrency=8, progress=False)


def complete_records(path: Path) -> list[dict[str, Any]]:
    """Records on complete lines (what a resume keeps), headers left out."""
    if not path.exists():
        return []
    records = []
    for raw in path.read_bytes().split(b"\n")[:-1]:  # a partial last line has no "\n"
        if raw.strip():
            data = orjson.loads(raw)
            if "header" not in data:
                records.append(data)
    return records


def number_of(prompt: str) -> int:
    found = re.search(r"number (\d+)", prompt)
    assert found is not None, prompt
    return int(found.group(1))


def _reached(output: Path, at: int) -> bool:
    if at == 0:  # the header is written: killed before (or while) any record is
        return output.exists() and output.stat().st_size > 0
    return len(complete_records(output)) >= at


def run_and_kill(
    context: multiprocessing.context.ForkServerContext, base_url: str, output: Path, at: int
) -> float:
    """Start the batch in a child process; SIGKILL it once ``at`` records are on disk."""
    process = context.Process(target=batch_child, args=(base_url, str(output), N))
    process.start()
    deadline = time.monotonic() + 60
    while not _reached(output, at) and process.exitcode is None:
        assert time.monotonic() < deadline, "the batch made no progress"
        time.sleep(0.005)
    assert process.pid is not None
    os.kill(process.pid, signal.SIGKILL)
    killed_at = time.time()
    process.join(timeout=30)
    assert process.exitcode == -signal.SIGKILL
    process.close()
    return killed_at


def test_sigkill_at_several_points_then_resume(tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    context = multiprocessing.get_context("forkserver")
    # children start from a process that has imported LangChain once, not from scratch
    context.set_forkserver_preload(
        ["langchain_openai", "chainkit.runners", "tests.runners.conftest"]
    )
    with local_model_server(latency="fixed:0.03") as server:
        kills: list[tuple[float, set[int]]] = []
        for at in (0, 30, 90):
            killed_at = run_and_kill(context, server.base_url, output, at)
            recorded = {r["index"] for r in complete_records(output)}
            assert len(recorded) >= at
            kills.append((killed_at, recorded))

        report = asyncio.run(
            run_batch(
                fact_chain(server, max_tokens=8),
                fact_inputs(N),
                output=output,
                resume=True,
                progress=False,
            )
        )
        log = server.request_log()

    records = complete_records(output)
    indexes = [r["index"] for r in records]
    assert sorted(indexes) == list(range(N))  # no input lost, none twice
    assert all(r["error"] is None and r["output"] for r in records)
    assert report.skipped == len(kills[-1][1])
    assert report.skipped + report.succeeded == N
    # every line of the file is whole JSON, headers included
    for raw in output.read_bytes().splitlines():
        orjson.loads(raw)

    # no call for an input after it was recorded
    for killed_at, recorded in kills:
        later = {number_of(e["prompt"]) for e in log if e["t_start"] > killed_at}
        assert not (later & recorded)
