"""Delivery to an OTLP collector that may be down: one line per outage, no long waits.

The OTLP exporters of the OpenTelemetry SDK retry a refused export for up to their
timeout (10 s by default), logging a multi-line warning per retry, and do that again
for every batch and at shutdown: a command run with ``--otlp`` and no collector
printed a dozen warnings and took 24 s longer to exit. :class:`OTelCapture`'s own
exporters are wrapped here instead:

- before an export, when the last one failed (or none was tried yet), a TCP connect
  to the collector (``probe``) says whether it answers; if not, the batch is counted
  and dropped at once;
- an outage is logged once, as one line naming the collector and the reason
  (``chainkit.callbacks.otel``); its end is logged once too; ``shutdown`` says how
  many spans were not delivered;
- the SDK's own per-retry lines are filtered out while such an exporter exists.

What a user's own tracer or meter provider does is left alone.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from chainkit.errors import ConfigError

__all__ = [
    "Delivery",
    "ReportingMetricExporter",
    "ReportingSpanExporter",
    "collector_url",
    "same_collector",
]

log = logging.getLogger("chainkit.callbacks.otel")

PROBE_TIMEOUT = 1.0  # seconds; a collector on the network answers a TCP connect in far less
_SDK_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
)


def collector_url(signal: str = "traces") -> str:
    """Where the SDK's OTLP/HTTP exporter sends ``signal``, as the standard variables say.

    Raises ConfigError (naming the variable) when that is not an http(s) URL with a host.
    """
    name = f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
    url = os.environ.get(name, "").strip()
    if not url:
        name = "OTEL_EXPORTER_OTLP_ENDPOINT"
        base = os.environ.get(name, "").strip() or "http://localhost:4318"
        url = f"{base.rstrip('/')}/v1/{signal}"
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        value = _shown(os.environ.get(name, url))
        raise ConfigError(
            f"{name}={value!r} is not an http:// or https:// URL with a host and port; "
            "set it to the collector's OTLP/HTTP address, e.g. http://localhost:4318"
        )
    return url


def same_collector(a: str, b: str) -> bool:
    """Whether two endpoint URLs reach the same host and port (one probe serves both)."""
    return (urlsplit(a).scheme, urlsplit(a).netloc) == (urlsplit(b).scheme, urlsplit(b).netloc)


def _shown(url: str) -> str:
    """``url`` without user info (a token in ``https://user:token@host`` stays private)."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2], query="", fragment="").geturl()


class _QuietSdkRetries(logging.Filter):
    """Drops the SDK exporters' per-retry and gave-up lines: :class:`Delivery` says it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not message.startswith(("Transient error", "Failed to export"))


_quiet = _QuietSdkRetries()


class Delivery:
    """Whether the collector answers, shared by the span and metric exporters of a handler."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or collector_url()
        self.shown = _shown(self.url)
        self.down = False
        self.checked = False
        self.spans_dropped = 0
        self._lock = threading.Lock()
        for name in _SDK_LOGGERS:
            logging.getLogger(name).addFilter(_quiet)

    def probe(self) -> str | None:
        """None when a TCP connection to the collector opens, else why not (one phrase)."""
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((host, port), timeout=PROBE_TIMEOUT):
                return None
        except TimeoutError:
            return f"no answer within {PROBE_TIMEOUT:g} s"
        except OSError as exc:
            return (exc.strerror or type(exc).__name__).lower()

    def check(self) -> bool:
        """Probe now and log the outage if it is one; whether the collector answers."""
        reason = self.probe()
        with self._lock:
            self.checked = True
            if reason is None:
                self._answered()
                return True
            self._failed(reason)
            return False

    def may_send(self) -> bool:
        """Whether to hand the next batch to the SDK's exporter (probes after a failure)."""
        if self.checked and not self.down:
            return True
        return self.check()

    def sent(self, ok: bool, spans: int = 0) -> None:
        """After an export: a failure starts an outage (its reason probed), a success ends one."""
        if ok:
            with self._lock:
                self._answered()
            return
        reason = self.probe() or "it refused the export (see the collector's log)"
        with self._lock:
            self.spans_dropped += spans
            self._failed(reason)

    def dropped(self, spans: int) -> None:
        with self._lock:
            self.spans_dropped += spans

    def close(self) -> None:
        """Say what was not delivered; stop filtering the SDK's lines."""
        if self.spans_dropped:
            log.warning(
                "OpenTelemetry: %d span(s) were not delivered to %s", self.spans_dropped, self.shown
            )
            self.spans_dropped = 0
        for name in _SDK_LOGGERS:
            logging.getLogger(name).removeFilter(_quiet)

    def _failed(self, reason: str) -> None:
        if not self.down:
            log.warning(
                "OpenTelemetry: %s does not take spans or metrics (%s); they are dropped until "
                "it does (start a collector there, or set OTEL_EXPORTER_OTLP_ENDPOINT)",
                self.shown,
                reason,
            )
        self.down = True

    def _answered(self) -> None:
        if self.down:
            log.warning("OpenTelemetry: %s takes spans and metrics again", self.shown)
        self.down = False


class ReportingSpanExporter(SpanExporter):
    """An OTLP span exporter that drops batches at once while the collector is down."""

    def __init__(self, inner: SpanExporter, delivery: Delivery) -> None:
        self.inner = inner
        self.delivery = delivery

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self.delivery.may_send():
            self.delivery.dropped(len(spans))
            return SpanExportResult.FAILURE
        result = self.inner.export(spans)
        self.delivery.sent(result is SpanExportResult.SUCCESS, len(spans))
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class ReportingMetricExporter(MetricExporter):
    """An OTLP metric exporter that drops exports at once while the collector is down."""

    def __init__(self, inner: MetricExporter, delivery: Delivery) -> None:
        # the reader asks the exporter for these (PeriodicExportingMetricReader does)
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.delivery = delivery

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if not self.delivery.may_send():
            return MetricExportResult.FAILURE
        result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        self.delivery.sent(result is MetricExportResult.SUCCESS)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)
