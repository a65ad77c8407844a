"""chainkit runs as OpenTelemetry spans: the one mapping (``_otel_import`` reads it back).

A run becomes a span: the trace id comes from the root run's id and the span id
from the run's own (so an export is deterministic and a re-export replaces
nothing), parent links follow the run tree, start and end are the run's own
times, an error is an ERROR status with an ``exception`` event. Model runs carry
the OpenTelemetry GenAI semantic conventions (``gen_ai.operation.name``,
``gen_ai.provider.name``, ``gen_ai.request.*``, ``gen_ai.response.*``,
``gen_ai.usage.*``); every run carries ``chainkit.*`` attributes for what has no
convention (kind, run id, tags, retries). Each streamed chunk is a
``chainkit.chunk`` span event at its own time, at most ``max_chunk_events`` of
them, then one ``chainkit.chunks.truncated`` event counting the rest. Prompts,
completions, inputs, outputs and chunk texts are content: they are exported only
with ``include_content=True``, and then redacted like traces are.

The resource carries the trace's clock (``chainkit.trace.clock_origin`` and
``wall_origin``), so :func:`otlp_json_to_trace` gives back the very times the
trace had.

OpenTelemetry is an extra (``pip install 'chainkit[otel]'``): it is imported here
only when a function needs it.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from chainkit.errors import ConfigError, redact
from chainkit.trace._genai_messages import input_messages, output_message
from chainkit.trace._records import RunStarted, TraceHeader
from chainkit.trace._run import Run
from chainkit.trace._trace import Trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = [
    "DEFAULT_MAX_CHUNK_EVENTS",
    "SCOPE",
    "SpanData",
    "iter_spans",
    "otel_missing",
    "resource_attributes",
    "runs_to_spans",
    "spans_to_otlp_json",
    "to_readable_spans",
]

DEFAULT_MAX_CHUNK_EVENTS = 256
SCOPE = "chainkit"
_OPERATION = {"chat_model": "chat", "llm": "text_completion"}


def otel_missing() -> ConfigError:
    """The error for a missing ``otel`` extra, naming the install command."""
    return ConfigError(
        "OpenTelemetry is not installed; install the extra: pip install 'chainkit[otel]'"
    )


# ------------------------------------------------------------------ ids and times


def trace_id_of(run_id: str) -> int:
    """A 128-bit OpenTelemetry trace id from a (root) run id."""
    return _uuid_int(run_id) or 1


def span_id_of(run_id: str) -> int:
    """A 64-bit OpenTelemetry span id from a run id (its low 64 bits, never 0)."""
    return (_uuid_int(run_id) & 0xFFFF_FFFF_FFFF_FFFF) or 1


def _uuid_int(run_id: str) -> int:
    try:
        return uuid.UUID(run_id).int
    except ValueError:
        return int.from_bytes(orjson.dumps(run_id)[:16].ljust(16, b"\0"), "big")


@dataclass(slots=True)
class SpanData:
    """One span, in plain values (what an exporter or the OTLP JSON writer needs)."""

    name: str
    trace_id: int
    span_id: int
    parent_span_id: int | None
    start_ns: int
    end_ns: int
    kind: str  # "CLIENT" or "INTERNAL"
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    error: str | None = None


# ------------------------------------------------------------------ runs -> spans


def runs_to_spans(
    trace: Trace,
    runs: Iterable[Run] | None = None,
    *,
    include_content: bool = False,
    max_chunk_events: int = DEFAULT_MAX_CHUNK_EVENTS,
) -> list[SpanData]:
    """The spans of ``runs`` (every finished run of ``trace`` by default), parents first."""
    wall = _wall_clocks(trace)
    chosen = trace.runs if runs is None else list(runs)
    by_id = {run.run_id: run for run in trace.runs}
    spans: list[SpanData] = []
    for run in chosen:
        if run.start is None:
            continue
        root = run
        seen = {root.run_id}
        while root.parent_run_id in by_id and root.parent_run_id not in seen:
            root = by_id[root.parent_run_id]
            seen.add(root.run_id)
        to_ns = wall.get(run.run_id, wall[""])
        spans.append(_span(run, root, to_ns, include_content, max_chunk_events, by_id))
    return spans


def _wall_clocks(trace: Trace) -> dict[str, Any]:
    """run id -> a function from ``t`` to Unix nanoseconds, by the header before its start."""
    header = trace.headers[0]
    out: dict[str, Any] = {"": _to_ns(header)}
    if len(trace.headers) == 1:
        return out  # one clock for every run: no need to read the records
    current = out[""]
    for record in trace.records:
        if isinstance(record, TraceHeader):
            current = _to_ns(record)
        elif isinstance(record, RunStarted):
            out[record.run_id] = current
    return out


def _to_ns(header: TraceHeader) -> Any:
    wall, clock = header.wall_origin, header.clock_origin
    return lambda t: round((wall + (t - clock)) * 1e9)


def _span(  # noqa: PLR0917 - one private call site
    run: Run,
    root: Run,
    to_ns: Any,
    include_content: bool,
    max_chunk_events: int,
    by_id: Mapping[str, Run],
) -> SpanData:
    start = run.start if run.start is not None else 0.0
    end = run.end if run.end is not None else start
    attrs: dict[str, Any] = {
        "chainkit.run_id": run.run_id,
        "chainkit.run.kind": run.kind,
        "chainkit.run.name": run.name,
    }
    if run.tags:
        attrs["chainkit.run.tags"] = [str(t) for t in run.tags]
    if run.retries:
        attrs["chainkit.run.retries"] = run.retries
    if run.end is None:
        attrs["chainkit.run.unfinished"] = True
    name = run.name
    kind = "INTERNAL"
    if run.is_model:
        kind = "CLIENT"
        attrs.update(_genai_attributes(run, include_content))
        model = attrs.get("gen_ai.request.model") or attrs.get("gen_ai.response.model")
        name = f"{attrs['gen_ai.operation.name']} {model}" if model else run.name
    if include_content:
        if run.inputs is not None:
            attrs["chainkit.input"] = _json(run.inputs)
        if run.outputs is not None:
            attrs["chainkit.output"] = _json(run.outputs)
    events = list(_chunk_events(run, to_ns, include_content, max_chunk_events))
    error = None
    if run.error is not None:
        error = redact(f"{run.error.type}: {run.error.message}")
        events.append(
            (
                "exception",
                to_ns(end),
                {"exception.type": run.error.type, "exception.message": redact(run.error.message)},
            )
        )
    parent = run.parent_run_id if run.parent_run_id in by_id else None
    return SpanData(
        name=name,
        trace_id=trace_id_of(root.run_id),
        span_id=span_id_of(run.run_id),
        parent_span_id=span_id_of(parent) if parent is not None else None,
        start_ns=to_ns(start),
        end_ns=to_ns(end),
        kind=kind,
        attributes=attrs,
        events=events,
        error=error,
    )


def _chunk_events(
    run: Run, to_ns: Any, include_content: bool, cap: int
) -> Iterator[tuple[str, int, dict[str, Any]]]:
    for index, (t, text) in enumerate(run.chunks[:cap]):
        attrs: dict[str, Any] = {"chainkit.chunk.index": index, "chainkit.chunk.chars": len(text)}
        if include_content:
            attrs["chainkit.chunk.text"] = redact(text)
        yield "chainkit.chunk", to_ns(t), attrs
    if len(run.chunks) > cap:
        last_t = run.chunks[-1][0]
        yield (
            "chainkit.chunks.truncated",
            to_ns(last_t),
            {
                "chainkit.chunks.total": len(run.chunks),
                "chainkit.chunks.dropped": len(run.chunks) - cap,
            },
        )


def _genai_attributes(run: Run, include_content: bool) -> dict[str, Any]:
    meta = run.metadata or {}
    attrs: dict[str, Any] = {"gen_ai.operation.name": _OPERATION.get(run.kind, "chat")}
    if meta.get("ls_provider"):
        attrs["gen_ai.provider.name"] = str(meta["ls_provider"])
    for key, attr in (
        ("ls_model_name", "gen_ai.request.model"),
        ("ls_temperature", "gen_ai.request.temperature"),
        ("ls_max_tokens", "gen_ai.request.max_tokens"),
        ("ls_top_p", "gen_ai.request.top_p"),
        ("ls_seed", "gen_ai.request.seed"),
    ):
        value = meta.get(key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            attrs[attr] = value
    stop = meta.get("ls_stop")
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, list) and stop:
        attrs["gen_ai.request.stop_sequences"] = [str(s) for s in stop]
    response = _response_metadata(run.outputs)
    if response.get("id"):
        attrs["gen_ai.response.id"] = str(response["id"])
    model = response.get("model_name") or response.get("model")
    if model:
        attrs["gen_ai.response.model"] = str(model)
    reason = response.get("finish_reason")
    if reason:
        attrs["gen_ai.response.finish_reasons"] = [str(reason)]
    usage = run.usage or {}
    for key, attr in (
        ("input_tokens", "gen_ai.usage.input_tokens"),
        ("output_tokens", "gen_ai.usage.output_tokens"),
    ):
        if isinstance(usage.get(key), int):
            attrs[attr] = usage[key]
    calls = _tool_calls(run.outputs)
    if calls:
        attrs["chainkit.tool_calls"] = [str(c.get("name", "")) for c in calls]
    if include_content:  # the conventions' {"role", "parts"} messages, redacted as traces are
        if run.inputs is not None:
            attrs["gen_ai.input.messages"] = _json(input_messages(run.inputs))
        answer = output_message(run.text, calls, str(reason) if reason else None)
        attrs["gen_ai.output.messages"] = _json([answer])
    return attrs


def _first_generation(outputs: Any) -> Any:
    """A run's outputs, or the first of LangChain's generations when it holds them."""
    value = outputs
    if isinstance(value, dict) and isinstance(value.get("generations"), list):
        value = value["generations"]
    while isinstance(value, list) and value:
        value = value[0]
    return value


def _message(outputs: Any) -> dict[str, Any]:
    """The model's message in a run's outputs (a message dict, or LangChain's generations)."""
    value = _first_generation(outputs)
    if isinstance(value, dict) and isinstance(value.get("message"), dict):
        value = value["message"]
    if isinstance(value, dict) and isinstance(value.get("kwargs"), dict):
        value = value["kwargs"]
    return value if isinstance(value, dict) else {}


def _response_metadata(outputs: Any) -> dict[str, Any]:
    message = _message(outputs)
    meta = message.get("response_metadata")
    out = dict(meta) if isinstance(meta, dict) else {}
    info = _generation_info(outputs)
    for key in ("finish_reason", "model_name"):
        if key not in out and key in info:
            out[key] = info[key]
    return out


def _generation_info(outputs: Any) -> dict[str, Any]:
    value = _first_generation(outputs)
    info = value.get("generation_info") if isinstance(value, dict) else None
    return info if isinstance(info, dict) else {}


def _tool_calls(outputs: Any) -> list[dict[str, Any]]:
    calls = _message(outputs).get("tool_calls")
    return [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []


def _json(value: Any) -> str:
    return redact(orjson.dumps(value, default=str).decode())


# ------------------------------------------------------------------ SDK spans, OTLP JSON


def resource_attributes(trace: Trace) -> dict[str, Any]:
    header = trace.headers[0]
    return {
        "service.name": "chainkit",
        "telemetry.sdk.name": "chainkit",
        "chainkit.trace.clock_origin": header.clock_origin,
        "chainkit.trace.wall_origin": header.wall_origin,
        "chainkit.trace.created": header.created,
    }


def to_readable_spans(
    spans: Iterable[SpanData], resource: Mapping[str, Any] | None = None
) -> list[ReadableSpan]:
    """The OpenTelemetry SDK's spans for ``spans`` (for any ``SpanExporter``)."""
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
    except ImportError as exc:
        raise otel_missing() from exc
    res = Resource.create(dict(resource or {}))
    scope = InstrumentationScope(SCOPE, _version())
    out: list[ReadableSpan] = []
    for s in spans:
        context = SpanContext(s.trace_id, s.span_id, False, TraceFlags(TraceFlags.SAMPLED))
        parent = (
            SpanContext(s.trace_id, s.parent_span_id, False, TraceFlags(TraceFlags.SAMPLED))
            if s.parent_span_id is not None
            else None
        )
        status = Status(StatusCode.ERROR, s.error) if s.error is not None else Status(StatusCode.OK)
        out.append(
            ReadableSpan(
                name=s.name,
                context=context,
                parent=parent,
                resource=res,
                attributes=s.attributes,
                events=[Event(n, a, timestamp=t) for n, t, a in s.events],
                kind=SpanKind.CLIENT if s.kind == "CLIENT" else SpanKind.INTERNAL,
                status=status,
                start_time=s.start_ns,
                end_time=s.end_ns,
                instrumentation_scope=scope,
            )
        )
    return out


def spans_to_otlp_json(trace: Trace, spans: Iterable[SpanData]) -> bytes:
    """OTLP JSON (an ``ExportTraceServiceRequest``, ids in hex) for ``spans`` of ``trace``."""
    try:
        from google.protobuf.json_format import MessageToDict
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    except ImportError as exc:
        raise otel_missing() from exc
    request = encode_spans(to_readable_spans(spans, resource_attributes(trace)))
    data = MessageToDict(request, preserving_proto_field_name=False)
    for span in iter_spans(data):
        for key in ("traceId", "spanId", "parentSpanId"):
            if span.get(key):
                span[key] = base64.b64decode(span[key]).hex()
    return orjson.dumps(data, option=orjson.OPT_INDENT_2)


def iter_spans(data: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for resource_spans in data.get("resourceSpans") or ():
        for scope_spans in resource_spans.get("scopeSpans") or ():
            yield from scope_spans.get("spans") or ()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chainkit")
    except PackageNotFoundError:
        return "0"
