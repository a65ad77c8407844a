"""OTLP JSON back into a trace: the reverse of :mod:`._otel`'s mapping.

Spans chainkit exported come back as the very runs, ids and times the trace had
(the resource carries its clock). Spans from other LangChain instrumentations
(OpenInference's ``openinference.span.kind``, GenAI attributes) are read as well
as they can be, and :class:`ImportResult` says what could not be mapped.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from chainkit.errors import TraceError
from chainkit.trace._otel import iter_spans, otel_missing
from chainkit.trace._records import RunEnded, RunFailed, RunStarted
from chainkit.trace._trace import Trace

__all__ = ["ImportResult", "otlp_json_to_trace"]

_OI_KIND = {
    "LLM": "chat_model",
    "CHAIN": "chain",
    "TOOL": "tool",
    "RETRIEVER": "retriever",
    "AGENT": "chain",
    "EMBEDDING": "chain",
    "RERANKER": "chain",
    "PROMPT": "prompt",
}


@dataclass(slots=True)
class ImportResult:
    """A trace made from OTLP JSON, and what could not be mapped (one line each)."""

    trace: Trace
    notes: list[str]


def otlp_json_to_trace(data: bytes, *, source: str = "OTLP JSON") -> ImportResult:
    """Turn OTLP JSON (from chainkit or another instrumentation) into a trace."""
    try:
        from google.protobuf.json_format import MessageToDict, Parse, ParseError
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
    except ImportError as exc:
        raise otel_missing() from exc
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise TraceError(f"{source} is not JSON ({exc}); give an OTLP JSON trace file") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("resourceSpans"), list):
        raise TraceError(
            f"{source} is not OTLP JSON: no 'resourceSpans' list at the top; "
            "give a file written by an OTLP JSON exporter"
        )
    try:
        for span in iter_spans(raw):
            for key in ("traceId", "spanId", "parentSpanId"):
                if span.get(key):
                    span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
        request = Parse(orjson.dumps(raw), ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except (ParseError, ValueError, TypeError, AttributeError) as exc:
        raise TraceError(f"{source} is not valid OTLP JSON: {str(exc)[:200]}") from exc
    parsed = MessageToDict(request, preserving_proto_field_name=False)
    return _build_trace(parsed)


def _attr_value(value: Mapping[str, Any]) -> Any:
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [_attr_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return _attrs(value["kvlistValue"].get("values", []))
    return None


def _attrs(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {item["key"]: _attr_value(item.get("value", {})) for item in items if "key" in item}


def _hex(value: str | None) -> str | None:
    return base64.b64decode(value).hex() if value else None


def _build_trace(parsed: Mapping[str, Any]) -> ImportResult:
    notes: list[str] = []
    collected: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for resource_spans in parsed.get("resourceSpans") or ():
        resource = _attrs((resource_spans.get("resource") or {}).get("attributes", []))
        for scope_spans in resource_spans.get("scopeSpans") or ():
            collected.extend((span, resource) for span in scope_spans.get("spans") or ())
    if not collected:
        raise TraceError("the OTLP JSON holds no spans; nothing to import")
    resource = collected[0][1]
    starts = [int(span.get("startTimeUnixNano", 0)) for span, _ in collected]
    wall_origin = float(resource.get("chainkit.trace.wall_origin", min(starts) / 1e9))
    clock_origin = float(resource.get("chainkit.trace.clock_origin", 0.0))
    trace = Trace()
    # The spans' clock: the one the exported trace had (from chainkit), else their wall time.
    trace.append(
        trace.headers[0].model_copy(
            update={"wall_origin": wall_origin, "clock_origin": clock_origin}
        )
    )

    def t_of(ns: Any) -> float:
        return int(ns) / 1e9 - wall_origin + clock_origin

    run_ids: dict[str, str] = {}
    for span, _ in collected:
        attrs = _attrs(span.get("attributes", []))
        sid = _hex(span.get("spanId")) or ""
        run_ids[sid] = str(attrs.get("chainkit.run_id") or _uuid_from(sid))
    unknown_parents = 0
    unmapped_kinds: set[str] = set()
    ordered = sorted(collected, key=lambda item: int(item[0].get("startTimeUnixNano", 0)))
    for span, _ in ordered:
        attrs = _attrs(span.get("attributes", []))
        sid = _hex(span.get("spanId")) or ""
        run_id = run_ids[sid]
        parent_sid = _hex(span.get("parentSpanId"))
        parent = run_ids.get(parent_sid) if parent_sid else None
        if parent_sid and parent is None:
            unknown_parents += 1
        kind = _kind_of(attrs, unmapped_kinds)
        inputs = _loads(attrs.get("chainkit.input") or attrs.get("input.value"))
        trace.append(
            RunStarted(
                t=t_of(span.get("startTimeUnixNano", 0)),
                run_id=run_id,
                parent_run_id=parent,
                name=str(attrs.get("chainkit.run.name") or span.get("name") or "span"),
                kind=kind,
                tags=list(attrs.get("chainkit.run.tags") or []),
                metadata=_metadata(attrs),
                inputs=inputs,
            )
        )
        for event in span.get("events") or ():
            if event.get("name") == "chainkit.chunk":
                eattrs = _attrs(event.get("attributes", []))
                trace.chunk(
                    run_id,
                    t_of(event.get("timeUnixNano", 0)),
                    str(eattrs.get("chainkit.chunk.text", "")),
                )
        end_t = t_of(span.get("endTimeUnixNano", span.get("startTimeUnixNano", 0)))
        status = span.get("status") or {}
        if status.get("code") in ("STATUS_CODE_ERROR", 2):
            error_type, message = _error_of(span, status)
            trace.append(RunFailed(t=end_t, run_id=run_id, error_type=error_type, message=message))
        elif not attrs.get("chainkit.run.unfinished"):
            outputs = _loads(attrs.get("chainkit.output") or attrs.get("output.value"))
            trace.append(RunEnded(t=end_t, run_id=run_id, outputs=outputs, usage=_usage(attrs)))
    if unknown_parents:
        notes.append(
            f"{unknown_parents} span(s) name a parent that is not in the file; shown as roots"
        )
    if unmapped_kinds:
        notes.append(
            "span kinds with no chainkit equivalent, read as chains: "
            + ", ".join(sorted(unmapped_kinds))
        )
    if not any("chainkit.run_id" in _attrs(s.get("attributes", [])) for s, _ in collected):
        notes.append(
            "not written by chainkit: run ids are made from span ids; "
            "chunk texts only where recorded"
        )
    return ImportResult(trace, notes)


def _uuid_from(span_id_hex: str) -> str:
    return str(uuid.UUID(int=int(span_id_hex or "0", 16)))


def _kind_of(attrs: Mapping[str, Any], unmapped: set[str]) -> str:
    kind = attrs.get("chainkit.run.kind")
    if isinstance(kind, str):
        return kind
    operation = attrs.get("gen_ai.operation.name")
    if operation == "text_completion":
        return "llm"
    if operation:
        return "chat_model"
    oi = attrs.get("openinference.span.kind")
    if isinstance(oi, str):
        if oi not in _OI_KIND:
            unmapped.add(oi)
        return _OI_KIND.get(oi, "chain")
    return "chain"


def _metadata(attrs: Mapping[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for attr, key in (
        ("gen_ai.provider.name", "ls_provider"),
        ("gen_ai.request.model", "ls_model_name"),
        ("gen_ai.request.temperature", "ls_temperature"),
        ("gen_ai.request.max_tokens", "ls_max_tokens"),
        ("gen_ai.request.top_p", "ls_top_p"),
        ("gen_ai.request.seed", "ls_seed"),
        ("gen_ai.request.stop_sequences", "ls_stop"),
        ("llm.model_name", "ls_model_name"),
    ):
        if attr in attrs:
            meta.setdefault(key, attrs[attr])
    return meta


def _usage(attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    inp = attrs.get("gen_ai.usage.input_tokens", attrs.get("llm.token_count.prompt"))
    out = attrs.get("gen_ai.usage.output_tokens", attrs.get("llm.token_count.completion"))
    if not isinstance(inp, int) and not isinstance(out, int):
        return None
    i, o = (inp if isinstance(inp, int) else 0), (out if isinstance(out, int) else 0)
    return {"input_tokens": i, "output_tokens": o, "total_tokens": i + o}


def _error_of(span: Mapping[str, Any], status: Mapping[str, Any]) -> tuple[str, str]:
    for event in span.get("events") or ():
        if event.get("name") == "exception":
            e = _attrs(event.get("attributes", []))
            return str(e.get("exception.type", "Error")), str(e.get("exception.message", ""))
    message = str(status.get("message", ""))
    error_type, _, text = message.partition(": ")
    return (error_type, text) if text else ("Error", message)


def _loads(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value
