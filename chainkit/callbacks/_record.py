"""``record_events``: tee an astream_events iterator into a Trace, events passed on unchanged."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable, Iterator, Mapping
from typing import Any, TypeVar, overload

from chainkit.callbacks._common import clock
from chainkit.trace import Trace, Usage, message_text, usage_of_message

__all__ = ["EventRecorder", "record_events"]

E = TypeVar("E")

_PHASES = ("start", "stream", "end", "error")
_MODEL_TYPES = ("chat_model", "llm")
_LC_RUN_PREFIX = "lc_run--"


def _chunk_text(chunk: Any) -> str:
    if isinstance(chunk, str):
        return chunk
    if isinstance(chunk, Mapping):
        if isinstance(chunk.get("text"), str):
            return str(chunk["text"])
        return message_text(chunk.get("content", ""))
    text = getattr(chunk, "text", None)
    if isinstance(text, str) and not hasattr(chunk, "content"):
        return text  # GenerationChunk
    return message_text(chunk)


class EventRecorder:
    """Writes events into a trace: an event record each, and (``runs=True``) run records.

    Run records (start, chunks of model streams, end) are derived from the
    events, so ``trace.runs`` and ``trace.summary()`` work on recorded event
    streams too. v2 events carry their parentage; v1 events do not (their
    ``parent_ids`` are empty), so for them a run's parent is taken to be the
    innermost *chain* run still open when it starts (prompts, models and
    parsers of a streamed sequence overlap, and only chains hold other runs).
    v3 (chat model protocol) events become one chat model run per message.
    """

    def __init__(self, trace: Trace, *, runs: bool = True, name: str = "") -> None:
        self.trace = trace
        self.runs = runs
        self.name = name
        self._open: list[tuple[str, str]] = []  # (run_id, type) of runs not ended yet
        self._v3_run: str | None = None

    def record(self, event: Any) -> None:
        """Record one event (a dict as astream_events yields; anything else is wrapped)."""
        t = clock()
        if not isinstance(event, Mapping):
            self.trace.event(
                {
                    "event": type(event).__name__,
                    "name": "",
                    "run_id": "",
                    "parent_ids": [],
                    "tags": [],
                    "metadata": {},
                    "data": event,
                    "t": t,
                }
            )
            return
        kind = str(event.get("event", ""))
        if kind.startswith("on_") or "run_id" in event:
            self.trace.event({**event, "t": t})
            if self.runs:
                self._fold_v2(event, kind, t)
        else:
            self._v3(event, kind, t)

    def _fold_v2(self, event: Mapping[str, Any], kind: str, t: float) -> None:
        if kind == "on_custom_event":
            return
        run_type, _, phase = kind[3:].rpartition("_")
        if phase not in _PHASES or not run_type:
            return
        run_id = str(event.get("run_id", ""))
        data = event.get("data") or {}
        if phase == "start":
            parent_ids = event.get("parent_ids") or []
            chains = [run for run, kind in self._open if kind == "chain"]
            parent = parent_ids[-1] if parent_ids else (chains[-1] if chains else None)
            self.trace.run_started(
                run_id,
                name=str(event.get("name", "")),
                kind=run_type,
                parent_run_id=parent,
                tags=list(event.get("tags") or ()),
                metadata=event.get("metadata") or {},
                inputs=data.get("input"),
                t=t,
            )
            self._open.append((run_id, run_type))
        elif phase == "stream":
            if run_type in _MODEL_TYPES:
                self.trace.chunk(run_id, t, _chunk_text(data.get("chunk")))
        elif phase == "end":
            self._close(run_id)
            output = data.get("output")
            usage = usage_of_message(output) if run_type == "chat_model" else None
            self.trace.run_ended(
                run_id,
                outputs=output,
                usage=usage.model_dump() if usage is not None else None,
                inputs=data.get("input"),
                t=t,
            )
        else:
            self._close(run_id)
            error = data.get("error")
            if isinstance(error, BaseException):
                self.trace.run_failed(run_id, error, t=t)

    def _close(self, run_id: str) -> None:
        self._open = [entry for entry in self._open if entry[0] != run_id]

    def _v3(self, event: Mapping[str, Any], kind: str, t: float) -> None:
        """A chat-model protocol event (``astream_events(version="v3")``)."""
        if kind == "message-start" or self._v3_run is None:
            message_id = str(event.get("id") or "")
            run_id = message_id.removeprefix(_LC_RUN_PREFIX) or f"v3-{len(self.trace.runs)}"
            self._v3_run = run_id
            if self.runs:
                self.trace.run_started(
                    run_id, name=self.name or "chat_model", kind="chat_model", t=t
                )
        run_id = self._v3_run
        data = {k: v for k, v in event.items() if k != "event"}
        self.trace.event(
            {
                "event": kind,
                "name": self.name,
                "run_id": run_id,
                "parent_ids": [],
                "tags": [],
                "metadata": {},
                "data": data,
                "t": t,
            }
        )
        if not self.runs:
            return
        if kind == "content-block-delta":
            delta = event.get("delta") or {}
            if isinstance(delta, Mapping) and delta.get("type") == "text-delta":
                self.trace.chunk(run_id, t, str(delta.get("text", "")))
        elif kind == "message-finish":
            raw = event.get("usage")
            usage = Usage.of(raw).model_dump() if isinstance(raw, Mapping) else None
            self.trace.run_ended(run_id, usage=usage, t=t)
            self._v3_run = None


@overload
def record_events(
    events: AsyncIterable[E] | Awaitable[AsyncIterable[E]],
    trace: Trace,
    *,
    runs: bool = True,
    name: str = "",
) -> AsyncIterator[E]: ...


@overload
def record_events(
    events: Iterable[E], trace: Trace, *, runs: bool = True, name: str = ""
) -> Iterator[E]: ...


def record_events(
    events: Any, trace: Trace, *, runs: bool = True, name: str = ""
) -> AsyncIterator[Any] | Iterator[Any]:
    """Yield every event of ``events`` unchanged, recording each into ``trace``.

    ``events`` is what ``astream_events`` returns (``version="v1"`` or ``"v2"``),
    or for a chat model ``astream_events(version="v3")`` (awaited or not) and the
    sync ``stream_events(version="v3")``. So the first seed's loop is recorded as
    written::

        async for event in record_events(chain.astream_events(x, version="v1"), trace):
            ...

    Each event becomes an event record with its time ``t``; the event the caller
    gets is the very same object. With ``runs=True`` run records are derived
    too (see :class:`EventRecorder`). ``name`` names the run of v3 events,
    which carry no name. Closing the returned iterator closes ``events``.
    """
    recorder = EventRecorder(trace, runs=runs, name=name)
    if hasattr(events, "__aiter__") or inspect.isawaitable(events):
        return _arecord(events, recorder)
    if isinstance(events, Iterable):
        return _record(events, recorder)
    raise TypeError(
        f"record_events needs an async iterator of events (astream_events(...)), "
        f"got {type(events).__name__}"
    )


async def _arecord(events: Any, recorder: EventRecorder) -> AsyncIterator[Any]:
    if not hasattr(events, "__aiter__"):
        events = await events
    iterator = events.__aiter__()
    try:
        async for event in iterator:
            recorder.record(event)
            yield event
    finally:
        aclose = getattr(iterator, "aclose", None) or getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


def _record(events: Iterable[Any], recorder: EventRecorder) -> Iterator[Any]:
    iterator = iter(events)
    try:
        for event in iterator:
            recorder.record(event)
            yield event
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
