"""uvicorn's httptools protocol with the limits it lacks: the request head's size, its
number of headers, and the time a client may take to send it.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``) and
connections at once (``limit_concurrency``), but with httptools it reads a request
head of any size, with any number of headers, for as long as the client likes
(h11 bounds only the size, with ``h11_max_incomplete_event_size``). Here:

- bytes received while a request head is incomplete are counted before they are
  parsed; past ``max_head_bytes`` the client gets a JSON 431 and the connection is
  closed (memory per connection stays under the limit plus one socket read);
- the ``max_headers + 1``-th header is a 431 too;
- a head not complete ``head_timeout`` seconds after the connection opened (or
  after its request's first byte) ends the connection: a 408 when a request was
  started, a plain close when none was (a connection idle before its first
  request).

Parsing stays httptools'; only the bookkeeping around it is ours.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from chainkit.server._errors import error_json
from chainkit.server._schemas import ErrorBody

__all__ = ["HeadLimits", "guarded_protocol"]

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _Refused(Exception):  # noqa: N818 - a signal out of httptools' callback, not an error
    """Raised in a parser callback to stop parsing; the protocol answers the refusal."""


class HeadLimits:
    """The request-head limits one server applies (see :class:`ServerSettings`)."""

    def __init__(self, max_head_bytes: int, max_headers: int, head_timeout: float) -> None:
        self.max_head_bytes = max_head_bytes
        self.max_headers = max_headers
        self.head_timeout = head_timeout


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that refuses oversized and slow request heads."""

    limits: ClassVar[HeadLimits] = HeadLimits(32 * 1024, 100, 10.0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._started = False
        self._head_bytes = 0
        self._header_count = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str, str] | None = None

    # ------------------------------------------------------------ connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
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
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # the next bytes on this connection are the next request's head

    # ------------------------------------------------------------ answers

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parse error; a refusal of ours answers itself instead."""
        refusal, self._refusal = self._refusal, None
        if refusal is None:
            super().send_400_response(msg)
        else:
            self._refuse(*refusal)

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._disarm_head_timer()
        kind = "RequestTimeout" if status == 408 else "RequestHeaderFieldsTooLarge"
        body = error_json(ErrorBody(code=code, status=status, type=kind, message=message))
        payload = orjson.dumps(body)
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % (status, _REASONS[status], len(payload))
        )
        self.logger.warning("refused a request head: %s", message)
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


def guarded_protocol(limits: HeadLimits) -> type[GuardedHttpToolsProtocol]:
    """A protocol class for one server's limits (uvicorn takes a class, not an instance)."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})
