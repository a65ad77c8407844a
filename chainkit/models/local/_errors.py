"""The local model's request errors: OpenAI's error JSON with a status."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["BadRequest", "json_body", "type_name"]


class BadRequest(Exception):  # noqa: N818 - named after the HTTP status
    """An answer other than 200, with OpenAI's error body (``status`` 4xx or 5xx)."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int = 400,
        type_: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status
        self.type = type_
        self.headers = headers or {}
        self.close = close  # end the connection after the answer (the request was not all read)

    def body(self) -> bytes:
        return orjson.dumps(
            {
                "error": {
                    "message": self.message,
                    "type": self.type,
                    "param": self.param,
                    "code": self.code,
                }
            }
        )


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def json_body(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest(
            "We could not parse the JSON body of your request. The API expects "
            "a JSON payload, but what was sent was not valid JSON."
        ) from None
    if not isinstance(payload, dict):
        raise BadRequest(
            f"Invalid type for request body: expected an object, but got "
            f"{type_name(payload)} instead.",
            code="invalid_type",
        )
    return payload
