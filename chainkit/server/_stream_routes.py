"""The streaming routes under ``/chains/{name}/``: ``stream``, ``stream_log`` and
``stream_events``, as LangServe serves them (Server-Sent Events).

Each is ``data`` events, then ``end`` (with an empty data line), or ``error``:
chainkit's error body plus LangServe's ``status_code``. ``stream`` also sends
``metadata`` events: the run's ids first, usage and timings just before ``end``
(RemoteRunnable clients skip them). Closing the connection cancels the run and
its model call; at most ``max_streams`` are open at once (429 beyond).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from langchain_core.callbacks import UsageMetadataCallbackHandler
from langchain_core.runnables import RunnableConfig

from chainkit._compat import astream_log
from chainkit.server._chain_routes import check_input, errors_doc, ms, usage_total
from chainkit.server._errors import error_body, one_line
from chainkit.server._logging import RequestInfo, request_info
from chainkit.server._schemas import (
    InvokeRequest,
    StreamEventsRequest,
    StreamLogRequest,
    StreamRequest,
    Timings,
)
from chainkit.server._sse import EventStream, sse_event
from chainkit.server._state import ServedChain, ServiceState, service_state
from chainkit.server._usage import InlineUsageHandler
from chainkit.server._wire import run_config, strip_internal

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/chains/{name}", tags=["chains"])


def _sse_doc(text: str, *models: str) -> dict[int | str, dict[str, Any]]:
    refs = [{"$ref": f"#/components/schemas/{m}"} for m in models]
    return {
        200: {"description": text, "content": {"text/event-stream": {"schema": {"oneOf": refs}}}}
    }


_STREAM_ERRORS = errors_doc(401, 404, 413, 422, 429)


@dataclass
class _StreamRun:
    """One SSE response's bookkeeping, shared by its event generator and its close hook."""

    state: ServiceState
    endpoint: str
    served: ServedChain
    info: RequestInfo
    config: RunnableConfig
    started: float
    outcome: str = "completed"

    @property
    def name(self) -> str:
        return self.served.name

    def open(self) -> None:
        self.state.streams.acquire()  # 429 when full
        self.state.metrics.streams_in_flight.labels(self.endpoint).inc()

    def close(self, disconnected: bool) -> None:
        self.state.streams.release()
        metrics = self.state.metrics
        metrics.streams_in_flight.labels(self.endpoint).dec()
        if disconnected:
            self.outcome = "disconnected"
            self.info.disconnected = True
        metrics.streams.labels(self.endpoint, self.name, self.outcome).inc()

    def failed(self, exc: Exception) -> bytes:
        """The ``error`` event for ``exc`` (logged and counted): chainkit's error body
        plus LangServe's ``status_code``."""
        body = error_body(exc, self.info.request_id)
        self.outcome = "error"
        self.info.error = body.type
        self.state.metrics.errors.labels(self.endpoint, body.type).inc()
        log.warning(
            "stream of chain %r failed (request %s): %s: %s",
            self.name,
            self.info.request_id,
            type(exc).__name__,
            one_line(str(exc)),
        )
        data = body.model_dump(mode="json", exclude_none=True)
        return sse_event("error", {**data, "status_code": body.status})

    def first_chunk(self, now: float) -> None:
        self.state.metrics.ttft.labels(self.name).observe(now - self.started)

    def timings(self, first: float | None, chunks: int) -> Timings:
        return Timings(
            ttft_ms=ms(first - self.started) if first is not None else None,
            total_ms=ms(time.perf_counter() - self.started),
            chunks=chunks,
        )

    def ids(self) -> dict[str, Any]:
        return {"run_id": str(self.config.get("run_id")), "request_id": self.info.request_id}


def _start(
    request: Request,
    name: str,
    body: InvokeRequest,
    endpoint: str,
    callbacks: list[Any] | None = None,
) -> _StreamRun:
    state = service_state(request)
    info = request_info(request.scope)
    served = check_input(state, name, info, body.input)
    config = run_config(served.runnable, body.config, info.request_id, callbacks)
    return _StreamRun(state, endpoint, served, info, config, time.perf_counter())


def _respond(run: _StreamRun, events: AsyncIterator[bytes]) -> EventStream:
    run.open()
    return EventStream(events, ping_interval=run.state.settings.ping_interval, on_close=run.close)


@router.post(
    "/stream",
    response_class=EventStream,
    status_code=200,
    responses={
        **_sse_doc(
            "Server-Sent Events: `metadata` (run id), `data` (one output chunk as JSON)..., "
            "`metadata` (usage, timings), then `end`; or `error`.",
            "StreamMetadataEvent",
            "StreamErrorEvent",
        ),
        **_STREAM_ERRORS,
    },
    summary="Stream a chain's output as Server-Sent Events",
)
async def stream(name: str, body: StreamRequest, request: Request) -> EventStream:
    """Each chunk as LangServe writes it (text chunks as JSON strings). Closing the
    connection cancels the run."""
    usage = InlineUsageHandler()
    run = _start(request, name, body, "/chains/{name}/stream", [usage])
    return _respond(run, _chunk_events(run, body, usage))


async def _chunk_events(
    run: _StreamRun, body: StreamRequest, usage: UsageMetadataCallbackHandler
) -> AsyncIterator[bytes]:
    yield sse_event("metadata", run.ids())
    first: float | None = None
    count = 0
    try:
        async for chunk in run.served.runnable.astream(body.input, run.config):
            if first is None and not (isinstance(chunk, str) and not chunk):
                first = time.perf_counter()
                run.first_chunk(first)
            count += 1
            yield sse_event("data", chunk)
    except Exception as exc:  # noqa: BLE001 - every failure becomes an `error` event
        yield run.failed(exc)
        return
    total = usage_total(usage)
    run.state.metrics.add_tokens(run.name, total.input_tokens, total.output_tokens)
    summary = {**run.ids(), "usage": total.model_dump(), "timings": run.timings(first, count)}
    yield sse_event("metadata", summary)
    yield sse_event("end")


@router.post(
    "/stream_log",
    response_class=EventStream,
    status_code=200,
    responses={
        **_sse_doc(
            'Server-Sent Events: `data` (`{"ops": [...]}`, one run-log patch)... then `end`; '
            "or `error`.",
            "StreamErrorEvent",
        ),
        **_STREAM_ERRORS,
    },
    summary="Stream a chain's run log (astream_log patches) as Server-Sent Events",
)
async def stream_log(name: str, body: StreamLogRequest, request: Request) -> EventStream:
    """``astream_log(diff=True)`` with the ``include_*``/``exclude_*`` filters; each patch's
    JSON-Patch ``ops``. Closing the connection cancels the run."""
    run = _start(request, name, body, "/chains/{name}/stream_log")
    return _respond(run, _log_events(run, body))


async def _log_events(run: _StreamRun, body: StreamLogRequest) -> AsyncIterator[bytes]:
    try:
        async for patch in astream_log(
            run.served.runnable,
            body.input,
            run.config,
            include_names=body.include_names,
            include_types=body.include_types,
            include_tags=body.include_tags,
            exclude_names=body.exclude_names,
            exclude_types=body.exclude_types,
            exclude_tags=body.exclude_tags,
        ):
            yield sse_event("data", {"ops": patch.ops})
    except Exception as exc:  # noqa: BLE001 - every failure becomes an `error` event
        yield run.failed(exc)
        return
    yield sse_event("end")


@router.post(
    "/stream_events",
    response_class=EventStream,
    status_code=200,
    responses={
        **_sse_doc(
            "Server-Sent Events: `data` (one astream_events v2 event as JSON)... then `end`; "
            "or `error`.",
            "StreamErrorEvent",
        ),
        **_STREAM_ERRORS,
    },
    summary="Stream a chain's astream_events (v2) as Server-Sent Events",
)
async def stream_events(name: str, body: StreamEventsRequest, request: Request) -> EventStream:
    """One ``data`` event per ``astream_events(version="v2")`` event (``event``, ``name``,
    ``run_id``, ``parent_ids``, ``tags``, ``metadata``, ``data``), messages written as
    LangServe writes them; ``include_*``/``exclude_*`` filter by run name, run type and
    tag. Closing the connection cancels the run."""
    usage = InlineUsageHandler()
    run = _start(request, name, body, "/chains/{name}/stream_events", [usage])
    return _respond(run, _lc_events(run, body, usage))


async def _lc_events(
    run: _StreamRun, body: StreamEventsRequest, usage: UsageMetadataCallbackHandler
) -> AsyncIterator[bytes]:
    first: float | None = None
    try:
        async for event in run.served.runnable.astream_events(
            body.input,
            run.config,
            version="v2",
            include_names=body.include_names,
            include_types=body.include_types,
            include_tags=body.include_tags,
            exclude_names=body.exclude_names,
            exclude_types=body.exclude_types,
            exclude_tags=body.exclude_tags,
        ):
            if first is None and event["event"].endswith("_stream"):
                first = time.perf_counter()
                run.first_chunk(first)
            event["metadata"] = strip_internal(event["metadata"])
            yield sse_event("data", event)
    except Exception as exc:  # noqa: BLE001 - every failure becomes an `error` event
        yield run.failed(exc)
        return
    total = usage_total(usage)
    run.state.metrics.add_tokens(run.name, total.input_tokens, total.output_tokens)
    yield sse_event("end")
