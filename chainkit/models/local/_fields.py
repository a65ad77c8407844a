"""Reading a request body's fields, with OpenAI's error messages.

Each reader checks one field (its type, its range) and returns its value, or
raises :class:`BadRequest` naming the parameter as OpenAI's API does; the chat,
completions, responses and embeddings endpoints share them.
"""

from __future__ import annotations

from typing import Any

from chainkit.models.local._errors import BadRequest, type_name

__all__ = [
    "MAX_COMPLETION_TOKENS",
    "check_known_fields",
    "content_text",
    "invalid_type",
    "missing_param",
    "opt_bool",
    "opt_int",
    "opt_number",
    "read_include_usage",
    "read_max_tokens",
    "read_model",
    "read_stop",
]

MAX_COMPLETION_TOKENS = 65_536  # what the local model's "models" support


def invalid_type(param: str, expected: str, value: Any) -> BadRequest:
    return BadRequest(
        f"Invalid type for '{param}': expected {expected}, but got {type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def missing_param(param: str) -> BadRequest:
    return BadRequest(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def opt_int(body: dict[str, Any], name: str, lo: int, hi: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type(name, "an integer", value)
    if value < lo:
        raise BadRequest(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {lo}, "
            f"but got {value} instead.",
            param=name,
            code="integer_below_min_value",
        )
    if hi is not None and value > hi:
        raise BadRequest(
            f"Invalid '{name}': integer above maximum value. Expected a value <= {hi}, "
            f"but got {value} instead.",
            param=name,
            code="integer_above_max_value",
        )
    return value


def read_max_tokens(body: dict[str, Any], name: str, lo: int) -> int | None:
    value = opt_int(body, name, lo)
    if value is not None and value > MAX_COMPLETION_TOKENS:
        raise BadRequest(
            f"{name} is too large: {value}. This model supports at most "
            f"{MAX_COMPLETION_TOKENS} completion tokens, whereas you provided {value}.",
            param=name,
            code="invalid_value",
        )
    return value


def opt_number(body: dict[str, Any], name: str, lo: float, hi: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_type(name, "a decimal", value)
    if not lo <= value <= hi:
        side = "below minimum" if value < lo else "above maximum"
        bound = f">= {lo:g}" if value < lo else f"<= {hi:g}"
        raise BadRequest(
            f"Invalid '{name}': decimal {side} value. Expected a value {bound}, "
            f"but got {value:g} instead.",
            param=name,
            code=f"decimal_{side.replace(' ', '_')}_value",
        )
    return float(value)


def opt_bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid_type(name, "a boolean", value)
    return value


def read_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise missing_param("model")
    if not isinstance(model, str):
        raise invalid_type("model", "a string", model)
    if not model:
        raise BadRequest("you must provide a model parameter", param="model")
    return model


def read_stop(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,) if stop else ()
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if len(stop) > 4:
            raise BadRequest(
                f"Invalid 'stop': array too long. Expected an array with maximum length 4, "
                f"but got an array with length {len(stop)} instead.",
                param="stop",
                code="array_above_max_length",
            )
        return tuple(s for s in stop if s)
    raise invalid_type("stop", "a string or an array of strings", stop)


def read_include_usage(body: dict[str, Any], stream: bool) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise invalid_type("stream_options", "an object", options)
    if not stream:
        raise BadRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    value = options.get("include_usage")
    if value is not None and not isinstance(value, bool):
        raise invalid_type("stream_options.include_usage", "a boolean", value)
    return bool(value)


def check_known_fields(body: dict[str, Any], known: frozenset[str]) -> None:
    for key in body:
        if key not in known:
            raise BadRequest(f"Unrecognized request argument supplied: {key}")


def content_text(content: Any, param: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict):
                raise invalid_type(f"{param}[{i}]", "an object", part)
            if part.get("type") in ("text", "input_text", "refusal"):
                text = part.get("text", part.get("refusal"))
                if not isinstance(text, str):
                    raise invalid_type(f"{param}[{i}].text", "a string", text)
                parts.append(text)
        return "\n".join(parts)
    raise invalid_type(param, "one of a string or array of objects", content)
