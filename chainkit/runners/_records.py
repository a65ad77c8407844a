"""Result records and the header line of a result file (pydantic: they live on disk).

A record speaks the package's one record language (:mod:`chainkit.trace`): its
``error`` is a :class:`chainkit.trace.ErrorInfo`, its ``usage`` a
:class:`chainkit.trace.Usage`, its input and output pass through
:func:`chainkit.trace.to_jsonable` (secrets masked, sizes bounded), and error
messages through :func:`chainkit.errors.redact`.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import orjson
from langchain_core.messages import BaseMessage
from pydantic import BaseModel, ConfigDict, Field

from chainkit.errors import InputError, MissingVariableError, redact
from chainkit.runners._retry import describe_error, error_status
from chainkit.trace import ErrorInfo, Usage, usage_of_message
from chainkit.trace import to_jsonable as trace_jsonable

if TYPE_CHECKING:
    from chainkit.runners._inputs import InputItem

__all__ = [
    "FORMAT",
    "ChainIdentity",
    "ErrorInfo",
    "ResultRecord",
    "ResultsHeader",
    "Usage",
    "error_record",
    "ok_record",
    "output_json",
    "sanitized",
    "to_jsonable",
]

FORMAT = "chainkit.results/1"


class ResultRecord(BaseModel):
    """One line of a result file: exactly one per input.

    ``index`` is the input's position (0-based), ``id`` its ``id`` field when
    it has one, else the index; ``line`` is the 1-based line number when the
    input came from a JSONL file. ``latency`` is seconds from the first
    attempt's start to the end (retries and waits included); ``ttft`` is the
    last attempt's time to first chunk when streamed.
    """

    model_config = ConfigDict(extra="allow")

    index: int
    id: Any = None
    line: int | None = None
    input: Any = None
    output: Any = None
    error: ErrorInfo | None = None
    attempts: int = 0
    started: datetime | None = None
    ended: datetime | None = None
    latency: float | None = None
    ttft: float | None = None
    usage: Usage | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json_line(self) -> bytes:
        data = self.model_dump(mode="python", exclude_none=False)
        return orjson.dumps(data, default=_default, option=_ORJSON_OPTS) + b"\n"


class ChainIdentity(BaseModel):
    """Which chain produced a result file: its name and a fingerprint of its graph and settings."""

    name: str
    fingerprint: str
    description: str = ""


class ResultsHeader(BaseModel):
    """The first line of a result file (and one more line per resumed run)."""

    model_config = ConfigDict(extra="allow")

    format: Literal["chainkit.results/1"] = "chainkit.results/1"
    chain: ChainIdentity
    settings: dict[str, Any] = Field(default_factory=dict)
    created: datetime
    resumed: bool = False
    chainkit: str = ""

    def to_json_line(self) -> bytes:
        return (
            orjson.dumps(
                {"header": self.model_dump(mode="python")}, default=_default, option=_ORJSON_OPTS
            )
            + b"\n"
        )


_ORJSON_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


RESULT_MAX_CHARS = 1_000_000
"""A string longer than this (in an input or an output) is cut in a result file."""


def output_json(value: Any) -> Any:
    """An input or output as a result file holds it: :func:`chainkit.trace.to_jsonable` (plain
    JSON, secrets masked, sizes bounded), with a message kept as its content."""
    if isinstance(value, BaseMessage):
        value = value.content
    return trace_jsonable(value, RESULT_MAX_CHARS)


def sanitized(record: ResultRecord) -> ResultRecord:
    """``record`` as a results file may hold it, whatever backend made it: input and output
    through :func:`output_json`, the error message through :func:`~chainkit.errors.redact`
    (what a backend already converted passes unchanged)."""
    error = record.error
    if error is not None:
        error = dataclasses.replace(error, message=redact(error.message))
    return record.model_copy(
        update={
            "input": output_json(record.input),
            "output": output_json(record.output),
            "error": error,
        }
    )


def ok_record(
    item: InputItem,
    output: Any,
    *,
    attempts: int,
    started: datetime,
    t0: float,
    usage: Usage | None = None,
    ttft: float | None = None,
) -> ResultRecord:
    """The record of an item that succeeded (``t0``: ``time.monotonic()`` at its start). The
    output is kept as the chain returned it: the recorder turns it into JSON
    (:func:`sanitized`); a record that travels first (from a Ray worker) is sanitized
    where it is made."""
    return ResultRecord(
        index=item.index,
        id=item.id,
        line=item.line,
        input=item.value,
        output=output,
        attempts=attempts,
        started=started,
        ended=datetime.now(UTC),
        latency=time.monotonic() - t0,
        ttft=ttft,
        usage=usage if usage is not None else usage_of_message(output),
    )


def error_record(
    item: InputItem, exc: BaseException, *, attempts: int, started: datetime, t0: float
) -> ResultRecord:
    """The record of an item that failed: the error's type, one redacted line, its status."""
    kind, message = describe_error(exc)
    status = None if isinstance(exc, InputError | MissingVariableError) else error_status(exc)
    return ResultRecord(
        index=item.index,
        id=item.id,
        line=item.line,
        input=item.value,
        error=ErrorInfo(type=kind, message=redact(message), status=status, attempts=attempts),
        attempts=attempts,
        started=started,
        ended=datetime.now(UTC),
        latency=time.monotonic() - t0,
    )


to_jsonable = output_json  # the name the provider-batch executor imports
