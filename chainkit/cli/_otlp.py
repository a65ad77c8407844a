"""``--otlp`` for the commands that run chains: an :class:`OTelCapture` for the command's calls."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from chainkit.callbacks import OTelCapture

__all__ = ["OtlpOpt", "otlp_handler"]

OtlpOpt = Annotated[
    bool,
    typer.Option(
        "--otlp",
        help="Also send the runs as OpenTelemetry spans and GenAI metrics over OTLP/HTTP "
        "(to where the OTEL_EXPORTER_OTLP_* variables say; needs chainkit[otel]).",
    ),
]


def otlp_handler(enabled: bool) -> OTelCapture | None:
    """An OTelCapture when ``enabled`` (the caller shuts it down at the end), else None.

    Without the ``otel`` extra this raises the ConfigError of ``otel_missing()``
    (one line, exit 2) before any work starts.
    """
    if not enabled:
        return None
    from chainkit.callbacks import OTelCapture

    otel = OTelCapture()
    otel.check_collector()  # one line now if the collector is down, not a surprise at exit
    return otel
