"""Values every record speaks: an error, token usage, and how streamed chunks add up.

One of each for the whole package: traces (:mod:`chainkit.callbacks`), the
runner's result files (:mod:`chainkit.runners`) and the service
(:mod:`chainkit.server`) all use them.

- :class:`ErrorInfo`: why something failed (type, redacted one-line message, HTTP
  status, attempts).
- :class:`Usage`: tokens in, out and in total; :func:`usage_of` reads them from a
  model result (the one extractor), :func:`usage_of_message` from an AI message,
  :meth:`Usage.of` from a ``usage_metadata`` mapping.
- :func:`add_chunk`: chunks of a stream added up as LangChain does (the one
  accumulator).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.outputs import LLMResult
from pydantic import BaseModel

from chainkit.errors import register_secret

__all__ = [
    "ErrorInfo",
    "Usage",
    "add_chunk",
    "register_env_secrets",
    "usage_of",
    "usage_of_message",
]


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a run or an item failed: the exception's type name, its redacted message, and
    (for a runner item) the HTTP status it carried and the attempts made."""

    type: str
    message: str
    status: int | None = None
    attempts: int = 0

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


class Usage(BaseModel):
    """Tokens reported by the model(s): in (prompt), out (completion), in total."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )

    @classmethod
    def of(cls, meta: Mapping[str, Any]) -> Usage:
        """From LangChain's ``usage_metadata`` or a provider's ``token_usage``
        (``prompt_tokens``/``completion_tokens``); a missing total is the sum."""
        given = _count(meta, "input_tokens", "prompt_tokens")
        made = _count(meta, "output_tokens", "completion_tokens")
        total = meta.get("total_tokens")
        return cls(
            input_tokens=given,
            output_tokens=made,
            total_tokens=int(total) if isinstance(total, int) and total else given + made,
        )

    @classmethod
    def total(cls, metas: Iterable[Mapping[str, Any]]) -> Usage:
        """The sum of several ``usage_metadata`` mappings (e.g. one per model)."""
        result = cls()
        for meta in metas:
            result = result + cls.of(meta)
        return result


def _count(meta: Mapping[str, Any], *keys: str) -> int:
    for key in keys:
        value = meta.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def usage_of_message(value: Any) -> Usage | None:
    """Token usage carried by an AI message (``usage_metadata``), if any."""
    meta = getattr(value, "usage_metadata", None)
    return Usage.of(meta) if meta else None


def usage_of(response: LLMResult) -> Usage | None:
    """Token usage of one model call: its messages' ``usage_metadata`` (summed over the
    generations), else the provider's ``llm_output["token_usage"]`` (or ``"usage"``)."""
    total: Usage | None = None
    for generations in response.generations:
        for generation in generations:
            found = usage_of_message(getattr(generation, "message", None))
            if found is not None:
                total = found if total is None else total + found
    if total is not None:
        return total
    llm_output = response.llm_output or {}
    raw = llm_output.get("token_usage") or llm_output.get("usage")
    if isinstance(raw, Mapping) and raw:
        return Usage.of(raw)
    return None


def add_chunk(acc: Any, chunk: Any) -> Any:
    """``acc + chunk`` as LangChain adds chunks (text joins, message chunks and dicts
    merge); when they do not add (cumulative chunks of a JSON parser), the latest is the
    whole. ``acc`` is None before the first chunk."""
    if acc is None:
        return chunk
    try:
        return acc + chunk
    except TypeError:
        return chunk


_SECRET_NAME = re.compile(r"(?i)(^|_)(api_?key|key|token|secret|password|passwd|credentials?)($|_)")


def register_env_secrets() -> None:
    """Register the values of environment variables whose names say they hold a secret
    (``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*PASSWORD*`` ...) so that every redaction
    masks them, wherever they turn up (an input, an output, an error message)."""
    for name, value in os.environ.items():
        if len(value) >= 8 and _SECRET_NAME.search(name):
            register_secret(value)
