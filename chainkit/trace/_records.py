"""The trace record schema: what capture handlers write and every reader reads.

A trace file is JSON Lines: a :class:`TraceHeader` first (it carries the
``schema_version``), then one record a line in the order things happened.
Every record has a ``type`` (the discriminator) and ``t``, a time in seconds on
the writing process's :func:`time.perf_counter` clock; the header gives that
clock's origin (``clock_origin``) and the wall time at that instant
(``wall_origin``, Unix seconds), so a reader turns ``t`` into an offset
(``t - clock_origin``) or a wall time (``wall_origin + t - clock_origin``).

Values (inputs, outputs, event data) are plain JSON: messages, chunks and
documents are converted, long strings truncated and secrets masked when the
record is made (see :func:`chainkit.trace.to_jsonable`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "SCHEMA_VERSION",
    "Chunk",
    "CustomEvent",
    "Event",
    "Record",
    "RecordAdapter",
    "Retry",
    "RunEnded",
    "RunFailed",
    "RunKind",
    "RunStarted",
    "TraceHeader",
]

SCHEMA_VERSION = 1
"""Bumped when a reader of the previous version could misread a record."""

RunKind = Literal["chain", "prompt", "llm", "chat_model", "parser", "tool", "retriever", "lambda"]


class _Record(BaseModel):
    # Extra fields are kept, so a reader of this version loads a file written by a
    # newer minor release without losing what it does not know.
    model_config = ConfigDict(extra="allow", frozen=False)


class TraceHeader(_Record):
    """First line of a trace file."""

    type: Literal["trace"] = "trace"
    schema_version: int = SCHEMA_VERSION
    created: str = Field(description="ISO 8601 wall time when the trace was created")
    clock_origin: float = Field(description="perf_counter() when the trace was created")
    wall_origin: float = Field(description="time.time() at clock_origin")
    chainkit_version: str = ""


class RunStarted(_Record):
    """A run (chain, prompt, model, parser, tool, retriever, lambda) started."""

    type: Literal["run_start"] = "run_start"
    t: float
    run_id: str
    parent_run_id: str | None = None
    name: str
    kind: str
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    inputs: Any = None


class Chunk(_Record):
    """A model run produced a chunk of text (an empty string is a chunk too)."""

    type: Literal["chunk"] = "chunk"
    t: float
    run_id: str
    text: str


class RunEnded(_Record):
    """A run finished.

    ``text`` is set only when the run streamed no chunks; ``inputs`` only when they
    were not known at the start (a streamed chain learns its input at the end).
    """

    type: Literal["run_end"] = "run_end"
    t: float
    run_id: str
    outputs: Any = None
    inputs: Any = None
    usage: dict[str, Any] | None = None
    latency: float | None = None
    ttft: float | None = None
    chunks: int = 0
    text: str | None = None


class RunFailed(_Record):
    """A run raised. ``partial_text`` is what it streamed before the error."""

    type: Literal["run_error"] = "run_error"
    t: float
    run_id: str
    error_type: str
    message: str
    partial_text: str = ""
    latency: float | None = None
    ttft: float | None = None
    chunks: int = 0


class Retry(_Record):
    """A run is retried (LangChain's ``on_retry``, e.g. from ``with_retry``)."""

    type: Literal["retry"] = "retry"
    t: float
    run_id: str
    attempt: int | None = None
    error_type: str | None = None
    message: str | None = None
    wait: float | None = None


class CustomEvent(_Record):
    """A custom event (``adispatch_custom_event`` / ``dispatch_custom_event``)."""

    type: Literal["custom"] = "custom"
    t: float
    run_id: str
    name: str
    data: Any = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class Event(_Record):
    """An event in the ``astream_events`` schema (v2; v1 and v3 are recorded as given)."""

    type: Literal["event"] = "event"
    t: float
    event: str
    name: str = ""
    run_id: str = ""
    parent_ids: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    data: Any = Field(default_factory=dict)

    def as_event(self) -> dict[str, Any]:
        """The event as the dict astream_events yields, plus ``t``."""
        return {
            "event": self.event,
            "name": self.name,
            "run_id": self.run_id,
            "parent_ids": self.parent_ids,
            "tags": self.tags,
            "metadata": self.metadata,
            "data": self.data,
            "t": self.t,
        }


Record = Annotated[
    TraceHeader | RunStarted | Chunk | RunEnded | RunFailed | Retry | CustomEvent | Event,
    Field(discriminator="type"),
]
RecordAdapter: TypeAdapter[Record] = TypeAdapter(Record)
