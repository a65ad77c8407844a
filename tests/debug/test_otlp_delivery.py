"""An OTLP collector that is down: one line, nothing held up, and delivery when it is back.

The SDK's exporters retry a refused export for up to 10 s per batch, logging every
retry; ``OTelCapture``'s own exporters say it once and drop at once instead
(``chainkit/callbacks/_otel_delivery.py``).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from typing import Any

import httpx
import pytest

from chainkit.callbacks import OTelCapture, capture
from chainkit.callbacks._otel_delivery import Delivery, collector_url, same_collector
from chainkit.cli import main
from tests.conftest import otlp_receiver
from tests.debug.conftest import haiku_chain
from tests.server.conftest import serve_process

SECRET = "s3cr3t-collector-password"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def down_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "does not take spans or metrics" in line]


def test_stream_with_no_collector_says_it_once_and_the_output_is_whole(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = closed_port()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://user:{SECRET}@127.0.0.1:{port}")
    assert main(["stream", "haiku", "-i", "topic=tea", "--otlp"]) == 0
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) >= 3  # the whole haiku
    (line,) = down_lines(err)
    assert f"http://127.0.0.1:{port}/v1/traces" in line
    assert "(connection refused)" in line
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in line
    assert "span(s) were not delivered" in err
    # no retry loop ran: the SDK's per-retry and gave-up lines never came
    assert "Transient error" not in err
    assert "Failed to export" not in err
    assert SECRET not in err
    assert "ttft" in err  # the command's own summary line still ends it


def test_delivery_resumes_when_the_collector_comes_up(
    local_server: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    chain = haiku_chain(local_server)
    port = closed_port()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    otel = OTelCapture()
    try:
        with caplog.at_level(logging.WARNING, logger="chainkit.callbacks.otel"):
            assert otel.check_collector() is False
            with capture(handlers=[otel]):
                "".join(chain.stream({"topic": "tea"}))
            otel.flush()  # dropped at once: nothing listens
            (delivery,) = otel.deliveries
            assert delivery.down
            assert delivery.spans_dropped > 0
            with otlp_receiver(port) as (_, got):
                with capture(handlers=[otel]):
                    "".join(chain.stream({"topic": "rain"}))
                otel.flush()
                assert got.spans, "the spans of the run after the collector came up"
                assert not delivery.down
        messages = [r.getMessage() for r in caplog.records]
        assert len([m for m in messages if "does not take spans" in m]) == 1
        assert len([m for m in messages if "takes spans and metrics again" in m]) == 1
    finally:
        otel.shutdown()


def test_serve_with_no_collector_warns_at_start_and_stops_promptly() -> None:
    port = closed_port()
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}")
    env.pop("CHAINKIT_API_TOKEN", None)
    with serve_process("--otlp", env=env, stop=signal.SIGINT) as (base, lines):
        # the warning comes before the service says it listens
        assert len(down_lines("\n".join(lines))) == 1, lines
        with httpx.Client(base_url=base, timeout=30) as client:
            response = client.post("/chains/haiku/invoke", json={"input": {"topic": "tea"}})
            assert response.status_code == 200, response.text
    # serve_process waits at most 15 s for the exit: the dropped flush does not hold it
    assert not any("Transient error" in line for line in lines), lines
    assert any("span(s) were not delivered" in line for line in lines), lines


@pytest.mark.parametrize(
    ("env", "signal_name", "expected"),
    [
        ({}, "traces", "http://localhost:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}, "metrics", "http://c:4318/v1/metrics"),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://t/x",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c",
            },
            "traces",
            "https://t/x",
        ),
    ],
)
def test_collector_url_follows_the_standard_variables(
    env: dict[str, str], signal_name: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert collector_url(signal_name) == expected


def test_one_probe_serves_signals_sent_to_one_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    assert same_collector("http://c:4318/v1/traces", "http://c:4318/v1/metrics")
    assert not same_collector("http://c:4318/v1/traces", "http://d:4318/v1/metrics")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    otel = OTelCapture()
    try:
        assert len(otel.deliveries) == 1
    finally:
        otel.shutdown()


def test_a_name_that_does_not_resolve_is_a_reason_not_a_traceback() -> None:
    delivery = Delivery("http://name.invalid:4318/v1/traces")
    try:
        assert delivery.probe()  # the resolver's words, e.g. "name or service not known"
    finally:
        delivery.close()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:99999"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:port"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", f"ftp://user:{SECRET}@collector"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "localhost:4318"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://"),  # after the traces' provider
    ],
)
def test_an_endpoint_that_is_not_a_url_is_one_line_exit_2(
    name: str,
    value: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(name, value)
    assert main(["stream", "haiku", "-i", "topic=tea", "--otlp"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith(f"chainkit: error: {name}=")
    assert "e.g. http://localhost:4318" in line
    assert SECRET not in line
    assert not [t for t in threading.enumerate() if t.name.startswith("Otel") and t.is_alive()]
