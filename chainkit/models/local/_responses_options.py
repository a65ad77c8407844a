"""Reading a Responses request's tools, ``tool_choice``, ``text`` format and ``reasoning``.

Each validates its parameter with OpenAI's error messages and gives what the response
object echoes back and what the equivalent Chat Completions request carries.
"""

from __future__ import annotations

from typing import Any

from chainkit.models.local._errors import BadRequest
from chainkit.models.local._fields import invalid_type, missing_param

__all__ = [
    "chat_tool",
    "invalid_value",
    "read_reasoning",
    "read_text",
    "read_tool_choice",
    "read_tools",
    "string",
]

_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
_SUMMARIES = ("auto", "concise", "detailed")
_REASONING_MODELS = ("o1", "o3", "o4", "gpt-5")


def invalid_value(param: str, value: Any, allowed: tuple[str, ...]) -> BadRequest:
    names = ", ".join(f"'{a}'" for a in allowed)
    return BadRequest(
        f"Invalid value for '{param}': {value!r}. Supported values are: {names}.",
        param=param,
        code="invalid_value",
    )


def string(item: dict[str, Any], key: str, param: str) -> str:
    value = item.get(key)
    if value is None:
        raise missing_param(f"{param}.{key}")
    if not isinstance(value, str):
        raise invalid_type(f"{param}.{key}", "a string", value)
    return value


def read_tools(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_type("tools", "an array", value)
    tools = []
    for i, tool in enumerate(value):
        param = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise invalid_type(param, "an object", tool)
        if tool.get("type") != "function":
            raise BadRequest(
                f"The local model has no built-in tool {tool.get('type')!r}; only function "
                "tools ({'type': 'function', 'name': ..., 'parameters': ...}) are supported.",
                param=f"{param}.type",
                code="invalid_value",
            )
        name = string(tool, "name", param)
        params = tool.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise invalid_type(f"{param}.parameters", "an object", params)
        description = tool.get("description")
        if description is not None and not isinstance(description, str):
            raise invalid_type(f"{param}.description", "a string", description)
        strict = tool.get("strict")
        tools.append(
            {
                "type": "function",
                "name": name,
                "description": description,
                "parameters": params or {"type": "object", "properties": {}},
                "strict": True if strict is None else bool(strict),
            }
        )
    return tools


def chat_tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = {"name": tool["name"], "parameters": tool["parameters"]}
    if tool["description"]:
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def read_tool_choice(value: Any, tools: list[dict[str, Any]]) -> tuple[Any, Any, set[str] | None]:
    """(the tool_choice to echo, the chat tool_choice, the allowed tool names or None)."""
    if value is None or value == "auto":
        return "auto", "auto", None
    if value in ("none", "required"):
        return value, value, None
    if not isinstance(value, dict):
        raise invalid_value("tool_choice", value, ("none", "auto", "required"))
    kind = value.get("type")
    names = {t["name"] for t in tools}
    if kind == "function":
        name = value.get("name")
        if name not in names:
            raise BadRequest(
                f"Tool choice 'function' with name {name!r} not found in 'tools' parameter.",
                param="tool_choice",
                code="invalid_value",
            )
        return value, {"type": "function", "function": {"name": name}}, None
    if kind == "allowed_tools":
        allowed = value.get("tools")
        if not isinstance(allowed, list) or not allowed:
            raise missing_param("tool_choice.tools")
        keep = {t.get("name") for t in allowed if isinstance(t, dict)}
        unknown = keep - names
        if unknown:
            raise BadRequest(
                f"Allowed tool {sorted(map(str, unknown))[0]!r} not found in 'tools' parameter.",
                param="tool_choice.tools",
                code="invalid_value",
            )
        mode = value.get("mode", "auto")
        if mode not in ("auto", "required"):
            raise invalid_value("tool_choice.mode", mode, ("auto", "required"))
        return value, mode, {str(k) for k in keep}
    raise BadRequest(
        f"Invalid value: {kind!r}. The local model supports tool_choice 'none', 'auto', "
        "'required', {'type': 'function', 'name': ...} and {'type': 'allowed_tools', ...}.",
        param="tool_choice.type",
        code="invalid_value",
    )


def read_text(value: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the text config to echo, the chat response_format)."""
    if value is None:
        return {"format": {"type": "text"}, "verbosity": "medium"}, None
    if not isinstance(value, dict):
        raise invalid_type("text", "an object", value)
    verbosity = value.get("verbosity") or "medium"
    if verbosity not in ("low", "medium", "high"):
        raise invalid_value("text.verbosity", verbosity, ("low", "medium", "high"))
    fmt = value.get("format") or {"type": "text"}
    if not isinstance(fmt, dict):
        raise invalid_type("text.format", "an object", fmt)
    kind = fmt.get("type")
    echo = {"format": fmt, "verbosity": verbosity}
    if kind == "text":
        return echo, None
    if kind == "json_object":
        return echo, {"type": "json_object"}
    if kind == "json_schema":
        name = string(fmt, "name", "text.format")
        schema = fmt.get("schema")
        if schema is None:
            raise missing_param("text.format.schema")
        if not isinstance(schema, dict):
            raise invalid_type("text.format.schema", "an object", schema)
        strict = fmt.get("strict")
        echo["format"] = {
            "type": "json_schema",
            "name": name,
            "schema": schema,
            "description": fmt.get("description"),
            "strict": bool(strict) if strict is not None else False,
        }
        return echo, {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
    raise invalid_value("text.format.type", kind, ("text", "json_object", "json_schema"))


def read_reasoning(value: Any, model: str) -> dict[str, Any] | None:
    """The reasoning config when the model reasons: asked for, or a reasoning model's name."""
    reasons_by_name = model.startswith(_REASONING_MODELS) and "chat" not in model
    if value is None:
        return {"effort": "medium", "summary": None} if reasons_by_name else None
    if not isinstance(value, dict):
        raise invalid_type("reasoning", "an object", value)
    effort = value.get("effort") or "medium"
    if effort not in _EFFORTS:
        raise invalid_value("reasoning.effort", effort, _EFFORTS)
    summary = value.get("summary", value.get("generate_summary"))
    if summary is not None and summary not in _SUMMARIES:
        raise invalid_value("reasoning.summary", summary, _SUMMARIES)
    if effort == "none":
        return None
    return {"effort": effort, "summary": summary}
