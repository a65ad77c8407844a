"""Running the local model: in a background thread, shared per process, or in the foreground."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from chainkit._bridge import LoopThread
from chainkit.errors import ConfigError, LocalServerError
from chainkit.models.local._app import check_bind, create_app
from chainkit.models.local._scripted import ReplyFunction, Scripted, as_scripted
from chainkit.models.local._serving import BODY_TIMEOUT, MODEL
from chainkit.models.local._settings import LocalModelSettings

__all__ = [
    "DUMMY_API_KEY",
    "IDLE_TIMEOUT",
    "LocalModelServer",
    "ensure_server",
    "serve_forever",
    "shutdown_shared_server",
    "use_local_model",
]

logger = logging.getLogger(__name__)

DUMMY_API_KEY = "chainkit-local"  # the local model accepts any key; clients insist on one
IDLE_TIMEOUT = 75.0  # seconds an idle (or half-sent) connection is kept
MAX_HEADER_BYTES = 16 * 1024  # one header line; longer ones get aiohttp's 400
MAX_HEADERS = 100  # header lines per request; more get aiohttp's 400
_START_TIMEOUT = 15.0
_GRACE = 2.0  # seconds in-flight requests get to finish at shutdown
_LINGER = 2.0  # seconds the unread rest of a refused body is drained before closing


def _loop_factory() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class _QuietBadRequests(logging.Filter):
    """aiohttp answers malformed HTTP with a 400 and logs a traceback: keep the 400 only."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, HttpProcessingError)


_server_log = logging.getLogger("chainkit.models.local.server")
_server_log.addFilter(_QuietBadRequests())


def _runner(app: web.Application, idle_timeout: float) -> web.AppRunner:
    """aiohttp's server for ``app``: limits on headers, an idle timeout (which also
    closes connections that never finish their headers), and request handlers
    cancelled when their client disconnects. After an answer to a request whose body
    was not all read (a 413, the body deadline's 408), the rest is drained for at
    most ``_LINGER`` seconds (aiohttp's default: 10), so the client can read the
    answer, then the connection is closed."""
    return web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        logger=_server_log,
        handler_cancellation=True,
        keepalive_timeout=idle_timeout,
        max_field_size=MAX_HEADER_BYTES,
        max_line_size=MAX_HEADER_BYTES,
        max_headers=MAX_HEADERS,
        shutdown_timeout=_GRACE,
        lingering_time=_LINGER,
    )


async def _start(runner: web.AppRunner, sock: socket.socket) -> None:
    await runner.setup()
    await web.SockSite(runner, sock).start()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(4096)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ConfigError(  # a misuse, like the service's (exit code 2)
            f"the local model cannot listen on {host}:{port}: {exc.strerror or exc}; "
            f"pick another port (0 picks a free one)"
        ) from None
    return sock


class LocalModelServer:
    """The local model served in a daemon thread with its own event loop (aiohttp).

    ``api_key``: require it as a bearer token (needed, or ``insecure=True``, on a
    non-loopback ``host``); ``request_log``: serve ``GET /stats?log=1`` (the last
    100,000 requests; else :meth:`request_log` reads the last 10,000);
    ``idle_timeout``: seconds before an idle connection is closed; ``body_timeout``:
    seconds a request's whole body may take to arrive (else a 408, and closed).

    >>> with LocalModelServer(LocalModelSettings(ttft=0.05)) as server:
    ...     client = openai.OpenAI(base_url=server.base_url, api_key="x")
    """

    def __init__(
        self,
        settings: LocalModelSettings | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        insecure: bool = False,
        request_log: bool = False,
        idle_timeout: float = IDLE_TIMEOUT,
        body_timeout: float = BODY_TIMEOUT,
    ) -> None:
        check_bind(host, api_key=api_key, insecure=insecure)
        self.settings = settings or LocalModelSettings()
        self.host = host
        self._requested_port = port
        self.idle_timeout = idle_timeout
        self.app = create_app(
            self.settings, api_key=api_key, request_log=request_log, body_timeout=body_timeout
        )
        self.model = self.app[MODEL]
        self._thread: LoopThread | None = None
        self._runner: web.AppRunner | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self.port = 0

    # -- addresses
    @property
    def url(self) -> str:
        """The server's root, e.g. ``http://127.0.0.1:PORT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What OpenAI clients take as ``base_url``: ``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.running

    # -- lifecycle
    def start(self) -> LocalModelServer:
        """Start serving; returns once the socket is listening."""
        with self._lock:
            if self.running:
                return self
            self._sock = sock = _bind(self.host, self._requested_port)
            self.port = sock.getsockname()[1]
            runner = self._runner = _runner(self.app, self.idle_timeout)
            thread = LoopThread(f"chainkit-local-model:{self.port}", loop_factory=_loop_factory)
            try:
                self._thread = thread.start()
                thread.run(_start(runner, sock))
            except Exception as exc:
                thread.stop()
                self._thread = self._runner = None
                self._cleanup_socket()
                raise LocalServerError(
                    f"the local model did not start on {self.url}: {exc}; see the log for details"
                ) from exc
            logger.debug("local model listening on %s", self.base_url)
            return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: release hanging requests, close connections, free the port."""
        with self._lock:
            thread, runner = self._thread, self._runner
            if thread is None or runner is None:
                return
            thread.call(self.model.close)  # release hanging requests first
            try:
                thread.run(runner.cleanup(), grace=timeout)
            except Exception:  # pragma: no cover - logged, the thread still stops
                logger.exception("local model on port %s did not shut down cleanly", self.port)
            thread.stop(timeout)
            if thread.running:  # pragma: no cover - a wedged loop
                logger.warning("local model thread on port %s did not stop", self.port)
            self._thread = self._runner = None
            self._cleanup_socket()
            logger.debug("local model on port %s stopped", self.port)

    def _cleanup_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- stats
    def stats(self, *, log: bool = False) -> dict[str, Any]:
        """What ``GET /stats`` returns (with ``log=True``, the request log too)."""
        data = self.model.stats.snapshot(log=log)
        # round-trip through JSON so callers see exactly what HTTP clients see
        result: dict[str, Any] = orjson.loads(orjson.dumps(data))
        return result

    def request_log(self) -> list[dict[str, Any]]:
        """The bounded request log (most recent last)."""
        log: list[dict[str, Any]] = self.stats(log=True)["log"]
        return log

    # -- scripted replies
    def enqueue(self, *replies: str | Scripted) -> LocalModelServer:
        """Answer the next chat completions and completions with ``replies``, in order.

        A reply is text, or a :class:`Scripted` (``chainkit.testing.tool_call(...)``,
        ``chainkit.testing.fail(...)``). Once the queue is empty, answers are written
        again (or come from :meth:`reply_with`).
        """
        script = self.model.script
        with script._lock:
            script.queue.extend(as_scripted(r) for r in replies)
        return self

    def reply_with(self, function: ReplyFunction | None) -> LocalModelServer:
        """Answer each request with ``function(request_json)`` (text, a ``Scripted``, or
        None to write the answer as usual) once the queue is empty; None removes it."""
        self.model.script.function = function
        return self

    def pending_replies(self) -> int:
        """How many enqueued replies are still unused."""
        return len(self.model.script.queue)

    def reset_stats(self) -> None:
        """Zero the counters and the log, and forget which requests were seen (faults)."""
        self.model.reset()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LocalModelServer {self.base_url} {state}>"


_shared: LocalModelServer | None = None
_shared_lock = threading.Lock()


def ensure_server(settings: LocalModelSettings | None = None) -> LocalModelServer:
    """The process-wide local model, started on first use on a free loopback port.

    Thread-safe; stopped at interpreter exit. ``settings`` apply only when this
    call starts it (use :class:`LocalModelServer` for a server of your own).
    """
    global _shared  # noqa: PLW0603 - one shared server per process
    server = _shared
    if server is not None and server.running:
        return server
    with _shared_lock:
        if _shared is None or not _shared.running:
            first = _shared is None
            _shared = LocalModelServer(settings).start()
            if first:
                atexit.register(shutdown_shared_server)
        return _shared


def shutdown_shared_server() -> None:
    """Stop the shared server if it runs (registered with :mod:`atexit`)."""
    global _shared
    with _shared_lock:
        server, _shared = _shared, None
    if server is not None:
        server.stop()


def use_local_model(settings: LocalModelSettings | None = None) -> LocalModelServer:
    """Start the shared local model and point ``OPENAI_BASE_URL``/``OPENAI_API_KEY`` at it.

    After this, ``OpenAI(model="gpt-3.5-turbo-instruct")`` and ``AsyncOpenAI()``
    run unchanged, offline.
    """
    server = ensure_server(settings)
    os.environ["OPENAI_BASE_URL"] = server.base_url
    os.environ["OPENAI_API_KEY"] = DUMMY_API_KEY
    return server


def serve_forever(
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: LocalModelSettings | None = None,
    *,
    api_key: str | None = None,
    insecure: bool = False,
    request_log: bool = False,
    idle_timeout: float = IDLE_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the local model in the foreground until interrupted (the CLI's ``local serve``).

    Logs (and passes to ``on_ready``) one line saying where it listens and the
    environment to point OpenAI clients at it. A non-loopback ``host`` needs an
    ``api_key`` (or ``insecure=True``). Without ``request_log`` it keeps no request
    log (no one could read it), so its memory does not grow with the traffic.
    """
    check_bind(host, api_key=api_key, insecure=insecure)
    # without --request-log no one can read the log: keep none
    app = create_app(
        settings,
        api_key=api_key,
        request_log=request_log,
        body_timeout=body_timeout,
        log_size=None if request_log else 0,
    )
    sock = _bind(host, port)
    actual = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    base_url = f"http://{shown}:{actual}/v1"
    key = "<your --api-key>" if api_key else DUMMY_API_KEY
    line = (
        f"chainkit local model listening on {base_url}; "
        f"use OPENAI_BASE_URL={base_url} OPENAI_API_KEY={key}"
    )
    logger.info("%s", line)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
            loop.add_signal_handler(signal.SIGTERM, stop.set)
        runner = _runner(app, idle_timeout)
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            if on_ready is not None:
                on_ready(line)
            await stop.wait()
            app[MODEL].close()
        finally:
            await runner.cleanup()

    try:
        with asyncio.Runner(loop_factory=_loop_factory) as runner:
            runner.run(main())
    except KeyboardInterrupt:  # pragma: no cover - interactive
        pass
    finally:
        sock.close()
