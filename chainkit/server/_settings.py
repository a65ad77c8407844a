"""The service's settings: the API token and the limits, validated once."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from chainkit.errors import ConfigError, register_secret

__all__ = ["TOKEN_ENV", "ServerSettings"]

TOKEN_ENV = "CHAINKIT_API_TOKEN"  # noqa: S105 - the variable's name, not a secret
_MIN_TOKEN_CHARS = 16


def _token_from_env() -> SecretStr | None:
    value = os.environ.get(TOKEN_ENV, "").strip()
    return SecretStr(value) if value else None


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """How the service guards itself. Every limit answers with a JSON error, never a 500.

    - ``api_token``: with a token, every endpoint but ``/health`` needs
      ``Authorization: Bearer <token>``; by default ``$CHAINKIT_API_TOKEN``
      (pass ``api_token=None`` to serve without one).
    - ``max_body_bytes``: a larger request body is answered 413.
    - ``max_batch_items``: a ``/batch`` request with more inputs is answered 413
      (the body is too large for this server, whatever its byte size).
    - ``max_batch_concurrency``: a ``/batch`` request's ``max_concurrency`` is
      lowered to this (the response says which value was used).
    - ``max_streams``: ``/stream`` and ``/stream_events`` responses open at once;
      one more is answered 429 with ``Retry-After``.
    - ``request_timeout``: seconds an ``/invoke`` or ``/generate`` call may take
      (504 after that); ``None`` for no limit.
    - ``batch_item_timeout``: seconds per attempt of one ``/batch`` item (the
      runner retries it like a 5xx); ``None`` for no limit.
    - ``batch_retries``: extra attempts per ``/batch`` item for transient errors.
    - ``ping_interval``: seconds of silence after which an SSE stream sends a
      ``: ping`` comment (keeps proxies from closing idle streams).
    - ``log_bodies``: add request bodies (redacted, cut to 2000 characters) to
      the access log; off by default.

    Limits of the HTTP server itself, applied when chainkit runs it
    (``chainkit serve``, :func:`~chainkit.server.serve`, ``ServiceThread``; under
    your own uvicorn, set its options instead):

    - ``max_header_bytes``: the request line and headers together; more is a 431
      and the connection is closed.
    - ``max_headers``: headers per request; more is a 431.
    - ``header_timeout``: seconds a client has to send a request's line and
      headers, counted from the connection (or the request's first byte); then a
      408, or a plain close for a connection that never started a request.
    - ``body_timeout``: seconds a client has to send a request's whole body, counted
      from the end of its headers (a deadline for the whole body, not for the gap
      between two reads, which a client sending a byte every few seconds never
      exceeds); then a 408 ``body_timeout`` and the connection is closed. The app
      answers it (under any server, for the bodies it reads); chainkit's server
      closes a connection whose body is still incomplete a second later (a body
      sent after its answer, e.g. after a 401), with a 408 if nothing was answered.
    - ``keep_alive_timeout``: whole seconds an idle keep-alive connection stays open.
    - ``max_connections``: connections (and requests in progress) at once; a
      request beyond is answered with a JSON 503 ``too_many_connections`` with
      ``Retry-After``, and its connection closed.
    """

    api_token: SecretStr | None = field(default_factory=_token_from_env)
    max_body_bytes: int = 1024 * 1024
    max_batch_items: int = 100
    max_batch_concurrency: int = 16
    max_streams: int = 256
    request_timeout: float | None = 300.0
    batch_item_timeout: float | None = 120.0
    batch_retries: int = 2
    ping_interval: float = 15.0
    log_bodies: bool = False
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: int = 15
    max_connections: int = 1024

    def __post_init__(self) -> None:
        token: Any = self.api_token
        if isinstance(token, str):
            token = SecretStr(token.strip()) if token.strip() else None
            object.__setattr__(self, "api_token", token)
        if token is not None:
            if not isinstance(token, SecretStr):
                raise ConfigError(
                    f"ServerSettings.api_token must be a string, got {type(token).__name__}"
                )
            value = token.get_secret_value()
            if len(value) < _MIN_TOKEN_CHARS:
                raise ConfigError(
                    f"the API token ({TOKEN_ENV}) is {len(value)} characters long; use at "
                    f"least {_MIN_TOKEN_CHARS}, e.g. python -c 'import secrets; "
                    f"print(secrets.token_urlsafe(32))'"
                )
            register_secret(value)
        for name, low in (
            ("max_body_bytes", 1024),
            ("max_batch_items", 1),
            ("max_batch_concurrency", 1),
            ("max_streams", 1),
            ("batch_retries", 0),
            ("max_header_bytes", 1024),
            ("max_headers", 8),
            ("max_connections", 1),
            ("keep_alive_timeout", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(
                    f"ServerSettings.{name} must be an integer >= {low}, got {value!r}"
                )
        for name in ("request_timeout", "batch_item_timeout"):
            value = getattr(self, name)
            if value is not None and not _positive(value):
                raise ConfigError(
                    f"ServerSettings.{name} must be > 0 seconds or None for no limit, got {value!r}"
                )
        for name in ("ping_interval", "header_timeout", "body_timeout"):
            value = getattr(self, name)
            if not _positive(value):
                raise ConfigError(f"ServerSettings.{name} must be > 0 seconds, got {value!r}")

    @property
    def auth_enabled(self) -> bool:
        return self.api_token is not None


def _positive(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and value > 0
        and not math.isinf(value)
    )
