"""uvicorn's httptools protocol with the limits it lacks: the request head's size, its
number of headers, the time a client may take to send the head and then the body, and
a JSON answer beyond the connection limit.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``) and
connections at once (``limit_concurrency``, answered with a plain-text 503), but with
httptools it reads a request head of any size, with any number of headers, and a
head or a body for as long as the client likes (h11 bounds only the head's size, with
``h11_max_incomplete_event_size``). Here:

- bytes received while a request head is incomplete are counted before they are
  parsed; past ``max_head_bytes`` the client gets a JSON 431 and the connection is
  closed (memory per connection stays under the limit plus one socket read);
- the ``max_headers + 1``-th header is a 431 too;
- a head not complete ``head_timeout`` seconds after the connection opened (or
  after its request's first byte) ends the connection: a 408 when a request was
  started, a plain close when none was (a connection idle before its first
  request);
- a body not complete ``body_timeout`` (plus ``_BACKSTOP``) seconds after its head
  ends the connection: a 408 when the app has not started its answer (the app sees a
  disconnect), else a plain close. chainkit's app answers the deadline itself, as
  ``body_timeout`` seconds pass (:class:`~chainkit.server._limits.BodyLimitMiddleware`:
  a logged 408 with its request id); this is the backstop for what the app does not
  read: a body sent after its answer (a 401, a ``GET`` with a body), or any app
  served without that middleware. The deadline is for the whole body, like Go's
  ``ReadTimeout`` or Apache's ``RequestReadTimeout body=``; nginx's
  ``client_body_timeout`` times the gap between two reads instead, which a client
  sending a byte every few seconds never exceeds;
- a request beyond ``limit_concurrency`` (connections, or requests in progress) is
  answered with the service's JSON 503 and ``Retry-After``, where uvicorn answers
  ``Service Unavailable`` as text.

Parsing stays httptools'; only the bookkeeping around it is ours.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from chainkit.server._errors import error_json
from chainkit.server._limits import body_timeout_error
from chainkit.server._logging import json_response
from chainkit.server._schemas import ErrorBody

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

__all__ = ["HttpLimits", "guarded_protocol"]

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
_RETRY_AFTER = "1"  # seconds a client refused for the connection limit should wait
_BACKSTOP = 1.0  # seconds the server's body deadline comes after the app's (which answers)


class _Refused(Exception):  # noqa: N818 - a signal out of httptools' callback, not an error
    """Raised in a parser callback to stop parsing; the protocol answers the refusal."""


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The request limits one server applies (see :class:`ServerSettings`)."""

    max_head_bytes: int = 32 * 1024
    max_headers: int = 100
    head_timeout: float = 10.0
    body_timeout: float = 30.0


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that refuses oversized and slow requests, and answers
    the connection limit in JSON."""

    limits: ClassVar[HttpLimits] = HttpLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn answers its own limit in text; this class checks it instead
        self._max_connections, self.limit_concurrency = self.limit_concurrency, None
        self._in_head = True
        self._started = False
        self._head_bytes = 0
        self._header_count = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str, str] | None = None

    # ------------------------------------------------------------ connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        self._disarm_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        counting = self._in_head
        if counting:
            self._head_bytes += len(data)
        super().data_received(data)
        if (
            counting
            and self._in_head
            and self._head_bytes > self.limits.max_head_bytes
            and not self.transport.is_closing()
        ):
            self._refuse(
                431,
                "head_too_large",
                f"the request line and headers are over this server's "
                f"{self.limits.max_head_bytes} bytes; send fewer or shorter headers",
            )

    # ------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._started = True
        self._header_count = 0
        if self._head_timer is None:
            self._arm_head_timer()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refusal = (
                431,
                "too_many_headers",
                f"the request has more than this server's {self.limits.max_headers} headers",
            )
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._started = False
        self._head_bytes = 0
        self._disarm_head_timer()
        self._arm_body_timer()  # disarmed at once by a request without a body
        app = self.app
        if self._over_limit():
            self.logger.warning("Exceeded concurrency limit (--max-connections).")
            self.app = _unavailable(self._max_connections or 0)
        try:
            super().on_headers_complete()  # starts (or queues) the request with self.app
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        self._disarm_body_timer()
        super().on_message_complete()
        self._in_head = True  # the next bytes on this connection are the next request's head

    def handle_websocket_upgrade(self) -> None:
        self._disarm_body_timer()  # the connection is the WebSocket protocol's now
        super().handle_websocket_upgrade()

    def _over_limit(self) -> bool:
        limit = self._max_connections
        return limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit)

    # ------------------------------------------------------------ answers

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parse error; a refusal of ours answers itself instead."""
        refusal, self._refusal = self._refusal, None
        if refusal is None:
            super().send_400_response(msg)
        else:
            self._refuse(*refusal)

    def _refuse(self, status: int, code: str, message: str) -> None:
        kind = "RequestTimeout" if status == 408 else "RequestHeaderFieldsTooLarge"
        self._answer(ErrorBody(code=code, status=status, type=kind, message=message))

    def _answer(self, error: ErrorBody) -> None:
        """Write ``error`` as the connection's last answer and close it."""
        self._disarm_head_timer()
        self._disarm_body_timer()
        status, message = error.status, error.message
        payload = orjson.dumps(error_json(error))
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % (status, _REASONS[status], len(payload))
        )
        self.logger.warning("refused a request: %s", message)
        self.transport.write(head + payload)
        self.transport.close()

    # ------------------------------------------------------------ head timer

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if not self._started:  # idle before its (next) request: nothing to answer
            self.transport.close()
            return
        self._refuse(
            408,
            "head_timeout",
            f"the request line and headers did not arrive within this server's "
            f"{self.limits.head_timeout:g} seconds",
        )

    # ------------------------------------------------------------ body timer

    def _arm_body_timer(self) -> None:
        self._disarm_body_timer()
        self._body_timer = self.loop.call_later(
            self.limits.body_timeout + _BACKSTOP, self._body_timed_out
        )

    def _disarm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_started or self.pipeline:
            # an answer is on its way (or one to an earlier request): no room for a 408
            self.logger.warning(
                "closed a connection whose request body did not arrive within %g seconds",
                self.limits.body_timeout,
            )
            self.transport.close()
            return
        cycle.disconnected = True  # the app's receive() sees a disconnect, its sends are dropped
        cycle.message_event.set()
        self._answer(body_timeout_error(self.limits.body_timeout))


@functools.cache
def _unavailable(limit: int) -> Any:
    """An ASGI app answering the service's JSON 503 for the connection limit."""
    body = error_json(
        ErrorBody(
            code="too_many_connections",
            status=503,
            type="ServiceUnavailable",
            message=f"this server is at its limit of {limit} connections (or requests in "
            f"progress); retry shortly (or raise --max-connections)",
            limit=limit,
        )
    )
    headers = {"Retry-After": _RETRY_AFTER, "Connection": "close"}

    async def unavailable(scope: Scope, receive: Receive, send: Send) -> None:
        await json_response(send, 503, body, headers)

    return unavailable


def guarded_protocol(limits: HttpLimits) -> type[GuardedHttpToolsProtocol]:
    """A protocol class for one server's limits (uvicorn takes a class, not an instance)."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})
