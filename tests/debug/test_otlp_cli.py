"""``--otlp`` on stream, events, batch and serve, ``run_batch(callbacks=[OTelCapture])``
and ``capture(handlers=[OTelCapture])``: the runs reach a real OTLP/HTTP receiver.

The CLI's OTelCapture exports where the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``
says, here the receiver of ``tests/conftest.py`` on loopback.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chainkit.callbacks import OTelCapture, capture
from chainkit.cli import main
from tests.conftest import CANARY_KEY, Received, otlp_attrs
from tests.debug.conftest import haiku_chain
from tests.server.conftest import serve_process


@pytest.fixture
def otlp_env(
    receiver: tuple[str, Received], monkeypatch: pytest.MonkeyPatch
) -> tuple[str, Received]:
    url, _ = receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    return receiver


def kinds(got: Received) -> list[str]:
    return [otlp_attrs(s["attributes"])["chainkit.run.kind"] for s in got.spans]


def model_spans(got: Received) -> list[dict[str, Any]]:
    return [s for s in got.spans if s["kind"] == "SPAN_KIND_CLIENT"]


def check_chat_spans(got: Received, count: int, *, streamed: int | None = None) -> None:
    """``count`` chat spans under chain spans, ``streamed`` of them (default all) with chunks."""
    spans = model_spans(got)
    assert len(spans) == count
    ids = {s["spanId"] for s in got.spans}
    for span in spans:
        attrs = otlp_attrs(span["attributes"])
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.usage.output_tokens"] > 0
        assert span["parentSpanId"] in ids  # under the chain's span
    with_chunks = [
        s for s in spans if any(e["name"] == "chainkit.chunk" for e in s.get("events", []))
    ]
    assert len(with_chunks) == (count if streamed is None else streamed)
    assert "/v1/metrics" in got.paths  # the GenAI metrics, flushed at the end
    assert all(CANARY_KEY.encode() not in body for body in got.bodies)


def test_stream_otlp_sends_the_runs_and_metrics(
    otlp_env: tuple[str, Received], capsys: pytest.CaptureFixture[str]
) -> None:
    _, got = otlp_env
    assert main(["stream", "haiku", "-i", "topic=tea", "--otlp"]) == 0
    assert capsys.readouterr().out.strip()
    assert {"chain", "prompt", "chat_model"} <= set(kinds(got))
    check_chat_spans(got, 1)
    (root,) = [s for s in got.spans if "parentSpanId" not in s]
    assert root["name"] == "haiku"


def test_events_otlp_sends_the_runs(
    otlp_env: tuple[str, Received], capsys: pytest.CaptureFixture[str]
) -> None:
    _, got = otlp_env
    assert main(["events", "haiku", "-i", "topic=tea", "--otlp"]) == 0
    assert "on_chat_model_stream" in capsys.readouterr().out
    check_chat_spans(got, 1)


def test_batch_otlp_sends_one_tree_per_item(
    otlp_env: tuple[str, Received], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, got = otlp_env
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"topic": t}) + "\n" for t in ("tea", "rain", "snow")))
    out = tmp_path / "out.jsonl"
    code = main(
        ["batch", "haiku", "-i", str(source), "-o", str(out), "--no-progress", "--stream", "--otlp"]
    )
    assert code == 0, capsys.readouterr().err
    check_chat_spans(got, 3)
    assert len({s["traceId"] for s in got.spans}) == 3


@contextlib.contextmanager
def otel_to(url: str) -> Iterator[OTelCapture]:
    """An OTelCapture on providers of the test's own, exporting spans to ``url`` at once."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(f"{url}/v1/traces")))
    meter_provider = MeterProvider()
    try:
        yield OTelCapture(tracer_provider=tracer_provider, meter_provider=meter_provider)
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()


def test_run_batch_takes_an_otel_capture(receiver: tuple[str, Received], local_server: Any) -> None:
    from chainkit.runners import run_batch

    url, got = receiver
    with otel_to(url) as otel:
        report = asyncio.run(
            run_batch(
                haiku_chain(local_server),
                [{"topic": "a"}, {"topic": "b"}],
                callbacks=[otel],
                stream=True,
            )
        )
        otel.flush()
    assert report.failed == 0
    assert otel.spans_emitted == len(got.spans) > 0
    assert len(model_spans(got)) == 2


def test_capture_takes_an_otel_capture_beside_its_trace(
    receiver: tuple[str, Received], local_server: Any
) -> None:
    url, got = receiver
    chain = haiku_chain(local_server)
    with otel_to(url) as otel:
        with capture(handlers=[otel]) as trace:
            "".join(chain.stream({"topic": "moss"}))
        otel.flush()
    assert len(got.spans) == len(trace.runs) > 0
    run_ids = {otlp_attrs(s["attributes"])["chainkit.run_id"] for s in got.spans}
    assert run_ids == {r.run_id for r in trace.runs}


@pytest.mark.parametrize("command", ["stream", "events", "batch", "serve"])
def test_otlp_without_the_extra_is_one_line_exit_2(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real_import = builtins.__import__

    def no_otel(name: str, *args: Any, **kwargs: Any) -> Any:
        # FastAPI brings the OpenTelemetry API; the extra brings the SDK and the exporter
        if name.startswith(("opentelemetry.sdk", "opentelemetry.exporter")):
            raise ModuleNotFoundError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_otel)
    source = tmp_path / "in.jsonl"
    source.write_text('{"topic": "tea"}\n')
    argv = {
        "stream": ["stream", "haiku", "-i", "topic=tea"],
        "events": ["events", "haiku", "-i", "topic=tea"],
        "batch": ["batch", "haiku", "-i", str(source), "-o", str(tmp_path / "o.jsonl")],
        "serve": ["serve", "--port", "0"],
    }[command]
    assert main([*argv, "--otlp"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == (
        "chainkit: error: OpenTelemetry is not installed; install the extra: "
        "pip install 'chainkit[otel]'"
    )
    assert not (tmp_path / "o.jsonl").exists()


def test_serve_otlp_sends_every_request_and_flushes_at_shutdown(
    receiver: tuple[str, Received],
) -> None:
    url, got = receiver
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=url, OTEL_BSP_SCHEDULE_DELAY="60000")
    env.pop("CHAINKIT_API_TOKEN", None)
    with serve_process("--otlp", env=env, stop=signal.SIGINT) as (base, _):
        # Ctrl-C at the end: the service stops and its lifespan ends (the flush)
        with httpx.Client(base_url=base, timeout=30) as client:
            for topic in ("tea", "rain"):
                response = client.post("/chains/haiku/invoke", json={"input": {"topic": topic}})
                assert response.status_code == 200, response.text
            with client.stream(
                "POST", "/chains/haiku/stream", json={"input": {"topic": "snow"}}
            ) as streamed:
                assert streamed.status_code == 200
                assert "event: data" in "".join(streamed.iter_text())
        # the batch processor waits 60 s: what arrives came from the flush at shutdown
        assert got.spans == []
    check_chat_spans(got, 3, streamed=1)  # two /invoke calls, one /stream
    roots = [s for s in got.spans if "parentSpanId" not in s]
    assert len(roots) == 3
    assert all(r["name"] == "haiku" for r in roots)


def _otel_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("Otel") and t.is_alive()]


@pytest.mark.parametrize(
    "argv",
    [
        ["stream", "haiku", "-i", "topic=tea"],
        ["stream", "haiku", "-i", "topic"],  # a bad -i: one line, exit 2
        ["events", "haiku", "-i", "topic=tea", "--limit", "2"],
        ["batch", "haiku", "-c", "0"],  # bad options: exit 2 before any work
    ],
)
def test_otlp_handlers_are_shut_down_whatever_happens(
    argv: list[str],
    otlp_env: tuple[str, Received],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = _otel_threads()
    if argv[0] == "batch":
        source = tmp_path / "in.jsonl"
        source.write_text('{"topic": "tea"}\n')
        argv = [*argv, "-i", str(source), "-o", str(tmp_path / "o.jsonl"), "--no-progress"]
    code = main([*argv, "--otlp"])
    err = capsys.readouterr().err
    assert code == (0 if argv[0] != "batch" and argv[-1] != "topic" else 2), err
    # the exporting threads of the command's own providers are gone: nothing keeps
    # running (or sending) after the command
    assert _otel_threads() == before


@pytest.mark.parametrize("backend", ["ray", "openai-batch"])
def test_batch_otlp_on_another_backend_is_one_line_exit_2(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"topic": "tea"}\n')
    out = tmp_path / "o.jsonl"
    argv = ["batch", "haiku", "-i", str(source), "-o", str(out), "--backend", backend, "--otlp"]
    assert main(argv) == 2
    stdout, err = capsys.readouterr()
    assert stdout == ""
    (line,) = err.strip().splitlines()  # no collector warning first: nothing was built
    assert "--otlp needs --backend local" in line
    assert not out.exists()
