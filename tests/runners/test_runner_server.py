"""The runner against the real local model over loopback, through the real ChatOpenAI client."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda

from chainkit.callbacks import StreamCapture
from chainkit.models.local import LocalModelServer
from chainkit.runners import run_batch
from chainkit.testing import local_model_server
from tests.runners.conftest import FACT, fact_chain, fact_inputs, fact_model

FAST = {"progress": False, "backoff_base": 0.05, "backoff_max": 0.5}
MAX_TOKENS = 4


@pytest.fixture(scope="module")
def reuse_run() -> tuple[dict[int, str], dict[str, Any]]:
    """1,000 calm requests at max_concurrency 20: their answers and the server's stats."""
    import asyncio

    with local_model_server() as server:
        chain = fact_chain(server, max_tokens=MAX_TOKENS)
        report = asyncio.run(run_batch(chain, fact_inputs(1000), max_concurrency=20, **FAST))
        settle(server, 1000)
        stats = server.stats()
    assert report.failed == 0
    return {r.index: r.output for r in report.results}, stats


@pytest.fixture(scope="module")
def truth(reuse_run: tuple[dict[int, str], dict[str, Any]]) -> dict[int, str]:
    """The deterministic answer of each input (from a fault-free server)."""
    return reuse_run[0]


def number_of(prompt: str) -> int:
    found = re.search(r"number (\d+)", prompt)
    assert found is not None, prompt
    return int(found.group(1))


def settle(server: LocalModelServer, requests: int) -> None:
    """Wait until the server has logged ``requests`` requests (it logs after answering)."""
    import time

    deadline = time.monotonic() + 10
    while server.stats()["requests_total"] < requests and time.monotonic() < deadline:
        time.sleep(0.01)


def log_of(server: LocalModelServer) -> list[dict[str, Any]]:
    return sorted(server.request_log(), key=lambda e: e["t_start"])


def max_in_window(times: list[float], weights: list[float], width: float) -> float:
    """The largest total weight of requests starting within any window of ``width`` s."""
    best = 0.0
    end = 0
    total = 0.0
    for start in range(len(times)):
        while end < len(times) and times[end] < times[start] + width:
            total += weights[end]
            end += 1
        best = max(best, total)
        total -= weights[start]
    return best


# ---------------------------------------------------------------- exactly once


def test_exactly_once_under_faults(truth: dict[int, str]) -> None:
    """20% errors (429 with Retry-After, 500, 503), 5% cut streams, 2% hangs; 500 inputs."""
    import asyncio

    with local_model_server(
        error_rate=0.2,
        error_statuses=(429, 500, 503),
        retry_after=0.05,
        disconnect_rate=0.05,
        hang_rate=0.02,
        seed=11,
    ) as server:
        chain = fact_chain(server, max_tokens=MAX_TOKENS)
        report = asyncio.run(
            run_batch(
                chain,
                fact_inputs(500),
                max_concurrency=10,
                timeout=2.0,
                retries=8,
                stream=True,
                **FAST,
            )
        )
        settle(server, report.attempts)
        log = log_of(server)
        stats = server.stats()

    records = report.results
    assert len(records) == 500
    assert sorted(r.index for r in records) == list(range(500))  # one record per input
    assert report.failed == 0
    for record in records:
        assert record.output == truth[record.index]  # never another item's answer
    # every fault kind really happened, and was retried
    assert stats["faults"]["error"] > 50
    assert stats["faults"]["disconnect"] > 5
    assert stats["faults"]["hang"] > 2
    statuses = stats["requests"]["/v1/chat/completions"]
    assert {"429", "500", "503"} <= set(statuses)
    assert report.rate_limited == int(statuses["429"])
    assert report.retries == len(log) - 500

    # the server saw no call for an input after that input had succeeded
    by_number: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for entry in log:
        by_number[number_of(entry["prompt"])].append(entry)
    assert sorted(by_number) == list(range(500))
    for record in records:
        assert record.ended is not None
        succeeded_at = record.ended.timestamp()
        calls = by_number[record.index]
        assert len(calls) == record.attempts
        assert all(call["t_start"] <= succeeded_at for call in calls)
        assert any(call["outcome"] == "completed" for call in calls)


# ---------------------------------------------------------------- limits


def test_rpm_is_held_as_the_server_counts_it(calm: LocalModelServer) -> None:
    import asyncio

    calm.reset_stats()
    report = asyncio.run(
        run_batch(fact_chain(calm, max_tokens=4), fact_inputs(40), rpm=600, **FAST)
    )
    assert report.succeeded == 40
    settle(calm, 40)
    starts = [e["t_start"] for e in log_of(calm)]
    assert len(starts) == 40
    ones = [1.0] * len(starts)
    # 600 a minute is 10 a second: no second (nor two) holds more than its share
    assert max_in_window(starts, ones, 1.0) <= 10 + 1
    assert max_in_window(starts, ones, 2.0) <= 20 + 1
    assert max_in_window(starts, ones, 60.0) <= 600
    assert report.rate_limit_wait > 2.0  # it did have to wait


def test_tpm_is_held_as_the_server_counts_it(calm: LocalModelServer) -> None:
    import asyncio

    calm.reset_stats()
    report = asyncio.run(
        run_batch(fact_chain(calm, max_tokens=8), fact_inputs(14), tpm=3000, **FAST)
    )
    assert report.succeeded == 14
    settle(calm, 14)
    log = log_of(calm)
    starts = [e["t_start"] for e in log]
    tokens = [float(e["prompt_tokens"] + e["completion_tokens"]) for e in log]
    largest = max(tokens)
    # 3000 a minute is 50 a second: within a window, its share plus one call at most
    assert max_in_window(starts, tokens, 1.0) <= 50 + largest
    assert max_in_window(starts, tokens, 2.0) <= 100 + largest
    assert report.usage.total_tokens == sum(tokens)  # usage corrected the estimates


def test_max_concurrency_is_never_exceeded() -> None:
    import asyncio

    with local_model_server(latency="fixed:0.05") as server:
        report = asyncio.run(
            run_batch(fact_chain(server, max_tokens=4), fact_inputs(40), max_concurrency=4, **FAST)
        )
        stats = server.stats()
    assert report.succeeded == 40
    assert stats["max_in_flight"] <= 4
    assert report.max_in_flight <= 4


def test_connections_are_reused(reuse_run: tuple[dict[int, str], dict[str, Any]]) -> None:
    """1,000 requests at max_concurrency 20 open about 20 connections, not 1,000."""
    outputs, stats = reuse_run
    assert len(outputs) == 1000
    assert stats["requests_total"] == 1000
    assert stats["connections"] <= 25
    assert stats["max_in_flight"] <= 20


# ---------------------------------------------------------------- LangChain traps


def test_a_non_retryable_error_never_replaces_other_items_results(
    truth: dict[int, str],
) -> None:
    import asyncio

    def guard(value: dict[str, Any]) -> dict[str, Any]:
        if value["n"] in (3, 17):
            raise ValueError(f"input {value['n']} is not allowed")
        return value

    with local_model_server(error_rate=0.3, error_statuses=(500, 503), seed=5) as server:
        inner = (
            RunnableLambda(guard)
            | ChatPromptTemplate.from_template(FACT)
            | fact_model(server, max_tokens=MAX_TOKENS)
            | StrOutputParser()
        )
        chain = inner.with_retry(stop_after_attempt=4)  # the outer retry of the LangChain trap
        report = asyncio.run(
            run_batch(chain, fact_inputs(30), max_concurrency=8, retries=8, **FAST)
        )
    records = {r.index: r for r in report.results}
    assert sorted(records) == list(range(30))
    for i, record in records.items():
        if i in (3, 17):
            assert record.error is not None
            assert record.error.type == "ValueError"
            assert record.attempts == 1  # the default with_retry would have retried a bug
        else:
            assert record.output == truth[i]
    assert report.retries > 0


def test_an_outer_with_retry_is_not_skipped_when_streaming(calm: LocalModelServer) -> None:
    """RunnableRetry wraps invoke/batch only; under astream it is silently skipped."""
    import asyncio

    class FlakyError(Exception):
        pass

    seen: Counter[int] = Counter()

    def flaky(value: dict[str, Any]) -> dict[str, Any]:
        seen[value["n"]] += 1
        if seen[value["n"]] == 1:
            raise FlakyError(f"first call for {value['n']}")
        return value

    chain = (
        RunnableLambda(flaky)
        | ChatPromptTemplate.from_template(FACT)
        | fact_model(calm, max_tokens=4)
        | StrOutputParser()
    ).with_retry(retry_if_exception_type=(FlakyError,), stop_after_attempt=3)

    async def plain_astream() -> None:
        async for _ in chain.astream({"n": 99}):
            pass

    with pytest.raises(FlakyError):  # the trap, without the runner
        asyncio.run(plain_astream())

    report = asyncio.run(
        run_batch(chain, fact_inputs(6), retries=0, stream=True, max_concurrency=3, **FAST)
    )
    assert report.succeeded == 6
    assert all(r.attempts == 2 for r in report.results)
    assert any("with_retry(stop_after_attempt=3)" in note for note in report.notes)


def test_retries_never_stack() -> None:
    """SDK max_retries=2 under with_retry(3) would be 9 HTTP calls; the runner makes 3."""
    import asyncio

    with local_model_server(error_rate=1.0, error_statuses=(500,)) as server:
        model = fact_model(server, max_tokens=4, max_retries=2)
        chain = (ChatPromptTemplate.from_template(FACT) | model | StrOutputParser()).with_retry(
            stop_after_attempt=3
        )
        report = asyncio.run(run_batch(chain, fact_inputs(3), retries=1, **FAST))
        settle(server, 9)
        per_prompt = Counter(e["prompt_digest"] for e in server.request_log())
    assert report.failed == 3
    assert sorted(per_prompt.values()) == [3, 3, 3]
    for record in report.results:
        assert record.error is not None
        assert (record.error.status, record.attempts) == (500, 3)
        assert record.error.type in ("InternalServerError", "OpenAIAPIError")
    assert model.max_retries == 2  # the caller's model is untouched


# ---------------------------------------------------------------- streaming and capture


def test_stream_mode_measures_ttft_and_feeds_capture_handlers() -> None:
    import asyncio

    capture = StreamCapture(strict=True)
    with local_model_server(ttft=0.02, token_delay=0.002) as server:
        report = asyncio.run(
            run_batch(
                fact_chain(server, max_tokens=MAX_TOKENS),
                fact_inputs(12),
                stream=True,
                callbacks=[capture],
                max_concurrency=4,
                **FAST,
            )
        )
    assert report.succeeded == 12
    for record in report.results:
        assert record.ttft is not None
        assert 0.0 < record.ttft <= record.latency  # type: ignore[operator]
        assert record.usage is not None
        assert record.usage.output_tokens > 0
    assert report.ttft_p50 is not None
    assert report.usage.total_tokens == sum(r.usage.total_tokens for r in report.results)  # type: ignore[union-attr]
    roots = capture.roots
    assert len(roots) == 12
    assert sorted(r.metadata["chainkit_index"] for r in roots) == list(range(12))
    models = [run for root in roots for _, run in root.walk() if run.is_model]
    assert all(run.chunks for run in models)


def test_a_fresh_loop_per_sync_call_keeps_working(calm: LocalModelServer) -> None:
    """run_batch_sync twice (two event loops) on one cached HTTP client."""
    from chainkit.runners import run_batch_sync

    chain = fact_chain(calm, max_tokens=4)
    first = run_batch_sync(chain, fact_inputs(5), **FAST)
    second = run_batch_sync(chain, fact_inputs(5), **FAST)
    assert first.succeeded == second.succeeded == 5
    assert sorted((r.index, r.output) for r in first.results) == sorted(
        (r.index, r.output) for r in second.results
    )


def test_window_counts_helper() -> None:
    times = [0.0, 0.5, 0.9, 1.0, 1.4, 3.0]
    assert max_in_window(times, [1.0] * 6, 1.0) == 4  # [0.5, 1.5)
    assert max_in_window(times, [1.0, 1, 1, 5, 1, 1], 1.0) == 8
    assert max_in_window(times, [1.0] * 6, 0.1) == 1
