"""``OTelCapture``: runs as OpenTelemetry spans and GenAI client metrics, live.

The handler records runs as :class:`~chainkit.callbacks.StreamCapture` does (in
memory), and when a top-level run ends it turns that run's tree into spans with
the one mapping in :mod:`chainkit.trace._otel` (the same one ``chainkit trace
export`` uses for files) and emits them through the OpenTelemetry SDK, with
their recorded start, end and chunk times. Model runs also feed the GenAI client
metrics: ``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage``,
``gen_ai.client.operation.time_to_first_chunk`` and
``gen_ai.client.operation.time_per_output_chunk``.

Where spans go: the ``tracer_provider`` given, else the global one when the
application set one (``opentelemetry.trace.set_tracer_provider``), else a
provider of the handler's own exporting over OTLP/HTTP as the standard
``OTEL_EXPORTER_OTLP_*`` variables say (endpoint, headers, timeout). Live spans
get their ids from the provider (a chain run nests under the span active when it
started); ``chainkit.run_id`` names the run. The same for metrics and
``meter_provider``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from chainkit.callbacks._stream_capture import StreamCapture
from chainkit.trace import Run, Trace
from chainkit.trace._otel import (
    DEFAULT_MAX_CHUNK_EVENTS,
    SCOPE,
    SpanData,
    otel_missing,
    runs_to_spans,
)

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["OTelCapture"]


class OTelCapture(StreamCapture):
    """Emit every run as an OpenTelemetry span (GenAI conventions) and GenAI metrics.

    >>> otel = OTelCapture()                       # OTLP/HTTP per OTEL_EXPORTER_OTLP_*
    >>> chain.invoke({"topic": "x"}, config={"callbacks": [otel]})
    >>> otel.flush()

    ``include_content=True`` adds prompts, completions, inputs, outputs and chunk
    texts (redacted like traces); by default only their sizes and timings leave
    the process. ``max_chunk_events`` caps the chunk events of one run.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        include_content: bool = False,
        max_chunk_events: int = DEFAULT_MAX_CHUNK_EVENTS,
        strict: bool = False,
    ) -> None:
        super().__init__(strict=strict)
        self.include_content = include_content
        self.max_chunk_events = max_chunk_events
        self._own: list[Any] = []  # providers this handler made, shut down by shutdown()
        self.deliveries: list[Any] = []  # their collectors' state (_otel_delivery.Delivery)
        self._shut_down = False
        try:  # the API may come with another package (FastAPI); the SDK comes with the extra
            from opentelemetry import metrics, trace

            self._tracer_provider = tracer_provider or self._global_or_own_tracer_provider(trace)
            self._meter_provider = meter_provider or self._global_or_own_meter_provider(metrics)
        except BaseException as exc:  # a missing extra, a malformed OTEL_EXPORTER_OTLP_* URL
            self._close_own()
            if isinstance(exc, ImportError):
                raise otel_missing() from exc
            raise
        self._tracer = self._tracer_provider.get_tracer(SCOPE)
        meter = self._meter_provider.get_meter(SCOPE)
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration"
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens used per operation"
        )
        self._ttfc = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to the first chunk of a streamed response",
        )
        self._per_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_per_output_chunk",
            unit="s",
            description="Time between chunks of a streamed response, after the first",
        )
        self._lock = threading.Lock()
        self.spans_emitted = 0

    # ------------------------------------------------------------ providers

    def _global_or_own_tracer_provider(self, trace: Any) -> Any:
        current = trace.get_tracer_provider()
        if type(current).__name__ not in ("ProxyTracerProvider", "NoOpTracerProvider"):
            return current
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from chainkit.callbacks._otel_delivery import ReportingSpanExporter

        exporter = ReportingSpanExporter(OTLPSpanExporter(), self._delivery("traces"))
        provider = SdkTracerProvider(resource=Resource.create({"service.name": "chainkit"}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        self._own.append(provider)
        return provider

    def _global_or_own_meter_provider(self, metrics: Any) -> Any:
        current = metrics.get_meter_provider()
        if type(current).__name__ not in ("_ProxyMeterProvider", "NoOpMeterProvider"):
            return current
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource

        from chainkit.callbacks._otel_delivery import ReportingMetricExporter

        exporter = ReportingMetricExporter(OTLPMetricExporter(), self._delivery("metrics"))
        provider = SdkMeterProvider(
            resource=Resource.create({"service.name": "chainkit"}),
            metric_readers=[PeriodicExportingMetricReader(exporter)],
        )
        self._own.append(provider)
        return provider

    def _delivery(self, signal: str) -> Any:
        from chainkit.callbacks._otel_delivery import Delivery, collector_url, same_collector

        url = collector_url(signal)
        for delivery in self.deliveries:
            if same_collector(delivery.url, url):
                return delivery
        delivery = Delivery(url)
        self.deliveries.append(delivery)
        return delivery

    def check_collector(self) -> bool:
        """Probe the collectors this handler exports to; log one line for each that is down.

        True when every one answers (or the caller's own providers are used: nothing to check).
        """
        answers = [delivery.check() for delivery in self.deliveries]  # each says its own line
        return all(answers)

    def flush(self) -> None:
        """Send what the providers hold now (spans of finished runs, metrics)."""
        for provider in (self._tracer_provider, self._meter_provider):
            force_flush = getattr(provider, "force_flush", None)
            if force_flush is not None:
                force_flush()

    def shutdown(self) -> None:
        """Flush, and shut down the providers this handler made (not the caller's).

        Once is enough: a second call (the service's lifespan, then the command) does nothing.
        """
        if self._shut_down:
            return
        self._shut_down = True
        self.flush()
        self._close_own()

    def _close_own(self) -> None:
        for provider in self._own:
            provider.shutdown()
        self._own.clear()
        for delivery in self.deliveries:
            delivery.close()
        self.deliveries.clear()

    # ---------------------------------------------------------------- hooks

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        super().on_chain_end(outputs, run_id=run_id, **kwargs)
        self._finished(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        super().on_chain_error(error, run_id=run_id, **kwargs)
        self._finished(run_id)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        super().on_llm_end(response, run_id=run_id, **kwargs)
        self._finished(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        super().on_llm_error(error, run_id=run_id, **kwargs)
        self._finished(run_id)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        super().on_tool_end(output, run_id=run_id, **kwargs)
        self._finished(run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        super().on_tool_error(error, run_id=run_id, **kwargs)
        self._finished(run_id)

    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        super().on_retriever_end(documents, run_id=run_id, **kwargs)
        self._finished(run_id)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        super().on_retriever_error(error, run_id=run_id, **kwargs)
        self._finished(run_id)

    # ------------------------------------------------------------- emitting

    def _finished(self, run_id: UUID) -> None:
        run = self.trace.get(run_id)
        if run is None:
            return
        if run.is_model:
            self._record_metrics(run)
        if run.parent_run_id is not None and self.trace.get(run.parent_run_id) is not None:
            return  # emitted with its root
        tree = _tree(run)
        with self._lock:
            self._emit(runs_to_spans(self.trace, tree, **self._mapping()))
            if all(r.end is not None for r in self.trace.runs):
                # Every call so far has ended and been emitted: start afresh, so a
                # long-lived handler (a service's) holds only the runs in flight.
                self.trace = Trace(max_chars=self.trace.max_chars)

    def _mapping(self) -> dict[str, Any]:
        return {"include_content": self.include_content, "max_chunk_events": self.max_chunk_events}

    def _emit(self, spans: list[SpanData]) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        made: dict[int, Any] = {}
        for data in spans:
            parent = made.get(data.parent_span_id) if data.parent_span_id is not None else None
            context = trace.set_span_in_context(parent) if parent is not None else None
            span = self._tracer.start_span(
                data.name,
                context=context,
                kind=SpanKind.CLIENT if data.kind == "CLIENT" else SpanKind.INTERNAL,
                attributes=data.attributes,
                start_time=data.start_ns,
            )
            for name, t_ns, attributes in data.events:
                span.add_event(name, attributes, timestamp=t_ns)
            if data.error is not None:
                span.set_status(Status(StatusCode.ERROR, data.error))
            made[data.span_id] = span
        for data in spans:
            made[data.span_id].end(end_time=data.end_ns)
        self.spans_emitted += len(spans)

    def _record_metrics(self, run: Run) -> None:
        meta = run.metadata or {}
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "text_completion" if run.kind == "llm" else "chat",
        }
        if meta.get("ls_provider"):
            attrs["gen_ai.provider.name"] = str(meta["ls_provider"])
        if meta.get("ls_model_name"):
            attrs["gen_ai.request.model"] = str(meta["ls_model_name"])
        if run.error is not None:
            attrs["error.type"] = run.error.type
        if run.latency is not None:
            self._duration.record(run.latency, attrs)
        usage = run.usage or {}
        for key, token_type in (("input_tokens", "input"), ("output_tokens", "output")):
            if isinstance(usage.get(key), int):
                self._tokens.record(usage[key], {**attrs, "gen_ai.token.type": token_type})
        chunks = run.text_chunks
        if chunks and run.start is not None:
            self._ttfc.record(chunks[0][0] - run.start, attrs)
            for (a, _), (b, _) in itertools.pairwise(chunks):
                self._per_chunk.record(b - a, attrs)


def _tree(root: Run) -> list[Run]:
    """``root`` and every run below it, parents before children (iteratively)."""
    out: list[Run] = []
    stack = [root]
    seen: set[str] = set()
    while stack:
        run = stack.pop()
        if run.run_id in seen:
            continue
        seen.add(run.run_id)
        out.append(run)
        stack.extend(reversed(run.children))
    return out
