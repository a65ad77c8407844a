"""chainkit's OpenTelemetry export, read back from Arize Phoenix (a real OTLP receiver).

A recorded ``outline_story`` trace goes through ``chainkit trace export
--otlp-endpoint``, and a live ``outline_story`` run on the local model (the real
``ChatOpenAI`` client) through ``OTelCapture``; both with content on and a secret
in the input. What Phoenix stored, read back with its own client, must have the
run tree, the times (Phoenix keeps microseconds), the GenAI attributes (which
Phoenix itself reads as an LLM call with its token counts), every chunk event, and
the secret nowhere: not in the spans, not in Phoenix's database or log. A failed
recording is stored as ERROR spans with their exception events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from chainkit.callbacks import OTelCapture, StreamCapture
from chainkit.cli import main
from chainkit.errors import REDACTED, redact
from chainkit.trace import Run, Trace
from chainkit.trace._otel import span_id_of, trace_id_of
from tests.conftest import CANARY_KEY, assert_no_canary
from tests.debug.conftest import record_outline_story
from tests.otel_phoenix.conftest import Phoenix

# Phoenix's start (a fresh database migrated, ~20 s on an idle machine) counts against the
# first test of the session, beside the suite's 120 s per test
pytestmark = pytest.mark.timeout(300)

SECRET_TOPIC = {"topic": f"a goldfish who found the key {CANARY_KEY}"}
TIME_TOLERANCE = 2e-6  # Phoenix stores microseconds; chainkit's times are floats


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _by_run_id(spans: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["attributes"]["chainkit.run_id"]: s for s in spans}


def _chunk_events(span: Mapping[str, Any]) -> list[dict[str, Any]]:
    events = [e for e in span.get("events", []) if e["name"] == "chainkit.chunk"]
    return sorted(events, key=lambda e: e["attributes"]["chainkit.chunk.index"])


def _assert_genai(span: Mapping[str, Any], run: Run) -> None:
    """A model run's span: GenAI conventions, and Phoenix read it as an LLM call."""
    attrs = span["attributes"]
    meta = run.metadata or {}
    usage = run.usage or {}
    assert span["span_kind"] == "LLM"  # Phoenix recognised the GenAI attributes
    assert span["name"] == f"chat {meta['ls_model_name']}"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == meta["ls_model_name"]
    assert attrs["gen_ai.request.max_tokens"] == meta["ls_max_tokens"]
    assert attrs["gen_ai.response.model"]
    assert attrs["gen_ai.response.finish_reasons"] in (["stop"], ["length"])
    assert attrs["gen_ai.usage.input_tokens"] == usage["input_tokens"] > 0
    assert attrs["gen_ai.usage.output_tokens"] == usage["output_tokens"] > 0
    assert attrs["llm.token_count.prompt"] == usage["input_tokens"]  # Phoenix's own reading
    assert attrs["llm.token_count.completion"] == usage["output_tokens"]
    # content was on, so the prompt went, with the secret masked
    assert REDACTED in attrs["gen_ai.input.messages"]
    # Phoenix read the prompt and the answer from the conventions' {"role", "parts"} messages
    roles = {"human": "user", "system": "system", "ai": "assistant"}
    for i, message in enumerate(run.inputs["messages"]):
        assert attrs[f"llm.input_messages.{i}.message.role"] == roles[message["type"]]
        assert attrs[f"llm.input_messages.{i}.message.content"] == redact(message["content"])
    assert attrs["llm.output_messages.0.message.role"] == "assistant"
    assert attrs["llm.output_messages.0.message.content"] == redact(run.text)
    # every chunk, in order, with its size and text
    events = _chunk_events(span)
    assert len(events) == len(run.chunks) > 1
    assert [e["attributes"]["chainkit.chunk.chars"] for e in events] == [
        len(text) for _, text in run.chunks
    ]
    assert "".join(e["attributes"]["chainkit.chunk.text"] for e in events) == redact(run.text)
    times = [_seconds(e["timestamp"]) for e in events]
    assert times == sorted(times)
    assert _seconds(span["start_time"]) <= times[0]
    assert times[-1] <= _seconds(span["end_time"])


def _assert_no_secret(phoenix: Phoenix, spans: list[dict[str, Any]]) -> None:
    assert CANARY_KEY.encode() not in orjson.dumps(spans)
    assert_no_canary(phoenix.working_dir)  # its SQLite database (and WAL) and its log


@pytest.fixture(scope="module")
def secret_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """outline_story streamed on the local model, the secret in its input, as a trace file."""
    path = tmp_path_factory.mktemp("recording") / "story.jsonl"
    return record_outline_story(path, fail=False, topic=SECRET_TOPIC)


def test_a_recorded_trace_is_stored_by_phoenix_with_its_tree_times_genai_and_chunks(
    phoenix: Phoenix, secret_recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = secret_recording.read_bytes()
    args = ["trace", "export", str(secret_recording), "--otlp-endpoint", phoenix.url]
    assert main([*args, "--include-content"]) == 0
    trace = Trace.load(secret_recording)
    assert f"sent {len(trace.runs)} spans" in capsys.readouterr().err
    assert secret_recording.read_bytes() == before

    roots = [r for r in trace.runs if r.parent_run_id is None]
    spans = phoenix.spans([f"{trace_id_of(r.run_id):032x}" for r in roots], len(trace.runs))
    by_run = _by_run_id(spans)
    assert set(by_run) == {r.run_id for r in trace.runs}
    header = trace.headers[0]

    def wall(t: float | None) -> float:
        assert t is not None
        return header.wall_origin + (t - header.clock_origin)

    for run in trace.runs:
        span = by_run[run.run_id]
        # the tree: the ids chainkit derived from the run ids, parent links as the runs nest
        assert span["context"]["span_id"] == f"{span_id_of(run.run_id):016x}"
        parent = span.get("parent_id")
        expected = None if run.parent_run_id is None else f"{span_id_of(run.parent_run_id):016x}"
        assert parent == expected
        assert span["attributes"]["chainkit.run.kind"] == run.kind
        assert span["status_code"] == "OK"
        # the times: the recorded ones, to the microsecond Phoenix keeps
        assert abs(_seconds(span["start_time"]) - wall(run.start)) <= TIME_TOLERANCE
        assert abs(_seconds(span["end_time"]) - wall(run.end)) <= TIME_TOLERANCE
    models = [r for r in trace.runs if r.is_model]
    assert len(models) == 3  # the outline, then the story and its title in parallel
    for run in models:
        span = by_run[run.run_id]
        _assert_genai(span, run)
        for event, (t, _) in zip(_chunk_events(span), run.chunks, strict=True):
            assert abs(_seconds(event["timestamp"]) - wall(t)) <= TIME_TOLERANCE
    (root,) = roots
    assert REDACTED in by_run[root.run_id]["attributes"]["chainkit.input"]
    _assert_no_secret(phoenix, spans)


def test_a_failed_run_is_stored_as_an_error_with_its_exception(
    phoenix: Phoenix, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = record_outline_story(tmp_path / "failed.jsonl", fail=True, topic=SECRET_TOPIC)
    assert main(["trace", "export", str(path), "--otlp-endpoint", phoenix.url]) == 0
    capsys.readouterr()
    trace = Trace.load(path)
    roots = [r for r in trace.runs if r.parent_run_id is None]
    spans = phoenix.spans([f"{trace_id_of(r.run_id):032x}" for r in roots], len(trace.runs))
    by_run = _by_run_id(spans)
    failed = [r for r in trace.runs if r.error is not None]
    assert failed
    for run in failed:
        span = by_run[run.run_id]
        assert run.error is not None
        assert span["status_code"] == "ERROR"
        assert span["status_message"] == f"{run.error.type}: {run.error.message}"
        (exception,) = [e for e in span["events"] if e["name"] == "exception"]
        assert exception["attributes"]["exception.type"] == run.error.type
        assert exception["attributes"]["exception.message"] == run.error.message
    assert all(by_run[r.run_id]["status_code"] == "OK" for r in trace.runs if r.error is None)
    _assert_no_secret(phoenix, spans)


def test_a_live_run_reaches_phoenix_through_otelcapture(
    phoenix: Phoenix, local_server: Any
) -> None:
    from langchain_openai import ChatOpenAI
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from chainkit.chains import outline_story
    from chainkit.models import load_model

    sent = InMemorySpanExporter()  # what chainkit emitted, to compare with what Phoenix kept
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "chainkit"}))
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(f"{phoenix.url}/v1/traces", timeout=10))
    )
    tracer_provider.add_span_processor(SimpleSpanProcessor(sent))
    meter_provider = MeterProvider()  # Phoenix takes spans; the metrics are tested elsewhere
    otel = OTelCapture(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        include_content=True,
        strict=True,
    )
    side = StreamCapture(strict=True)  # the same calls as a chainkit trace
    # the local model as an OpenAI-compatible endpoint: the key is the suite's canary, from
    # OPENAI_API_KEY (tests/conftest.py)
    model = load_model("openai:chainkit-local", base_url=local_server.base_url, max_tokens=16)
    assert isinstance(model, ChatOpenAI)
    try:
        for _ in outline_story(model).stream(SECRET_TOPIC, config={"callbacks": [otel, side]}):
            pass
        otel.shutdown()
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()
    # the secret was in play: in the client's key and in the chain's input
    assert model.openai_api_key is not None
    assert model.openai_api_key.get_secret_value() == CANARY_KEY
    runs = side.trace.runs
    emitted = sent.get_finished_spans()
    assert otel.spans_emitted == len(emitted) == len(runs)

    trace_ids = {f"{s.context.trace_id:032x}" for s in emitted}
    assert len(trace_ids) == 1  # one call, one trace
    spans = phoenix.spans(sorted(trace_ids), len(runs))
    by_run = _by_run_id(spans)
    by_span_id = {s["context"]["span_id"]: s for s in spans}
    assert set(by_run) == {r.run_id for r in runs}
    emitted_by_id = {f"{s.context.span_id:016x}": s for s in emitted}
    for run in runs:
        span = by_run[run.run_id]
        # the tree: each span's parent is the span of the run's parent
        if run.parent_run_id is None:
            assert span.get("parent_id") is None
        else:
            parent = by_span_id[span["parent_id"]]
            assert parent["attributes"]["chainkit.run_id"] == run.parent_run_id
            assert _seconds(parent["start_time"]) <= _seconds(span["start_time"])
            assert _seconds(span["end_time"]) <= _seconds(parent["end_time"])
        assert span["attributes"]["chainkit.run.kind"] == run.kind
        # the times: what chainkit emitted (the recorded times), to Phoenix's microsecond
        mine = emitted_by_id[span["context"]["span_id"]]
        assert mine.start_time is not None
        assert mine.end_time is not None
        assert abs(_seconds(span["start_time"]) - mine.start_time / 1e9) <= TIME_TOLERANCE
        assert abs(_seconds(span["end_time"]) - mine.end_time / 1e9) <= TIME_TOLERANCE
    models = [r for r in runs if r.is_model]
    assert len(models) == 3
    for run in models:
        span = by_run[run.run_id]
        _assert_genai(span, run)
        mine = emitted_by_id[span["context"]["span_id"]]
        chunk_times = [e.timestamp for e in mine.events if e.name == "chainkit.chunk"]
        for event, t_ns in zip(_chunk_events(span), chunk_times, strict=True):
            assert abs(_seconds(event["timestamp"]) - t_ns / 1e9) <= TIME_TOLERANCE
    _assert_no_secret(phoenix, spans)
