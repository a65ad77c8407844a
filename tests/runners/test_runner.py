"""run_batch / run_batch_sync / iter_results with fake runnables: the runner's own behaviour."""

from __future__ import annotations

import asyncio
import inspect
import io
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from langchain_core.prompts import PromptTemplate
from langchain_core.runnables import RunnableLambda

from chainkit.errors import ConfigError, ResumeMismatchError
from chainkit.runners import (
    BatchReport,
    ResultRecord,
    iter_results,
    read_header,
    read_results,
    run_batch,
    run_batch_sync,
)
from chainkit.runners._progress import Snapshot
from tests.runners.conftest import echo_chain

FAST = {"progress": False, "backoff_base": 0.001, "backoff_max": 0.01}


def records_of(path: Path) -> list[dict[str, Any]]:
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return [line for line in lines if "header" not in line]


def by_index(records: list[ResultRecord]) -> dict[int, ResultRecord]:
    return {r.index: r for r in records}


# ---------------------------------------------------------------- isolation, retries


async def test_one_record_per_input_with_failures_isolated() -> None:
    calls: dict[int, int] = {}
    chain = echo_chain(fail_first={5, 10, 15}, broken={3}, calls=calls)
    report = await run_batch(chain, [{"n": i} for i in range(20)], max_concurrency=4, **FAST)

    records = by_index(report.results)
    assert sorted(records) == list(range(20))
    assert len(report.results) == 20
    for i, record in records.items():
        if i == 3:
            assert record.error is not None
            assert record.error.type == "Rejected"
            assert record.error.status == 400
            assert record.error.attempts == 1  # not transient: failed at once
            assert calls[3] == 1
        else:
            assert record.output == f"out-{i}"  # never another item's result
            assert record.attempts == (2 if i in {5, 10, 15} else 1)
    assert report.succeeded == 19
    assert report.failed == 1
    assert report.retries == 3
    assert report.errors_by_type == {"Rejected": 1}


async def test_transient_errors_are_retried_until_the_budget_ends() -> None:
    calls: dict[int, int] = {}
    chain = echo_chain(fail_always={1}, calls=calls)
    report = await run_batch(chain, [{"n": 0}, {"n": 1}], retries=2, **FAST)
    failed = by_index(report.results)[1]
    assert failed.error is not None
    assert failed.error.type == "Transient"
    assert failed.error.status == 503
    assert failed.error.attempts == 3
    assert calls[1] == 3


@pytest.mark.parametrize(
    "error",
    [
        KeyError("topic"),
        ValueError("bad value"),
        TypeError("bug"),
    ],
)
async def test_non_transient_errors_fail_at_once(error: Exception) -> None:
    calls = {"n": 0}

    async def boom(_: Any) -> str:
        calls["n"] += 1
        raise error

    report = await run_batch(RunnableLambda(boom), [{"n": 1}], retries=5, **FAST)
    record = report.results[0]
    assert record.error is not None
    assert record.error.type == type(error).__name__
    assert calls["n"] == 1


async def test_parser_and_validation_errors_fail_at_once() -> None:
    from langchain_core.exceptions import OutputParserException
    from pydantic import BaseModel

    class Shape(BaseModel):
        x: int

    calls = {"n": 0}

    async def parse(value: dict[str, Any]) -> Any:
        calls["n"] += 1
        if value["n"] == 0:
            raise OutputParserException("not JSON")
        return Shape.model_validate({"x": "nope"})

    report = await run_batch(RunnableLambda(parse), [{"n": 0}, {"n": 1}], retries=5, **FAST)
    types = sorted(r.error.type for r in report.results if r.error is not None)
    assert types == ["OutputParserException", "ValidationError"]
    assert calls["n"] == 2


async def test_secrets_are_redacted_from_error_records() -> None:
    async def leak(_: Any) -> str:
        raise ValueError("bad key sk-abcdefghijklmnopqrstuv for you")

    report = await run_batch(RunnableLambda(leak), [{"n": 1}], **FAST)
    error = report.results[0].error
    assert error is not None
    assert "sk-abcdefghijklmnop" not in error.message
    assert "***" in error.message


@pytest.mark.parametrize("strategy", ["sliding", "abatch"])
async def test_a_results_file_never_holds_a_secret_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str
) -> None:
    secret = "canary-db-pass-4e7d19a0"  # matches no key pattern: only the environment says
    monkeypatch.setenv("ORDERS_DB_PASSWORD", secret)

    async def leak(value: dict[str, Any]) -> dict[str, Any]:
        if value["n"] == 1:
            raise ValueError(f"cannot connect with password {value['note']}")
        return {"echo": value["note"], "nested": [{"text": f"uses {secret} here"}]}

    out = tmp_path / "out.jsonl"
    inputs = [{"n": n, "note": f"my {secret}"} for n in range(3)]
    report = await run_batch(
        RunnableLambda(leak), inputs, output=out, strategy=strategy, stream=True, **FAST
    )
    assert (report.succeeded, report.failed) == (2, 1)
    text = out.read_text()
    assert secret not in text
    records = {r.index: r for r in read_results(out)}
    assert records[0].input == {"n": 0, "note": "my ***"}  # input, output and error: masked
    assert records[0].output == {"echo": "my ***", "nested": [{"text": "uses *** here"}]}
    error = records[1].error
    assert error is not None
    assert error.message.endswith("password my ***")


async def test_missing_variables_fail_before_any_call() -> None:
    calls = {"n": 0}

    def model(prompt: Any) -> str:
        calls["n"] += 1
        return prompt.to_string()

    chain = PromptTemplate.from_template("fact about {n} and {topic}") | RunnableLambda(model)
    report = await run_batch(chain, [{"n": 1, "topic": "t"}, {"n": 2}], **FAST)
    records = by_index(report.results)
    assert records[0].output == "fact about 1 and t"
    assert records[1].error is not None
    assert records[1].error.type == "MissingVariableError"
    assert "'topic'" in records[1].error.message
    assert records[1].attempts == 0
    assert calls["n"] == 1


async def test_internal_cancelled_error_is_not_swallowed() -> None:
    async def cancel_me(value: dict[str, Any]) -> str:
        if value["n"] == 2:
            raise asyncio.CancelledError
        await asyncio.sleep(0.01)
        return "ok"

    with pytest.raises(asyncio.CancelledError):
        await run_batch(RunnableLambda(cancel_me), [{"n": i} for i in range(5)], **FAST)


# ---------------------------------------------------------------- scheduling


async def test_a_straggler_in_step_one_does_not_delay_the_others_step_two() -> None:
    """RunnableSequence.abatch runs step by step for the whole batch; the runner must not."""
    times: dict[str, dict[int, float]] = {"step1_end": {}, "step2_start": {}}

    async def step1(value: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(2.0 if value["n"] == 0 else 0.01)
        times["step1_end"][value["n"]] = time.monotonic()
        return value

    async def step2(value: dict[str, Any]) -> str:
        times["step2_start"][value["n"]] = time.monotonic()
        return f"done-{value['n']}"

    chain = RunnableLambda(step1) | RunnableLambda(step2)
    inputs = [{"n": i} for i in range(6)]

    report = await run_batch(chain, inputs, max_concurrency=6, **FAST)
    assert report.succeeded == 6
    straggler_done = times["step1_end"][0]
    assert all(times["step2_start"][i] < straggler_done for i in range(1, 6))

    # and the trap it avoids: plain abatch holds every step two behind the straggler
    times["step1_end"].clear()
    times["step2_start"].clear()
    await chain.abatch(inputs, config={"max_concurrency": 6})
    straggler_done = times["step1_end"][0]
    assert all(times["step2_start"][i] >= straggler_done for i in range(1, 6))


async def test_inputs_are_read_lazily_within_the_window() -> None:
    state = {"pulled": 0, "done": 0, "ahead": 0}

    def source() -> Iterator[dict[str, Any]]:
        for i in range(300):
            state["pulled"] += 1
            state["ahead"] = max(state["ahead"], state["pulled"] - state["done"])
            yield {"n": i}

    async def work(value: dict[str, Any]) -> int:
        await asyncio.sleep(0.001 * (value["n"] % 3))
        state["done"] += 1
        return int(value["n"])

    report = await run_batch(RunnableLambda(work), source(), max_concurrency=5, **FAST)
    assert report.succeeded == 300
    assert report.total is None  # a generator has no length
    # window (5) + records waiting for the writer (5) + the one being read
    assert state["ahead"] <= 11


@pytest.mark.parametrize("kind", ["list", "generator", "async", "jsonl"])
async def test_every_kind_of_input_source(kind: str, tmp_path: Path) -> None:
    values = [{"n": i} for i in range(12)]
    source: Any
    if kind == "list":
        source = values
    elif kind == "generator":
        source = (v for v in values)
    elif kind == "async":

        async def agen() -> AsyncIterator[dict[str, Any]]:
            for v in values:
                await asyncio.sleep(0)
                yield v

        source = agen()
    else:
        path = tmp_path / "in.jsonl"
        path.write_bytes(b"".join(orjson.dumps(v) + b"\n" for v in values))
        source = path
    report = await run_batch(echo_chain(), source, max_concurrency=3, **FAST)
    outputs = {r.index: r.output for r in report.results}
    assert outputs == {i: f"out-{i}" for i in range(12)}


async def test_ids_come_from_an_id_field_or_the_position() -> None:
    values = [{"n": 0, "id": "zero"}, {"n": 1}, {"n": 2, "id": 77}]
    report = await run_batch(echo_chain(), values, **FAST)
    ids = {r.index: r.id for r in report.results}
    assert ids == {0: "zero", 1: 1, 2: 77}


async def test_bad_jsonl_lines_become_error_records_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"n": 0}\n\nnot json\n[1, 2]\n{"m": 1}\n{"n": 5}\n')
    chain = PromptTemplate.from_template("n={n}") | RunnableLambda(lambda p: p.to_string())
    report = await run_batch(chain, path, output=tmp_path / "out.jsonl", **FAST)
    records = {r["line"]: r for r in records_of(tmp_path / "out.jsonl")}
    assert sorted(records) == [1, 3, 4, 5, 6]  # the blank line 2 is no input
    assert records[1]["output"] == "n=0"
    assert records[6]["output"] == "n=5"
    assert records[3]["error"]["type"] == "InputError"
    assert "line 3" in records[3]["error"]["message"]
    assert "not valid JSON" in records[3]["error"]["message"]
    assert records[4]["error"]["type"] == "InputError"
    assert "array" in records[4]["error"]["message"]
    assert records[5]["error"]["type"] == "MissingVariableError"
    assert "line 5" in records[5]["error"]["message"]
    assert report.failed == 3
    assert report.total == 5


async def test_ordered_output_goes_through_the_reorder_buffer(tmp_path: Path) -> None:
    delays = {0: 0.3, 4: 0.1}
    out = tmp_path / "ordered.jsonl"
    await run_batch(
        echo_chain(delays=delays), [{"n": i} for i in range(30)], output=out, ordered=True, **FAST
    )
    assert [r["index"] for r in records_of(out)] == list(range(30))

    out2 = tmp_path / "unordered.jsonl"
    await run_batch(echo_chain(delays=delays), [{"n": i} for i in range(30)], output=out2, **FAST)
    indexes = [r["index"] for r in records_of(out2)]
    assert sorted(indexes) == list(range(30))
    assert indexes[0] != 0  # completion order: the slow first item is not first


async def test_a_full_reorder_buffer_stops_reading_inputs() -> None:
    state = {"pulled": 0, "pulled_while_head_ran": 0, "head_done": False}

    def source() -> Iterator[dict[str, Any]]:
        for i in range(40):
            state["pulled"] += 1
            if not state["head_done"]:
                state["pulled_while_head_ran"] = state["pulled"]
            yield {"n": i}

    async def work(value: dict[str, Any]) -> int:
        if value["n"] == 0:
            await asyncio.sleep(0.3)
            state["head_done"] = True
        return int(value["n"])

    report = await run_batch(
        RunnableLambda(work),
        source(),
        max_concurrency=2,
        ordered=True,
        reorder_buffer=3,
        **FAST,
    )
    assert report.succeeded == 40
    assert [r.index for r in report.results] == list(range(40))
    assert state["pulled_while_head_ran"] <= 2 + 3 + 1


@pytest.mark.parametrize("strategy", ["sliding", "fixed-batches", "abatch", "gather"])
async def test_strategies_give_the_same_records(strategy: str) -> None:
    chain = echo_chain(fail_first={2, 7}, broken={4})
    report = await run_batch(
        chain, [{"n": i} for i in range(15)], max_concurrency=4, strategy=strategy, **FAST
    )
    outputs = {r.index: r.output for r in report.results}
    assert outputs == {i: (None if i == 4 else f"out-{i}") for i in range(15)}
    assert report.strategy == strategy
    assert by_index(report.results)[7].attempts == 2


async def test_bad_options_are_config_errors() -> None:
    chain = echo_chain()
    with pytest.raises(ConfigError, match="max_concurrency must be"):
        await run_batch(chain, [], max_concurrency=0)
    with pytest.raises(ConfigError, match="unknown strategy 'fast'"):
        await run_batch(chain, [], strategy="fast")
    with pytest.raises(ConfigError, match="retry_failed=True needs resume=True"):
        await run_batch(chain, [], retry_failed=True)
    with pytest.raises(ConfigError, match="rpm must be > 0"):
        await run_batch(chain, [], rpm=0)


# ---------------------------------------------------------------- output and resume


async def test_output_file_has_a_header_and_one_line_per_record(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    report = await run_batch(
        echo_chain(), [{"n": i} for i in range(5)], output=out, name="echo", **FAST
    )
    header = read_header(out)
    assert header is not None
    assert header.chain.name == "echo"
    assert len(header.chain.fingerprint) == 16
    assert header.settings["max_concurrency"] == 8
    records = list(read_results(out))
    assert sorted(r.index for r in records) == list(range(5))
    assert all(r.started is not None and r.ended is not None for r in records)
    assert all(r.latency is not None and r.latency >= 0 for r in records)
    assert report.results == []  # with a file, records are not also kept in memory


async def test_an_existing_output_needs_resume_or_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await run_batch(echo_chain(), [{"n": 1}], output=out, **FAST)
    with pytest.raises(ConfigError, match="already exists"):
        await run_batch(echo_chain(), [{"n": 1}], output=out, **FAST)
    await run_batch(echo_chain(), [{"n": 2}], output=out, overwrite=True, **FAST)
    assert [r.output for r in read_results(out)] == ["out-2"]


async def test_resume_skips_recorded_inputs_and_retry_failed_reruns_failures(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    calls: dict[int, int] = {}
    broken = {3, 6}
    chain = echo_chain(broken=broken, calls=calls)
    inputs = [{"n": i} for i in range(10)]
    first = await run_batch(chain, inputs, output=out, **FAST)
    assert (first.succeeded, first.failed) == (8, 2)

    calls.clear()
    again = await run_batch(chain, inputs, output=out, resume=True, **FAST)
    assert calls == {}  # nothing recorded is called again, failed ones neither
    assert again.skipped == 10
    assert again.done == 0

    broken.clear()  # "fixed" the cause
    third = await run_batch(chain, inputs, output=out, resume=True, retry_failed=True, **FAST)
    assert calls == {3: 1, 6: 1}
    assert third.succeeded == 2
    assert third.skipped == 8
    records = records_of(out)
    assert sorted(r["index"] for r in records) == list(range(10))  # exactly one each
    assert all(r["error"] is None for r in records)


async def test_resuming_with_another_chain_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    one = PromptTemplate.from_template("a {n}") | RunnableLambda(lambda p: p.to_string())
    other = PromptTemplate.from_template("b {n}") | RunnableLambda(lambda p: p.to_string())
    await run_batch(one, [{"n": 1}], output=out, **FAST)
    with pytest.raises(ResumeMismatchError, match="was written by chain"):
        await run_batch(other, [{"n": 1}], output=out, resume=True, **FAST)
    report = await run_batch(one, [{"n": 1}, {"n": 2}], output=out, resume=True, **FAST)
    assert (report.skipped, report.succeeded) == (1, 1)


async def test_resuming_with_changed_inputs_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await run_batch(echo_chain(), [{"n": 1, "id": "a"}], output=out, **FAST)
    with pytest.raises(ResumeMismatchError, match="the inputs changed"):
        await run_batch(echo_chain(), [{"n": 1, "id": "b"}], output=out, resume=True, **FAST)


async def test_a_partial_last_line_is_repaired_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    inputs = [{"n": i} for i in range(6)]
    await run_batch(echo_chain(), inputs[:3], output=out, **FAST)
    with out.open("ab") as handle:  # what a kill in the middle of a write leaves
        handle.write(b'{"index": 3, "id": 3, "output": "out-')
    report = await run_batch(echo_chain(), inputs, output=out, resume=True, **FAST)
    assert (report.skipped, report.succeeded) == (3, 3)
    records = records_of(out)  # every line parses
    assert sorted(r["index"] for r in records) == list(range(6))


async def test_cancellation_flushes_finished_items_and_reraises(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    delays = {i: (0.01 if i < 5 else 0.05 if i < 8 else 30.0) for i in range(12)}
    inputs = [{"n": i} for i in range(12)]
    chain = echo_chain(delays=delays)
    task = asyncio.create_task(
        run_batch(chain, inputs, output=out, max_concurrency=12, grace=0.5, **FAST)
    )
    await asyncio.wait_for(_wait_records(out, 5), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    done = {r["index"] for r in records_of(out)}
    assert done == set(range(8))  # 5 before, 3 within the grace period; the hung 4 cancelled
    # and a resume does the rest, without repeating anything
    calls: dict[int, int] = {}
    report = await run_batch(
        echo_chain(calls=calls), inputs, output=out, resume=True, max_concurrency=12, **FAST
    )
    assert set(calls) == set(range(8, 12))
    assert report.skipped == 8
    assert sorted(r["index"] for r in records_of(out)) == list(range(12))


async def test_cancellation_flushes_the_reorder_buffer(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    delays = {0: 30.0}  # the head never finishes: everything else waits in the buffer
    inputs = [{"n": i} for i in range(6)]
    chain = echo_chain(delays=delays, delay=0.01)
    task = asyncio.create_task(
        run_batch(chain, inputs, output=out, ordered=True, grace=0.05, **FAST)
    )
    await asyncio.sleep(0.3)
    assert _count_records(out) == 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(r["index"] for r in records_of(out)) == [1, 2, 3, 4, 5]


async def test_a_failing_output_file_stops_the_batch_with_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chainkit.runners._output import ResultWriter

    written = {"n": 0}
    original = ResultWriter.write_record

    def flaky_write(self: ResultWriter, record: ResultRecord) -> None:
        written["n"] += 1
        if written["n"] > 3:
            raise OSError(28, "No space left on device")
        original(self, record)

    monkeypatch.setattr(ResultWriter, "write_record", flaky_write)
    with pytest.raises(OSError, match="No space left"):
        await run_batch(
            echo_chain(delay=0.01), [{"n": i} for i in range(50)], output=tmp_path / "o.jsonl",
            **FAST,
        )  # fmt: skip


async def test_cancellation_logs_how_to_resume(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out.jsonl"
    task = asyncio.create_task(
        run_batch(echo_chain(delay=30), [{"n": 1}], output=out, grace=0.01, **FAST)
    )
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "resume=True" in caplog.text
    assert "--resume" not in caplog.text  # the Python form only; the CLI prints its own line


def _count_records(path: Path) -> int:
    return len(records_of(path)) if path.exists() else 0


async def _wait_records(path: Path, count: int) -> None:
    while _count_records(path) < count:  # noqa: ASYNC110 - polls a file another task writes
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------- iter_results and sync


async def test_iter_results_yields_records_as_they_finish() -> None:
    stream = iter_results(echo_chain(delays={0: 0.2}), [{"n": i} for i in range(6)], **FAST)
    seen = [record.index async for record in stream]
    assert sorted(seen) == list(range(6))
    assert seen[-1] == 0
    assert stream.report is not None
    assert stream.report.succeeded == 6
    assert stream.report.results == []  # the records went to the consumer


async def test_leaving_iter_results_early_stops_the_batch(tmp_path: Path) -> None:
    calls: dict[int, int] = {}
    out = tmp_path / "out.jsonl"
    stream = iter_results(
        echo_chain(delay=0.01, calls=calls),
        ({"n": i} for i in range(1000)),
        max_concurrency=4,
        output=out,
        grace=0.5,
        **FAST,
    )
    count = 0
    async for _ in stream:
        count += 1
        if count == 10:
            break
    await stream.aclose()
    assert stream.report is not None
    assert stream.report.cancelled
    assert len(calls) < 40
    assert len(records_of(out)) >= 10


def test_run_batch_sync_works_without_a_loop() -> None:
    report = run_batch_sync(echo_chain(), [{"n": i} for i in range(5)], **FAST)
    assert isinstance(report, BatchReport)
    assert report.succeeded == 5


async def test_run_batch_sync_works_inside_a_running_loop() -> None:
    """As in a Jupyter cell: the batch runs on its own loop in a worker thread."""
    report = run_batch_sync(echo_chain(delay=0.01), [{"n": i} for i in range(5)], **FAST)
    assert report.succeeded == 5


def test_sync_and_async_entry_points_have_the_same_parameters() -> None:
    def params(fn: Any) -> list[tuple[str, Any, Any]]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    assert params(run_batch) == params(run_batch_sync) == params(iter_results)
    assert inspect.iscoroutinefunction(run_batch)
    assert not inspect.iscoroutinefunction(run_batch_sync)


async def test_sync_and_async_give_the_same_records() -> None:
    inputs = [{"n": i} for i in range(8)]
    chain = echo_chain(broken={2})
    async_report = await run_batch(chain, inputs, **FAST)
    sync_report = await asyncio.to_thread(run_batch_sync, chain, inputs, **FAST)

    def view(report: BatchReport) -> list[tuple[int, Any, Any]]:
        return sorted(
            (r.index, r.output, r.error.type if r.error else None) for r in report.results
        )

    assert view(async_report) == view(sync_report)


# ---------------------------------------------------------------- progress and report


class _Sink:
    def __init__(self) -> None:
        self.started: tuple[int | None, str] | None = None
        self.snapshots: list[Snapshot] = []
        self.closed: Snapshot | None = None

    def start(self, total: int | None, description: str) -> None:
        self.started = (total, description)

    def update(self, snapshot: Snapshot) -> None:
        self.snapshots.append(snapshot)

    def close(self, snapshot: Snapshot) -> None:
        self.closed = snapshot


async def test_progress_sinks_see_done_total_and_failures() -> None:
    sink = _Sink()
    inputs = [{"n": i} for i in range(10)]
    await run_batch(
        echo_chain(delay=0.05, broken={1}), inputs, max_concurrency=2, progress=sink,
        backoff_base=0.001,
    )  # fmt: skip
    assert sink.started == (10, "batch echo")
    assert sink.snapshots  # periodic updates while running
    assert any(s.in_flight > 0 for s in sink.snapshots)
    assert sink.closed is not None
    assert (sink.closed.done, sink.closed.failed, sink.closed.total) == (10, 1, 10)


def test_plain_progress_writes_lines() -> None:
    from chainkit.runners._progress import PlainProgress

    stream = io.StringIO()
    progress = PlainProgress(stream, interval=0)
    progress.start(10, "batch x")
    progress.update(Snapshot(4, 10, 3, 1, 0, 2, 3, 2.0))
    progress.close(Snapshot(10, 10, 9, 1, 0, 2, 0, 5.0))
    text = stream.getvalue()
    assert "batch x: started of 10 inputs" in text
    assert "4/10 done (1 failed), 2.0/s, ETA 3.0s, 3 in flight, 2 retries" in text
    assert "10/10 done" in text


def test_rich_progress_draws_a_bar_on_a_terminal() -> None:
    from rich.console import Console

    from chainkit.runners._progress import RichProgress

    buffer = io.StringIO()
    progress = RichProgress(Console(file=buffer, force_terminal=True, width=140))
    progress.start(10, "batch x")
    progress.update(Snapshot(4, 10, 3, 1, 0, 2, 3, 2.0))
    progress.close(Snapshot(10, 10, 9, 1, 0, 2, 0, 5.0))
    text = buffer.getvalue()
    assert "batch x" in text
    assert "10/10" in text
    assert "in flight" in text


def test_notebook_progress_updates_one_display() -> None:
    from chainkit.runners._progress import NotebookProgress

    shown: list[str] = []

    class Handle:
        def update(self, obj: str) -> None:
            shown.append(obj)

    def display(obj: str, display_id: bool = False) -> Handle:
        assert display_id
        shown.append(obj)
        return Handle()

    progress = NotebookProgress(display=display, html_type=str)
    progress.start(10, "batch x")
    progress.update(Snapshot(4, 10, 3, 1, 0, 2, 3, 2.0))
    progress.close(Snapshot(10, 10, 9, 1, 0, 2, 0, 5.0))
    assert "<progress" in shown[-1]
    assert "value='10'" in shown[-1]


async def test_report_views() -> None:
    report = await run_batch(echo_chain(broken={1}), [{"n": i} for i in range(4)], **FAST)
    text = report.summary()
    assert "3 succeeded, 1 failed" in text
    assert "#1: Rejected [400]: item 1 is rejected" in text
    assert "<table>" in report._repr_html_()
    data = orjson.loads(orjson.dumps(report.to_dict()))
    assert data["failed"] == 1
    assert data["errors_by_type"] == {"Rejected": 1}
    assert data["latency"]["p50"] is not None
    from rich.console import Console

    console = Console(file=io.StringIO(), width=120)
    console.print(report)
    assert "succeeded" in console.file.getvalue()  # type: ignore[attr-defined]


async def test_outputs_are_stored_as_json() -> None:
    from langchain_core.messages import AIMessage
    from pydantic import BaseModel

    class Fact(BaseModel):
        n: int
        text: str

    def make(value: dict[str, Any]) -> Any:
        n = value["n"]
        return [
            Fact(n=n, text="x"),
            AIMessage(content="hello"),
            {"a": [1, 2]},
            "plain",
        ][n]

    report = await run_batch(RunnableLambda(make), [{"n": i} for i in range(4)], **FAST)
    outputs = {r.index: r.output for r in report.results}
    assert outputs == {0: {"n": 0, "text": "x"}, 1: "hello", 2: {"a": [1, 2]}, 3: "plain"}
