"""The provider batch report (batches, cost) and status/cancel of the batches behind a file."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import orjson
import pytest

from chainkit.errors import ConfigError
from chainkit.models.local import LocalModelServer, LocalModelSettings
from chainkit.runners import Snapshot, run_batch
from chainkit.runners._batch_journal import journal_path, read_journal
from chainkit.runners._prices import Price, estimate_cost, find_price
from chainkit.runners._provider_backend import openai_batch_executor
from chainkit.runners._provider_batch import OpenAIBatches
from chainkit.runners._provider_executor import ProviderBatchSettings
from chainkit.runners._provider_report import (
    ProviderBatchReport,
    batch_jobs,
    cancel_batch_jobs,
    format_jobs,
)

from .test_provider_executor import QUICK, _created, _model, _run, _until, fact_chain

FACT_INPUTS = [{"n": i} for i in range(6)]


def test_prices_are_known_dated_overridden_or_unknown() -> None:
    assert find_price("gpt-4o-mini-2024-07-18") == find_price("gpt-4o-mini")
    assert find_price("gpt-4o-minix") is None
    assert find_price("chainkit-local") is None
    assert find_price("mine", {"mine": Price(1, 2)}) == Price(1, 2)
    cost = estimate_cost("gpt-4o-mini", 1_000_000, 1_000_000)
    assert cost.sync == pytest.approx(0.75)
    assert cost.batch == pytest.approx(0.375)
    assert estimate_cost("chainkit-local", 10, 10).batch is None
    with pytest.raises(ConfigError, match="price"):
        Price(-1, 0)


async def test_the_report_shows_batches_tokens_and_cost(tmp_path: Path) -> None:
    with LocalModelServer() as server:
        from langchain_core.output_parsers import StrOutputParser

        from .test_provider_executor import FACT

        chain = FACT | _model(server) | StrOutputParser()  # gpt-4o-mini: a known price
        executor = openai_batch_executor(
            chain,
            name="fact",
            output=tmp_path / "out.jsonl",
            resume=False,
            attempts=1,
            settings=ProviderBatchSettings(**QUICK, max_requests=4),
        )
        records = await _run(executor, FACT_INPUTS)
    report = ProviderBatchReport(chain="fact")
    for record in records.values():
        report.add(record, keep=False)
    await executor.finish(report, completed=True)
    assert report.batches == 2
    assert report.batch_statuses == {"completed": 2}
    assert report.usage.total_tokens > 0
    assert report.cost.sync is not None
    assert report.cost.batch == pytest.approx(report.cost.sync / 2)
    text = report.summary()
    assert "openai-batch: 2 batches (2 completed)" in text
    assert "at batch prices" in text
    assert report.to_dict()["provider_batch"]["cost_batch"] == report.cost.batch
    unknown = ProviderBatchReport(model="chainkit-local")
    unknown.price(None)
    assert "cost            unknown" in unknown.summary()


async def test_status_and_cancel_of_the_batches_behind_a_file(tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    with pytest.raises(ConfigError, match="no provider batches"):
        await batch_jobs(output, api_key="x")
    with LocalModelServer(LocalModelSettings(batch_delay=30)) as server:
        executor = openai_batch_executor(
            fact_chain(server),
            name="fact",
            output=output,
            resume=False,
            attempts=1,
            settings=ProviderBatchSettings(**QUICK, max_requests=3),
        )
        task = asyncio.ensure_future(_run(executor, FACT_INPUTS))
        await _until(_created(journal_path(output), 2))
        task.cancel()  # Ctrl-C: the batches keep running
        with pytest.raises(asyncio.CancelledError):
            await task
        report = ProviderBatchReport()
        await executor.finish(report, completed=False)
        assert len(report.running) == 2
        assert any("--resume" in note and "batch cancel" in note for note in report.notes)
        jobs = await batch_jobs(output, api_key="x")  # the journal knows where they are
        assert {job.state.status for job in jobs if job.state} <= {"validating", "in_progress"}
        assert len(jobs) == 2
        cancelled = await cancel_batch_jobs(output, api_key="x")
        assert {job.state.status for job in cancelled if job.state} <= {"cancelling", "cancelled"}
        text = format_jobs(await batch_jobs(output, api_key="x"))
    assert text.count("records not written yet") == 2
    for job in jobs:
        assert job.entry.batch_id is not None
        assert job.entry.batch_id in text


class _Snapshots:
    """A progress sink that keeps every snapshot."""

    def __init__(self) -> None:
        self.details: list[str] = []

    def start(self, total: int | None, description: str) -> None:
        pass

    def update(self, snapshot: Snapshot) -> None:
        self.details.append(snapshot.detail)

    def close(self, snapshot: Snapshot) -> None:
        self.details.append(snapshot.detail)


async def test_progress_shows_each_batch_status_and_counts(tmp_path: Path) -> None:
    sink = _Snapshots()
    with LocalModelServer(LocalModelSettings(batch_delay=0.8)) as server:
        report = await run_batch(
            fact_chain(server),
            FACT_INPUTS,
            backend="openai-batch",
            provider=ProviderBatchSettings(**QUICK, max_requests=3),
            output=tmp_path / "out.jsonl",
            progress=sink,
        )
    assert report.succeeded == len(FACT_INPUTS)
    assert any(re.fullmatch(r"batches: 2 (validating|in_progress) \d/6", d) for d in sink.details)
    assert sink.details[-1] == "batches: 2 completed"
    assert "batches: 2 completed" in Snapshot(0, 6, 0, 0, 0, 0, 0, 1.0, sink.details[-1]).line()


def test_a_damaged_journal_keeps_what_it_can_read(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl.batches"
    good = [
        {"event": "uploaded", "file": "file-1", "requests": [["0-1", 0], ["1-1", 1]]},
        {"event": "created", "file": "file-1", "batch": "batch_1"},
    ]
    bad = [
        b"[1, 2]",
        b'{"event": "uploaded", "file": "file-2", "requests": [["x", "not a number"]]}',
        b'{"event": "created", "file": ["unhashable"], "batch": "b"}',
        b'{"event": "collected"}',
        b'{"event": "uploaded", "file": "file-3", "requests": [["3-1"',  # torn by a kill
    ]
    path.write_bytes(b"\n".join([orjson.dumps(good[0]), *bad[:2], orjson.dumps(good[1]), *bad[2:]]))
    entries = read_journal(path)
    assert [(e.file_id, e.batch_id, e.requests, e.collected) for e in entries] == [
        ("file-1", "batch_1", [("0-1", 0), ("1-1", 1)], False)
    ]


@pytest.mark.parametrize(
    "line", [b"{not json", b"[]", b'{"custom_id": 7}', b'{"custom_id": "1-1", "response": 3}']
)
def test_an_unreadable_result_line_is_a_missing_result(line: bytes) -> None:
    reply = OpenAIBatches(client=None).read_line(line)
    assert reply.status is None
    assert reply.body is None
    assert reply.message
