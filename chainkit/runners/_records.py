"""Result records and the header line of a result file (pydantic: they live on disk)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "FORMAT",
    "ChainIdentity",
    "ErrorInfo",
    "ResultRecord",
    "ResultsHeader",
    "Usage",
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
