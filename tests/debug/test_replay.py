"""ReplayChatModel: recorded chunks, recorded gaps, recorded errors, offline."""

from __future__ import annotations

from types import SimpleNamespace

import openai
import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from chainkit.callbacks import StreamCapture
from chainkit.debug import ReplayChatModel, _replay, rebuild_error
from chainkit.debug._sample import FAILURE, synthetic_trace
from chainkit.errors import RecordedError, ReplayExhaustedError, UserError
from chainkit.runners import classify_error
from chainkit.trace import ErrorInfo, Run, Trace
from tests.debug.conftest import TOPIC, Recordings


def _model_runs(trace: Trace) -> list[Run]:
    return [run for run in trace.runs if run.is_model]


def _texts(run: Run) -> list[str]:
    return [text for _, text in run.chunks]


def test_stream_yields_the_recorded_chunks() -> None:
    trace = synthetic_trace(1, chunks=8)
    recorded = _model_runs(trace)[0]
    model = ReplayChatModel.from_trace(trace)
    capture = StreamCapture(strict=True)
    chunks = [c.content for c in model.stream("anything", config={"callbacks": [capture]})]
    assert chunks == _texts(recorded)
    replayed = _model_runs(capture.trace)[0]
    assert _texts(replayed) == _texts(recorded)
    assert replayed.usage == recorded.usage
    assert replayed.text == recorded.text


async def test_sync_and_async_paths_agree() -> None:
    trace = synthetic_trace(1, chunks=6)
    model = ReplayChatModel.from_trace(trace)
    expected = _model_runs(trace)[0].text
    assert model.invoke("x").content == expected
    assert (await model.ainvoke("x")).content == expected
    assert "".join(str(c.content) for c in model.stream("x")) == expected
    assert "".join([str(c.content) async for c in model.astream("x")]) == expected


async def test_invoke_reports_the_recorded_chunks_to_handlers() -> None:
    trace = synthetic_trace(1, chunks=5)
    for call in ("invoke", "ainvoke"):
        capture = StreamCapture(strict=True)
        model = ReplayChatModel.from_trace(trace)
        result = getattr(model, call)("x", config={"callbacks": [capture]})
        if call == "ainvoke":
            await result
        assert _texts(_model_runs(capture.trace)[0]) == _texts(_model_runs(trace)[0])


def _waits(monkeypatch: pytest.MonkeyPatch, model: ReplayChatModel) -> list[float]:
    """The seconds ``model.stream`` sleeps, asked of its clock instead of measured."""
    waits: list[float] = []
    monkeypatch.setattr(_replay, "time", SimpleNamespace(sleep=waits.append))
    list(model.stream("x"))
    return waits


def test_timing_replays_the_recorded_gaps(monkeypatch: pytest.MonkeyPatch) -> None:
    trace = synthetic_trace(1, chunks=10)
    recorded = _model_runs(trace)[0]
    assert recorded.ttft is not None
    waits = _waits(monkeypatch, ReplayChatModel.from_trace(trace, timing=True))
    gaps = len(recorded.gaps)
    assert gaps == 8
    # the waits before the first chunk with text add up to the recorded time to first
    # chunk; then one wait per recorded gap between chunks with text
    assert sum(waits[:-gaps]) == pytest.approx(recorded.ttft)
    assert waits[-gaps:] == pytest.approx(recorded.gaps)


def test_speed_scales_the_gaps_and_no_timing_means_no_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trace = synthetic_trace(1, chunks=10)
    recorded = _model_runs(trace)[0]
    assert recorded.latency is not None
    slow = _waits(monkeypatch, ReplayChatModel.from_trace(trace, timing=True))
    fast = _waits(monkeypatch, ReplayChatModel.from_trace(trace, timing=True, speed=1000.0))
    assert fast == pytest.approx([wait / 1000 for wait in slow])
    assert sum(slow) > 0
    assert _waits(monkeypatch, ReplayChatModel.from_trace(trace)) == []


async def test_a_failure_reproduces_offline() -> None:
    trace = synthetic_trace(2, fail_every=2)
    failed = next(run for run in _model_runs(trace) if run.error is not None)
    model = ReplayChatModel.from_trace(trace, run=failed.run_id)
    capture = StreamCapture(strict=True)
    got: list[str] = []

    async def consume() -> None:
        async for chunk in model.astream("x", {"callbacks": [capture]}):
            got.append(str(chunk.content))  # noqa: PERF401 - kept as the error interrupts

    with pytest.raises(openai.InternalServerError) as caught:
        await consume()
    assert got == _texts(failed)
    assert caught.value.status_code == 500
    assert str(caught.value) == FAILURE.message
    assert classify_error(caught.value).transient  # the runner would retry it, as live
    replayed = _model_runs(capture.trace)[0]
    assert replayed.error is not None
    assert replayed.error.type == "InternalServerError"
    assert _texts(replayed) == _texts(failed)


def test_rebuilt_errors() -> None:
    timeout = rebuild_error(ErrorInfo("TimeoutError", "took too long"))
    assert type(timeout) is TimeoutError
    limited = rebuild_error(ErrorInfo("RateLimitError", "Error code: 429 - slow down"))
    assert isinstance(limited, openai.RateLimitError)
    assert limited.status_code == 429
    cut = rebuild_error(ErrorInfo("APIConnectionError", "Connection error."))
    assert isinstance(cut, openai.APIConnectionError)
    odd = rebuild_error(ErrorInfo("WeirdVendorError", "teapot"))
    assert isinstance(odd, RecordedError)
    assert type(odd).__name__ == "WeirdVendorError"
    assert str(odd) == "teapot"
    cancelled = rebuild_error(ErrorInfo("GeneratorExit", ""))
    assert isinstance(cancelled, RecordedError)  # never a real cancellation


def test_several_recordings_answer_by_prompt_then_in_order() -> None:
    trace = synthetic_trace(3)
    model = ReplayChatModel.from_trace(trace)
    assert len(model.recordings) == 3
    # the second call's prompt is answered by the second recording, even first
    second = model.invoke("Write about topic 1.").content
    assert second == _model_runs(trace)[1].text
    first = model.invoke("something else").content
    assert first == _model_runs(trace)[0].text
    model.invoke("still something else")
    with pytest.raises(ReplayExhaustedError, match="3 model runs"):
        model.invoke("one call too many")
    model.reset()
    assert model.invoke("again").content == _model_runs(trace)[0].text


def test_from_trace_misuse(tmp_path: object) -> None:
    trace = Trace()
    trace.run_started("r", name="lonely", kind="chain", t=1.0)
    trace.run_ended("r", outputs="x", t=2.0)
    with pytest.raises(UserError, match="no model run to replay"):
        ReplayChatModel.from_trace(trace)
    with pytest.raises(UserError, match="no run 'nope'"):
        ReplayChatModel.from_trace(synthetic_trace(1), run="nope")


def test_a_whole_chain_replays_from_its_recording(recordings: Recordings) -> None:
    from chainkit.chains import outline_story

    recorded = Trace.load(recordings.ok)
    model = ReplayChatModel.from_trace(recordings.ok)
    capture = StreamCapture(strict=True)
    output = outline_story(model).invoke(TOPIC, config={"callbacks": [capture]})
    root = recorded.roots[0]
    assert root.outputs is not None
    assert output["story"] == root.outputs["story"]
    by_prompt = {str(run.inputs): _texts(run) for run in _model_runs(recorded)}
    for run in _model_runs(capture.trace):
        assert _texts(run) == by_prompt[str(run.inputs)]


def test_a_recorded_failure_fails_the_same_way(recordings: Recordings) -> None:
    failed = Trace.load(recordings.failed)
    cut = next(r for r in _model_runs(failed) if r.error and r.error.type != "GeneratorExit")
    model = ReplayChatModel.from_trace(failed, run=cut.run_id)
    prompt = ChatPromptTemplate.from_messages([("human", "{q}")])
    chain = prompt | model | StrOutputParser()
    with pytest.raises(openai.APIConnectionError) as caught:
        chain.invoke({"q": "anything"})
    assert type(caught.value).__name__ == cut.error.type  # type: ignore[union-attr]
    assert classify_error(caught.value).transient
