"""The chainkit service: every chain over HTTP, with streaming and event streams.

>>> from chainkit.server import create_app
>>> app = create_app(model="local")            # a FastAPI app (ASGI)

or from a shell::

    chainkit serve --port 8080
    uvicorn --factory chainkit.server:create_app

Endpoints: ``POST /generate`` (the second seed's), ``GET /chains``, every chain
under ``/chains/{name}/`` in LangServe's protocol (``invoke``, ``batch``,
``stream``, ``stream_log`` and ``stream_events`` (SSE), ``input_schema``,
``output_schema``, ``config_schema``; ``langserve.RemoteRunnable`` works
unchanged), ``GET /health``, ``GET /metrics`` (Prometheus), and the OpenAPI
docs at ``/docs``. See :class:`ServerSettings` for auth and limits.
"""

from __future__ import annotations

from chainkit.server._app import create_app
from chainkit.server._auth import check_bind, is_loopback
from chainkit.server._run import ServiceThread, serve
from chainkit.server._settings import TOKEN_ENV, ServerSettings

__all__ = [
    "TOKEN_ENV",
    "ServerSettings",
    "ServiceThread",
    "check_bind",
    "create_app",
    "is_loopback",
    "serve",
]
