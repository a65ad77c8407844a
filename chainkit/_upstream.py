"""The one mapping of a model call's failure to data: what kind, which status, Retry-After.

The openai SDK's errors (``APITimeoutError``, ``APIConnectionError``,
``APIStatusError`` and its subclasses), LangChain's provider-neutral
``ModelError`` family (langchain-openai raises subclasses of both) and
``OutputParserException`` become one :class:`UpstreamFailure`. The boundaries
phrase it for their own user: the CLI (``chainkit.cli._app``) as one line on
stderr, the service (``chainkit.server._errors``) as a 502/504 JSON error.

========================================  ============
exception                                 kind
========================================  ============
openai.APITimeoutError, ModelTimeoutError  timeout
openai.APIConnectionError,                 unreachable
ModelConnectionError
openai.APIStatusError (any status)         status
other openai.APIError, ModelError          failed
OutputParserException                      bad_output
========================================  ============

This module imports nothing of chainkit but :mod:`chainkit.errors`; openai and
langchain-core are imported when an error is looked at.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from chainkit.errors import redact

__all__ = [
    "UpstreamFailure",
    "UpstreamKind",
    "error_headers",
    "error_status",
    "parse_retry_after",
    "upstream_failure",
]

UpstreamKind = Literal["timeout", "unreachable", "status", "failed", "bad_output"]


@dataclass(frozen=True)
class UpstreamFailure:
    """A model call's failure as data, for a boundary to phrase.

    ``type`` is the exception's class name, ``upstream_type`` the model client's
    own class under LangChain's wrappers (``InternalServerError`` for
    langchain-openai's ``OpenAIAPIError``); ``status`` and ``retry_after``
    (seconds) come from the provider's answer; ``url`` is where the request
    went; ``detail`` is the first line of the provider's message, redacted.
    """

    kind: UpstreamKind
    type: str
    upstream_type: str
    status: int | None = None
    retry_after: float | None = None
    url: str | None = None
    detail: str = ""


def upstream_failure(exc: BaseException) -> UpstreamFailure | None:
    """``exc`` as an :class:`UpstreamFailure` when it is a model call's failure, else None."""
    import openai
    from langchain_core import exceptions as lc_exceptions

    kind: UpstreamKind
    if isinstance(exc, openai.APITimeoutError | _lc(lc_exceptions, "ModelTimeoutError")):
        kind = "timeout"
    elif isinstance(exc, openai.APIConnectionError | _lc(lc_exceptions, "ModelConnectionError")):
        kind = "unreachable"
    elif isinstance(exc, openai.APIStatusError):
        kind = "status"
    elif isinstance(exc, lc_exceptions.OutputParserException):
        kind = "bad_output"
    elif isinstance(exc, openai.APIError | _lc(lc_exceptions, "ModelError")):
        kind = "status" if error_status(exc) is not None else "failed"
    else:
        return None
    message = getattr(exc, "message", None)
    return UpstreamFailure(
        kind=kind,
        type=type(exc).__name__,
        upstream_type=_upstream_type(exc),
        status=error_status(exc),
        retry_after=parse_retry_after(error_headers(exc)),
        url=_url(exc),
        detail=_first_line(message if isinstance(message, str) and message else str(exc)),
    )


def _lc(module: Any, name: str) -> type[BaseException]:
    """A LangChain exception class, or one nothing is an instance of (older langchain-core)."""
    cls = getattr(module, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, BaseException) else _AbsentError


class _AbsentError(Exception):
    """Stands in for an exception class this langchain-core does not have."""


def _upstream_type(exc: BaseException) -> str:
    for cls in type(exc).__mro__:
        module = cls.__module__ or ""
        if not module.startswith(("langchain", "builtins", "chainkit")):
            return cls.__name__
    return type(exc).__name__


def error_status(exc: BaseException) -> int | None:
    """The HTTP status carried by ``exc`` (openai, httpx, LangChain or duck-typed), if any."""
    for attr in ("status_code", "status", "http_status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    if isinstance(value, int) and 100 <= value <= 599:
        return value
    return None


def error_headers(exc: BaseException) -> Mapping[str, str] | None:
    """The response headers carried by ``exc`` (its ``response``'s, or its own), if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        headers = getattr(exc, "headers", None)
    return headers if isinstance(headers, Mapping) else None


def _url(exc: BaseException) -> str | None:
    request = getattr(exc, "request", None)
    try:
        url = getattr(request, "url", None)
    except RuntimeError:  # httpx raises when a response has no request attached
        return None
    return str(url) if url is not None else None


def _first_line(text: str) -> str:
    lines = redact(text).strip().splitlines()
    return lines[0].strip() if lines else ""


def parse_retry_after(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """Seconds to wait according to ``retry-after-ms`` or ``Retry-After`` (seconds or a date)."""
    if not headers:
        return None
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    raw_ms = lower.get("retry-after-ms")
    if raw_ms is not None:
        with_ms = _seconds(raw_ms)
        if with_ms is not None:
            return with_ms / 1000.0
    raw = lower.get("retry-after")
    if raw is None:
        return None
    seconds = _seconds(raw)
    if seconds is not None:
        return seconds
    try:
        parsed = email.utils.parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError):
        return None  # neither seconds nor an HTTP date
    return max(0.0, parsed.timestamp() - (time.time() if now is None else now))


def _seconds(raw: str) -> float | None:
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 and math.isfinite(value) else None
