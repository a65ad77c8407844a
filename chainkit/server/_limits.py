"""Limits: request body size (413) and time (408), and streams open at once (429).

The batch size limit (413) is checked by the ``/batch`` route itself.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from chainkit.server._errors import ApiError, error_json
from chainkit.server._logging import json_response, request_info
from chainkit.server._schemas import ErrorBody

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware", "StreamSlots", "body_timeout_error"]


def body_timeout_error(timeout: float) -> ErrorBody:
    """The 408 for a request body that did not all arrive within ``timeout`` seconds."""
    return ErrorBody(
        code="body_timeout",
        status=408,
        type="BodyTimeout",
        message=f"the request body did not all arrive within this service's body timeout "
        f"({timeout:g} s); send it faster (or raise --body-timeout)",
    )


class BodyLimitMiddleware:
    """Read the request body first, up to ``max_bytes`` and within ``timeout`` seconds;
    answer 413 past the size, 408 past the time (and close the connection).

    A ``Content-Length`` over the limit is refused before reading anything; a
    chunked body is refused as soon as it grows past the limit. The app then
    receives the body as one message, and later ``receive()`` calls go to the
    server (so a client disconnect is still seen by streaming responses). The
    timeout is a deadline for the whole body, not for the gap between two reads
    (which a client sending a byte every few seconds never exceeds).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        timeout: float | None = None,
        keep_body: bool = False,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.keep_body = keep_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _refuse(scope, send, self._too_large())
            return
        try:
            async with asyncio.timeout(self.timeout):
                body = await self._read(scope, receive)
        except _BodyTooLarge:
            await _refuse(scope, send, self._too_large())
            return
        except TimeoutError:
            await _refuse(scope, send, body_timeout_error(self.timeout or 0))
            return
        if body is None:  # the client left
            return
        if self.keep_body:
            request_info(scope).body = body
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body; None when the client left, :class:`_BodyTooLarge` past the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                request_info(scope).disconnected = True
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self) -> ErrorBody:
        return ErrorBody(
            code="body_too_large",
            status=413,
            type="BodyTooLarge",
            message=f"the request body is larger than this service's limit of "
            f"{self.max_bytes} bytes; send less (or raise --max-body-bytes)",
            limit=self.max_bytes,
        )


class _BodyTooLarge(Exception):  # noqa: N818 - a signal out of the read loop, not an error
    """The body grew past the limit while it was read."""


async def _refuse(scope: Scope, send: Send, error: ErrorBody) -> None:
    info = request_info(scope)
    info.error = error.type
    error.request_id = info.request_id
    # The rest of the body is not read; close the connection rather than drain it.
    await json_response(send, error.status, error_json(error), {"Connection": "close"})


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class StreamSlots:
    """A counter of open streams with a ceiling; :meth:`acquire` raises a 429 when full."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    def acquire(self) -> None:
        if self.in_use >= self.limit:
            raise ApiError(
                429,
                "too_many_streams",
                f"{self.in_use} streams are open, this service's limit is {self.limit}; "
                f"retry shortly (or raise --max-streams)",
                headers={"Retry-After": "1"},
                limit=self.limit,
            )
        self.in_use += 1

    def release(self) -> None:
        self.in_use = max(0, self.in_use - 1)
