"""LangChain messages as the OpenTelemetry GenAI conventions write them.

``gen_ai.input.messages`` and ``gen_ai.output.messages`` are JSON arrays of
``{"role", "parts": [...]}`` (the conventions' ``ChatMessage``), where a part is
``{"type": "text", "content"}``, ``{"type": "tool_call", "id", "name",
"arguments"}`` or ``{"type": "tool_call_response", "id", "response"}``; other
content blocks keep their own ``type``. Tools that read the conventions (Phoenix,
Langfuse, Logfire) show prompts from this shape, not from LangChain's
``{"type": "human", "content": ...}`` dicts a trace records.
"""

from __future__ import annotations

from typing import Any

__all__ = ["input_messages", "output_message"]

_ROLES = {
    "human": "user",
    "HumanMessage": "user",
    "ai": "assistant",
    "AIMessage": "assistant",
    "AIMessageChunk": "assistant",
    "system": "system",
    "SystemMessage": "system",
    "tool": "tool",
    "ToolMessage": "tool",
    "function": "tool",
}


def input_messages(inputs: Any) -> list[dict[str, Any]]:
    """A model run's recorded inputs (chat ``messages`` or completion ``prompts``) as messages."""
    if not isinstance(inputs, dict):
        return [_text_message("user", inputs)] if inputs is not None else []
    if isinstance(inputs.get("prompts"), list):
        return [_text_message("user", prompt) for prompt in inputs["prompts"]]
    messages = inputs.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], list):
        messages = messages[0]  # LangChain's on_chat_model_start: one list per prompt
    if not isinstance(messages, list):
        return [_text_message("user", inputs)]
    return [_message(m) for m in messages]


def output_message(
    text: str, calls: list[dict[str, Any]], finish_reason: str | None
) -> dict[str, Any]:
    """The model's answer: its text, then its tool calls."""
    message: dict[str, Any] = {"role": "assistant", "parts": [_text(text)] if text else []}
    message["parts"] += [_tool_call(call) for call in calls]
    if finish_reason:
        message["finish_reason"] = finish_reason
    return message


def _message(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        return _text_message("user", value)
    kwargs = value.get("kwargs")
    fields: dict[str, Any] = kwargs if isinstance(kwargs, dict) else value  # an lc dump or not
    kind = value.get("type")
    if kind == "constructor" and isinstance(value.get("id"), list) and value["id"]:
        kind = value["id"][-1]
    role = str(fields.get("role") or _ROLES.get(str(kind), str(kind or "user")))
    if role == "tool":
        response = {"type": "tool_call_response", "response": fields.get("content")}
        if fields.get("tool_call_id"):
            response["id"] = str(fields["tool_call_id"])
        return {"role": "tool", "parts": [response]}
    parts = _content_parts(fields.get("content"))
    calls = fields.get("tool_calls")
    if isinstance(calls, list):
        parts += [_tool_call(call) for call in calls if isinstance(call, dict)]
    message: dict[str, Any] = {"role": role, "parts": parts}
    if isinstance(fields.get("name"), str):
        message["name"] = fields["name"]
    return message


def _content_parts(content: Any) -> list[dict[str, Any]]:
    if content is None or content == "":
        return []
    if not isinstance(content, list):
        return [_text(content)]
    parts: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "text":
            parts.append(_text(block.get("text", "")))
        elif isinstance(block, dict):
            parts.append({**block, "type": str(block.get("type", "unknown"))})
        else:
            parts.append(_text(block))
    return parts


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "tool_call", "name": call.get("name")}
    if call.get("id"):
        part["id"] = str(call["id"])
    part["arguments"] = call.get("args", call.get("arguments"))
    return part


def _text(value: Any) -> dict[str, Any]:
    return {"type": "text", "content": value if isinstance(value, str) else str(value)}


def _text_message(role: str, value: Any) -> dict[str, Any]:
    return {"role": role, "parts": [_text(value)]}
