"""Trace records: the one schema capture handlers write and every reader reads.

>>> from chainkit.trace import Trace
>>> trace = Trace("run.jsonl")        # appended line by line as records happen
>>> trace = Trace.load("run.jsonl")   # read back (a partial last line is skipped)
>>> trace.runs, trace.events, trace.summary()

See :mod:`chainkit.trace._records` for the record types and the file format.
"""

from __future__ import annotations

from chainkit.trace._records import (
    SCHEMA_VERSION,
    Chunk,
    CustomEvent,
    Event,
    Record,
    Retry,
    RunEnded,
    RunFailed,
    RunKind,
    RunStarted,
    TraceHeader,
)
from chainkit.trace._run import ErrorInfo, Percentiles, Run, TraceSummary
from chainkit.trace._serialize import DEFAULT_MAX_CHARS, message_text, to_jsonable
from chainkit.trace._trace import Trace, error_info
from chainkit.trace._values import (
    Usage,
    add_chunk,
    register_env_secrets,
    usage_of,
    usage_of_message,
)

__all__ = [
    "DEFAULT_MAX_CHARS",
    "SCHEMA_VERSION",
    "Chunk",
    "CustomEvent",
    "ErrorInfo",
    "Event",
    "Percentiles",
    "Record",
    "Retry",
    "Run",
    "RunEnded",
    "RunFailed",
    "RunKind",
    "RunStarted",
    "Trace",
    "TraceHeader",
    "TraceSummary",
    "Usage",
    "add_chunk",
    "error_info",
    "message_text",
    "register_env_secrets",
    "to_jsonable",
    "usage_of",
    "usage_of_message",
]
