"""The runner's parts: error classification, backoff, rate buckets, AIMD, files, chain prep."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import orjson
import pytest
from langchain_core.exceptions import OutputParserException
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import OpenAIContextOverflowError

from chainkit.runners import RetryPolicy, classify_error
from chainkit.runners._limits import AdaptiveConcurrency, RateBucket
from chainkit.runners._output import compact_results, repair_partial_line, scan_results
from chainkit.runners._prepare import prepare_chain
from chainkit.runners._retry import AttemptTimeoutError, parse_retry_after

REQUEST = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")


def status_error(cls: type[openai.APIStatusError], status: int, **headers: str) -> Any:
    response = httpx.Response(status, headers=headers, request=REQUEST)
    return cls("boom", response=response, body=None)


# ---------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("error", "transient", "status"),
    [
        (status_error(openai.RateLimitError, 429), True, 429),
        (status_error(openai.InternalServerError, 500), True, 500),
        (status_error(openai.InternalServerError, 503), True, 503),
        (status_error(openai.APIStatusError, 408), True, 408),
        (status_error(openai.ConflictError, 409), True, 409),
        (status_error(openai.BadRequestError, 400), False, 400),
        (status_error(openai.AuthenticationError, 401), False, 401),
        (status_error(openai.NotFoundError, 404), False, 404),
        (status_error(openai.UnprocessableEntityError, 422), False, 422),
        (status_error(OpenAIContextOverflowError, 400), False, 400),
        (openai.APIConnectionError(request=REQUEST), True, None),
        (openai.APITimeoutError(request=REQUEST), True, None),
        (httpx.RemoteProtocolError("peer closed connection"), True, None),
        (httpx.ReadTimeout("read timed out"), True, None),
        (httpx.ConnectError("refused"), True, None),
        (httpx2.RemoteProtocolError("incomplete chunked read"), True, None),
        (httpx2.ReadTimeout("read timed out"), True, None),
        (ConnectionResetError("reset"), True, None),
        (AttemptTimeoutError(1.0), True, None),
        (KeyError("topic"), False, None),
        (OutputParserException("not JSON"), False, None),
        (ValueError("nope"), False, None),
    ],
)
def test_transient_errors_are_told_from_the_rest(
    error: Exception, transient: bool, status: int | None
) -> None:
    kind = classify_error(error)
    assert kind.transient is transient
    assert kind.status == status


def test_langchain_model_errors_follow_is_retryable() -> None:
    from langchain_core.exceptions import ModelAuthenticationError, ModelRateLimitError

    assert classify_error(ModelRateLimitError("slow")).transient
    assert not classify_error(ModelAuthenticationError("who")).transient


def test_retry_after_headers_are_parsed() -> None:
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "1.5", "retry-after-ms": "20"}) == 0.02
    now = datetime(2030, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"retry-after": later}, now=now.timestamp()) == 30.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "-4"}) is None
    assert parse_retry_after({}) is None
    error = status_error(openai.RateLimitError, 429, **{"retry-after-ms": "50"})
    assert classify_error(error).retry_after == 0.05


def test_backoff_is_full_jitter_and_honours_retry_after_capped() -> None:
    policy = RetryPolicy(
        backoff_base=0.5, backoff_max=4.0, max_retry_after=2.0, rng=random.Random(1)
    )
    for attempt in range(1, 8):
        ceiling = min(4.0, 0.5 * 2 ** (attempt - 1))
        waits = [policy.wait_for(attempt, None) for _ in range(200)]
        assert all(0.0 <= w <= ceiling for w in waits)
        assert max(waits) > 0.7 * ceiling  # spread over the whole range ...
        assert min(waits) < 0.3 * ceiling  # ... from zero up: full jitter
    told = status_error(openai.RateLimitError, 429, **{"retry-after": "1"})
    assert all(1.0 <= policy.wait_for(1, told) <= 1.1 for _ in range(50))
    greedy = status_error(openai.RateLimitError, 429, **{"retry-after": "600"})
    assert all(2.0 <= policy.wait_for(1, greedy) <= 2.2 for _ in range(50))  # capped


def test_policy_retries_extra_types_and_never_cancellation() -> None:
    class FlakyError(Exception):
        pass

    policy = RetryPolicy(extra_retry_on=(FlakyError,))
    assert policy.should_retry(FlakyError())
    assert not policy.should_retry(ValueError())
    assert not policy.should_retry(asyncio.CancelledError())
    assert not policy.should_retry(KeyboardInterrupt())


# ---------------------------------------------------------------- limits


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    from chainkit.runners import _limits

    fake = FakeClock()
    monkeypatch.setattr(_limits.time, "monotonic", fake.monotonic)
    return fake


async def test_rate_bucket_spaces_calls_and_corrects_costs(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chainkit.runners import _limits

    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    monkeypatch.setattr(_limits.asyncio, "sleep", fake_sleep)
    bucket = RateBucket(600)  # 10 a second, no burst
    for _ in range(5):
        await bucket.acquire(1)
    assert slept == pytest.approx([0.1, 0.1, 0.1, 0.1])

    tokens = RateBucket(6000)  # 100 tokens a second
    await tokens.acquire(300)  # admitted at once, leaves a debt of 299
    slept.clear()
    tokens.adjust(-200)  # the call used 200 fewer tokens than estimated
    await tokens.acquire(50)
    assert sum(slept) == pytest.approx(1.0)  # the remaining debt (99 + 1) at 100/s


async def test_adaptive_concurrency_halves_on_429_and_recovers(clock: FakeClock) -> None:
    limiter = AdaptiveConcurrency(8, decrease_interval=1.0)
    limiter.on_rate_limited(0.0)
    assert limiter.effective_limit == 4
    limiter.on_rate_limited(0.0)  # the same burst: no second halving
    assert limiter.effective_limit == 4
    clock.now += 1.5
    limiter.on_rate_limited(0.0)
    assert limiter.effective_limit == 2
    for _ in range(4):  # one round of successes adds about one slot
        limiter.on_success()
    assert limiter.effective_limit == 3
    for _ in range(100):
        limiter.on_success()
    assert limiter.effective_limit == 8  # never above the ceiling
    assert limiter.rate_limited == 3
    assert limiter.min_limit == 2


async def test_adaptive_concurrency_bounds_in_flight_and_hands_slots_over() -> None:
    limiter = AdaptiveConcurrency(2)
    peak = 0

    async def user() -> None:
        nonlocal peak
        await limiter.acquire()
        peak = max(peak, limiter.in_flight)
        await asyncio.sleep(0.001)
        limiter.release()

    await asyncio.gather(*(user() for _ in range(20)))
    assert peak == 2
    assert limiter.in_flight == 0
    assert limiter.max_in_flight == 2


async def test_cooldown_pauses_new_attempts() -> None:
    limiter = AdaptiveConcurrency(4)
    limiter.on_rate_limited(0.05)
    waited = await limiter.acquire()
    limiter.release()
    assert waited > 0
    assert limiter.cooldown_waited == waited


# ---------------------------------------------------------------- files


def test_partial_last_line_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": 3')
    assert repair_partial_line(path) == len(b'{"c": 3')
    assert path.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    assert repair_partial_line(path) == 0
    only = tmp_path / "only.jsonl"
    only.write_bytes(b'{"header": {"form')
    repair_partial_line(only)
    assert only.read_bytes() == b""


def test_scan_keeps_statuses_compactly(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    lines = [
        {"header": {"chain": {"name": "c", "fingerprint": "f"}, "created": "2030-01-01T00:00:00Z"}},
        {"index": 0, "id": 0, "error": None},
        {"index": 2, "id": "two", "error": {"type": "X", "message": "m"}},
        {"index": 1, "id": 1, "error": None},
    ]
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines) + b"garbage\n")
    state = scan_results(path)
    assert state.header is not None
    assert state.header.chain.name == "c"
    assert (state.succeeded, state.failed, state.corrupt) == (2, 1, 1)
    assert state.recorded_id(2) == "two"
    assert state.recorded_id(1) == 1
    assert state.ids == {2: "two"}  # ids equal to their index are not stored


def test_compaction_keeps_the_last_record_of_rerun_indexes(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    lines = [
        {"header": {"x": 1}},
        {"index": 0, "error": {"type": "X"}},
        {"index": 1, "error": None},
        {"header": {"x": 2}},
        {"index": 0, "error": None, "output": "fixed"},
    ]
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    assert compact_results(path, {0}) == 1
    kept = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    assert [k.get("index") for k in kept] == [None, 1, None, 0]
    assert kept[-1]["output"] == "fixed"


# ---------------------------------------------------------------- chain preparation


def _model(**kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(base_url="http://127.0.0.1:9/v1", api_key="x", model="m", **kwargs)


def test_client_retries_are_turned_off_in_a_copy() -> None:
    model = _model(max_retries=5, max_tokens=64)
    prompt = ChatPromptTemplate.from_template("about {topic}")
    chain = prompt | RunnableParallel(a=model, b=model.bind(stop=["x"])) | RunnableLambda(str)
    prepared = prepare_chain(chain)

    found = prepared.models
    assert len(found) == 1
    assert all(m.max_retries == 5 for m in found)  # type: ignore[attr-defined]
    assert model.max_retries == 5  # the caller's chain is untouched
    assert model.async_client._client.max_retries == 5

    copies = prepared.runnable.middle[0].steps__  # type: ignore[attr-defined]
    assert copies["a"].max_retries == 0
    assert copies["a"].async_client._client.max_retries == 0
    assert copies["a"].root_async_client.max_retries == 0
    assert copies["b"].bound.async_client._client.max_retries == 0
    # one model object stays one copy, with a connection pool of the batch's own
    assert copies["b"].bound is copies["a"]
    assert copies["a"].root_async_client._client is not model.root_async_client._client
    assert prepared.http_pool is not None
    assert copies["a"].root_async_client._client is prepared.http_pool.httpx_client
    assert prepared.max_tokens == 64
    assert prepared.required_vars == {"topic"}
    assert any("max_retries=5" in note for note in prepared.notes)


def test_with_retry_is_folded_into_the_runners_policy() -> None:
    class FlakyError(Exception):
        pass

    inner = ChatPromptTemplate.from_template("{x}") | _model() | StrOutputParser()
    chain = inner.with_retry(stop_after_attempt=6, retry_if_exception_type=(FlakyError,))
    prepared = prepare_chain(chain)
    assert prepared.folded_attempts == 6
    assert prepared.retry_types == (FlakyError,)
    assert type(prepared.runnable).__name__ == "RunnableSequence"
    assert any("with_retry(stop_after_attempt=6)" in note for note in prepared.notes)


def test_fingerprint_ignores_endpoint_and_key_but_not_prompt_or_model() -> None:
    prompt = ChatPromptTemplate.from_template("about {topic}")

    def fp(chain: Any) -> str:
        return prepare_chain(chain).identity.fingerprint

    base = fp(prompt | _model(temperature=0))
    moved = ChatOpenAI(base_url="http://127.0.0.1:10/v1", api_key="y", model="m", temperature=0)
    assert fp(prompt | moved) == base
    assert fp(prompt | _model(temperature=0, max_retries=9)) == base
    assert fp(prompt | _model(temperature=0.5)) != base
    assert fp(ChatPromptTemplate.from_template("on {topic}") | _model(temperature=0)) != base
    assert fp(prompt | _model(temperature=0) | StrOutputParser()) != base


def test_the_public_api_is_a_sorted_all() -> None:
    from chainkit import runners

    # the order is ruff's (RUF022: constants, classes, functions), checked by the linter
    assert len(set(runners.__all__)) == len(runners.__all__)
    assert all(hasattr(runners, name) for name in runners.__all__)
    for name in ("run_batch", "run_batch_sync", "iter_results", "BatchReport", "ResultRecord"):
        assert name in runners.__all__
