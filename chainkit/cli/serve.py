"""``chainkit serve``: every chain over HTTP (FastAPI under uvicorn)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from chainkit.cli._app import app
from chainkit.cli._otlp import OtlpOpt, otlp_handler


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to bind; a non-loopback one needs a token or --insecure.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8080,
    chains_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder of chain spec files (default: $CHAINKIT_CHAINS_DIR).",
            file_okay=False,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Model spec (default: $CHAINKIT_MODEL or local)."),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(help="Allow a non-loopback address without CHAINKIT_API_TOKEN."),
    ] = False,
    max_body_bytes: Annotated[
        int, typer.Option(help="Largest request body; larger is answered 413.")
    ] = 1024 * 1024,
    max_streams: Annotated[
        int, typer.Option(help="SSE streams open at once; one more is answered 429.")
    ] = 256,
    max_batch_items: Annotated[
        int, typer.Option(help="Inputs per /batch request; more is answered 413.")
    ] = 100,
    max_batch_concurrency: Annotated[
        int, typer.Option(help="Cap on a /batch request's max_concurrency.")
    ] = 16,
    max_header_bytes: Annotated[
        int,
        typer.Option(help="Largest request line + headers; larger is answered 431 and closed."),
    ] = 32 * 1024,
    max_headers: Annotated[
        int, typer.Option(help="Headers per request; more is answered 431 and closed.")
    ] = 100,
    header_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds a client has to send a request's line and headers (else 408 and "
            "closed; a connection that sends nothing is closed)."
        ),
    ] = 10.0,
    body_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds a client has to send a request's whole body, from the end of its "
            "headers (else 408 and closed)."
        ),
    ] = 30.0,
    keep_alive_timeout: Annotated[
        int, typer.Option(help="Seconds an idle keep-alive connection stays open.")
    ] = 15,
    max_connections: Annotated[
        int,
        typer.Option(
            help="Connections at once; a request beyond them is answered 503 (JSON, with "
            "Retry-After) and closed."
        ),
    ] = 1024,
    log_bodies: Annotated[
        bool, typer.Option(help="Add request bodies (redacted, cut) to the access log.")
    ] = False,
    otlp: OtlpOpt = False,
) -> None:
    """Serve every chain over HTTP (FastAPI under uvicorn); API docs at /docs.

    Endpoints: POST /generate, GET /chains, and LangServe's protocol under
    /chains/NAME/ (invoke, batch, stream, stream_log, stream_events, input_schema,
    output_schema, config_schema: langserve's RemoteRunnable works unchanged),
    GET /health, GET /metrics.
    With CHAINKIT_API_TOKEN set, every endpoint but /health needs
    'Authorization: Bearer <token>'. Ctrl-C stops it. With --otlp every call
    is also sent as OpenTelemetry spans and metrics (flushed when it stops).
    """
    from chainkit.server import ServerSettings
    from chainkit.server import serve as run_service

    settings = ServerSettings(
        max_body_bytes=max_body_bytes,
        max_streams=max_streams,
        max_batch_items=max_batch_items,
        max_batch_concurrency=max_batch_concurrency,
        log_bodies=log_bodies,
        max_header_bytes=max_header_bytes,
        max_headers=max_headers,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        keep_alive_timeout=keep_alive_timeout,
        max_connections=max_connections,
    )
    server_log = logging.getLogger("chainkit.server")
    if logging.getLogger("chainkit").getEffectiveLevel() >= logging.ERROR:
        server_log.setLevel(logging.ERROR)  # --quiet
    elif not server_log.isEnabledFor(logging.INFO):
        server_log.setLevel(logging.INFO)  # the access log is the point of a server's output
    if settings.api_token is None:
        auth = "no auth (set CHAINKIT_API_TOKEN to require a bearer token)"
    else:
        auth = "bearer token required (CHAINKIT_API_TOKEN)"

    def ready(url: str) -> None:
        typer.echo(f"chainkit serve: listening on {url} (docs: {url}/docs; {auth})", err=True)

    otel = otlp_handler(otlp)  # shut down with the service (its lifespan), or here
    try:
        run_service(
            host,
            port,
            model=model,
            chains_dir=chains_dir,
            settings=settings,
            insecure=insecure,
            on_ready=ready,
            callbacks=[otel] if otel is not None else (),
        )
    finally:
        if otel is not None:
            otel.shutdown()
