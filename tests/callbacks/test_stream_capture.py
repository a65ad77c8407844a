"""StreamCapture on the local model: what it records equals what callers saw."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from langchain_core.callbacks.manager import adispatch_custom_event
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_openai import ChatOpenAI

import chainkit.callbacks
from chainkit.callbacks import StreamCapture
from chainkit.testing import local_model_server
from chainkit.trace import Run, Trace
from tests.callbacks.conftest import song_chain
from tests.conftest import assert_no_canary


def model_run(capture: StreamCapture, root_id: UUID) -> Run:
    runs = [run for _, run in capture[root_id].walk() if run.is_model]
    assert len(runs) == 1
    return runs[0]


def test_public_api() -> None:
    assert chainkit.callbacks.__all__ == sorted(
        chainkit.callbacks.__all__, key=lambda n: (not n[0].isupper(), n)
    )
    for name in ("StreamCapture", "EventCapture", "StreamPrinter", "capture", "record_events"):
        assert name in chainkit.callbacks.__all__
    assert StreamCapture.run_inline is True


@pytest.mark.slow
async def test_200_concurrent_astreams_each_get_their_own_chunks(model: ChatOpenAI) -> None:
    chain = song_chain(model.bind(max_tokens=8))
    capture = StreamCapture(strict=True)

    async def one(i: int) -> tuple[UUID, list[str]]:
        run_id = uuid4()
        config: RunnableConfig = {"callbacks": [capture], "run_id": run_id}
        seen = [chunk async for chunk in chain.astream({"topic": f"topic number {i}"}, config)]
        return run_id, seen

    results = await asyncio.gather(*(one(i) for i in range(200)))
    assert len(capture.roots) == 200
    texts = set()
    for run_id, seen in results:
        root = capture[run_id]
        assert root.parent_run_id is None
        assert root.status == "ok"
        assert [r.kind for _, r in root.walk()] == ["chain", "prompt", "chat_model", "parser"]
        mrun = model_run(capture, run_id)
        assert [text for _, text in mrun.chunks] == seen  # complete, in order, ours alone
        times = [t for t, _ in mrun.chunks]
        assert times == sorted(times)
        assert mrun.text == "".join(seen) == root.outputs
        assert mrun.start is not None
        assert mrun.end is not None
        assert mrun.start <= times[0] <= times[-1] <= mrun.end
        assert mrun.ttft is not None
        assert 0 <= mrun.ttft <= mrun.latency  # type: ignore[operator]
        assert mrun.usage is not None
        assert mrun.usage["output_tokens"] == 8
        texts.add(mrun.text)
    assert len(texts) > 20  # the prompts differ, so do the answers
    summary = capture.summary()
    assert summary.calls == 200
    assert summary.errors == 0


def test_sync_stream_matches_and_derives_timings(
    sync_chain: Runnable[dict[str, Any], str],
) -> None:
    capture = StreamCapture(strict=True)
    run_id = uuid4()
    seen = list(
        sync_chain.stream({"topic": "goldfish"}, {"callbacks": [capture], "run_id": run_id})
    )
    model = model_run(capture, run_id)
    assert [text for _, text in model.chunks] == seen
    assert len(model.text_chunks) >= 5
    assert model.chunks_per_s is not None
    assert model.chunks_per_s > 0
    assert model.gap_p50 is not None
    assert model.gap_p95 is not None
    assert model.gap_p50 <= model.gap_p95
    assert capture[run_id].ttft == pytest.approx(
        model.chunks[1][0] - capture[run_id].start  # type: ignore[operator]
    )
    assert capture[run_id].total_usage["total_tokens"] == model.usage["total_tokens"]  # type: ignore[index]


def test_batch_in_threads_keeps_calls_apart(sync_chain: Runnable[dict[str, Any], str]) -> None:
    capture = StreamCapture(strict=True)
    topics = [f"rivers {i}" for i in range(6)]
    outputs = sync_chain.batch(
        [{"topic": t} for t in topics], {"callbacks": [capture], "max_concurrency": 3}
    )
    assert len(capture.roots) == 6
    by_output = {root.outputs: root for root in capture.roots}
    assert set(by_output) == set(outputs)
    for root in capture.roots:
        (model,) = [r for _, r in root.walk() if r.is_model]
        assert model.text == root.outputs


def test_invoke_without_streaming_records_the_final_text(
    sync_chain: Runnable[dict[str, Any], str],
) -> None:
    # invoke does not stream: no token callbacks, so no chunks, but the text is kept
    capture = StreamCapture(strict=True)
    run_id = uuid4()
    output = sync_chain.invoke({"topic": "tea"}, {"callbacks": [capture], "run_id": run_id})
    model = model_run(capture, run_id)
    assert model.chunks == []
    assert model.text == output
    assert model.ttft is None
    assert model.latency is not None
    assert model.usage is not None
    assert model.usage["total_tokens"] > 0


async def test_ainvoke_and_abatch(chain: Runnable[dict[str, Any], str]) -> None:
    capture = StreamCapture(strict=True)
    one = await chain.ainvoke({"topic": "a"}, {"callbacks": [capture]})
    many = await chain.abatch([{"topic": "b"}, {"topic": "c"}], {"callbacks": [capture]})
    assert sorted(root.outputs for root in capture.roots) == sorted([one, *many])
    assert all(root.status == "ok" for root in capture.roots)


async def test_streaming_model_invoke_has_chunks() -> None:
    capture = StreamCapture(strict=True)
    model = ChatOpenAI(
        base_url=_local_base_url(),
        api_key="x",
        model="chainkit-local",
        streaming=True,  # type: ignore[arg-type]
        max_tokens=10,
    )
    run_id = uuid4()
    message = model.invoke("Write a haiku about tea.", {"callbacks": [capture], "run_id": run_id})
    run = capture[run_id]
    assert run.chunks
    assert run.text == message.content


def _local_base_url() -> str:
    from chainkit.models.local import ensure_server

    return ensure_server().base_url


async def test_error_mid_stream_keeps_partial_text(http_client: httpx.AsyncClient) -> None:
    with local_model_server(disconnect_rate=1.0) as server:
        model = ChatOpenAI(
            base_url=server.base_url,
            api_key="x",  # type: ignore[arg-type]
            model="chainkit-local",
            max_retries=0,
            http_async_client=http_client,
        )
        chain = song_chain(model)
        # without capture: what the caller gets
        with pytest.raises(Exception) as plain:  # noqa: PT011 - compared below
            await _drain(chain.astream({"topic": "storms"}))
        capture = StreamCapture(strict=True)
        run_id = uuid4()
        seen: list[str] = []
        config: RunnableConfig = {"callbacks": [capture], "run_id": run_id}
        with pytest.raises(Exception) as captured:  # noqa: PT011
            await _drain(chain.astream({"topic": "storms"}, config), seen)
    assert type(captured.value) is type(plain.value)  # unchanged by the capture
    assert str(captured.value) == str(plain.value)
    assert seen  # the stream was cut part-way
    model_ = model_run(capture, run_id)
    assert model_.status == "error"
    assert model_.error is not None
    assert model_.error.type == type(captured.value).__name__
    assert model_.error.message == str(captured.value)
    assert model_.text == "".join(seen)
    root = capture[run_id]
    assert root.status == "error"
    assert capture.summary().errors == 1


async def _drain(stream: Any, into: list[Any] | None = None) -> None:
    """Consume ``stream``, keeping its chunks in ``into`` even when it raises."""
    async for chunk in stream:
        if into is not None:
            into.append(chunk)


def test_error_record_in_file_keeps_partial_text(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with local_model_server(disconnect_rate=1.0) as server:
        model = ChatOpenAI(
            base_url=server.base_url,
            api_key="x",
            model="chainkit-local",
            max_retries=0,  # type: ignore[arg-type]
        )
        capture = StreamCapture(path)
        seen: list[str] = []

        def consume() -> None:
            for chunk in song_chain(model).stream({"topic": "x"}, {"callbacks": [capture]}):
                seen.append(chunk)  # noqa: PERF402 - kept even when the stream raises

        with pytest.raises(Exception):  # noqa: PT011, B017 - any error, recorded below
            consume()
        capture.trace.close()
    loaded = Trace.load(path)
    (model_,) = [r for r in loaded.runs if r.is_model]
    assert model_.status == "error"
    assert model_.text == "".join(seen)


class _Broken(StreamCapture):
    def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
        raise RuntimeError("handler bug")


def test_a_broken_handler_never_breaks_the_chain(
    sync_chain: Runnable[dict[str, Any], str], caplog: pytest.LogCaptureFixture
) -> None:
    expected = "".join(sync_chain.stream({"topic": "owls"}))
    with caplog.at_level(logging.WARNING):
        got = "".join(sync_chain.stream({"topic": "owls"}, {"callbacks": [_Broken()]}))
    assert got == expected
    assert "handler bug" in caplog.text
    with pytest.raises(RuntimeError, match="handler bug"):
        list(sync_chain.stream({"topic": "owls"}, {"callbacks": [_Broken(strict=True)]}))


async def test_a_broken_handler_never_breaks_the_async_chain(
    chain: Runnable[dict[str, Any], str],
) -> None:
    expected = await chain.ainvoke({"topic": "owls"})
    got = "".join([c async for c in chain.astream({"topic": "owls"}, {"callbacks": [_Broken()]})])
    assert got == expected
    with pytest.raises(RuntimeError, match="handler bug"):
        await _drain(chain.astream({"topic": "owls"}, {"callbacks": [_Broken(strict=True)]}))


def test_retries_are_recorded() -> None:
    calls = {"n": 0}

    def flaky(x: str) -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError(f"try {calls['n']}")
        return x.upper()

    capture = StreamCapture(strict=True)
    runnable = RunnableLambda(flaky).with_retry(
        stop_after_attempt=3,
        wait_exponential_jitter=False,
        retry_if_exception_type=(ConnectionError,),
    )
    assert runnable.invoke("ok", {"callbacks": [capture]}) == "OK"
    retried = [r for r in capture.runs if r.retries]
    assert len(retried) == 1
    assert retried[0].retries == 2
    assert capture.summary().retries == 2
    kinds = [type(r).__name__ for r in capture.trace.records]
    assert kinds.count("Retry") == 2


async def test_custom_events_are_recorded() -> None:
    async def step(x: str, config: RunnableConfig) -> str:
        await adispatch_custom_event("progress", {"done": 0.5}, config=config)
        return x

    capture = StreamCapture(strict=True)
    await RunnableLambda(step).ainvoke("x", {"callbacks": [capture]})
    (custom,) = [r for r in capture.trace.records if r.type == "custom"]
    assert custom.name == "progress"  # type: ignore[union-attr]
    assert custom.data == {"done": 0.5}  # type: ignore[union-attr]


async def test_trace_file_and_canary(tmp_path: Path, http_client: httpx.AsyncClient) -> None:
    # ChatOpenAI here takes OPENAI_API_KEY, the canary, from the environment
    with local_model_server() as server:
        model = ChatOpenAI(
            base_url=server.base_url,
            model="chainkit-local",
            max_tokens=12,
            http_async_client=http_client,
        )
        capture = StreamCapture(tmp_path / "trace.jsonl")
        config: RunnableConfig = {"callbacks": [capture], "metadata": {"note": "x"}}
        async for _ in song_chain(model).astream({"topic": "keys"}, config):
            pass
        song_chain(model).invoke({"topic": "keys"}, config)
        capture.trace.close()
    assert_no_canary(tmp_path)
    loaded = Trace.load(tmp_path / "trace.jsonl")
    assert len(loaded.roots) == 2
    assert [r.text for r in loaded.runs if r.is_model] == [
        r.text for r in capture.runs if r.is_model
    ]


def test_lookup_and_repr(sync_chain: Runnable[dict[str, Any], str]) -> None:
    capture = StreamCapture()
    run_id = uuid4()
    sync_chain.invoke({"topic": "x"}, {"callbacks": [capture], "run_id": run_id})
    assert capture.get(run_id) is capture[run_id] is capture.get(str(run_id))
    assert capture.get(uuid4()) is None
    with pytest.raises(KeyError):
        capture[uuid4()]
    assert "StreamCapture" in repr(capture)
    assert "<table>" in capture._repr_html_()
    assert "RunnableSequence" in repr(capture[run_id])
