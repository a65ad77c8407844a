"""BatchOptions (one value for every option), the Executor seam, and stopping cleanly."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import typing
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chainkit.errors import ConfigError
from chainkit.runners import (
    BatchKwargs,
    BatchOptions,
    BatchReport,
    Limits,
    ResultRecord,
    RetryPolicy,
    read_results,
    run_batch,
    run_batch_sync,
)
from chainkit.runners._executor import Deliver, Executor
from chainkit.runners._inputs import InputItem
from chainkit.runners._prepare import prepare_chain
from chainkit.runners._recorder import Recorder
from chainkit.runners._records import ok_record
from tests.runners.conftest import echo_chain

FAST = BatchOptions(progress=False, retry=RetryPolicy(backoff_base=0.001, backoff_max=0.01))


def test_the_keyword_form_is_declared_once_and_matches_the_value() -> None:
    keys = set(typing.get_type_hints(BatchKwargs))
    own = {f.name for f in dataclasses.fields(BatchOptions)} - {"limits", "retry"}
    limits = {f.name for f in dataclasses.fields(Limits)}
    retry = {"retries", "backoff_base", "backoff_max", "max_retry_after"}
    assert keys == own | limits | retry
    assert retry - {"retries"} <= {f.name for f in dataclasses.fields(RetryPolicy)}
    hints = typing.get_type_hints(BatchOptions)
    kwargs = typing.get_type_hints(BatchKwargs)
    for name in own:
        assert kwargs[name] == hints[name], name


def test_options_are_validated_when_made_and_frozen() -> None:
    with pytest.raises(ConfigError, match="max_concurrency must be an integer >= 1, got 0"):
        Limits(max_concurrency=0)
    with pytest.raises(ConfigError, match="tpm must be > 0"):
        BatchOptions(limits=Limits(tpm=-1))
    with pytest.raises(ConfigError, match="retry_failed=True needs resume=True"):
        BatchOptions(retry_failed=True)
    with pytest.raises(ConfigError, match="retries must be an integer >= 0, got -1"):
        BatchOptions().replace(retries=-1)
    with pytest.raises(ConfigError, match="attempts must be an integer >= 1"):
        RetryPolicy(attempts=0)
    with pytest.raises(ConfigError, match="unknown backend 'dask'"):
        BatchOptions(backend="dask")
    with pytest.raises(ConfigError, match="unknown batch option"):
        BatchOptions().replace(max_concurency=3)  # type: ignore[call-arg]
    options = BatchOptions(strategy="fixed_batches")
    assert options.strategy == "fixed-batches"
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.ordered = True  # type: ignore[misc]


def test_keywords_apply_over_the_value() -> None:
    base = BatchOptions(limits=Limits(max_concurrency=3, rpm=60), ordered=True)
    changed = base.replace(max_concurrency=5, retries=0, backoff_max=1.0, grace=0.5)
    assert changed.limits == Limits(max_concurrency=5, rpm=60)
    assert (changed.retry.attempts, changed.retry.backoff_max) == (1, 1.0)
    assert (changed.ordered, changed.grace) == (True, 0.5)
    assert base.limits.max_concurrency == 3  # the value itself never changes


async def test_options_value_and_keywords_give_the_same_batch(tmp_path: Path) -> None:
    inputs = [{"n": i} for i in range(12)]
    options = dataclasses.replace(
        FAST, limits=Limits(max_concurrency=3), ordered=True, output=tmp_path / "a.jsonl"
    )
    by_value = await run_batch(echo_chain(fail_first={4}), inputs, options=options)
    by_keywords = await run_batch(
        echo_chain(fail_first={4}),
        inputs,
        max_concurrency=3,
        ordered=True,
        output=tmp_path / "b.jsonl",
        progress=False,
        backoff_base=0.001,
        backoff_max=0.01,
    )
    first = [(r.index, r.output, r.attempts) for r in read_results(tmp_path / "a.jsonl")]
    second = [(r.index, r.output, r.attempts) for r in read_results(tmp_path / "b.jsonl")]
    assert first == second
    assert [i for i, _, _ in first] == list(range(12))  # ordered
    assert by_value.max_concurrency == by_keywords.max_concurrency == 3
    assert by_value.retries == by_keywords.retries == 1
    report = run_batch_sync(echo_chain(), inputs[:3], options=FAST, max_concurrency=2)
    assert (report.succeeded, report.max_concurrency) == (3, 2)


# ---------------------------------------------------------------- the executor seam


class UpperExecutor:
    """A whole backend: runs each item in this process as upper-cased text."""

    report_class = BatchReport
    capacity = 4
    in_flight = 0

    def settings(self) -> dict[str, Any]:
        return {"backend": "upper"}

    async def run(self, items: AsyncIterator[InputItem], deliver: Deliver) -> None:
        async for item in items:
            started, t0 = datetime.now(UTC), time.monotonic()
            output = str(item.value["text"]).upper()
            await deliver(ok_record(item, output, attempts=1, started=started, t0=t0))

    async def drain(self, grace: float) -> None:
        return None

    async def finish(self, report: BatchReport, *, completed: bool) -> None:
        report.max_in_flight = 1


async def test_a_backend_is_one_small_class_on_the_recorder(tmp_path: Path) -> None:
    executor: Executor = UpperExecutor()
    out = tmp_path / "upper.jsonl"
    options = dataclasses.replace(FAST, output=out, ordered=True)
    chain = prepare_chain(echo_chain(), name="upper")
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"text": "a"}\n[1, 2]\n{"text": "b"}\n')
    report = await Recorder(chain, inputs, options, executor).run()
    records = list(read_results(out))
    assert [(r.index, r.output) for r in records if r.ok] == [(0, "A"), (2, "B")]
    assert report.succeeded == 2
    assert report.max_in_flight == 1
    resumed = await Recorder(
        chain, inputs, dataclasses.replace(options, resume=True), UpperExecutor()
    ).run()
    assert resumed.skipped == 3  # the recorder's resume: nothing is handed out again


# ---------------------------------------------------------------- stopping


async def test_an_outside_cancellation_is_not_replaced_by_a_write_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chainkit.runners._output import ResultWriter

    task: asyncio.Task[BatchReport] | None = None

    def failing_write(self: ResultWriter, record: ResultRecord) -> None:
        assert task is not None
        task.cancel()  # the caller cancels just as the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ResultWriter, "write_record", failing_write)
    options = dataclasses.replace(FAST, output=tmp_path / "o.jsonl", grace=0.01)
    task = asyncio.create_task(
        run_batch(echo_chain(delay=0.01), [{"n": i} for i in range(5)], options=options)
    )
    with pytest.raises(asyncio.CancelledError):
        await task
