"""A small HTTP/1.1 server for one ASGI app, on httptools (and uvloop when present).

Why not uvicorn: measured on this project's 2-core machine, uvicorn's own
per-request work (about 0.44 ms of CPU for an app that returns fixed bytes)
is above the local model's whole budget of 0.4 ms per request; a bare
httptools protocol costs about 0.12 ms. This server keeps that speed and
covers what the local model needs: keep-alive, request bodies (plain or
chunked), responses with a length or chunked, ``http.disconnect`` when the
client goes away, write flow control, and a graceful shutdown that lets
in-flight requests finish (up to a grace period), then closes everything.
One request at a time per connection (pipelined requests wait their turn).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import socket
import types
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator, MutableMapping
from typing import Any
from urllib.parse import unquote

import httptools

__all__ = ["HttpServer"]

logger = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[Message]],
        Callable[[Message], Awaitable[None]],
    ],
    Coroutine[Any, Any, None],
]

_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in http.HTTPStatus}
_DISCONNECT: Message = {"type": "http.disconnect"}


def _error_response(status: int, message: str, kind: str) -> bytes:
    body = (
        f'{{"error":{{"message":"{message}","type":"{kind}","param":null,"code":null}}}}'
    ).encode()
    return (
        _STATUS_LINES[status]
        + b"content-type: application/json\r\nconnection: close\r\n"
        + b"content-length: %d\r\n\r\n" % len(body)
        + body
    )


_BAD_REQUEST = _error_response(400, "Malformed HTTP request", "invalid_request_error")
_TOO_LARGE = _error_response(413, "Request body too large", "invalid_request_error")
_INTERNAL_ERROR = _error_response(500, "Internal server error", "server_error")


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    return line if line is not None else f"HTTP/1.1 {status} Status\r\n".encode()


class _Cycle:
    """One request and its response."""

    __slots__ = (
        "body",
        "body_size",
        "chunked",
        "complete",
        "conn",
        "keep_alive",
        "more_body",
        "received",
        "response_complete",
        "response_started",
        "scope",
        "start",
    )

    def __init__(self, conn: _Connection, scope: dict[str, Any], keep_alive: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.body: list[bytes] = []
        self.body_size = 0
        self.complete = False
        self.received = False
        self.response_started = False
        self.response_complete = False
        self.chunked = False
        self.start: list[bytes] | None = None

    async def receive(self) -> Message:
        conn = self.conn
        if not self.received and not conn.disconnected:
            self.received = True
            body = b"".join(self.body) if len(self.body) != 1 else self.body[0]
            self.body = []
            return {"type": "http.request", "body": body, "more_body": False}
        if not conn.disconnected and not self.response_complete:
            await conn.disconnect_waiter()
        return _DISCONNECT

    async def send(self, message: Message) -> None:
        conn = self.conn
        if conn.write_paused:
            await conn.drain()
        if conn.disconnected:
            return
        kind = message["type"]
        if not self.response_started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {kind}")
            self.response_started = True
            head = [_status_line(message["status"])]
            has_length = False
            for name, value in message.get("headers", ()):
                low = name.lower()
                if low == b"content-length":
                    has_length = True
                elif low == b"connection" and value.lower() == b"close":
                    self.keep_alive = False
                head += (name, b": ", value, b"\r\n")
            if not has_length:
                self.chunked = True
                head.append(b"transfer-encoding: chunked\r\n")
            if not self.keep_alive:
                head.append(b"connection: close\r\n")
            head.append(b"\r\n")
            self.start = head  # written with the first body part: one syscall
            return
        if self.response_complete or kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind}")
        body = message.get("body", b"")
        more = message.get("more_body", False)
        out = self.start or []
        self.start = None
        if self.chunked:
            if body:
                out += (b"%x\r\n" % len(body), body, b"\r\n")
            if not more:
                out.append(b"0\r\n\r\n")
        elif body:
            out.append(body)
        if out:
            conn.transport.write(b"".join(out))
        if not more:
            self.response_complete = True
            conn.finish(self)


@types.coroutine
def _drive(coro: Any, yielded: Any) -> Generator[Any, Any, None]:
    """Continue a coroutine that already ran up to its first suspension.

    Whatever it waits on is passed up to the enclosing Task, and what the Task
    sends or throws back goes down to it: as if the Task had run it from the start.
    """
    while True:
        try:
            sent = yield yielded
        except BaseException as exc:  # noqa: BLE001 - forwarded to the coroutine
            try:
                yielded = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration:
                return


class _Connection(asyncio.Protocol):
    __slots__ = (
        "_drain",
        "_waiter",
        "client",
        "current",
        "cycle",
        "disconnected",
        "headers",
        "parser",
        "pending",
        "server",
        "task",
        "transport",
        "url",
        "write_paused",
    )

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self.client: tuple[str, int] | None = None
        self.disconnected = False
        self.write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.cycle: _Cycle | None = None  # being parsed
        self.current: _Cycle | None = None  # being answered
        self.pending: deque[_Cycle] = deque()
        self.task: asyncio.Task[None] | None = None

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.disconnected = True
        self.server.connections.discard(self)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject()
        except httptools.HttpParserError:
            self._reject()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parsed = httptools.parse_url(self.url)
        raw_path = parsed.path
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        server = self.server
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": self.parser.get_http_version(),
            "server": server.address,
            "client": self.client,
            "scheme": "http",
            "method": self.parser.get_method().decode("ascii"),
            "root_path": "",
            "path": path,
            "raw_path": raw_path,
            "query_string": parsed.query or b"",
            "headers": self.headers,
        }
        keep_alive = self.parser.should_keep_alive() and not server.closing
        self.cycle = _Cycle(self, scope, keep_alive)

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if cycle is not None:
            cycle.body.append(body)
            cycle.body_size += len(body)
            if cycle.body_size > self.server.max_body_bytes:  # the app never sees it
                self.cycle = None
                if not self.disconnected:
                    self.transport.write(_TOO_LARGE)
                    self.transport.close()

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if cycle is None:
            return
        self.cycle = None
        cycle.complete = True
        if self.current is None:
            self._run(cycle)
        else:  # pipelined: answer in order
            self.pending.append(cycle)
            self.transport.pause_reading()

    # -- running requests
    def _run(self, cycle: _Cycle) -> None:
        """Start the app eagerly: most answers complete without suspending, so no Task
        is needed; one that suspends is driven on by a Task from where it stopped."""
        self.current = cycle
        answer_now = self.server.answer_now
        if answer_now is not None:
            body = b"".join(cycle.body) if len(cycle.body) != 1 else cycle.body[0]
            cycle.body = [body]
            response = answer_now(cycle.scope, body)
            if response is not None:
                self._write_now(cycle, *response)
                return
        coro = self.server.app(cycle.scope, cycle.receive, cycle.send)
        try:
            yielded = coro.send(None)
        except StopIteration:
            self._ended(cycle)
            return
        except BaseException as exc:  # noqa: BLE001 - reported like any app error
            self._failed(cycle, exc)
            return
        self.task = self.server.loop.create_task(self._resume(cycle, coro, yielded))

    def _write_now(
        self, cycle: _Cycle, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        if self.disconnected:
            self.current = None
            return
        head = [_status_line(status)]
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
        head.append(b"content-length: %d\r\n" % len(body))
        if not cycle.keep_alive:
            head.append(b"connection: close\r\n")
        head += (b"\r\n", body)
        cycle.response_started = cycle.response_complete = True
        self.transport.write(b"".join(head))
        self.finish(cycle)

    async def _resume(self, cycle: _Cycle, coro: Any, yielded: Any) -> None:
        try:
            await _drive(coro, yielded)
        except BaseException as exc:
            self._failed(cycle, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        self._ended(cycle)

    def _failed(self, cycle: _Cycle, exc: BaseException) -> None:
        if not isinstance(exc, self.server.quiet_exceptions):
            logger.error("error in the ASGI app", exc_info=exc)
        if isinstance(exc, asyncio.CancelledError):
            self.transport.abort()
            return
        if not cycle.response_started and not self.disconnected:
            self.transport.write(_INTERNAL_ERROR)
        self.transport.close()

    def _ended(self, cycle: _Cycle) -> None:
        if not cycle.response_complete and not self.disconnected:
            if not cycle.response_started:
                self.transport.write(_INTERNAL_ERROR)
            self.transport.close()

    def finish(self, cycle: _Cycle) -> None:
        """A response is complete: go on with the connection or close it."""
        self.current = None
        if not cycle.keep_alive or self.server.closing:
            self.transport.close()
            return
        if self.pending:
            self._run(self.pending.popleft())
            if not self.pending:
                self.transport.resume_reading()

    def disconnect_waiter(self) -> asyncio.Future[None]:
        if self._waiter is None or self._waiter.done():
            self._waiter = self.server.loop.create_future()
            if self.disconnected:
                self._waiter.set_result(None)
        return self._waiter

    async def drain(self) -> None:
        if self._drain is None or self._drain.done():
            self._drain = self.server.loop.create_future()
        await self._drain

    def _reject(self) -> None:
        if not self.disconnected:
            self.transport.write(_BAD_REQUEST)
            self.transport.close()

    @property
    def idle(self) -> bool:
        return self.current is None and self.cycle is None

    def shutdown(self) -> None:
        if self.idle:
            self.transport.close()


class HttpServer:
    """Serve ``app`` on an already-bound listening socket.

    Bodies above ``max_body_bytes`` are refused with a 413 before the app sees
    them (the app applies its own, usually smaller, limit).
    """

    def __init__(
        self,
        app: ASGIApp,
        sock: socket.socket,
        *,
        quiet_exceptions: tuple[type[BaseException], ...] = (),
        max_body_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # optional fast path: app.answer_now(scope, body) -> (status, headers, body) | None
        self.answer_now: (
            Callable[[Any, bytes], tuple[int, list[tuple[bytes, bytes]], bytes] | None] | None
        ) = getattr(app, "answer_now", None)
        self.sock = sock
        name = sock.getsockname()
        self.address = (str(name[0]), int(name[1]))
        self.quiet_exceptions = quiet_exceptions
        self.connections: set[_Connection] = set()
        self.closing = False
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._server: asyncio.Server | None = None
        self._stopped: asyncio.Event | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._server = await self.loop.create_server(
            lambda: _Connection(self), sock=self.sock, backlog=4096
        )

    async def serve(self) -> None:
        """Serve until :meth:`request_stop` (or cancellation), then shut down."""
        if self._server is None:
            await self.start()
        stopped = self._stopped
        if stopped is None:  # pragma: no cover - start() sets it
            raise RuntimeError("HttpServer.start() did not run")
        try:
            await stopped.wait()
        finally:
            await self.shutdown()

    def request_stop(self) -> None:
        """Ask :meth:`serve` to return (call on the server's loop)."""
        if self._stopped is not None:
            self._stopped.set()

    async def shutdown(self, grace: float = 2.0) -> None:
        """Stop accepting, let in-flight requests finish for ``grace`` s, close the rest."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.shutdown()
        deadline = self.loop.time() + grace
        while self.connections and self.loop.time() < deadline:  # noqa: ASYNC110 - polls a set
            await asyncio.sleep(0.01)
        for conn in list(self.connections):
            if conn.task is not None and not conn.task.done():
                conn.task.cancel()
            conn.transport.abort()
        tasks = [c.task for c in list(self.connections) if c.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        await asyncio.sleep(0)  # let connection_lost callbacks run
