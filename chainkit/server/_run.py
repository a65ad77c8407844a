"""Running the service: in the foreground (``chainkit serve``) or in a background thread."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import uvicorn

from chainkit._bridge import LoopThread
from chainkit.errors import ConfigError
from chainkit.server._app import ServiceState, create_app
from chainkit.server._auth import check_bind
from chainkit.server._protocol import HttpLimits, guarded_protocol
from chainkit.server._settings import ServerSettings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.language_models import BaseLanguageModel
    from langchain_core.runnables import Runnable

__all__ = ["ServiceThread", "serve"]

log = logging.getLogger(__name__)

_GRACE = 3  # seconds open streams get at shutdown before they are cancelled
_START_TIMEOUT = 30.0


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(4096)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"the service cannot listen on {host}:{port}: {exc.strerror or exc}; "
            f"pick another port (0 picks a free one) or host"
        ) from None
    return sock


def _config(app: FastAPI, host: str, port: int) -> uvicorn.Config:
    state = getattr(app.state, "chainkit", None)  # any FastAPI app may be served
    settings = state.settings if isinstance(state, ServiceState) else ServerSettings(api_token=None)
    limits = HttpLimits(
        max_head_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        head_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
    )
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(limits),  # httptools, with the head and the body bounded
        lifespan="on",
        access_log=False,  # chainkit.server.access logs every request instead
        log_config=None,
        timeout_graceful_shutdown=_GRACE,
        timeout_keep_alive=settings.keep_alive_timeout,
        limit_concurrency=settings.max_connections,
        backlog=4096,
        server_header=False,
    )


def _url(host: str, port: int) -> str:
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    model: str | BaseLanguageModel[Any] | Runnable[Any, Any] | None = None,
    chains_dir: str | os.PathLike[str] | None = None,
    settings: ServerSettings | None = None,
    insecure: bool = False,
    on_ready: Callable[[str], None] | None = None,
    callbacks: Sequence[BaseCallbackHandler] = (),
) -> None:
    """Serve the chainkit app in the foreground until interrupted (``chainkit serve``).

    Refuses (``ConfigError``) a non-loopback ``host`` without an API token
    unless ``insecure``; loads the model before listening, so a bad spec or a
    missing key fails at once. ``on_ready(url)`` runs once the socket listens.
    ``callbacks``: handlers attached to every call (see :func:`create_app`).
    """
    settings = settings if settings is not None else ServerSettings()
    check_bind(host, token=settings.api_token, insecure=insecure)
    app = create_app(model=model, chains_dir=chains_dir, settings=settings, callbacks=callbacks)
    state = service_state_of(app)
    state.model()  # fail now, with one line, if the model cannot load
    state.chain_infos()  # ... or a spec file in the chains folder is invalid
    sock = _bind(host, port)
    url = _url(host, sock.getsockname()[1])
    server = uvicorn.Server(_config(app, host, sock.getsockname()[1]))
    if on_ready is not None:
        on_ready(url)
    else:
        log.info("chainkit service listening on %s (docs at %s/docs)", url, url)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def service_state_of(app: FastAPI) -> ServiceState:
    """The service state of an app made by :func:`create_app`."""
    state: ServiceState = app.state.chainkit
    return state


class ServiceThread:
    """The service on a loopback port, in a daemon thread with its own event loop.

    ``on_exit`` is awaited on that loop after the server stopped (close what
    lives on the loop there, e.g. a model's HTTP client). For tests, notebooks
    and benchmarks::

        with ServiceThread(create_app(model="local")) as service:
            httpx.get(f"{service.url}/health")
    """

    def __init__(
        self,
        app: FastAPI,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        on_exit: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.app = app
        self.on_exit = on_exit
        self.host = host
        self._requested_port = port
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: LoopThread | None = None
        self._serving: concurrent.futures.Future[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        return _url(self.host, self.port)

    def start(self) -> ServiceThread:
        self._sock = _bind(self.host, self._requested_port)
        self.port = self._sock.getsockname()[1]
        server = self._server = uvicorn.Server(_config(self.app, self.host, self.port))
        self._thread = LoopThread(f"chainkit-service:{self.port}").start()
        self._serving = serving = self._thread.submit(self._serve(server, self._sock))
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:  # uvicorn sets a flag, it has no event to wait on
            if serving.done() or time.monotonic() > deadline:
                error = None if not serving.done() else serving.exception()
                self.stop()
                raise ConfigError(
                    f"the service did not start on {self.url}: {error or 'timed out'}"
                )
            time.sleep(0.005)
        return self

    async def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            if self.on_exit is not None:  # e.g. close a model's HTTP client on its loop
                await self.on_exit()

    def stop(self, timeout: float = 10.0) -> None:
        server, thread, serving = self._server, self._thread, self._serving
        if server is not None:
            server.should_exit = True
        if serving is not None:
            try:
                serving.result(timeout)
            except concurrent.futures.TimeoutError:
                if server is not None:
                    server.force_exit = True
                with contextlib.suppress(BaseException):
                    serving.result(timeout)
            except BaseException:  # noqa: BLE001, S110 - a failed start is reported by start()
                pass
        if thread is not None:
            thread.stop(timeout)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        self._thread = None
        self._serving = None
        self._server = None

    def __enter__(self) -> ServiceThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
