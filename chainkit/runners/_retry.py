"""The runner's retry layer: which errors are transient, and how long to wait.

One retry layer at a time: the runner's. Model clients found in a chain get
``max_retries=0`` (see :mod:`chainkit.runners._prepare`), and a chain's own
``with_retry`` is folded into this policy, so an item never makes more than
``retries + 1`` attempts.

Transient (retried): HTTP 408, 409, 429 and 5xx; timeouts (the SDK's, httpx's
and the runner's own per-attempt timeout); connection errors and streams cut
mid-way (``httpx.RemoteProtocolError`` and friends); LangChain ``ModelError``
subclasses whose ``is_retryable`` is true. Everything else (400, 401, 403,
404, 422, context length, missing variables, parser failures, validation
errors, plain bugs) fails the item at once.

The wait before attempt ``n + 1`` is exponential backoff with *full jitter*
(``uniform(0, min(backoff_max, backoff_base * 2**(n-1)))``), except when the
server said how long to wait (``retry-after-ms`` or ``Retry-After``, capped
at ``max_retry_after``): then that, plus up to 10% jitter so that items told
the same thing do not come back in lockstep.

The loop itself is a plain ``while`` in the local executor
(:mod:`chainkit.runners._local`): attempt, classify, wait :meth:`RetryPolicy.wait_for`,
attempt again, at most :attr:`RetryPolicy.attempts` times in all.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from chainkit._upstream import error_headers as _headers
from chainkit._upstream import error_status, parse_retry_after
from chainkit.errors import ConfigError

__all__ = [
    "AttemptTimeoutError",
    "ErrorKind",
    "RetryPolicy",
    "classify_error",
    "describe_error",
    "error_status",
    "parse_retry_after",
]

TRANSIENT_STATUSES = frozenset({408, 409, 429})


class AttemptTimeoutError(TimeoutError):
    """One attempt of an item took longer than the runner's ``timeout``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"attempt timed out after {seconds:g} s")


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """What the runner needs to know about one failed attempt."""

    transient: bool
    status: int | None = None
    retry_after: float | None = None

    @property
    def rate_limited(self) -> bool:
        return self.status == 429


def _is_transient_type(exc: BaseException) -> bool | None:
    """True/False when the exception's type decides; None to fall back to its status."""
    if isinstance(exc, AttemptTimeoutError | asyncio.TimeoutError | TimeoutError):
        return True
    try:
        import openai
    except ImportError:  # pragma: no cover - openai is a dependency
        openai = None  # type: ignore[assignment]
    if openai is not None:
        if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
            return True
        if isinstance(exc, openai.APIStatusError):
            return None  # decided by status below
        if isinstance(exc, openai.APIError) and not isinstance(
            exc, openai.APIResponseValidationError
        ):
            # An error event inside an SSE stream, or a body the SDK could not
            # read: the server failed mid-answer.
            return "context_length" not in str(exc).lower()
    for module in _http_modules():
        # timeouts, connect/read errors, streams cut mid-way (RemoteProtocolError)
        if isinstance(exc, module.TransportError):
            return True
        if isinstance(exc, module.HTTPStatusError):
            return None
    try:
        from langchain_core.exceptions import ContextOverflowError, ModelError
    except ImportError:  # pragma: no cover
        ModelError = ContextOverflowError = None  # type: ignore[assignment,misc]  # noqa: N806
    if ModelError is not None and isinstance(exc, ModelError):
        if ContextOverflowError is not None and isinstance(exc, ContextOverflowError):
            return False
        if error_status(exc) is None:
            return bool(getattr(exc, "is_retryable", False))
        return None
    if isinstance(exc, ConnectionError):  # ConnectionResetError, BrokenPipeError, ...
        return True
    return None


def _http_modules() -> list[Any]:
    """httpx, and httpx2 (what openai>=3 is built on), whichever are loaded."""
    return [sys.modules[name] for name in ("httpx", "httpx2") if name in sys.modules]


def classify_error(exc: BaseException) -> ErrorKind:
    """Decide whether ``exc`` is worth another attempt, with its status and Retry-After."""
    status = error_status(exc)
    retry_after = parse_retry_after(_headers(exc))
    by_type = _is_transient_type(exc)
    if by_type is not None:
        transient = by_type
    elif status is not None:
        transient = status in TRANSIENT_STATUSES or status >= 500
    else:
        transient = False
    return ErrorKind(transient=transient, status=status, retry_after=retry_after)


@dataclass(frozen=True)
class RetryPolicy:
    """How the runner retries one item.

    ``attempts`` counts the first call (``retries=3`` means up to 4 attempts, and
    an item never makes more than ``attempts``). ``extra_retry_on`` holds
    exception types that a chain's own ``with_retry`` asked for explicitly; they
    are retried even though they are not transient.
    """

    attempts: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    max_retry_after: float = 60.0
    extra_retry_on: tuple[type[BaseException], ...] = ()
    extra_retry_if: Callable[[BaseException], bool] | None = field(default=None, compare=False)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ConfigError(f"attempts must be an integer >= 1, got {self.attempts!r}")
        for label in ("backoff_base", "backoff_max", "max_retry_after"):
            value = getattr(self, label)
            if not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{label} must be >= 0 seconds, got {value!r}")

    def folded(
        self,
        attempts: int,
        retry_on: tuple[type[BaseException], ...],
        retry_if: Callable[[BaseException], bool] | None,
    ) -> RetryPolicy:
        """This policy with a chain's own ``with_retry`` folded in (more attempts, more types)."""
        if attempts <= self.attempts and not retry_on and retry_if is None:
            return self
        return replace(
            self,
            attempts=max(self.attempts, attempts),
            extra_retry_on=self.extra_retry_on + retry_on,
            extra_retry_if=retry_if if retry_if is not None else self.extra_retry_if,
        )

    def should_retry(self, exc: BaseException) -> bool:
        if not isinstance(exc, Exception):  # CancelledError, KeyboardInterrupt, SystemExit
            return False
        if classify_error(exc).transient:
            return True
        if self.extra_retry_on and isinstance(exc, self.extra_retry_on):
            return True
        return bool(self.extra_retry_if is not None and self.extra_retry_if(exc))

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**(attempt-1))]."""
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** max(0, attempt - 1)))
        return self.rng.uniform(0.0, ceiling)

    def server_wait(self, exc: BaseException) -> float | None:
        """The server's Retry-After for ``exc``, capped, or None when it gave none."""
        retry_after = classify_error(exc).retry_after
        if retry_after is None:
            return None
        return min(retry_after, self.max_retry_after)

    def wait_for(self, attempt: int, exc: BaseException | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if exc is not None:
            server = self.server_wait(exc)
            if server is not None:
                return server + self.rng.uniform(0.0, 0.1 * server)
        return self.backoff(attempt)


def describe_error(exc: BaseException) -> tuple[str, str]:
    """``(type, message)`` for an error record: the class name and a one-line message."""
    message = getattr(exc, "message", None)
    if not isinstance(message, str) or not message:
        message = str(exc)
    message = " ".join(message.split())
    if not message:
        message = type(exc).__name__
    return type(exc).__name__, message[:500]
