"""Every chain under ``/chains/{name}/``, speaking LangServe's protocol (the streams are
in :mod:`chainkit.server._stream_routes`).

``langserve.RemoteRunnable`` (Python) and ``@langchain/core/runnables/remote``
(JavaScript) work unchanged against these routes; so do plain HTTP clients.

========================  ==============================================================
``POST invoke``           ``{"input", "config", "kwargs"}`` -> ``{"output", "metadata"}``
``POST batch``            ``{"inputs", "config"}`` (one config or one per input) ->
                          ``{"output": [...], "metadata": {"run_ids", "responses", ...}}``
``POST stream``           SSE: ``metadata`` (run id), ``data`` per chunk, ``metadata``
                          (usage, timings), ``end``; or ``error``
``POST stream_log``       SSE: ``data`` per run-log patch (``{"ops": [...]}``), ``end``
``POST stream_events``    SSE: ``data`` per ``astream_events`` (v2) event, ``end``
``GET input_schema``      the chain's JSON Schemas (``output_schema``, ``config_schema``)
========================  ==============================================================

Outputs and events are written as LangServe writes them (see
:mod:`chainkit.server._wire`); chainkit's extras (usage, latency, attempts,
request id) ride in ``metadata``; every response carries ``X-Request-ID``.
Errors are chainkit's JSON errors; a stream's ``error`` event is the same body
plus LangServe's ``status_code``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import Response
from langchain_core.callbacks import BaseCallbackHandler, UsageMetadataCallbackHandler

from chainkit.errors import MissingVariableError
from chainkit.server._errors import ApiError, one_line
from chainkit.server._logging import RequestInfo, request_info
from chainkit.server._schemas import (
    BatchError,
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    InvokeRequest,
    InvokeResponse,
    RunConfig,
    RunMetadata,
    Usage,
)
from chainkit.server._state import ServedChain, ServiceState, service_state
from chainkit.server._usage import InlineUsageHandler
from chainkit.server._wire import CONFIG_KEYS, dumps, run_config

__all__ = ["check_input", "errors_doc", "ms", "router", "usage_total"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/chains/{name}", tags=["chains"])

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


def errors_doc(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses (all ``ErrorResponse``)."""
    return {code: {"model": ErrorResponse, "description": _ERROR_TEXT[code]} for code in codes}


# ---------------------------------------------------------------- helpers


def usage_total(handler: UsageMetadataCallbackHandler) -> Usage:
    """Every model's reported tokens, added up."""
    return Usage.total(handler.usage_metadata.values())


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _json(value: Any) -> Response:
    return Response(dumps(value), media_type="application/json")


def check_input(
    state: ServiceState, name: str, info: RequestInfo, data: dict[str, Any]
) -> ServedChain:
    """The chain, with its input checked: 404 for an unknown name, 422 for a missing variable."""
    served = state.chain(name)
    info.chain = name
    missing = served.missing(data)
    if missing:
        raise MissingVariableError(name, missing, data)
    return served


# ---------------------------------------------------------------- invoke and batch


@router.post(
    "/invoke",
    response_model=InvokeResponse,
    responses=errors_doc(401, 404, 413, 422, 502, 503, 504),
    summary="Run a chain once",
)
async def invoke(name: str, body: InvokeRequest, request: Request) -> Response:
    """``{"input": {...}, "config": {"tags", "metadata", "run_name", "configurable"}}`` ->
    ``{"output": ..., "metadata": {"run_id", "usage", "latency_ms", "request_id"}}``."""
    state = service_state(request)
    info = request_info(request.scope)
    served = check_input(state, name, info, body.input)
    usage = InlineUsageHandler()
    config = run_config(served.runnable, body.config, info.request_id, [usage])
    started = time.perf_counter()
    async with asyncio.timeout(state.settings.request_timeout):
        output = await served.runnable.ainvoke(body.input, config)
    elapsed = time.perf_counter() - started
    total = usage_total(usage)
    state.metrics.add_tokens(name, total.input_tokens, total.output_tokens)
    metadata = {
        "run_id": str(config.get("run_id")),
        "feedback_tokens": [],
        "usage": total.model_dump(),
        "latency_ms": ms(elapsed),
        "request_id": info.request_id,
    }
    return _json({"output": output, "metadata": metadata})


class _RootRuns(BaseCallbackHandler):
    """Each batch item's root run: its id, its output as the chain returned it, its error."""

    run_inline = True

    def __init__(self, size: int) -> None:
        self.run_ids: list[str | None] = [None] * size
        self.outputs: list[Any] = [None] * size
        self.errors: list[BaseException | None] = [None] * size
        self._items: dict[UUID, int] = {}

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        index = (metadata or {}).get("chainkit_index")
        if parent_run_id is None and isinstance(index, int) and 0 <= index < len(self.run_ids):
            self._items[run_id] = index
            self.run_ids[index] = str(run_id)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        index = self._items.pop(run_id, None)
        if index is not None:
            self.outputs[index] = outputs
            self.errors[index] = None

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        index = self._items.pop(run_id, None)
        if index is not None:
            self.errors[index] = error


@router.post(
    "/batch",
    response_model=BatchResponse,
    responses=errors_doc(401, 404, 413, 422, 502, 503, 504),
    summary="Run a chain over many inputs (outputs in input order)",
)
async def batch(name: str, body: BatchRequest, request: Request) -> Response:
    """Through chainkit's runner: at most ``max_concurrency`` items at once (capped by the
    server), transient errors retried. A failed item fails the request with its error,
    unless ``return_exceptions`` (then its output is ``null`` and its error is in
    ``metadata.responses``). More inputs than ``max_batch_items`` is a 413."""
    state = service_state(request)
    info = request_info(request.scope)
    settings = state.settings
    served = state.chain(name)
    info.chain = name
    inputs = body.inputs
    if len(inputs) > settings.max_batch_items:
        raise ApiError(
            413,
            "batch_too_large",
            f"{len(inputs)} inputs is more than this service's limit of "
            f"{settings.max_batch_items} per batch; split the batch",
            limit=settings.max_batch_items,
        )
    configs = body.config if isinstance(body.config, list) else [body.config] * len(inputs)
    if len(configs) != len(inputs):
        raise ApiError(
            422,
            "invalid_request",
            f"config: {len(configs)} configs for {len(inputs)} inputs; "
            "send one config, or one per input",
        )
    if not body.return_exceptions:
        for data in inputs:
            check_input(state, name, info, data)
    concurrency = min(body.max_concurrency, settings.max_batch_concurrency)
    started = time.perf_counter()
    responses, roots = await _run_items(
        state, served, inputs, configs, request_id=info.request_id, concurrency=concurrency
    )
    if not body.return_exceptions:
        for meta, error in zip(responses, roots.errors, strict=True):
            if meta.error is not None:  # the first failure is the answer, as abatch raises it
                raise _item_failure(meta.error, error)
    total = sum((meta.usage for meta in responses if meta.usage is not None), Usage())
    state.metrics.add_tokens(name, total.input_tokens, total.output_tokens)
    failed = sum(meta.error is not None for meta in responses)
    metadata = {
        "run_ids": roots.run_ids,
        "responses": [meta.model_dump(mode="json") for meta in responses],
        "succeeded": len(inputs) - failed,
        "failed": failed,
        "max_concurrency": concurrency,
        "usage": total.model_dump(),
        "latency_ms": ms(time.perf_counter() - started),
        "request_id": info.request_id,
    }
    return _json({"output": roots.outputs, "metadata": metadata})


def _item_failure(recorded: BatchError, raised: BaseException | None) -> Exception:
    """What a failed item answers: the exception its run raised, when the runner recorded
    that one (not a cancellation: the runner's timeout cancels the run), else the record's
    type and message (504 for a timeout, 502 otherwise)."""
    if isinstance(raised, Exception) and type(raised).__name__ == recorded.type:
        return raised
    if "Timeout" in recorded.type:
        return TimeoutError(recorded.message)
    return ApiError(502, "upstream_error", f"{recorded.type}: {recorded.message}")


async def _run_items(
    state: ServiceState,
    served: ServedChain,
    inputs: list[dict[str, Any]],
    configs: list[RunConfig],
    *,
    request_id: str,
    concurrency: int,
) -> tuple[list[RunMetadata], _RootRuns]:
    """Run every input through ``run_batch``, once per distinct config (usually one)."""
    from chainkit.runners import run_batch

    groups: dict[str, list[int]] = {}
    for index, client in enumerate(configs):
        groups.setdefault(client.model_dump_json(), []).append(index)
    roots = _RootRuns(len(inputs))
    responses = [RunMetadata(run_id=None) for _ in inputs]
    settings = state.settings
    for indices in groups.values():
        group = _RootRuns(len(indices))
        config = run_config(served.runnable, configs[indices[0]], request_id)
        config.pop("run_id", None)  # one per item, made by LangChain
        report = await run_batch(
            served.runnable,
            [inputs[i] for i in indices],
            max_concurrency=concurrency,
            ordered=True,
            progress=False,
            retries=settings.batch_retries,
            timeout=settings.batch_item_timeout,
            callbacks=[group],
            config=config,
            name=served.name,
        )
        for record in report.results:
            index = indices[record.index]
            roots.run_ids[index] = group.run_ids[record.index]
            roots.outputs[index] = group.outputs[record.index] if record.error is None else None
            roots.errors[index] = group.errors[record.index]
            error = record.error
            responses[index] = RunMetadata(
                run_id=group.run_ids[record.index],
                attempts=record.attempts,
                latency_ms=ms(record.latency) if record.latency is not None else None,
                usage=record.usage,
                error=None
                if error is None
                else BatchError(
                    type=error.type, message=one_line(error.message), status=error.status
                ),
            )
    return responses, roots


# ---------------------------------------------------------------- schemas


@router.get(
    "/input_schema",
    responses=errors_doc(401, 404, 422, 503),
    summary="The chain's input, as JSON Schema",
)
async def input_schema(name: str, request: Request) -> dict[str, Any]:
    return service_state(request).chain(name).runnable.get_input_jsonschema()


@router.get(
    "/output_schema",
    responses=errors_doc(401, 404, 422, 503),
    summary="The chain's output, as JSON Schema",
)
async def output_schema(name: str, request: Request) -> dict[str, Any]:
    return service_state(request).chain(name).runnable.get_output_jsonschema()


@router.get(
    "/config_schema",
    responses=errors_doc(401, 404, 422, 503),
    summary="The config a client may send, as JSON Schema",
)
async def config_schema(name: str, request: Request) -> dict[str, Any]:
    runnable = service_state(request).chain(name).runnable
    return runnable.config_schema(include=list(CONFIG_KEYS)).model_json_schema()
