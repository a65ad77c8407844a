"""The service's other endpoints: /generate, /chains (the list), /health, /metrics.

The chains themselves are under ``/chains/{name}/`` (:mod:`chainkit.server._chain_routes`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import Response
from langchain_core.runnables import RunnableConfig

from chainkit import __version__
from chainkit.server._chain_routes import errors_doc, usage_total
from chainkit.server._logging import request_info
from chainkit.server._metrics import CONTENT_TYPE_LATEST
from chainkit.server._schemas import (
    ChainDescription,
    ChainList,
    GenerationRequest,
    GenerationResponse,
    HealthResponse,
)
from chainkit.server._state import service_state
from chainkit.server._usage import InlineUsageHandler
from chainkit.trace import message_text

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter()

_errors = errors_doc


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
    usage = InlineUsageHandler()
    config: RunnableConfig = {
        "callbacks": [usage],
        "metadata": {"request_id": info.request_id},
        "run_name": "generate",
    }
    model = state.model()
    async with asyncio.timeout(state.settings.request_timeout):
        message = await model.ainvoke(body.prompt, config)
    text = message_text(message)
    total = usage_total(usage)
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
