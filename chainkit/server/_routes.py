"""The endpoints: /generate, /chains, /chains/{name}/invoke|batch|stream|stream_events,
/health, /metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import Response
from langchain_core.callbacks import UsageMetadataCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel

from chainkit import __version__
from chainkit.errors import MissingVariableError
from chainkit.server._errors import ApiError, error_body, one_line
from chainkit.server._logging import RequestInfo, request_info
from chainkit.server._metrics import CONTENT_TYPE_LATEST
from chainkit.server._schemas import (
    BatchError,
    BatchItem,
    BatchRequest,
    BatchResponse,
    ChainDescription,
    ChainList,
    ErrorResponse,
    GenerationRequest,
    GenerationResponse,
    HealthResponse,
    InvokeRequest,
    InvokeResponse,
    RunConfig,
    StreamEndEvent,
    StreamEventsEndEvent,
    StreamEventsRequest,
    StreamRequest,
    Timings,
    Usage,
)
from chainkit.server._sse import EventStream, sse_event
from chainkit.server._state import ServedChain, ServiceState, service_state
from chainkit.trace import add_chunk, message_text, to_jsonable

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter()

_ERROR_TEXT = {
    401: "Missing or wrong bearer token.",
    404: "No chain by that name (see `suggestions`).",
    413: "The body, or the number of batch inputs, is over the server's limit.",
    422: "The request or the chain's input is invalid (see `missing` or `details`).",
    429: "Too many streams are open; retry after `Retry-After` seconds.",
    502: "The model failed (see `upstream_type`, `upstream_status`).",
    503: "The chain's model is not configured on the server (e.g. a missing API key).",
    504: "The model did not answer in time.",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorResponse, "description": _ERROR_TEXT[code]} for code in codes}


def _sse_doc(*models: str, text: str) -> dict[int | str, dict[str, Any]]:
    refs = [{"$ref": f"#/components/schemas/{m}"} for m in models]
    return {
        200: {
            "description": text,
            "content": {"text/event-stream": {"schema": {"oneOf": refs}}},
        }
    }


# ---------------------------------------------------------------- helpers


def _usage(handler: UsageMetadataCallbackHandler) -> Usage:
    return Usage.total(handler.usage_metadata.values())


def _config(
    run: RunConfig, info: RequestInfo, callbacks: list[Any] | None = None
) -> RunnableConfig:
    config: RunnableConfig = {
        "tags": list(run.tags),
        "metadata": {**run.metadata, "request_id": info.request_id},
    }
    if callbacks:
        config["callbacks"] = callbacks
    if run.run_name:
        config["run_name"] = run.run_name
    return config


def output_json(value: Any) -> Any:
    """A chain's output as JSON, as it is: text, a message's text, a model's fields."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, BaseMessage):
        return message_text(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): output_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [output_json(v) for v in value]
    return to_jsonable(value, 0)


def _served(state: ServiceState, name: str, info: RequestInfo, data: dict[str, Any]) -> ServedChain:
    """The chain, with its input checked: 404 for an unknown name, 422 for a missing variable."""
    served = state.chain(name)
    info.chain = name
    missing = served.missing(data)
    if missing:
        raise MissingVariableError(name, missing, data)
    return served


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


# ---------------------------------------------------------------- the seed's /generate


@router.post(
    "/generate",
    response_model=GenerationResponse,
    responses=_errors(401, 413, 422, 502, 504),
    summary="The second seed's endpoint: a prompt in, the model's text out",
    tags=["generate"],
)
async def generate(
    body: GenerationRequest, background_tasks: BackgroundTasks, request: Request
) -> GenerationResponse:
    """Send ``prompt`` to the service's model as a user message; answer its text.

    After the response is sent, a background task logs the prompt's and the
    text's lengths (not their content).
    """
    state = service_state(request)
    info = request_info(request.scope)
    usage = UsageMetadataCallbackHandler()
    config: RunnableConfig = {
        "callbacks": [usage],
        "metadata": {"request_id": info.request_id},
        "run_name": "generate",
    }
    model = state.model()
    async with asyncio.timeout(state.settings.request_timeout):
        message = await model.ainvoke(body.prompt, config)
    text = message_text(message)
    total = _usage(usage)
    state.metrics.add_tokens("", total.input_tokens, total.output_tokens)
    background_tasks.add_task(log_generation, len(body.prompt), len(text), info.request_id)
    return GenerationResponse(generated_text=text)


async def log_generation(prompt_length: int, text_length: int, request_id: str) -> None:
    """The seed's background task: log the lengths, after the response was sent."""
    log.info(
        "generated text: prompt length %d, generated text length %d (request %s)",
        prompt_length,
        text_length,
        request_id,
    )


# ---------------------------------------------------------------- chains


@router.get(
    "/chains",
    response_model=ChainList,
    responses=_errors(401),
    summary="Every chain: name, description, input JSON Schema, output kind",
    tags=["chains"],
)
async def chains(request: Request) -> ChainList:
    state = service_state(request)
    described = []
    for info in state.chain_infos():
        try:
            schema = state.chain(info.name).runnable.get_input_jsonschema()
        except Exception:  # noqa: BLE001 - a chain whose model cannot load is still listed
            schema = _schema_from_info(info.name, info.variables, dict(info.defaults))
        described.append(
            ChainDescription(
                name=info.name,
                description=info.description,
                input_schema=schema,
                variables=list(info.variables),
                output=info.parser,
            )
        )
    return ChainList(chains=described)


def _schema_from_info(
    name: str, variables: tuple[str, ...], defaults: dict[str, Any]
) -> dict[str, Any]:
    properties: dict[str, Any] = {v: {"title": v.title(), "type": "string"} for v in variables}
    for key, value in defaults.items():
        properties[key] = {"title": key.title(), "default": value}
    return {
        "title": f"{name.title()}Input",
        "type": "object",
        "properties": properties,
        "required": list(variables),
    }


@router.post(
    "/chains/{name}/invoke",
    response_model=InvokeResponse,
    responses=_errors(401, 404, 413, 422, 502, 503, 504),
    summary="Run a chain once",
    tags=["chains"],
)
async def invoke(name: str, body: InvokeRequest, request: Request) -> InvokeResponse:
    """``{"input": {...}, "config": {"tags": [...], "metadata": {...}}}`` ->
    ``{"output": ..., "usage": ..., "latency_ms": ...}``."""
    state = service_state(request)
    info = request_info(request.scope)
    served = _served(state, name, info, body.input)
    usage = UsageMetadataCallbackHandler()
    started = time.perf_counter()
    async with asyncio.timeout(state.settings.request_timeout):
        output = await served.runnable.ainvoke(body.input, _config(body.config, info, [usage]))
    elapsed = time.perf_counter() - started
    total = _usage(usage)
    state.metrics.add_tokens(name, total.input_tokens, total.output_tokens)
    return InvokeResponse(output=output_json(output), usage=total, latency_ms=_ms(elapsed))


@router.post(
    "/chains/{name}/batch",
    response_model=BatchResponse,
    responses=_errors(401, 404, 413, 422),
    summary="Run a chain over many inputs (results in input order)",
    tags=["chains"],
)
async def batch(name: str, body: BatchRequest, request: Request) -> BatchResponse:
    """Run through chainkit's runner: at most ``max_concurrency`` items at once (capped
    by the server), transient errors retried, one result per input, each with
    ``output`` or ``error``. More inputs than the server's ``max_batch_items`` is a 413."""
    from chainkit.runners import run_batch

    state = service_state(request)
    info = request_info(request.scope)
    settings = state.settings
    served = state.chain(name)
    info.chain = name
    if len(body.inputs) > settings.max_batch_items:
        raise ApiError(
            413,
            "batch_too_large",
            f"{len(body.inputs)} inputs is more than this service's limit of "
            f"{settings.max_batch_items} per batch; split the batch",
            limit=settings.max_batch_items,
        )
    concurrency = min(body.max_concurrency, settings.max_batch_concurrency)
    started = time.perf_counter()
    report = await run_batch(
        served.runnable,
        body.inputs,
        max_concurrency=concurrency,
        ordered=True,
        progress=False,
        retries=settings.batch_retries,
        timeout=settings.batch_item_timeout,
        config=_config(body.config, info),
        name=name,
    )
    elapsed = time.perf_counter() - started
    items = []
    for record in sorted(report.results, key=lambda r: r.index):
        error = None
        if record.error is not None:
            error = BatchError(
                type=record.error.type,
                message=one_line(record.error.message),
                status=record.error.status,
            )
        usage = record.usage
        items.append(
            BatchItem(
                index=record.index,
                output=record.output,
                error=error,
                attempts=record.attempts,
                latency_ms=_ms(record.latency) if record.latency is not None else None,
                usage=Usage(**usage.model_dump()) if usage is not None else None,
            )
        )
    total = Usage(**report.usage.model_dump())
    state.metrics.add_tokens(name, total.input_tokens, total.output_tokens)
    return BatchResponse(
        results=items,
        succeeded=report.succeeded,
        failed=report.failed,
        max_concurrency=concurrency,
        usage=total,
        latency_ms=_ms(elapsed),
    )


# ---------------------------------------------------------------- streams


@dataclass
class _StreamRun:
    """One SSE response's bookkeeping, shared by its event generator and its close hook."""

    state: ServiceState
    endpoint: str
    name: str
    info: RequestInfo
    started: float
    outcome: str = "completed"

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
        """The ``error`` event for ``exc``, logged and counted."""
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
        return sse_event("error", body.model_dump(mode="json", exclude_none=True))

    def first_chunk(self, now: float) -> None:
        self.state.metrics.ttft.labels(self.name).observe(now - self.started)

    def timings(self, first: float | None, chunks: int) -> Timings:
        return Timings(
            ttft_ms=_ms(first - self.started) if first is not None else None,
            total_ms=_ms(time.perf_counter() - self.started),
            chunks=chunks,
        )


def _respond(run: _StreamRun, events: AsyncIterator[bytes]) -> EventStream:
    run.open()
    return EventStream(events, ping_interval=run.state.settings.ping_interval, on_close=run.close)


@router.post(
    "/chains/{name}/stream",
    response_class=EventStream,
    status_code=200,
    responses={
        **_sse_doc(
            "StreamChunkEvent",
            "StreamEndEvent",
            "StreamErrorEvent",
            text="Server-Sent Events: `chunk`... then `end` or `error`.",
        ),
        **_errors(401, 404, 413, 422, 429),
    },
    summary="Stream a chain's output as Server-Sent Events",
    tags=["chains"],
)
async def stream(name: str, body: StreamRequest, request: Request) -> EventStream:
    """``event: chunk`` (``{"index", "text"}``, or ``{"index", "data"}`` for non-text
    outputs) as the output arrives, then ``event: end`` (``output``, ``usage``,
    ``timings``) or ``event: error``. Closing the connection cancels the run."""
    state = service_state(request)
    info = request_info(request.scope)
    served = _served(state, name, info, body.input)
    run = _StreamRun(state, "/chains/{name}/stream", name, info, time.perf_counter())
    return _respond(run, _chunk_events(run, served, body))


async def _chunk_events(
    run: _StreamRun, served: ServedChain, body: StreamRequest
) -> AsyncIterator[bytes]:
    usage = UsageMetadataCallbackHandler()
    config = _config(body.config, run.info, [usage])
    first: float | None = None
    texts: list[str] = []
    combined: Any = None
    count = 0
    try:
        async for chunk in served.runnable.astream(body.input, config):
            if isinstance(chunk, str) and not chunk:
                continue  # role-only and usage-only model chunks carry no text
            if first is None:
                first = time.perf_counter()
                run.first_chunk(first)
            if isinstance(chunk, str):
                texts.append(str(chunk))
                payload: dict[str, Any] = {"index": count, "text": str(chunk)}
            else:
                combined = add_chunk(combined, chunk)
                payload = {"index": count, "data": output_json(chunk)}
            count += 1
            yield sse_event("chunk", payload)
    except Exception as exc:  # noqa: BLE001 - every failure becomes an `error` event
        yield run.failed(exc)
        return
    total = _usage(usage)
    run.state.metrics.add_tokens(run.name, total.input_tokens, total.output_tokens)
    output = output_json(combined) if combined is not None else "".join(texts)
    end = StreamEndEvent(
        output=output,
        usage=total,
        timings=run.timings(first, count),
        request_id=run.info.request_id,
    )
    yield sse_event("end", end.model_dump(mode="json"))


@router.post(
    "/chains/{name}/stream_events",
    response_class=EventStream,
    status_code=200,
    responses={
        **_sse_doc(
            "StreamEventsEndEvent",
            "StreamErrorEvent",
            text="Server-Sent Events: `data` (one astream_events v2 event as JSON)... "
            "then `end` or `error`.",
        ),
        **_errors(401, 404, 413, 422, 429),
    },
    summary="Stream a chain's astream_events (v2) as Server-Sent Events",
    tags=["chains"],
)
async def stream_events(name: str, body: StreamEventsRequest, request: Request) -> EventStream:
    """One ``event: data`` per ``astream_events(version="v2")`` event (``event``,
    ``name``, ``run_id``, ``parent_ids``, ``tags``, ``metadata``, ``data``), every
    message and chunk as plain JSON; then ``event: end`` (event count, usage,
    timings) or ``event: error``. ``include_*``/``exclude_*`` filter by run name,
    run type and tag. Closing the connection cancels the run."""
    state = service_state(request)
    info = request_info(request.scope)
    served = _served(state, name, info, body.input)
    run = _StreamRun(state, "/chains/{name}/stream_events", name, info, time.perf_counter())
    return _respond(run, _lc_events(run, served, body))


async def _lc_events(
    run: _StreamRun, served: ServedChain, body: StreamEventsRequest
) -> AsyncIterator[bytes]:
    usage = UsageMetadataCallbackHandler()
    config = _config(body.config, run.info, [usage])
    first: float | None = None
    count = chunks = 0
    try:
        async for event in served.runnable.astream_events(
            body.input,
            config,
            version="v2",
            include_names=body.include_names,
            include_types=body.include_types,
            include_tags=body.include_tags,
            exclude_names=body.exclude_names,
            exclude_types=body.exclude_types,
            exclude_tags=body.exclude_tags,
        ):
            if event["event"].endswith("_stream"):
                chunks += 1
                if first is None:
                    first = time.perf_counter()
                    run.first_chunk(first)
            count += 1
            yield sse_event("data", to_jsonable(event, 0))
    except Exception as exc:  # noqa: BLE001 - every failure becomes an `error` event
        yield run.failed(exc)
        return
    total = _usage(usage)
    run.state.metrics.add_tokens(run.name, total.input_tokens, total.output_tokens)
    end = StreamEventsEndEvent(
        events=count,
        usage=total,
        timings=run.timings(first, chunks),
        request_id=run.info.request_id,
    )
    yield sse_event("end", end.model_dump(mode="json"))


# ---------------------------------------------------------------- operations


@router.get(
    "/health",
    response_model=HealthResponse,
    summary="Liveness (never needs a token)",
    tags=["operations"],
)
async def health(request: Request) -> HealthResponse:
    state = service_state(request)
    return HealthResponse(
        version=__version__,
        uptime_s=round(state.uptime, 3),
        streams_in_flight=state.streams.in_use,
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format.",
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
        },
        **_errors(401),
    },
    summary="Prometheus metrics",
    tags=["operations"],
)
async def metrics(request: Request) -> Response:
    state = service_state(request)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
