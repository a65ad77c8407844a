"""Turn whatever flows through a chain into plain, truncated, redacted JSON values.

Messages, chunks, prompt values, documents, generations and pydantic models
become dicts of JSON types; strings longer than ``max_chars`` are cut with a
marker saying how much was dropped; values under keys that name a secret
(``api_key``, ``token``, ``password``, ...) and every :class:`~pydantic.SecretStr`
become ``"***"``; every string passes through :func:`chainkit.errors.redact`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any
from uuid import UUID

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, Generation, LLMResult
from langchain_core.prompt_values import PromptValue
from pydantic import BaseModel, SecretBytes, SecretStr

from chainkit.errors import REDACTED, redact

__all__ = ["DEFAULT_MAX_CHARS", "message_text", "to_jsonable", "truncate"]

DEFAULT_MAX_CHARS = 4000
MAX_ITEMS = 200  # list items kept per list
MAX_DEPTH = 12

# Keys whose values are credentials. "input_tokens", "max_tokens" or "token_usage"
# hold counts and do not match; "token", "access_token" and "api_key" do.
_SECRET_KEY = re.compile(
    r"(?i)(api[_-]?key|secret|passw(or)?d|authorization|credential|cookie|(^|[_-])token$)"
)


def truncate(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` characters, with a marker saying how many were dropped."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}…[+{len(text) - max_chars} chars]"


def _is_secret_key(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


def message_text(message: Any) -> str:
    """The text of a message or chunk whose content may be a string or a list of blocks."""
    content = getattr(message, "content", message)
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and block.get("type") in ("text", "text-delta"):
                parts.append(str(block.get("text", "")))
        return "".join(parts)
    return ""


def to_jsonable(value: Any, max_chars: int = DEFAULT_MAX_CHARS, _depth: int = 0) -> Any:
    """A plain-JSON copy of ``value``: truncated, secrets masked, never raises."""
    try:
        return _convert(value, max_chars, _depth)
    except Exception as exc:  # noqa: BLE001 - a serializer must never break the caller
        return f"<unserializable {type(value).__name__}: {type(exc).__name__}>"


def _convert(value: Any, max_chars: int, depth: int) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact(truncate(value, max_chars))
    if depth >= MAX_DEPTH:
        return truncate(f"<{type(value).__name__}>", max_chars)
    nxt = depth + 1
    if isinstance(value, SecretStr | SecretBytes):
        return REDACTED
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for i, (key, item) in enumerate(value.items()):
            if i >= MAX_ITEMS:
                out["…"] = f"+{len(value) - MAX_ITEMS} keys"
                break
            skey = str(key)
            out[skey] = (
                REDACTED if _is_secret_key(skey) and item else _convert(item, max_chars, nxt)
            )
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        converted = [_convert(item, max_chars, nxt) for item in items[:MAX_ITEMS]]
        if len(items) > MAX_ITEMS:
            converted.append(f"…[+{len(items) - MAX_ITEMS} items]")
        return converted
    special = _langchain(value, max_chars, nxt)
    if special is not _NOTHING:
        return special
    if isinstance(value, BaseModel):
        return _convert(value.model_dump(mode="python"), max_chars, nxt)
    if isinstance(value, UUID | PurePath | enum.Enum):
        return str(value.value if isinstance(value, enum.Enum) else value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, BaseException):
        return {"type": type(value).__name__, "message": redact(truncate(str(value), max_chars))}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _convert(
            {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, max_chars, nxt
        )
    return redact(truncate(repr(value), max_chars))


_NOTHING = object()


def _langchain(value: Any, max_chars: int, depth: int) -> Any:
    """LangChain objects in a compact form; ``_NOTHING`` for anything else."""
    if isinstance(value, BaseMessage):
        out: dict[str, Any] = {
            "type": value.type,
            "content": _convert(value.content, max_chars, depth),
        }
        for field in ("name", "id", "tool_call_id"):
            if getattr(value, field, None):
                out[field] = _convert(getattr(value, field), max_chars, depth)
        for field in ("tool_calls", "tool_call_chunks", "invalid_tool_calls"):
            if getattr(value, field, None):
                out[field] = _convert(getattr(value, field), max_chars, depth)
        usage = getattr(value, "usage_metadata", None)
        if usage:
            out["usage_metadata"] = _convert(dict(usage), max_chars, depth)
        if value.response_metadata:
            out["response_metadata"] = _convert(value.response_metadata, max_chars, depth)
        if value.additional_kwargs:
            out["additional_kwargs"] = _convert(value.additional_kwargs, max_chars, depth)
        return out
    if isinstance(value, ChatGeneration):
        return {"type": value.type, "message": _convert(value.message, max_chars, depth)}
    if isinstance(value, Generation):
        out = {"type": value.type, "text": _convert(value.text, max_chars, depth)}
        if value.generation_info:
            out["generation_info"] = _convert(value.generation_info, max_chars, depth)
        return out
    if isinstance(value, LLMResult):
        return {
            "generations": _convert(value.generations, max_chars, depth),
            "llm_output": _convert(value.llm_output, max_chars, depth),
        }
    if isinstance(value, PromptValue):
        return {"messages": _convert(value.to_messages(), max_chars, depth)}
    if isinstance(value, Document):
        return {
            "type": "Document",
            "page_content": _convert(value.page_content, max_chars, depth),
            "metadata": _convert(value.metadata, max_chars, depth),
        }
    return _NOTHING
