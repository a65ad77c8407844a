"""The local model's HTTP app on aiohttp: routes, OpenAI-style errors, the API key check.

:func:`create_app` builds an :class:`aiohttp.web.Application` whose endpoint
modules each add their own routes (``add_routes(app)``) and find the shared
:class:`~chainkit.models.local._serving.LocalModel` as ``app[MODEL]``. Errors
the router raises (404, 405) and a missing or wrong API key (401) answer with
OpenAI's error JSON.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from chainkit import _binding
from chainkit.errors import register_secret
from chainkit.models.local import _batch_api, _chat, _embeddings, _responses_api
from chainkit.models.local._errors import BadRequest
from chainkit.models.local._serving import (
    BODY_TIMEOUT,
    MODEL,
    LocalModel,
    error_response,
    json_response,
)
from chainkit.models.local._settings import LocalModelSettings
from chainkit.models.local._stats import LOG_SIZE, OWNER_LOG_SIZE

__all__ = ["MODELS", "check_bind", "create_app"]

MODELS = ("chainkit-local", "gpt-3.5-turbo-instruct", "gpt-4o-mini", "gpt-4o", "gpt-4.1-mini")
OPEN_PATHS = frozenset({"/health"})
_LOG_WORDS = ("log", "log=1", "log=true", "log=yes")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(
    settings: LocalModelSettings | None = None,
    *,
    api_key: str | None = None,
    request_log: bool = False,
    body_timeout: float = BODY_TIMEOUT,
    log_size: int | None = None,
) -> web.Application:
    """The local model as an aiohttp app (serve it with any aiohttp runner).

    ``api_key``: when set, every endpoint but ``/health`` needs
    ``Authorization: Bearer <api_key>`` (else a 401). ``request_log``: whether
    ``GET /stats?log=1`` may show the request log (prompts included).
    ``body_timeout``: seconds a request's whole body may take to arrive (else a 408).
    ``log_size``: how many recent requests the log keeps (0: none); by default
    ``LOG_SIZE`` (100,000) when it is served, else ``OWNER_LOG_SIZE`` (10,000).
    """
    if log_size is None:
        log_size = LOG_SIZE if request_log else OWNER_LOG_SIZE
    app = web.Application(middlewares=[_errors_middleware(api_key)], client_max_size=1024**3)
    app[MODEL] = LocalModel(
        settings or LocalModelSettings(),
        request_log=request_log,
        body_timeout=body_timeout,
        log_size=log_size,
    )
    for prefix in ("/v1", ""):
        app.router.add_get(f"{prefix}/models", _models)
        app.router.add_get(f"{prefix}/models/{{model}}", _model)
    app.router.add_get("/health", _health)
    app.router.add_get("/stats", _stats)
    app.router.add_post("/stats/reset", _stats_reset)
    for module in (_chat, _responses_api, _embeddings, _batch_api):
        module.add_routes(app)
    return app


def _errors_middleware(api_key: str | None) -> Callable[..., Awaitable[web.StreamResponse]]:
    expected = api_key.encode() if api_key else None
    if api_key:
        register_secret(api_key)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if expected is not None and request.path not in OPEN_PATHS:
            given = request.headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), expected
            ):
                return error_response(_UNAUTHORIZED)
        try:
            return await handler(request)
        except BadRequest as exc:
            return error_response(exc)
        except web.HTTPMethodNotAllowed as exc:
            allowed = ", ".join(sorted(exc.allowed_methods))
            return error_response(
                BadRequest(
                    f"Method not allowed: {request.method} {request.path} (use {allowed})",
                    status=405,
                    code="method_not_allowed",
                    headers={"allow": allowed},
                )
            )
        except web.HTTPNotFound:
            return error_response(
                BadRequest(f"Invalid URL ({request.method} {request.path})", status=404)
            )

    return middleware


_UNAUTHORIZED = BadRequest(
    "Incorrect API key provided. This local model was started with --api-key; "
    "send it as 'Authorization: Bearer <key>' (OPENAI_API_KEY).",
    status=401,
    code="invalid_api_key",
)


def _model_entry(model: str) -> dict[str, object]:
    return {"id": model, "object": "model", "created": 1700000000, "owned_by": "chainkit"}


async def _models(request: web.Request) -> web.Response:
    data = [_model_entry(m) for m in MODELS]
    return json_response(orjson.dumps({"object": "list", "data": data}))


async def _model(request: web.Request) -> web.Response:
    return json_response(orjson.dumps(_model_entry(request.match_info["model"])))


async def _health(request: web.Request) -> web.Response:
    return json_response(b'{"status":"ok"}')


async def _stats(request: web.Request) -> web.Response:
    model = request.app[MODEL]
    asked = any(part in _LOG_WORDS for part in request.query_string.split("&"))
    if asked and not model.request_log:
        raise BadRequest(
            "The request log is off: it shows every client's prompts. Start the local model "
            "with --request-log (LocalModelServer(request_log=True)) to serve it.",
            status=403,
            param="log",
            code="request_log_off",
        )
    return json_response(orjson.dumps(model.stats.snapshot(log=asked)))


async def _stats_reset(request: web.Request) -> web.Response:
    model = request.app[MODEL]
    model.reset()
    return json_response(orjson.dumps(model.stats.snapshot()))


def check_bind(host: str, *, api_key: str | None, insecure: bool) -> None:
    """Refuse a non-loopback address without an API key, unless ``insecure``."""
    _binding.check_bind("local model", host, protected=api_key is not None, insecure=insecure)
