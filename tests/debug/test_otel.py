"""OpenTelemetry export: recorded traces and live runs reach a real OTLP/HTTP receiver.

The receiver is an HTTP server on loopback that takes OTLP/HTTP protobuf
(``POST /v1/traces``, ``/v1/metrics``) and decodes it with the official
``opentelemetry-proto`` messages, as a collector does: what it reads back is
what any OTLP backend would get.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from chainkit.callbacks import OTelCapture, StreamCapture
from chainkit.cli import main
from chainkit.debug import diff_traces
from chainkit.trace import Trace
from chainkit.trace._otel import (
    runs_to_spans,
    span_id_of,
    spans_to_otlp_json,
    trace_id_of,
)
from chainkit.trace._otel_import import otlp_json_to_trace
from tests.conftest import CANARY_KEY, Received
from tests.conftest import otlp_attrs as _attrs
from tests.conftest import otlp_hex as _hex
from tests.debug.conftest import Recordings


def test_a_recorded_trace_reaches_the_receiver_with_its_tree_times_and_genai_attributes(
    recordings: Recordings, receiver: tuple[str, Received], capsys: pytest.CaptureFixture[str]
) -> None:
    url, got = receiver
    before = recordings.ok.read_bytes()
    assert main(["trace", "export", str(recordings.ok), "--otlp-endpoint", url]) == 0
    assert "sent" in capsys.readouterr().err
    trace = Trace.load(recordings.ok)
    assert recordings.ok.read_bytes() == before

    by_span = {_hex(s["spanId"]): s for s in got.spans}
    assert len(got.spans) == len(trace.runs)
    header = trace.headers[0]
    for run in trace.runs:
        span = by_span[f"{span_id_of(run.run_id):016x}"]
        attrs = _attrs(span.get("attributes", []))
        assert attrs["chainkit.run_id"] == run.run_id
        # the tree: the parent span is the parent run's
        if run.parent_run_id is None:
            assert "parentSpanId" not in span
        else:
            assert _hex(span["parentSpanId"]) == f"{span_id_of(run.parent_run_id):016x}"
        # the times: the run's own, on the wall clock
        assert run.start is not None
        assert run.end is not None
        wall_start = header.wall_origin + run.start - header.clock_origin
        assert abs(int(span["startTimeUnixNano"]) / 1e9 - wall_start) < 1e-6
        assert (
            abs(
                (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e9
                - (run.end - run.start)
            )
            < 1e-6
        )
    roots = [r for r in trace.runs if r.parent_run_id is None]
    assert {_hex(s["traceId"]) for s in got.spans} == {
        f"{trace_id_of(r.run_id):032x}" for r in roots
    }
    models = [r for r in trace.runs if r.is_model]
    assert len(models) >= 2  # outline_story calls the model more than once
    for run in models:
        span = by_span[f"{span_id_of(run.run_id):016x}"]
        attrs = _attrs(span["attributes"])
        assert span["kind"] == "SPAN_KIND_CLIENT"
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == "openai"
        assert attrs["gen_ai.request.model"]
        assert span["name"] == f"chat {attrs['gen_ai.request.model']}"
        assert attrs["gen_ai.request.max_tokens"] == 24
        assert attrs["gen_ai.response.finish_reasons"]
        assert run.usage is not None
        assert attrs["gen_ai.usage.input_tokens"] == run.usage["input_tokens"]
        assert attrs["gen_ai.usage.output_tokens"] == run.usage["output_tokens"]
        chunk_events = [e for e in span.get("events", []) if e["name"] == "chainkit.chunk"]
        assert len(chunk_events) == len(run.chunks)
        first = int(chunk_events[0]["timeUnixNano"]) / 1e9
        assert abs(first - (header.wall_origin + run.chunks[0][0] - header.clock_origin)) < 1e-6
        # content is opt-in: sizes leave the process, texts do not
        assert all("chainkit.chunk.text" not in _attrs(e["attributes"]) for e in chunk_events)
        assert "gen_ai.input.messages" not in attrs
    assert got.resources[0]["service.name"] == "chainkit"
    assert all(CANARY_KEY.encode() not in body for body in got.bodies)


def test_a_failed_run_is_an_error_span_with_an_exception_event(
    recordings: Recordings, receiver: tuple[str, Received]
) -> None:
    url, got = receiver
    assert main(["trace", "export", str(recordings.failed), "--otlp-endpoint", url]) == 0
    failed = [s for s in got.spans if s.get("status", {}).get("code") == "STATUS_CODE_ERROR"]
    assert failed
    events = [e for s in failed for e in s.get("events", []) if e["name"] == "exception"]
    assert events
    assert _attrs(events[0]["attributes"])["exception.type"]


def test_content_is_exported_only_when_asked_and_then_redacted(
    tmp_path: Path, recordings: Recordings
) -> None:
    trace = Trace.load(recordings.ok)
    spans = runs_to_spans(trace, include_content=True)
    model = next(s for s in spans if s.kind == "CLIENT")
    run = next(r for r in trace.runs if r.is_model)
    # the GenAI conventions' messages: roles and parts, not LangChain's message dicts
    sent = orjson.loads(model.attributes["gen_ai.input.messages"])
    recorded = run.inputs["messages"]
    assert [m["role"] for m in sent] == [
        {"human": "user", "system": "system", "ai": "assistant"}[m["type"]] for m in recorded
    ]
    assert [m["parts"] for m in sent] == [
        [{"type": "text", "content": m["content"]}] for m in recorded
    ]
    output = orjson.loads(model.attributes["gen_ai.output.messages"])
    assert output[0]["role"] == "assistant"
    assert output[0]["parts"] == [{"type": "text", "content": run.text}]
    texts = [
        e[2].get("chainkit.chunk.text")
        for e in spans[[s.span_id for s in spans].index(span_id_of(run.run_id))].events
        if e[0] == "chainkit.chunk"
    ]
    assert "".join(t or "" for t in texts) == run.text
    # a secret in a run's input never leaves, even with content on
    secret_trace = Trace()
    secret_trace.run_started("r1", name="leaky", kind="chain", inputs={"key": CANARY_KEY}, t=1.0)
    secret_trace.run_ended("r1", outputs=f"the key is {CANARY_KEY}", t=2.0)
    out = spans_to_otlp_json(secret_trace, runs_to_spans(secret_trace, include_content=True))
    assert CANARY_KEY.encode() not in out


def test_chunk_events_are_capped_with_a_summary() -> None:
    trace = Trace()
    trace.run_started("m1", name="model", kind="chat_model", t=0.0)
    for i in range(50):
        trace.chunk("m1", 0.1 + i / 100, f"w{i} ")
    trace.run_ended("m1", outputs="x", t=1.0)
    (span,) = runs_to_spans(trace, max_chunk_events=10)
    names = [e[0] for e in span.events]
    assert names.count("chainkit.chunk") == 10
    assert names[-1] == "chainkit.chunks.truncated"
    assert span.events[-1][2]["chainkit.chunks.dropped"] == 40


def test_round_trip_through_otlp_json_keeps_runs_times_usage_and_chunks(
    tmp_path: Path, recordings: Recordings, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = tmp_path / "trace.otlp.json"
    back = tmp_path / "back.jsonl"
    args = ["trace", "export", str(recordings.ok), "--format", "otlp-json", "-o", str(exported)]
    assert main([*args, "--include-content"]) == 0
    assert main(["trace", "import", str(exported), "-o", str(back)]) == 0
    assert main(["trace", "diff", str(recordings.ok), str(back), "--exit-code"]) == 0
    original, imported = Trace.load(recordings.ok), Trace.load(back)
    assert len(imported.runs) == len(original.runs)
    by_id = {r.run_id: r for r in imported.runs}
    for run in original.runs:
        twin = by_id[run.run_id]
        assert (twin.name, twin.kind, twin.parent_run_id, twin.status) == (
            run.name,
            run.kind,
            run.parent_run_id,
            run.status,
        )
        assert run.start is not None
        assert twin.start is not None
        assert abs(twin.start - run.start) < 1e-6
        assert run.end is not None
        assert twin.end is not None
        assert abs(twin.end - run.end) < 1e-6
        if run.is_model:
            assert twin.usage is not None
            assert run.usage is not None
            assert twin.usage["input_tokens"] == run.usage["input_tokens"]
            assert twin.usage["output_tokens"] == run.usage["output_tokens"]
            assert [c[1] for c in twin.chunks] == [c[1] for c in run.chunks]
            assert all(
                abs(a[0] - b[0]) < 1e-6 for a, b in zip(run.chunks, twin.chunks, strict=True)
            )
    assert diff_traces(original, imported).same
    capsys.readouterr()


def test_live_capture_emits_spans_and_genai_metrics(
    receiver: tuple[str, Received], local_server: Any
) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from chainkit.chains import make_chain
    from chainkit.models import load_model

    url, got = receiver
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(f"{url}/v1/traces")))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    otel = OTelCapture(tracer_provider=tracer_provider, meter_provider=meter_provider, strict=True)
    side = StreamCapture(strict=True)
    model = load_model(base_url=local_server.base_url, max_tokens=20)
    chain = make_chain("Write a haiku about {topic}.", model=model)
    try:
        for topic in ("rain", "snow"):
            text = "".join(chain.stream({"topic": topic}, config={"callbacks": [otel, side]}))
            assert text
        otel.flush()
    finally:
        tracer_provider.shutdown()
    assert otel.spans_emitted == len(got.spans) == len(side.trace.runs)
    names = {_attrs(s["attributes"])["chainkit.run.kind"] for s in got.spans}
    assert {"chain", "prompt", "chat_model", "parser"} <= names
    model_spans = [s for s in got.spans if s["kind"] == "SPAN_KIND_CLIENT"]
    assert len(model_spans) == 2
    ids = {s["spanId"]: s for s in got.spans}
    for span in model_spans:
        attrs = _attrs(span["attributes"])
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.usage.output_tokens"] > 0
        assert ids[span["parentSpanId"]]["name"]  # nested under the chain's span
        assert any(e["name"] == "chainkit.chunk" for e in span["events"])
    # the handler keeps only what is in flight
    assert otel.trace.runs == []
    metrics = reader.get_metrics_data()
    assert metrics is not None
    seen = {
        m.name: m for rm in metrics.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    for name in (
        "gen_ai.client.operation.duration",
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.time_to_first_chunk",
        "gen_ai.client.operation.time_per_output_chunk",
    ):
        assert name in seen, name
    duration = seen["gen_ai.client.operation.duration"].data.data_points[0]
    assert duration.count == 2
    assert all(CANARY_KEY.encode() not in body for body in got.bodies)


# ------------------------------------------------------------------ bad input


def test_a_file_that_is_not_otlp_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = {
        "plain.json": b'{"hello": 1}',
        "array.json": b"[1, 2, 3]",
        "garbage.json": b"\x00\xffnot json",
        "wrong_types.json": b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": 5}]}]}]}',
        "bad_hex.json": b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "zz"}]}]}]}',
        "empty.json": b'{"resourceSpans": []}',
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        code = main(["trace", "import", str(path), "-o", str(tmp_path / f"{name}.jsonl")])
        _, err = capsys.readouterr()
        assert code == 1, (name, err)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1, (name, err)
        assert "Traceback" not in err


def test_a_truncated_export_is_one_line(
    tmp_path: Path, recordings: Recordings, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = Trace.load(recordings.ok)
    data = spans_to_otlp_json(trace, runs_to_spans(trace))
    cut = tmp_path / "cut.json"
    cut.write_bytes(data[: len(data) // 2])
    assert main(["trace", "import", str(cut), "-o", str(tmp_path / "x.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "not JSON" in err
    assert len(err.strip().splitlines()) == 1


def test_spans_with_unknown_parents_become_roots_and_are_noted(
    tmp_path: Path, recordings: Recordings, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = Trace.load(recordings.ok)
    spans = runs_to_spans(trace)
    keep = [s for s in spans if s.parent_span_id is not None]  # drop the roots
    path = tmp_path / "orphans.json"
    path.write_bytes(spans_to_otlp_json(trace, keep))
    out = tmp_path / "orphans.jsonl"
    assert main(["trace", "import", str(path), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "not in the file" in err
    imported = Trace.load(out)
    assert len(imported.runs) == len(keep)
    assert main(["trace", "show", str(out)]) == 0


def test_openinference_spans_import_with_their_kinds(tmp_path: Path) -> None:
    def attr(key: str, value: Any) -> dict[str, Any]:
        if isinstance(value, int):
            return {"key": key, "value": {"intValue": str(value)}}
        return {"key": key, "value": {"stringValue": value}}

    data = {
        "resourceSpans": [
            {
                "resource": {"attributes": [attr("service.name", "app")]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "0af7651916cd43dd8448eb211c80319c",
                                "spanId": "b7ad6b7169203331",
                                "name": "RunnableSequence",
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": "1700000001000000000",
                                "attributes": [
                                    attr("openinference.span.kind", "CHAIN"),
                                    attr("input.value", '{"topic": "x"}'),
                                ],
                            },
                            {
                                "traceId": "0af7651916cd43dd8448eb211c80319c",
                                "spanId": "00f067aa0ba902b7",
                                "parentSpanId": "b7ad6b7169203331",
                                "name": "ChatOpenAI",
                                "startTimeUnixNano": "1700000000100000000",
                                "endTimeUnixNano": "1700000000900000000",
                                "attributes": [
                                    attr("openinference.span.kind", "LLM"),
                                    attr("llm.model_name", "gpt-4o-mini"),
                                    attr("llm.token_count.prompt", 12),
                                    attr("llm.token_count.completion", 30),
                                ],
                            },
                        ]
                    }
                ],
            }
        ]
    }
    result = otlp_json_to_trace(orjson.dumps(data))
    root, model = sorted(result.trace.runs, key=lambda r: r.start or 0)
    assert (root.kind, root.inputs) == ("chain", {"topic": "x"})
    assert model.kind == "chat_model"
    assert model.parent_run_id == root.run_id
    assert model.usage == {"input_tokens": 12, "output_tokens": 30, "total_tokens": 42}
    assert model.latency is not None
    assert abs(model.latency - 0.8) < 1e-6
    assert any("not written by chainkit" in n for n in result.notes)


def test_an_unreachable_endpoint_is_one_line_exit_1_and_the_file_is_kept(
    recordings: Recordings, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    before = recordings.ok.read_bytes()
    code = main(
        ["trace", "export", str(recordings.ok), "--otlp-endpoint", f"http://127.0.0.1:{port}"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1, err
    assert "could not send" in err
    assert recordings.ok.read_bytes() == before


def test_export_needs_a_destination(
    recordings: Recordings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert main(["trace", "export", str(recordings.ok)]) == 2
    assert "--otlp-endpoint" in capsys.readouterr().err
    assert main(["trace", "export", str(recordings.ok), "--format", "otlp-json"]) == 2
    assert "-o FILE" in capsys.readouterr().err
