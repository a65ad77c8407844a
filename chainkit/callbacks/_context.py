"""``capture()``: attach capture handlers to every LangChain call in a block.

LangChain looks for extra handlers in context variables registered with
``register_configure_hook`` (``get_usage_metadata_callback`` uses it). That
function appends to a global list on every call, so ``get_usage_metadata_callback``
leaks one hook per use (langchain issue 32300). chainkit registers a fixed set
of context variables once, at import, and ``capture()`` only sets and resets
them; nested blocks take the next free slot, so an inner block does not hide
an outer one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

from chainkit._compat import register_context_handler
from chainkit.callbacks._event_capture import EventCapture
from chainkit.callbacks._stream_capture import StreamCapture
from chainkit.errors import UserError
from chainkit.trace import DEFAULT_MAX_CHARS, Trace

__all__ = ["CaptureBlock", "attach", "capture"]

MAX_HANDLERS = 8
"""Handlers that nested ``capture()`` blocks may attach at once."""

_SLOTS: tuple[ContextVar[BaseCallbackHandler | None], ...] = tuple(
    ContextVar(f"chainkit_capture_{i}", default=None) for i in range(MAX_HANDLERS)
)


def _register_hooks() -> None:
    for var in _SLOTS:
        register_context_handler(var)


_register_hooks()  # once, at import (never per capture() call)

_Tokens = list[tuple[ContextVar[BaseCallbackHandler | None], Token[Any]]]


def _set_slots(handlers: Sequence[BaseCallbackHandler]) -> _Tokens:
    free = [var for var in _SLOTS if var.get() is None]
    if len(free) < len(handlers):
        raise UserError(
            f"capture() blocks nest too deep: at most {MAX_HANDLERS} handlers can be "
            f"attached at once; pass callbacks in the config instead"
        )
    return [(var, var.set(handler)) for var, handler in zip(free, handlers, strict=False)]


def _reset_slots(tokens: _Tokens) -> None:
    while tokens:
        var, token = tokens.pop()
        var.reset(token)


@contextlib.contextmanager
def attach(*handlers: BaseCallbackHandler) -> Iterator[None]:
    """Attach ``handlers`` to every LangChain call made inside the block.

    >>> otel = OTelCapture()
    >>> with attach(otel):
    ...     chain.invoke({"topic": "x"})

    :func:`capture` without the trace it records: any callback handler
    (an :class:`~chainkit.callbacks.OTelCapture`, a ``UsageMetadataCallbackHandler``).
    """
    tokens = _set_slots(handlers)
    try:
        yield
    finally:
        _reset_slots(tokens)


class CaptureBlock:
    """What :func:`capture` returns: a sync and async context manager.

    ``with capture() as trace`` / ``async with capture() as trace`` give the
    :class:`~chainkit.trace.Trace` the handlers write to; the handlers are
    :attr:`stream_capture`, (with ``events=True``) :attr:`event_capture`, and
    any ``extra`` handlers (an :class:`~chainkit.callbacks.OTelCapture`).
    """

    def __init__(
        self,
        trace: Trace,
        *,
        events: bool,
        strict: bool,
        event_filters: dict[str, Any],
        extra: Sequence[BaseCallbackHandler] = (),
    ) -> None:
        self.trace = trace
        self.extra = list(extra)
        self.stream_capture = StreamCapture(trace, strict=strict)
        self.event_capture = EventCapture(trace, strict=strict, **event_filters) if events else None
        self._tokens: _Tokens = []

    @property
    def handlers(self) -> list[BaseCallbackHandler]:
        handlers: list[BaseCallbackHandler] = [self.stream_capture]
        if self.event_capture is not None:
            handlers.append(self.event_capture)
        return handlers + self.extra

    def __enter__(self) -> Trace:
        if self._tokens:
            raise UserError("this capture() block is already active; make a new one per `with`")
        self._tokens = _set_slots(self.handlers)
        return self.trace

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _reset_slots(self._tokens)

    async def __aenter__(self) -> Trace:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def capture(
    trace: Trace | str | os.PathLike[str] | None = None,
    *,
    events: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
    strict: bool = False,
    handlers: Sequence[BaseCallbackHandler] = (),
    **event_filters: Any,
) -> CaptureBlock:
    """Capture every LangChain call made inside a block, without passing callbacks.

    >>> with capture() as trace:
    ...     chain.invoke({"topic": "sparkling water"})
    >>> trace.runs[0].latency

    Works as ``async with`` too, and across threads and tasks started inside the
    block (LangChain copies the context). ``trace`` is a :class:`Trace`, a path
    (records appended as they happen) or None (in memory). ``events=True`` also
    records the astream_events v2 event stream (an :class:`EventCapture`;
    ``include_names=...`` and the other filters are passed to it). ``handlers``
    are attached too, e.g. an :class:`~chainkit.callbacks.OTelCapture` to
    export the same calls as OpenTelemetry spans (flush or shut it down after).
    """
    target = trace if isinstance(trace, Trace) else Trace(trace, max_chars=max_chars)
    return CaptureBlock(
        target, events=events, strict=strict, event_filters=event_filters, extra=handlers
    )
