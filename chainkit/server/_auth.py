"""Bearer-token auth for every endpoint but ``/health``, and the bind-address guard.

The token comes from ``CHAINKIT_API_TOKEN`` (or ``ServerSettings.api_token``)
and is compared in constant time (:func:`hmac.compare_digest`). It is
registered with :func:`chainkit.errors.redact`, so it never shows in a log line.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from chainkit import _binding
from chainkit._binding import is_loopback
from chainkit.server._errors import error_json
from chainkit.server._logging import json_response, request_info
from chainkit.server._schemas import ErrorBody
from chainkit.server._settings import TOKEN_ENV

if TYPE_CHECKING:
    from pydantic import SecretStr
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["OPEN_PATHS", "AuthMiddleware", "check_bind", "is_loopback"]

OPEN_PATHS = frozenset({"/health"})
_SCHEME = b"bearer "


class AuthMiddleware:
    """Answer 401 (JSON, ``WWW-Authenticate: Bearer``) unless the request carries the token."""

    def __init__(self, app: ASGIApp, *, token: SecretStr) -> None:
        self.app = app
        self._expected = token.get_secret_value().encode()

    def authorized(self, scope: Scope) -> bool:
        header = b""
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                header = value
                break
        if header[: len(_SCHEME)].lower() != _SCHEME:
            # compare anyway, so a missing header costs the same time as a wrong one
            hmac.compare_digest(self._expected, self._expected[:0])
            return False
        return hmac.compare_digest(header[len(_SCHEME) :].strip(), self._expected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS or self.authorized(scope):
            await self.app(scope, receive, send)
            return
        info = request_info(scope)
        info.error = "Unauthorized"
        body = ErrorBody(
            code="unauthorized",
            status=401,
            type="Unauthorized",
            message="this service needs 'Authorization: Bearer <token>' "
            f"(the token is the server's {TOKEN_ENV})",
            request_id=info.request_id,
        )
        await json_response(send, 401, error_json(body), {"WWW-Authenticate": "Bearer"})


def check_bind(host: str, *, token: SecretStr | None, insecure: bool) -> None:
    """Refuse to serve on a non-loopback address without a token, unless ``insecure``."""
    _binding.check_bind(
        "service", host, protected=token is not None, insecure=insecure, token_env=TOKEN_ENV
    )
