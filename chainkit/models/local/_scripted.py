"""Scripted replies: a test says exactly what the local model answers next.

A :class:`Scripted` reply is text, tool calls, or an error. A server keeps a queue
of them (:meth:`LocalModelServer.enqueue`), or a function that picks one per
request (:meth:`LocalModelServer.reply_with`); one request can carry its own in
the ``X-Chainkit-Reply`` header (JSON: ``{"content": "..."}``,
``{"tool_calls": [{"name": "f", "arguments": {...}}]}`` or
``{"error": {"status": 429, "message": "..."}}``). Chat completions, responses and
completions use them (validation still runs first); the request's ``n``,
``stream``, ``stop``, ``max_tokens`` and usage apply as to a written answer.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from chainkit.models.local._errors import BadRequest
from chainkit.models.local._requests import Answer, Choice, cut
from chainkit.models.local._tokens import stable_seed

__all__ = [
    "REPLY_HEADER",
    "ReplyFunction",
    "Script",
    "Scripted",
    "as_scripted",
    "fail",
    "tool_call",
]

REPLY_HEADER = "x-chainkit-reply"


@dataclass(frozen=True, slots=True)
class Scripted:
    """One scripted answer: ``content``, or ``tool_calls`` as (name, arguments) pairs,
    or an ``error`` (status, message) the request fails with."""

    content: str | None = None
    tool_calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    error: tuple[int, str] | None = None

    def apply(self, answer: Answer, salt: str) -> Answer:
        """``answer`` with its choices replaced by this reply (or a :class:`BadRequest`)."""
        if self.error is not None:
            status, message = self.error
            kind = "server_error" if status >= 500 else "invalid_request_error"
            headers = {"retry-after": "0"} if status == 429 else None
            raise BadRequest(message, status=status, type_=kind, headers=headers)
        choices = []
        for old in answer.choices:
            if self.tool_calls:
                calls = []
                for k, (name, arguments) in enumerate(self.tool_calls):
                    call_id = f"call_{stable_seed('scripted', salt, old.index, k):016x}"
                    fragments, _ = cut(orjson.dumps(arguments).decode(), (), None)
                    calls.append((call_id, name, fragments))
                pieces = [f for _, _, frags in calls for f in frags]
                choices.append(Choice(old.index, pieces, "tool_calls", calls))
            else:
                pieces, finish = cut(self.content or "", answer.stop, answer.max_tokens)
                choices.append(Choice(old.index, pieces, finish))
        answer.choices = choices
        return answer


ReplyFunction = Callable[[dict[str, Any]], "str | Scripted | None"]


def as_scripted(value: str | Scripted) -> Scripted:
    if isinstance(value, Scripted):
        return value
    if isinstance(value, str):
        return Scripted(content=value)
    raise TypeError(f"a scripted reply is a str or a Scripted, not {type(value).__name__}")


@dataclass
class Script:
    """A server's scripted replies: a queue, then an optional function."""

    queue: deque[Scripted] = field(default_factory=deque)
    function: ReplyFunction | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self, body: dict[str, Any], header: str | None) -> Scripted | None:
        """The reply for this request: its header's, the queue's next, the function's."""
        if header is not None:
            return from_header(header)
        with self._lock:
            if self.queue:
                return self.queue.popleft()
            function = self.function
        if function is None:
            return None
        value = function(body)
        return None if value is None else as_scripted(value)


def from_header(header: str) -> Scripted:
    """A reply written as JSON in the ``X-Chainkit-Reply`` header (or a 400)."""
    try:
        data = orjson.loads(header)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise _bad_header(f"{header[:80]!r} is not a JSON object")
    if "error" in data:
        error = data["error"]
        status = error.get("status", 500) if isinstance(error, dict) else error
        message = error.get("message", "scripted error") if isinstance(error, dict) else None
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise _bad_header(f"error status {status!r} is not a 4xx/5xx code")
        return Scripted(error=(status, str(message or f"scripted error {status}")))
    if "tool_calls" in data:
        calls = data["tool_calls"]
        if not isinstance(calls, list) or not all(
            isinstance(c, dict) and isinstance(c.get("name"), str) for c in calls
        ):
            raise _bad_header("tool_calls must be a list of {'name': ..., 'arguments': {...}}")
        return Scripted(tool_calls=tuple((c["name"], c.get("arguments") or {}) for c in calls))
    content = data.get("content")
    if not isinstance(content, str):
        raise _bad_header("give 'content' (a string), 'tool_calls' or 'error'")
    return Scripted(content=content)


def _bad_header(what: str) -> BadRequest:
    return BadRequest(
        f"Invalid {REPLY_HEADER} header: {what}.", param=REPLY_HEADER, code="invalid_header"
    )


def tool_call(name: str, arguments: dict[str, Any] | None = None, /, **kwargs: Any) -> Scripted:
    """A scripted reply that calls tool ``name`` with ``arguments`` (or keyword arguments)."""
    return Scripted(tool_calls=((name, {**(arguments or {}), **kwargs}),))


def fail(status: int = 500, message: str | None = None) -> Scripted:
    """A scripted reply that fails the request with HTTP ``status`` (OpenAI's error JSON)."""
    if not 400 <= status <= 599:
        raise ValueError(f"a scripted error needs a 4xx/5xx status, not {status}")
    return Scripted(error=(status, message or f"scripted error {status} (chainkit.testing)"))
