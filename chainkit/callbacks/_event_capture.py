"""``EventCapture``: the astream_events v2 event stream, made from callbacks."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import GenerationChunk, LLMResult

from chainkit._compat import StreamingCallbackHandler, child_config
from chainkit.callbacks._common import DEFERRED_INPUT, clock, llm_result_output, run_name
from chainkit.trace import DEFAULT_MAX_CHARS, Trace

__all__ = ["EventCapture"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(slots=True)
class _RunInfo:
    run_id: str
    name: str
    run_type: str
    tags: list[str]
    metadata: dict[str, Any]
    parent_ids: list[str]
    inputs: Any = None


class EventCapture(BaseCallbackHandler):
    """Record the ``astream_events(version="v2")`` event stream of any call, from callbacks.

    astream_events takes one input and only streams; EventCapture gives the
    same events for ``invoke``, ``batch``, ``abatch``, ``stream`` and ``astream``
    too. Events are dicts in the v2 schema (``event``, ``name``, ``run_id``,
    ``parent_ids``, ``tags``, ``metadata``, ``data``) plus ``t``, the
    :func:`time.perf_counter` time; read them as :attr:`events` or from
    :attr:`trace` (in memory, or a JSONL file when ``trace`` is a path).
    ``include_*`` / ``exclude_*`` filter by name, type and tag as astream_events does.
    For one ``astream`` of a chain the sequence matches astream_events v2 on
    event type, name and parentage (tests check every built-in chain).

    Differences from astream_events, by design:

    - with ``errors=True`` (the default) a failed run also yields an
      ``on_<type>_error`` event (``data``: ``error``, ``input``); v2 has only
      ``on_tool_error`` and ends the stream with the exception instead;
    - the first event's ``data["input"]`` is the input LangChain reports; v2
      patches in the value passed to astream_events when the run streams its input.

    **Stream events and output tapping.** ``on_chain_stream`` / ``on_parser_stream``
    events come from LangChain's output-tapping protocol
    (``tap_output_aiter`` / ``tap_output_iter``, the one astream_events uses): a
    streamed run hands its output to the *first* attached handler that implements
    it, and only that one. EventCapture implements it and, when it is that first
    handler, passes the output on to every other tapping handler of the run too
    (astream_events' own, another EventCapture), so that both see every chunk.
    When another tapping handler comes first (EventCapture attached by
    :func:`~chainkit.callbacks.capture` inside ``astream_events``, whose handler is
    then ahead of it), that handler keeps the tap: EventCapture still records every
    start, end and model-stream event, but no ``on_chain_stream`` /
    ``on_parser_stream`` events. Like astream_events, an attached EventCapture
    also makes chat models stream inside ``invoke`` (LangChain streams when a
    tapping handler is attached), so ``invoke`` yields ``on_chat_model_stream``
    events.

    The hooks are plain methods run inline (see :class:`StreamCapture`).
    """

    run_inline = True

    def __init__(
        self,
        trace: Trace | str | os.PathLike[str] | None = None,
        *,
        include_names: Sequence[str] | None = None,
        include_types: Sequence[str] | None = None,
        include_tags: Sequence[str] | None = None,
        exclude_names: Sequence[str] | None = None,
        exclude_types: Sequence[str] | None = None,
        exclude_tags: Sequence[str] | None = None,
        errors: bool = True,
        max_chars: int = DEFAULT_MAX_CHARS,
        strict: bool = False,
    ) -> None:
        super().__init__()
        self.trace = trace if isinstance(trace, Trace) else Trace(trace, max_chars=max_chars)
        self.raise_error = strict
        self.errors = errors
        self.include_names = _frozen(include_names)
        self.include_types = _frozen(include_types)
        self.include_tags = _frozen(include_tags)
        self.exclude_names = _frozen(exclude_names)
        self.exclude_types = _frozen(exclude_types)
        self.exclude_tags = _frozen(exclude_tags)
        self._filtered = any(
            f is not None
            for f in (
                self.include_names,
                self.include_types,
                self.include_tags,
                self.exclude_names,
                self.exclude_types,
                self.exclude_tags,
            )
        )
        self._runs: dict[UUID, _RunInfo] = {}
        # Kept after a run ends: a child's end may come after its parent's.
        self._parents: dict[UUID, UUID | None] = {}
        self._tapped: dict[UUID, object] = {}
        self._tool_call_ids: dict[UUID, Any] = {}

    def __copy__(self) -> EventCapture:
        return self

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> EventCapture:
        return self

    @property
    def events(self) -> list[dict[str, Any]]:
        """The events recorded so far, in order: v2 dicts plus ``t``."""
        return self.trace.events

    def __repr__(self) -> str:
        return f"<EventCapture: {len(self.trace.events)} events>"

    def _repr_html_(self) -> str:
        """In Jupyter: the captured trace (summary, run tree, timeline)."""
        return self.trace._repr_html_()

    # ----------------------------------------------------------------- events

    def include(self, name: str, tags: Sequence[str], run_type: str) -> bool:
        """Whether an event passes the include/exclude filters (astream_events' rules)."""
        if not self._filtered:
            return True
        if self.include_names is None and self.include_types is None and self.include_tags is None:
            keep = True
        else:
            keep = (
                (self.include_names is not None and name in self.include_names)
                or (self.include_types is not None and run_type in self.include_types)
                or (self.include_tags is not None and any(t in self.include_tags for t in tags))
            )
        if keep and self.exclude_names is not None:
            keep = name not in self.exclude_names
        if keep and self.exclude_types is not None:
            keep = run_type not in self.exclude_types
        if keep and self.exclude_tags is not None:
            keep = all(t not in self.exclude_tags for t in tags)
        return keep

    def _emit(self, event: str, info: _RunInfo, data: dict[str, Any], filter_type: str) -> None:
        if self._filtered and not self.include(info.name, info.tags, filter_type):
            return
        self.trace.event(
            {
                "event": event,
                "data": data,
                "name": info.name,
                "tags": info.tags,
                "run_id": info.run_id,
                "metadata": info.metadata,
                "parent_ids": info.parent_ids,
                "t": clock(),
            }
        )

    def _parent_ids(self, parent_run_id: UUID | None) -> list[str]:
        ids: list[str] = []
        seen: set[UUID] = set()
        current = parent_run_id
        while current is not None and current not in seen:
            seen.add(current)
            ids.append(str(current))
            current = self._parents.get(current)
        ids.reverse()
        return ids

    def _start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        *,
        name: str,
        run_type: str,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
    ) -> _RunInfo:
        self._parents[run_id] = parent_run_id
        info = _RunInfo(
            str(run_id), name, run_type, tags or [], metadata or {}, self._parent_ids(parent_run_id)
        )
        self._runs[run_id] = info
        return info

    def _info(self, run_id: UUID, run_type: str, *, pop: bool = False) -> _RunInfo:
        info = self._runs.pop(run_id, None) if pop else self._runs.get(run_id)
        if info is None:  # the start was not seen: record what we can
            info = _RunInfo(
                str(run_id),
                "Unnamed",
                run_type,
                [],
                {},
                self._parent_ids(self._parents.get(run_id)),
            )
            if not pop:
                self._runs[run_id] = info
        return info

    # ---------------------------------------------------------------- tapping

    def tap_output_aiter(self, run_id: UUID, output: AsyncIterator[T]) -> AsyncIterator[T]:
        """Emit ``on_<type>_stream`` for each chunk of a streamed run (LangChain's tap protocol)."""
        return self._atap(run_id, output, delegate=True)

    def tap_output_iter(self, run_id: UUID, output: Iterator[T]) -> Iterator[T]:
        """Sync counterpart of :meth:`tap_output_aiter`."""
        return self._tap(run_id, output, delegate=True)

    def _co_tappers(self, run_id: UUID) -> list[Any]:
        """Other tapping handlers of this run (called where LangChain set its child config)."""
        config = child_config()
        callbacks = config.get("callbacks") if config else None
        if not isinstance(callbacks, BaseCallbackManager) or callbacks.parent_run_id != run_id:
            return []
        return [
            h
            for h in callbacks.handlers
            if h is not self and isinstance(h, StreamingCallbackHandler)
        ]

    def _stream_event(self, run_id: UUID) -> tuple[_RunInfo, str] | None:
        info = self._runs.get(run_id)
        if info is None:
            return None
        return info, f"on_{info.run_type}_stream"

    def _emit_chunk(self, target: tuple[_RunInfo, str], chunk: Any) -> None:
        info, event = target
        try:
            self._emit(event, info, {"chunk": chunk}, info.run_type)
        except Exception:
            log.warning("EventCapture failed to record a stream event", exc_info=True)
            if self.raise_error:
                raise

    async def _atap(
        self, run_id: UUID, output: AsyncIterator[T], *, delegate: bool
    ) -> AsyncIterator[T]:
        sentinel = object()
        tap = self._tapped.setdefault(run_id, sentinel)
        if delegate:
            for other in self._co_tappers(run_id):
                if isinstance(other, EventCapture):
                    output = other._atap(run_id, output, delegate=False)
                else:
                    output = other.tap_output_aiter(run_id, output)
        if tap is not sentinel:  # someone else taps this run
            async for chunk in output:
                yield chunk
            return
        target: tuple[_RunInfo, str] | None = None
        first = True
        async for chunk in output:
            if first:
                first = False
                target = self._stream_event(run_id)  # None: the run already ended
            if target is not None:
                self._emit_chunk(target, chunk)
            yield chunk

    def _tap(self, run_id: UUID, output: Iterator[T], *, delegate: bool) -> Iterator[T]:
        sentinel = object()
        tap = self._tapped.setdefault(run_id, sentinel)
        if delegate:
            for other in self._co_tappers(run_id):
                if isinstance(other, EventCapture):
                    output = other._tap(run_id, output, delegate=False)
                else:
                    output = other.tap_output_iter(run_id, output)
        if tap is not sentinel:
            yield from output
            return
        target: tuple[_RunInfo, str] | None = None
        first = True
        for chunk in output:
            if first:
                first = False
                target = self._stream_event(run_id)
            if target is not None:
                self._emit_chunk(target, chunk)
            yield chunk

    # ------------------------------------------------------------------ hooks

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        run_type: str | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        run_type_ = run_type or "chain"
        info = self._start(
            run_id,
            parent_run_id,
            name=run_name(name, serialized),
            run_type=run_type_,
            tags=tags,
            metadata=metadata,
        )
        data: dict[str, Any] = {}
        if inputs != DEFERRED_INPUT:
            data["input"] = inputs
            info.inputs = inputs
        self._emit(f"on_{run_type_}_start", info, data, run_type_)

    def on_chain_end(
        self, outputs: Any, *, run_id: UUID, inputs: Any = None, **kwargs: Any
    ) -> None:
        info = self._info(run_id, "chain", pop=True)
        data = {"output": outputs, "input": inputs or info.inputs or {}}
        self._emit(f"on_{info.run_type}_end", info, data, info.run_type)

    def on_chain_error(
        self, error: BaseException, *, run_id: UUID, inputs: Any = None, **kwargs: Any
    ) -> None:
        info = self._info(run_id, "chain", pop=True)
        if self.errors:
            data = {"error": error, "input": inputs or info.inputs or {}}
            self._emit(f"on_{info.run_type}_error", info, data, info.run_type)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        info = self._start(
            run_id,
            parent_run_id,
            name=run_name(name, serialized),
            run_type="chat_model",
            tags=tags,
            metadata=metadata,
        )
        info.inputs = {"messages": messages}
        self._emit("on_chat_model_start", info, {"input": info.inputs}, "chat_model")

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        info = self._start(
            run_id,
            parent_run_id,
            name=run_name(name, serialized),
            run_type="llm",
            tags=tags,
            metadata=metadata,
        )
        info.inputs = {"prompts": prompts}
        self._emit("on_llm_start", info, {"input": info.inputs}, "llm")

    def on_llm_new_token(
        self, token: Any, *, chunk: Any = None, run_id: UUID, **kwargs: Any
    ) -> None:
        info = self._runs.get(run_id)
        if info is None:
            info = self._info(
                run_id, "chat_model" if chunk is not None and hasattr(chunk, "message") else "llm"
            )
        if run_id in self._tapped:
            return
        if info.run_type == "chat_model":
            value: Any = chunk.message if chunk is not None else AIMessageChunk(content=token)
            self._emit("on_chat_model_stream", info, {"chunk": value}, "chat_model")
        else:
            value = (
                chunk
                if chunk is not None
                else GenerationChunk(text=token if isinstance(token, str) else "")
            )
            self._emit("on_llm_stream", info, {"chunk": value}, "llm")

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        info = self._info(run_id, "llm", pop=True)
        data = {"output": llm_result_output(response, info.run_type), "input": info.inputs}
        self._emit(f"on_{info.run_type}_end", info, data, info.run_type)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        info = self._info(run_id, "llm", pop=True)
        if self.errors:
            data = {"error": error, "input": info.inputs}
            self._emit(f"on_{info.run_type}_error", info, data, info.run_type)

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        info = self._start(
            run_id,
            parent_run_id,
            name=run_name(name, serialized),
            run_type="tool",
            tags=tags,
            metadata=metadata,
        )
        info.inputs = inputs
        self._tool_call_ids[run_id] = kwargs.get("tool_call_id")
        self._emit("on_tool_start", info, {"input": inputs or {}}, "tool")

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        info = self._info(run_id, "tool", pop=True)
        self._tool_call_ids.pop(run_id, None)
        self._emit("on_tool_end", info, {"output": output, "input": info.inputs}, "tool")

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        info = self._info(run_id, "tool", pop=True)
        tool_call_id = kwargs.get("tool_call_id") or self._tool_call_ids.pop(run_id, None)
        data = {"error": error, "input": info.inputs, "tool_call_id": tool_call_id}
        self._emit("on_tool_error", info, data, "tool")

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        info = self._start(
            run_id,
            parent_run_id,
            name=run_name(name, serialized),
            run_type="retriever",
            tags=tags,
            metadata=metadata,
        )
        info.inputs = {"query": query}
        self._emit("on_retriever_start", info, {"input": info.inputs}, "retriever")

    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        info = self._info(run_id, "retriever", pop=True)
        self._emit(
            "on_retriever_end", info, {"output": documents, "input": info.inputs}, "retriever"
        )

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        info = self._info(run_id, "retriever", pop=True)
        if self.errors:
            self._emit(
                "on_retriever_error", info, {"error": error, "input": info.inputs}, "retriever"
            )

    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        info = _RunInfo(
            str(run_id),
            name,
            name,
            tags or [],
            metadata or {},
            self._parent_ids(self._parents.get(run_id)),
        )
        if self._filtered and not self.include(name, info.tags, name):
            return
        self.trace.event(
            {
                "event": "on_custom_event",
                "run_id": info.run_id,
                "name": name,
                "tags": info.tags,
                "metadata": info.metadata,
                "data": data,
                "parent_ids": info.parent_ids,
                "t": clock(),
            }
        )


def _frozen(values: Sequence[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)
