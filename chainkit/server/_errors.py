"""Exceptions to JSON errors: one mapping for responses, SSE ``error`` events and logs.

====================================  ======  ========================
exception                             status  code
====================================  ======  ========================
UnknownChainError                     404     unknown_chain
MissingVariableError                  422     missing_variable
request body not valid                422     invalid_request
other UserError (InputError, ...)     422     invalid_input
ConfigError (a chain's model)         503     model_not_configured
SpecError (a spec file on the server) 503     bad_chain_spec
a model call's failure, through the one mapping in :mod:`chainkit._upstream`:
  timeout (openai, LangChain)         504     upstream_timeout
  unreachable                         502     upstream_unavailable
  status (an error answer)            502     upstream_error
  bad_output (OutputParserException)  502     upstream_bad_output
TimeoutError (the request timeout)    504     upstream_timeout
ChainkitRunError                      502     upstream_error
anything else                         500     internal_error
====================================  ======  ========================

Messages are one line and pass through :func:`chainkit.errors.redact`; a
traceback never reaches a response or a log line.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from chainkit._upstream import UpstreamFailure, upstream_failure
from chainkit.errors import (
    ChainkitRunError,
    ConfigError,
    MissingAPIKeyError,
    MissingVariableError,
    SpecError,
    UnknownChainError,
    UserError,
    redact,
)
from chainkit.server._schemas import ErrorBody, ErrorResponse

__all__ = ["ApiError", "error_body", "error_json", "one_line"]

log = logging.getLogger(__name__)

_MAX_MESSAGE = 500
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


class ApiError(Exception):
    """An error the service answers on purpose (a limit, auth): status, code and message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra


def one_line(text: str) -> str:
    """``text`` redacted, on one line, cut to a sane length."""
    line = " ".join(redact(str(text)).split())
    return line if len(line) <= _MAX_MESSAGE else f"{line[: _MAX_MESSAGE - 1]}…"


def _upstream_body(failure: UpstreamFailure) -> ErrorBody:
    """A model call's failure (see :mod:`chainkit._upstream`), phrased for an API client."""
    common: dict[str, Any] = {"type": failure.type, "upstream_type": failure.upstream_type}
    if failure.kind == "timeout":
        return ErrorBody(
            code="upstream_timeout",
            status=504,
            message="the model did not answer in time; try again later",
            **common,
        )
    if failure.kind == "unreachable":
        return ErrorBody(
            code="upstream_unavailable",
            status=502,
            message="cannot reach the model server; check that it runs and the service's "
            "model settings (OPENAI_BASE_URL)",
            **common,
        )
    if failure.kind == "bad_output":
        return ErrorBody(
            code="upstream_bad_output",
            status=502,
            message=one_line(f"the model's answer could not be parsed: {failure.detail}"),
            **common,
        )
    if failure.kind == "status":
        text = f"the model server answered {failure.status}: {failure.detail}"
    else:
        text = f"the model call failed: {failure.detail}"
    return ErrorBody(
        code="upstream_error",
        status=502,
        upstream_status=failure.status,
        message=one_line(text),
        **common,
    )


def _config_message(exc: ConfigError) -> str:
    if isinstance(exc, MissingAPIKeyError):
        return f"{exc}; set it in the service's environment"
    return str(exc)


def error_body(exc: BaseException, request_id: str | None = None) -> ErrorBody:
    """The JSON error for ``exc`` (any exception), without a traceback or a secret."""
    kind = type(exc).__name__
    body: ErrorBody | None
    if isinstance(exc, ApiError):
        body = ErrorBody(
            code=exc.code, status=exc.status, type=kind, message=one_line(exc.message), **exc.extra
        )
    elif isinstance(exc, UnknownChainError):
        body = ErrorBody(
            code="unknown_chain",
            status=404,
            type=kind,
            message=one_line(f"{exc}; GET /chains lists them"),
            suggestions=list(exc.suggestions),
        )
    elif isinstance(exc, MissingVariableError):
        names = ", ".join(repr(m) for m in exc.missing)
        plural = "s" if len(exc.missing) > 1 else ""
        body = ErrorBody(
            code="missing_variable",
            status=422,
            type=kind,
            message=one_line(
                f"chain {exc.chain!r} needs input variable{plural} {names}; "
                f'add {"them" if plural else "it"} to "input"'
            ),
            missing=list(exc.missing),
        )
    elif isinstance(exc, ConfigError):
        body = ErrorBody(
            code="model_not_configured",
            status=503,
            type=kind,
            message=one_line(_config_message(exc)),
        )
    elif isinstance(exc, SpecError):
        body = ErrorBody(code="bad_chain_spec", status=503, type=kind, message=one_line(str(exc)))
    elif isinstance(exc, UserError):
        body = ErrorBody(code="invalid_input", status=422, type=kind, message=one_line(str(exc)))
    elif isinstance(exc, RequestValidationError):
        details = [_validation_detail(e) for e in exc.errors()]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"]) or "body"
        body = ErrorBody(
            code="invalid_request",
            status=422,
            type=kind,
            message=one_line(f"{where}: {first['msg']}; see /docs for the request's schema"),
            details=details,
        )
    elif isinstance(exc, StarletteHTTPException):
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        body = ErrorBody(
            code=code,
            status=exc.status_code,
            type="HTTPException",
            message=one_line(str(exc.detail)),
        )
    elif isinstance(exc, TimeoutError):
        body = ErrorBody(
            code="upstream_timeout",
            status=504,
            type=kind,
            message="the chain did not finish in time (the service's request timeout)",
        )
    elif (failure := upstream_failure(exc)) is not None:
        body = _upstream_body(failure)
    else:
        body = None
        if isinstance(exc, ChainkitRunError):
            body = ErrorBody(
                code="upstream_error", status=502, type=kind, message=one_line(str(exc))
            )
        if body is None:
            body = ErrorBody(
                code="internal_error",
                status=500,
                type="InternalError",
                message="internal error; the service log has the details under this request id",
            )
    body.request_id = request_id
    return body


def error_json(body: ErrorBody) -> dict[str, Any]:
    """The response body for ``body``: ``{"error": {...}}`` without empty fields."""
    return ErrorResponse(error=body).model_dump(mode="json", exclude_none=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _validation_detail(error: Any) -> dict[str, Any]:
    """A validation error without the offending input (it may hold anything)."""
    return {
        "loc": [str(p) for p in error.get("loc", ())],
        "msg": one_line(str(error.get("msg", ""))),
        "type": str(error.get("type", "")),
    }
