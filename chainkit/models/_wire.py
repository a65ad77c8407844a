"""What the lean path reads off the wire, in the openai SDK's own shapes.

- :func:`status_error`: an HTTP error answer as the SDK's exception class
  (``RateLimitError``, ``BadRequestError``, ...) with the same message, status,
  headers and body, so retries and error handling behave as with the SDK;
- :func:`should_retry` / :func:`retry_delay`: the SDK's retry policy
  (``x-should-retry``, 408/409/429/5xx, ``Retry-After``, backoff with jitter);
- :func:`sse_events`: the ``data:`` payloads of a Server-Sent Events body;
- :func:`completion_dict` / :func:`text_completion_dict`: a JSON answer filled
  with the fields the SDK's ``model_dump()`` would show (absent optional fields
  as ``None``), so ``response_metadata`` is the same on both paths.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx2
import openai
import orjson

from chainkit._upstream import parse_retry_after

__all__ = [
    "completion_dict",
    "connection_error",
    "retry_delay",
    "should_retry",
    "sse_events",
    "status_error",
    "stream_error",
    "text_completion_dict",
    "timeout_error",
]

_INITIAL_RETRY_DELAY = 0.5  # openai._constants
_MAX_RETRY_DELAY = 8.0
_MAX_RETRY_AFTER_DELAY = 120.0

_STATUS_ERRORS: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    403: openai.PermissionDeniedError,
    404: openai.NotFoundError,
    409: openai.ConflictError,
    422: openai.UnprocessableEntityError,
    429: openai.RateLimitError,
}


def _request(url: str) -> httpx2.Request:
    return httpx2.Request("POST", url)


def status_error(
    status: int, headers: list[tuple[str, str]], body: bytes, url: str
) -> openai.APIStatusError:
    """The SDK's exception for an error answer (same class, message, body, response)."""
    response = httpx2.Response(status, headers=headers, content=body, request=_request(url))
    message = f"Error code: {status}"
    data: object = body.decode("utf-8", "replace").strip()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        error = data.get("error", data) if isinstance(data, dict) else None
        text = error.get("message") if isinstance(error, dict) else None
        if isinstance(text, str) and text:
            message += f" - {text}"
    if isinstance(data, dict):
        data = data.get("error", data)
    cls = _STATUS_ERRORS.get(status)
    if cls is None:
        cls = openai.InternalServerError if status >= 500 else openai.APIStatusError
    return cls(message, response=response, body=data)


def connection_error(url: str) -> openai.APIConnectionError:
    return openai.APIConnectionError(request=_request(url))


def timeout_error(url: str) -> openai.APITimeoutError:
    return openai.APITimeoutError(request=_request(url))


def stream_error(data: Mapping[str, Any], url: str) -> openai.APIError:
    """An ``{"error": ...}`` event inside a stream, as the SDK raises it."""
    error = data.get("error")
    message = error.get("message") if isinstance(error, dict) else None
    if not message or not isinstance(message, str):
        message = "An error occurred during streaming"
    return openai.APIError(message=message, request=_request(url), body=error)


def should_retry(status: int, headers: Mapping[str, str]) -> bool:
    """The SDK's rule: obey ``x-should-retry``, else retry 408, 409, 429 and 5xx."""
    after = parse_retry_after(headers)
    if after is not None and math.isfinite(after) and after > _MAX_RETRY_AFTER_DELAY:
        return False
    hint = headers.get("x-should-retry")
    if hint in ("true", "false"):
        return hint == "true"
    return status in (408, 409, 429) or status >= 500


def retry_delay(retries_taken: int, headers: Mapping[str, str] | None = None) -> float:
    """Seconds to wait before the next attempt: ``Retry-After``, else backoff with jitter."""
    after = parse_retry_after(headers) if headers is not None else None
    if after is not None and math.isfinite(after) and 0 < after <= _MAX_RETRY_AFTER_DELAY:
        return after
    delay = min(_INITIAL_RETRY_DELAY * 2.0 ** min(retries_taken, 1000), _MAX_RETRY_DELAY)
    return max(delay * (1 - 0.25 * random.random()), 0.0)


async def sse_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The ``data`` of each event in an SSE body (``event``/``id``/``retry``/comments skipped)."""
    buffer = b""
    data: list[bytes] = []
    async for chunk in chunks:
        buffer += chunk
        if b"\n" not in chunk:
            continue
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if data:
                    yield data[0] if len(data) == 1 else b"\n".join(data)
                    data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
    if buffer.startswith(b"data:"):
        value = buffer[5:].rstrip(b"\r")
        data.append(value[1:] if value.startswith(b" ") else value)
    if data:
        yield b"\n".join(data)


_COMPLETION = {
    "metadata": None,
    "moderation": None,
    "service_tier": None,
    "system_fingerprint": None,
    "usage": None,
}
_CHOICE = {"logprobs": None}
_MESSAGE = {
    "content": None,
    "refusal": None,
    "annotations": None,
    "audio": None,
    "function_call": None,
    "tool_calls": None,
}
_USAGE = {"completion_tokens_details": None, "prompt_tokens_details": None}
_USAGE_DETAILS = {
    "completion_tokens_details": dict.fromkeys(
        (
            "accepted_prediction_tokens",
            "audio_tokens",
            "reasoning_tokens",
            "rejected_prediction_tokens",
            "text_tokens",
        )
    ),
    "prompt_tokens_details": dict.fromkeys(
        ("audio_tokens", "cache_write_tokens", "cached_tokens", "image_tokens", "text_tokens")
    ),
}


def _usage(body: dict[str, Any]) -> None:
    usage = body.get("usage")
    if isinstance(usage, dict):
        usage = body["usage"] = _fill(usage, _USAGE)
        for key, defaults in _USAGE_DETAILS.items():
            details = usage[key]
            if isinstance(details, dict):
                usage[key] = _fill(details, defaults)


def _fill(value: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {**defaults, **value}


def completion_dict(body: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions answer with the fields the SDK's ``model_dump()`` shows."""
    body = _fill(body, _COMPLETION)
    choices = body.get("choices")
    if isinstance(choices, list):
        body["choices"] = [_choice(c) for c in choices]
    _usage(body)
    return body


def _choice(choice: Any) -> Any:
    if not isinstance(choice, dict):
        return choice
    choice = _fill(choice, _CHOICE)
    message = choice.get("message")
    if isinstance(message, dict):
        choice["message"] = _fill(message, _MESSAGE)
    return choice


def text_completion_dict(body: dict[str, Any]) -> dict[str, Any]:
    """A (legacy) Completions answer with the fields the SDK's ``model_dump()`` shows."""
    body = _fill(body, {"system_fingerprint": None, "usage": None})
    choices = body.get("choices")
    if isinstance(choices, list):
        body["choices"] = [_fill(c, _CHOICE) if isinstance(c, dict) else c for c in choices]
    _usage(body)
    return body
