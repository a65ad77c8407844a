"""``chainkit trace export`` and ``chainkit trace import``: traces to and from OpenTelemetry."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from chainkit.cli.trace import FileArg, trace_app

if TYPE_CHECKING:
    from chainkit.trace import Trace
    from chainkit.trace._otel import SpanData


class ExportFormat(StrEnum):
    otlp_http = "otlp-http"
    otlp_json = "otlp-json"


def _traces_url(endpoint: str) -> str:
    """A collector's base URL gets OTLP/HTTP's ``/v1/traces`` path; a full URL is kept."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else f"{endpoint}/v1/traces"


@trace_app.command("export")
def export(
    file: FileArg,
    otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            "--otlp-endpoint",
            help="Where to send the spans over OTLP/HTTP (a collector's base URL or its "
            "/v1/traces URL). Default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or "
            "OTEL_EXPORTER_OTLP_ENDPOINT.",
        ),
    ] = None,
    fmt: Annotated[
        ExportFormat,
        typer.Option("--format", help="otlp-http sends the spans; otlp-json writes a file."),
    ] = ExportFormat.otlp_http,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="The OTLP JSON file (--format otlp-json).")
    ] = None,
    include_content: Annotated[
        bool,
        typer.Option(
            "--include-content/--no-content",
            help="Also export prompts, completions, inputs, outputs and chunk texts (redacted).",
        ),
    ] = False,
    max_chunk_events: Annotated[
        int, typer.Option(min=0, help="Chunk events kept per run (then one summary event).")
    ] = 256,
) -> None:
    """Send a recorded trace to an OpenTelemetry collector, or write it as OTLP JSON.

    Spans keep the trace's own times; model runs carry the GenAI semantic
    conventions. The trace file is only read.
    """
    from chainkit.errors import TraceError, UserError
    from chainkit.trace import Trace
    from chainkit.trace._otel import runs_to_spans, spans_to_otlp_json

    if fmt is ExportFormat.otlp_json and output is None:
        raise UserError("--format otlp-json writes a file: give it with -o FILE")
    trace = Trace.load(file)
    spans = runs_to_spans(trace, include_content=include_content, max_chunk_events=max_chunk_events)
    if fmt is ExportFormat.otlp_json:
        assert output is not None  # noqa: S101 - checked above
        try:
            output.write_bytes(spans_to_otlp_json(trace, spans))
        except OSError as exc:
            raise TraceError(f"cannot write {output}: {exc.strerror}; check the path") from exc
        typer.echo(f"wrote {len(spans)} spans to {output}", err=True)
        return
    endpoint = (
        otlp_endpoint
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    if not endpoint:
        raise UserError(
            "no OTLP endpoint: pass --otlp-endpoint URL (or set OTEL_EXPORTER_OTLP_ENDPOINT), "
            "or write a file with --format otlp-json -o FILE"
        )
    sent = _send(trace, spans, _traces_url(endpoint))
    typer.echo(f"sent {sent} spans to {_traces_url(endpoint)}", err=True)


def _send(trace: Trace, spans: list[SpanData], url: str) -> int:
    from chainkit.errors import TraceError
    from chainkit.trace._otel import otel_missing, resource_attributes, to_readable_spans

    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import SpanExportResult
    except ImportError as exc:
        raise otel_missing() from exc
    readable = to_readable_spans(spans, resource_attributes(trace))
    exporter = OTLPSpanExporter(endpoint=url, timeout=5)
    try:
        result = exporter.export(readable)
    finally:
        exporter.shutdown()  # type: ignore[no-untyped-call]
    if result is not SpanExportResult.SUCCESS:
        raise TraceError(
            f"could not send {len(readable)} spans to {url} (unreachable or refused); "
            "the trace file is unchanged: check the collector, or use --format otlp-json -o FILE"
        )
    return len(readable)


@trace_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="An OTLP JSON trace file.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="The chainkit trace to write.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUTPUT.")] = False,
) -> None:
    """Turn OTLP JSON (from chainkit or another instrumentation) into a chainkit trace.

    ``trace show``, ``html``, ``diff`` and replay then work on it; what could not
    be mapped is said in one line each on stderr.
    """
    from chainkit.errors import TraceError, UserError
    from chainkit.trace._otel_import import otlp_json_to_trace

    if output.exists() and not overwrite:
        raise UserError(f"{output} already exists; pass --overwrite to replace it")
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise TraceError(f"cannot read {file}: {exc.strerror}") from exc
    result = otlp_json_to_trace(data, source=str(file))
    result.trace.save(output)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"wrote {len(result.trace.runs)} runs to {output}", err=True)
