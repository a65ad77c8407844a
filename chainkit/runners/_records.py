"""Result records and the header line of a result file (pydantic: they live on disk)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from chainkit.errors import InputError, MissingVariableError, redact
from chainkit.runners._retry import describe_error, error_status

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
    "to_jsonable",
]

FORMAT = "chainkit.results/1"


class ErrorInfo(BaseModel):
    """Why an item failed: the exception's class, a one-line redacted message, the HTTP status."""

    model_config = ConfigDict(extra="allow")

    type: str
    message: str
    status: int | None = None
    attempts: int = 0


class Usage(BaseModel):
    """Tokens reported by the model(s) for the successful attempt of one item."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )


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


def to_jsonable(value: Any) -> Any:
    """The output of a chain as JSON data: text stays text, messages become their content,
    pydantic models and dataclasses become dicts, anything else its ``str``."""
    try:
        from langchain_core.messages import BaseMessage
    except ImportError:  # pragma: no cover - langchain-core is a dependency
        BaseMessage = None  # type: ignore[assignment,misc]  # noqa: N806
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if BaseMessage is not None and isinstance(value, BaseMessage):
        return value.content if isinstance(value.content, str) else to_jsonable(value.content)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return orjson.loads(orjson.dumps(value, default=_default, option=_ORJSON_OPTS))


def usage_from_output(value: Any) -> Usage | None:
    """Token usage carried by an AI message output (``usage_metadata``), if any."""
    meta = getattr(value, "usage_metadata", None)
    if not meta:
        return None
    return Usage(
        input_tokens=int(meta.get("input_tokens", 0) or 0),
        output_tokens=int(meta.get("output_tokens", 0) or 0),
        total_tokens=int(meta.get("total_tokens", 0) or 0),
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
    """The record of an item that succeeded (``t0``: ``time.monotonic()`` at its start)."""
    try:
        value = to_jsonable(output)
    except Exception:  # noqa: BLE001 - an odd output object is kept as text
        value = str(output)
    return ResultRecord(
        index=item.index,
        id=item.id,
        line=item.line,
        input=item.value,
        output=value,
        attempts=attempts,
        started=started,
        ended=datetime.now(UTC),
        latency=time.monotonic() - t0,
        ttft=ttft,
        usage=usage if usage is not None else usage_from_output(output),
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
