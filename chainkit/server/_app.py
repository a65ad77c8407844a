"""``create_app``: the FastAPI application over chainkit's chains, and its shared state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from langchain_core.exceptions import OutputParserException
from langchain_core.runnables import Runnable
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from chainkit import __version__
from chainkit.callbacks import attach
from chainkit.errors import ChainkitError
from chainkit.server._auth import OPEN_PATHS, AuthMiddleware
from chainkit.server._docs import add_offline_docs
from chainkit.server._errors import ApiError, error_body, error_json, one_line
from chainkit.server._limits import BodyLimitMiddleware
from chainkit.server._logging import AccessLogMiddleware, request_info
from chainkit.server._schemas import StreamErrorEvent, StreamMetadataEvent
from chainkit.server._settings import TOKEN_ENV, ServerSettings
from chainkit.server._state import ServedChain, ServiceState, service_state

if TYPE_CHECKING:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.language_models import BaseLanguageModel
    from starlette.types import ASGIApp, Receive, Scope, Send


__all__ = ["ServedChain", "ServiceState", "create_app", "service_state"]

log = logging.getLogger(__name__)

DESCRIPTION = f"""\
Every chainkit chain over HTTP, in LangServe's protocol under `/chains/{{name}}/`:
invoke, batch, stream, stream_log and stream_events (SSE), and the chain's JSON
Schemas. `langserve.RemoteRunnable` (Python) and LangChain.js's `RemoteRunnable`
work unchanged; the playground and LangSmith feedback are not served.

- **Auth**: when the server has `{TOKEN_ENV}`, every endpoint but `/health` needs
  `Authorization: Bearer <token>`.
- **Errors** are JSON, `{{"error": {{"code", "message", "type", "status", "request_id", ...}}}}`:
  404 unknown chain (with `suggestions`), 422 invalid input (with `missing` variables),
  413 body or batch too large, 429 too many open streams, 502 the model failed
  (with `upstream_type`), 504 the model did not answer in time.
- **Config**: only `configurable`, `tags`, `metadata` and `run_name` are taken from a
  client's `config`; `callbacks` are refused, other keys dropped.
- **Streams** (`text/event-stream`): `data` events (an output chunk, a run-log patch or
  an `astream_events` v2 event, as LangServe writes them), then `end`, or `error`
  (the error's fields and `status_code`); `/stream` adds `metadata` events (run id
  first; usage and timings before `end`). Closing the connection cancels the run
  and its model call.
- Every response carries `X-Request-ID` (yours, or a new one).
"""


async def _handle_error(request: Request, exc: Exception) -> JSONResponse:
    info = request_info(request.scope)
    body = error_body(exc, info.request_id)
    info.error = type(exc).__name__ if body.code == "internal_error" else body.type
    if body.status >= 500:
        log.warning(
            "%s %s answered %d %s (request %s): %s: %s",
            info.method,
            info.path,
            body.status,
            body.code,
            info.request_id,
            type(exc).__name__,
            one_line(str(exc)),
        )
    headers: dict[str, str] = {}
    if isinstance(exc, ApiError):
        headers = exc.headers
    elif isinstance(exc, StarletteHTTPException) and exc.headers:
        headers = dict(exc.headers)
    return JSONResponse(error_json(body), status_code=body.status, headers=headers)


_HANDLED: tuple[type[Exception], ...] = (
    ApiError,
    ChainkitError,
    RequestValidationError,
    StarletteHTTPException,
    OutputParserException,
    TimeoutError,
)


def _openai_errors() -> tuple[type[Exception], ...]:
    try:
        import openai
    except ImportError:  # pragma: no cover - openai is a dependency
        return ()
    return (openai.APIError,)


_SSE_MODELS = (StreamMetadataEvent, StreamErrorEvent)


def _fix_sse_responses(responses: dict[str, Any]) -> None:
    """On SSE routes FastAPI files every response under text/event-stream: errors are JSON,
    and the stream's schema is the union of its event models (not a string)."""
    for status, response in responses.items():
        content = response.get("content", {})
        if "text/event-stream" not in content:
            continue
        if status.startswith("2"):
            content["text/event-stream"]["schema"].pop("type", None)
        else:
            content["application/json"] = content.pop("text/event-stream")


def _openapi(app: FastAPI, settings: ServerSettings) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document, plus the SSE event models and the bearer scheme."""

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        _, defs = models_json_schema(
            [(m, "serialization") for m in _SSE_MODELS],
            ref_template="#/components/schemas/{model}",
        )
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                _fix_sse_responses(operation.get("responses", {}))
        components = schema.setdefault("components", {})
        for key, value in defs.get("$defs", {}).items():
            components.setdefault("schemas", {}).setdefault(key, value)
        if settings.auth_enabled:
            components.setdefault("securitySchemes", {})["bearer"] = {
                "type": "http",
                "scheme": "bearer",
                "description": f"The server's {TOKEN_ENV}.",
            }
            for path, operations in schema.get("paths", {}).items():
                if path in OPEN_PATHS:
                    continue
                for operation in operations.values():
                    operation["security"] = [{"bearer": []}]
        app.openapi_schema = schema
        return schema

    return build


def create_app(
    *,
    model: str | BaseLanguageModel[Any] | Runnable[Any, Any] | None = None,
    chains_dir: str | os.PathLike[str] | None = None,
    settings: ServerSettings | None = None,
    callbacks: Sequence[BaseCallbackHandler] = (),
) -> FastAPI:
    """The chainkit service as an ASGI app (FastAPI).

    Args:
        model: a model spec (``"local"``, ``"openai:gpt-4o-mini"``) or a LangChain
            model; default ``load_model()`` (``$CHAINKIT_MODEL``, else the embedded
            local model), loaded once, on the first request or at startup.
        chains_dir: a folder of chain spec files (default ``$CHAINKIT_CHAINS_DIR``).
        settings: token and limits (default :class:`ServerSettings`, whose token is
            ``$CHAINKIT_API_TOKEN``).
        callbacks: LangChain handlers attached to every call the service makes
            (an :class:`~chainkit.callbacks.OTelCapture` for ``chainkit serve
            --otlp``); those with a ``shutdown()`` method are shut down (flushed)
            when the service stops.

    Also an app factory: ``uvicorn --factory chainkit.server:create_app``.
    """
    from chainkit.server._chain_routes import router as chain_router
    from chainkit.server._routes import router
    from chainkit.server._stream_routes import router as stream_router

    settings = settings if settings is not None else ServerSettings()
    state = ServiceState(model=model, chains_dir=chains_dir, settings=settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:  # load the model (start the local one) before the first request
            await asyncio.to_thread(state.model)
        except Exception as exc:  # noqa: BLE001 - requests will answer 503 with the reason
            log.warning(
                "the service's model did not load: %s: %s", type(exc).__name__, one_line(str(exc))
            )
        try:
            yield
        finally:
            await state.aclose()
            for handler in callbacks:
                shutdown = getattr(handler, "shutdown", None)
                if callable(shutdown):
                    await asyncio.to_thread(shutdown)

    app = FastAPI(
        title="chainkit",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served below, from local assets
        redoc_url=None,
    )
    add_offline_docs(app, title="chainkit")
    app.state.chainkit = state
    app.include_router(router)
    app.include_router(chain_router)
    app.include_router(stream_router)
    for exc_type in (*_HANDLED, *_openai_errors()):
        app.add_exception_handler(exc_type, _handle_error)
    # Added innermost first: the access log wraps auth, which wraps the body limit.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        timeout=settings.body_timeout,
        keep_body=settings.log_bodies,
    )
    if settings.api_token is not None:
        app.add_middleware(AuthMiddleware, token=settings.api_token)
    app.add_middleware(AccessLogMiddleware, metrics=state.metrics, log_bodies=settings.log_bodies)
    if callbacks:
        app.add_middleware(_AttachCallbacks, handlers=list(callbacks))
    app.openapi = _openapi(app, settings)  # type: ignore[method-assign]
    return app


class _AttachCallbacks:
    """ASGI middleware: ``handlers`` are attached to every LangChain call a request makes."""

    def __init__(self, app: ASGIApp, handlers: list[BaseCallbackHandler]) -> None:
        self.app = app
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with attach(*self.handlers):
            await self.app(scope, receive, send)
