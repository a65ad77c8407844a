"""Server-Sent Events: the wire format, and a response that stops its producer on disconnect.

Each event is ``event: <name>`` and one ``data:`` line of compact JSON written
as LangServe writes it (:func:`chainkit.server._wire.dumps`), then a blank line;
``end`` has an empty data line (LangChain.js's client would read any data as a chunk;
with none at all, a browser's ``EventSource`` would not dispatch it). While nothing
is sent for ``ping_interval`` seconds, a ``: ping`` comment keeps proxies from
closing the stream.

The response runs the event iterator in a task and watches ``receive()`` for
``http.disconnect``: when the client leaves, the task is cancelled at once,
wherever it is waiting (usually on the model), so the chain run and its HTTP
call to the model are cancelled too; they do not run to the end for no one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from chainkit.server._wire import dumps

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

__all__ = ["SSE_HEADERS", "EventStream", "sse_event"]

log = logging.getLogger(__name__)

SSE_HEADERS = {
    "cache-control": "no-cache",
    "x-accel-buffering": "no",  # nginx: do not buffer the stream
}


_NO_DATA: Any = object()


def sse_event(event: str, data: Any = _NO_DATA) -> bytes:
    """One SSE event: its name and its data (if any) as one line of JSON."""
    if data is _NO_DATA:
        return b"event: " + event.encode() + b"\ndata: \n\n"
    return b"event: " + event.encode() + b"\ndata: " + dumps(data) + b"\n\n"


class EventStream(Response):
    """An ASGI response streaming ``events`` (encoded SSE events) as they come.

    ``on_close(disconnected)`` runs exactly once when the stream ends, whether
    it finished (just before the body's end is sent), failed, or the client left
    (``disconnected=True``).
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        events: AsyncIterator[bytes],
        *,
        ping_interval: float = 15.0,
        on_close: Callable[[bool], None] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.events = events
        self.ping_interval = ping_interval
        self.on_close = on_close
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
        self.raw_headers.extend(
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in {**SSE_HEADERS, **(headers or {})}.items()
        )
        self.disconnected = False
        self._last_send = 0.0
        self._send_lock = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._run(receive, send)
        finally:
            self._closed()
        if self.background is not None and not self.disconnected:
            await self.background()

    async def _run(self, receive: Receive, send: Send) -> None:
        try:
            start = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
            await send(start)
        except OSError:
            self.disconnected = True
            await _close(self.events)
            return
        self._last_send = time.monotonic()
        producer = asyncio.ensure_future(self._produce(send))
        watcher = asyncio.ensure_future(_wait_disconnect(receive))
        pinger = asyncio.ensure_future(self._ping(send))
        try:
            await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            pinger.cancel()
            if not producer.done():  # the client left (or we are being cancelled)
                self.disconnected = self.disconnected or watcher.done()
                await cancel_and_wait(producer)
            watcher.cancel()
            await asyncio.gather(watcher, pinger, return_exceptions=True)
            await _close(self.events)
        error = producer.exception() if producer.done() and not producer.cancelled() else None
        if isinstance(error, OSError):  # a send failed: the client is gone
            self.disconnected = True
        elif isinstance(error, Exception):
            raise error

    def _closed(self) -> None:
        on_close, self.on_close = self.on_close, None
        if on_close is not None:
            on_close(self.disconnected)

    async def _produce(self, send: Send) -> None:
        async for chunk in self.events:
            await self._send(send, chunk, more=True)
        self._closed()  # before the last byte: a client that saw the end sees the slot free
        await self._send(send, b"", more=False)

    async def _send(self, send: Send, body: bytes, *, more: bool) -> None:
        async with self._send_lock:
            await send({"type": "http.response.body", "body": body, "more_body": more})
            self._last_send = time.monotonic()

    async def _ping(self, send: Send) -> None:
        while True:
            idle = time.monotonic() - self._last_send
            if idle >= self.ping_interval:
                await self._send(send, b": ping\n\n", more=True)
                continue
            await asyncio.sleep(self.ping_interval - idle)


async def cancel_and_wait(
    task: asyncio.Future[Any], *, retry_every: float = 0.1, give_up_after: float = 10.0
) -> None:
    """Cancel ``task`` and wait for it to end, cancelling again while it runs on.

    One ``cancel()`` is not always enough: on Python 3.11 ``asyncio.wait_for``
    drops a cancellation that arrives as its inner future completes, and
    langchain-openai wraps every chunk of a stream in ``wait_for``
    (``stream_chunk_timeout``), so a stream cancelled just as a chunk arrives
    would run to its end. Cancelling again stops it at its next await.
    """
    deadline = time.monotonic() + give_up_after
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=retry_every)
        if time.monotonic() > deadline:
            log.warning(
                "a stream's run did not stop within %.0f s of its cancellation", give_up_after
            )
            return


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _close(events: AsyncIterator[bytes]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
