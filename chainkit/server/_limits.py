"""Limits: request body size (413) and streams open at once (429).

The batch size limit (413) is checked by the ``/batch`` route itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chainkit.server._errors import ApiError, error_json
from chainkit.server._logging import json_response, request_info
from chainkit.server._schemas import ErrorBody

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware", "StreamSlots"]


class BodyLimitMiddleware:
    """Read the request body first, up to ``max_bytes``; answer 413 past that.

    A ``Content-Length`` over the limit is refused before reading anything; a
    chunked body is refused as soon as it grows past the limit. The app then
    receives the body as one message, and later ``receive()`` calls go to the
    server (so a client disconnect is still seen by streaming responses).
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, keep_body: bool = False) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.keep_body = keep_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                request_info(scope).disconnected = True
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
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

    async def _refuse(self, scope: Scope, send: Send) -> None:
        info = request_info(scope)
        info.error = "BodyTooLarge"
        body = ErrorBody(
            code="body_too_large",
            status=413,
            type="BodyTooLarge",
            message=f"the request body is larger than this service's limit of "
            f"{self.max_bytes} bytes; send less (or raise --max-body-bytes)",
            limit=self.max_bytes,
            request_id=info.request_id,
        )
        # The rest of the body is not read; close the connection rather than drain it.
        await json_response(send, 413, error_json(body), {"Connection": "close"})


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
