"""The provider batch executor against the local model's /v1/batches, through the real SDK."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI

from chainkit.models.local import LocalModelServer, LocalModelSettings
from chainkit.runners import run_batch
from chainkit.runners._batch_journal import journal_path, read_journal
from chainkit.runners._inputs import InputItem
from chainkit.runners._provider_backend import openai_batch_executor
from chainkit.runners._provider_batch import OpenAIBatches
from chainkit.runners._provider_executor import ProviderBatchExecutor, ProviderBatchSettings
from chainkit.runners._records import ResultRecord

from .test_batch_requests import batch_chains

FACT = ChatPromptTemplate.from_template("Tell me a fact about number {n}")
QUICK = {"poll_interval": 0.02, "poll_max": 0.1}


def _model(server: LocalModelServer, **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini",
        base_url=server.base_url,
        api_key="chainkit-local",  # type: ignore[arg-type]
        temperature=0,
        max_tokens=24,
        max_retries=0,
        **kwargs,
    )


def fact_chain(server: LocalModelServer) -> Runnable[Any, str]:
    return FACT | _model(server) | StrOutputParser()


async def _items(values: list[Any]) -> AsyncIterator[InputItem]:
    for index, value in enumerate(values):
        yield InputItem(index=index, value=value, id=index)


async def _run(executor: ProviderBatchExecutor, values: list[Any]) -> dict[int, ResultRecord]:
    records: dict[int, ResultRecord] = {}

    async def deliver(record: ResultRecord) -> bool:
        assert record.index not in records, f"two records for input {record.index}"
        records[record.index] = record
        return True

    try:
        await executor.run(_items(values), deliver)
    finally:
        await executor.aclose()
    return records


def _executor(
    chain: Runnable[Any, Any], tmp_path: Path, *, attempts: int = 1, **settings: Any
) -> ProviderBatchExecutor:
    return openai_batch_executor(
        chain,
        name="fact",
        output=tmp_path / "out.jsonl",
        resume=False,
        attempts=attempts,
        settings=ProviderBatchSettings(**{**QUICK, **settings}),
    )


async def _until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Wait until ``condition()`` holds (it asks another server or reads a file)."""
    while not await condition():  # noqa: ASYNC110 - no event to wait on across processes
        await asyncio.sleep(0.02)


def _created(journal: Path, count: int) -> Callable[[], Awaitable[bool]]:
    """Whether the journal shows ``count`` created batches."""

    def count_created() -> int:
        return (journal.read_bytes() if journal.exists() else b"").count(b'"created"')

    async def check() -> bool:
        return count_created() >= count

    return check


def _server_batches(server: LocalModelServer) -> list[Any]:
    with openai.OpenAI(base_url=server.base_url, api_key="x") as client:
        return list(client.batches.list(limit=100))


async def test_inputs_in_three_files_equal_invoke_and_are_journaled(tmp_path: Path) -> None:
    with LocalModelServer() as server:
        chain = fact_chain(server)
        values = [{"n": i} for i in range(90)]
        records = await _run(_executor(chain, tmp_path, max_requests=40), values)
        batches = _server_batches(server)
        expected = await chain.abatch(values)  # the same model, the direct way
    assert sorted(records) == list(range(90))
    assert sorted(b.request_counts.total for b in batches) == [10, 40, 40]
    assert [records[i].output for i in range(90)] == expected
    assert all(r.error is None and r.attempts == 1 for r in records.values())
    assert records[7].usage is not None
    assert records[7].usage.total_tokens > 0
    entries = read_journal(journal_path(tmp_path / "out.jsonl"))
    assert sorted(len(e.requests) for e in entries) == [10, 40, 40]
    assert all(e.batch_id and e.collected for e in entries)
    assert {e.extra["base_url"] for e in entries} == {server.base_url + "/"}


async def test_transient_failures_go_to_follow_up_batches(tmp_path: Path) -> None:
    settings = LocalModelSettings(error_rate=0.3, error_statuses=(429, 503), seed=3)
    with LocalModelServer(settings) as server:
        executor = _executor(fact_chain(server), tmp_path, attempts=6)
        records = await _run(executor, [{"n": i} for i in range(60)])
        batches = _server_batches(server)
    assert sorted(records) == list(range(60))
    assert all(r.error is None for r in records.values())
    retried = [r for r in records.values() if r.attempts > 1]
    assert retried
    assert executor.resubmitted >= len(retried)
    assert len(batches) > 1  # the follow-ups
    assert sum(b.request_counts.total for b in batches) == 60 + executor.resubmitted


async def test_failures_left_after_the_retries_are_error_records(tmp_path: Path) -> None:
    settings = LocalModelSettings(error_rate=1.0, error_statuses=(429,))
    with LocalModelServer(settings) as server:
        records = await _run(_executor(fact_chain(server), tmp_path, attempts=2), [{"n": 1}])
    error = records[0].error
    assert error is not None
    assert (error.type, error.status, error.attempts) == ("BatchRequestError", 429, 2)
    assert "HTTP 429" in error.message
    assert "batch_" in error.message


async def test_an_expired_batch_ends_as_error_records(tmp_path: Path) -> None:
    with LocalModelServer(LocalModelSettings(batch_window=0)) as server:
        records = await _run(_executor(fact_chain(server), tmp_path, attempts=2), [{"n": 1}])
        assert [b.status for b in _server_batches(server)] == ["expired", "expired"]
    error = records[0].error
    assert error is not None
    assert "batch_expired" in error.message
    assert "completion window expired" in error.message
    assert error.attempts == 2  # an expired request is tried again once, then recorded


async def test_a_cancelled_batch_ends_as_error_records_without_retry(tmp_path: Path) -> None:
    with LocalModelServer(LocalModelSettings(batch_delay=5)) as server:
        executor = _executor(fact_chain(server), tmp_path, attempts=3)
        task = asyncio.ensure_future(_run(executor, [{"n": i} for i in range(5)]))
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="x") as client:

            async def listed() -> bool:
                return bool((await client.batches.list()).data)

            await _until(listed)
            batch = (await client.batches.list()).data[0]
            await client.batches.cancel(batch.id)
        records = await task
        assert len(_server_batches(server)) == 1
    assert sorted(records) == list(range(5))
    for record in records.values():
        assert record.error is not None
        assert "cancelled" in record.error.message
        assert record.attempts == 1


class _OneBadLine(OpenAIBatches):
    def request_line(self, custom_id: str, body: dict[str, Any]) -> bytes:
        line = super().request_line(custom_id, body)
        return b"{not json\n" if custom_id == "2-1" else line


async def test_a_malformed_line_fails_the_batch_with_its_line_number(tmp_path: Path) -> None:
    with LocalModelServer() as server:
        executor = _executor(fact_chain(server), tmp_path, attempts=3)
        assert isinstance(executor.provider, OpenAIBatches)
        executor.provider = _OneBadLine(executor.provider.client)
        records = await _run(executor, [{"n": i} for i in range(4)])
    assert sorted(records) == [0, 1, 2, 3]
    for record in records.values():
        assert record.error is not None
        assert "failed validation: line 3" in record.error.message
        assert "invalid_json_line" in record.error.message
        assert record.attempts == 1  # not worth another try


async def test_a_server_restart_between_polls_resubmits_what_it_lost(tmp_path: Path) -> None:
    settings = LocalModelSettings(batch_delay=30)
    first = LocalModelServer(settings).start()
    port = first.port
    executor = _executor(fact_chain(first), tmp_path, attempts=3, poll_interval=0.05)
    task = asyncio.ensure_future(_run(executor, [{"n": i} for i in range(8)]))
    journal = journal_path(tmp_path / "out.jsonl")
    await _until(_created(journal, 1))
    first.stop()
    await asyncio.sleep(0.3)  # polls fail: nobody listens
    with LocalModelServer(LocalModelSettings(), port=port):
        records = await task
    assert sorted(records) == list(range(8))
    assert all(r.error is None and r.attempts == 2 for r in records.values())
    assert executor.resubmitted == 8


async def test_a_resumed_run_reattaches_instead_of_resubmitting(tmp_path: Path) -> None:
    with LocalModelServer(LocalModelSettings(batch_delay=0.6)) as server:
        chain = fact_chain(server)
        values = [{"n": i} for i in range(30)]
        executor = _executor(chain, tmp_path, max_requests=10)
        task = asyncio.ensure_future(_run(executor, values))
        journal = journal_path(tmp_path / "out.jsonl")
        await _until(_created(journal, 3))
        task.cancel()  # Ctrl-C while waiting: the batches keep running
        with pytest.raises(asyncio.CancelledError):
            await task
        await executor.drain(0)
        resumed = openai_batch_executor(
            chain,
            name="fact",
            output=tmp_path / "out.jsonl",
            resume=True,
            attempts=1,
            settings=ProviderBatchSettings(**QUICK),
        )
        records = await _run(resumed, values)
        batches = _server_batches(server)
        sent: list[str] = []
        with openai.OpenAI(base_url=server.base_url, api_key="x") as client:
            for batch in batches:
                data = client.files.content(batch.input_file_id).read()
                sent += [orjson.loads(line)["custom_id"] for line in data.splitlines()]
    assert sorted(records) == list(range(30))
    assert all(r.error is None for r in records.values())
    assert len(batches) == 3  # nothing sent twice
    assert resumed.batches_created == 0
    assert sorted(sent) == sorted(f"{i}-1" for i in range(30))


@pytest.mark.parametrize("name", ["plain", "structured", "tools", "tool_message"])
async def test_run_batch_outputs_equal_the_local_backend_s(tmp_path: Path, name: str) -> None:
    values = [{"topic": f"the number {i}"} for i in range(15)]
    outputs: dict[str, list[Any]] = {}
    with LocalModelServer() as server:
        chain = batch_chains(_model(server))[name]
        for backend in ("local", "openai-batch"):
            extra: dict[str, Any] = {}
            if backend == "openai-batch":
                extra["provider"] = ProviderBatchSettings(**QUICK, max_requests=6)
            report = await run_batch(chain, values, backend=backend, progress=False, **extra)
            assert report.succeeded == len(values)
            outputs[backend] = [
                _blank(r.output) for r in sorted(report.results, key=lambda r: r.index)
            ]
    assert outputs["openai-batch"] == outputs["local"]


def _blank(value: Any) -> Any:
    """An AI message without what differs on every call (its ids)."""
    if isinstance(value, dict) and value.get("type") == "ai":
        metadata = {k: v for k, v in value["response_metadata"].items() if k != "id"}
        return {**value, "id": None, "response_metadata": metadata}
    return value


async def test_a_chain_with_another_model_is_refused_before_anything_is_sent() -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from chainkit.cli._app import describe_exception
    from chainkit.runners._batch_requests import UnbatchableChainError

    chain = FACT | FakeListChatModel(responses=["x"]) | StrOutputParser()
    with pytest.raises(UnbatchableChainError) as info:
        await run_batch(chain, [{"n": 1}], backend="openai-batch", progress=False)
    line, code = describe_exception(info.value)
    assert code == 2
    assert "FakeListChatModel is not an OpenAI-compatible chat model" in line
    assert "\n" not in line
