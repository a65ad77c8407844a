"""Reading a Responses API request (``POST /v1/responses``) into a Chat Completions body.

The local model writes its answers in one place (:func:`parse_chat`); a Responses
request is validated here with OpenAI's error messages and translated into the chat
request that means the same thing: ``instructions`` become a system message, input
items become messages (``function_call`` an assistant tool call,
``function_call_output`` a tool message), function tools and ``tool_choice`` take
the chat shapes, ``text.format`` becomes ``response_format``. What the response
object echoes back (tools, tool choice, text format, reasoning) is kept as given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chainkit.models.local._errors import BadRequest
from chainkit.models.local._fields import (
    invalid_type,
    missing_param,
    opt_bool,
    opt_int,
    opt_number,
    read_model,
)
from chainkit.models.local._responses_options import (
    chat_tool,
    invalid_value,
    read_reasoning,
    read_text,
    read_tool_choice,
    read_tools,
    string,
)

__all__ = ["ResponsesRequest", "read_responses_request"]

# fmt: off
_FIELDS = frozenset((
    "access_programs", "background", "background_options", "context_management",
    "conversation", "image", "include", "input", "instructions", "max_output_tokens",
    "max_tool_calls", "metadata", "model", "moderation", "parallel_tool_calls",
    "previous_response_id", "prompt", "prompt_cache_key", "prompt_cache_options",
    "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier", "store",
    "stream", "stream_options", "temperature", "text", "tool_choice", "tools", "top_logprobs",
    "top_p", "truncation", "user",
))
# fmt: on
_UNSUPPORTED = {
    "background": "responses run in the background",
    "conversation": "the Conversations API",
    "prompt": "stored prompt templates",
}
_SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority")
_MESSAGE_ROLES = ("user", "assistant", "system", "developer")
_TEXT_PARTS = ("input_text", "output_text", "text", "summary_text")
_SKIPPED_ITEMS = ("reasoning", "item_reference", "compaction")
MIN_OUTPUT_TOKENS = 16  # as OpenAI: a smaller max_output_tokens is a 400


@dataclass(slots=True)
class ResponsesRequest:
    """A validated Responses request: the chat body to answer and what to echo."""

    model: str
    chat: dict[str, Any]  # the equivalent Chat Completions body (for parse_chat)
    history: list[dict[str, Any]]  # the previous response's conversation and this input
    stream: bool
    store: bool
    instructions: str | None
    previous_response_id: str | None
    tools: list[dict[str, Any]]
    tool_choice: Any
    text: dict[str, Any]
    reasoning: dict[str, Any] | None  # {"effort": ..., "summary": ...} when the model reasons
    include_encrypted_reasoning: bool
    logprobs: int | None  # None: none; else how many alternatives per token
    max_output_tokens: int | None
    temperature: float | None
    top_p: float | None
    parallel_tool_calls: bool
    service_tier: str
    echo: dict[str, Any] = field(default_factory=dict)  # metadata, user, truncation, ...


def read_responses_request(
    body: dict[str, Any], previous: list[dict[str, Any]] | None
) -> ResponsesRequest:
    """Validate ``body``; ``previous`` is the stored conversation of ``previous_response_id``.

    Raises :class:`BadRequest` (OpenAI's error JSON) on anything malformed.
    """
    for key in body:
        if key not in _FIELDS:
            raise BadRequest(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")
    for key, what in _UNSUPPORTED.items():
        if body.get(key):
            raise BadRequest(
                f"The local model does not support '{key}' ({what}); leave it out.",
                param=key,
                code="unsupported_parameter",
            )
    model = read_model(body)
    stream = opt_bool(body, "stream")
    store = body.get("store") is not False
    opt_bool(body, "store")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise invalid_type("instructions", "a string", instructions)
    max_output = opt_int(body, "max_output_tokens", MIN_OUTPUT_TOKENS)
    temperature = opt_number(body, "temperature", 0, 2)
    top_p = opt_number(body, "top_p", 0, 1)
    top_logprobs = opt_int(body, "top_logprobs", 0, 20) or 0
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise invalid_type("parallel_tool_calls", "a boolean", parallel)
    tier = body.get("service_tier") or "auto"
    if tier not in _SERVICE_TIERS:
        raise invalid_value("service_tier", tier, _SERVICE_TIERS)
    previous_id = body.get("previous_response_id")
    if previous_id is not None and not isinstance(previous_id, str):
        raise invalid_type("previous_response_id", "a string", previous_id)

    turn = _input_messages(body.get("input"), previous is not None)
    history = [*(previous or []), *turn]
    _check_call_outputs(history)
    tools = read_tools(body.get("tools"))
    tool_choice, chat_choice, allowed = read_tool_choice(body.get("tool_choice"), tools)
    text, response_format = read_text(body.get("text"))
    reasoning = read_reasoning(body.get("reasoning"), model)
    include = body.get("include") or []
    if not isinstance(include, list) or not all(isinstance(i, str) for i in include):
        raise invalid_type("include", "an array of strings", include)

    messages = [{"role": "system", "content": instructions}] if instructions else []
    chat: dict[str, Any] = {"model": model, "messages": [*messages, *history]}
    if tools and chat_choice != "none":
        chat["tools"] = [chat_tool(t) for t in tools if allowed is None or t["name"] in allowed]
        chat["tool_choice"] = chat_choice
    if response_format is not None:
        chat["response_format"] = response_format
    limits = {"max_completion_tokens": max_output, "temperature": temperature, "top_p": top_p}
    chat.update({key: value for key, value in limits.items() if value is not None})
    echo = {
        "metadata": _metadata(body.get("metadata")),
        "user": _optstring(body, "user"),
        "prompt_cache_key": _optstring(body, "prompt_cache_key"),
        "truncation": body.get("truncation") or "disabled",
    }
    if echo["truncation"] not in ("auto", "disabled"):
        raise invalid_value("truncation", echo["truncation"], ("auto", "disabled"))
    return ResponsesRequest(
        model=model,
        chat=chat,
        history=history,
        stream=stream,
        store=store,
        instructions=instructions,
        previous_response_id=previous_id,
        tools=tools,
        tool_choice=tool_choice,
        text=text,
        reasoning=reasoning,
        include_encrypted_reasoning="reasoning.encrypted_content" in include,
        logprobs=top_logprobs if "message.output_text.logprobs" in include else None,
        max_output_tokens=max_output,
        temperature=temperature,
        top_p=top_p,
        parallel_tool_calls=parallel is not False,
        service_tier="default" if tier == "auto" else tier,
        echo=echo,
    )


def _optstring(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid_type(key, "a string", value)
    return value


def _metadata(value: Any) -> dict[str, str]:
    """Up to 16 string pairs (keys up to 64 characters, values up to 512), as OpenAI's."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_type("metadata", "an object", value)
    if len(value) > 16:
        raise BadRequest(
            f"Invalid 'metadata': too many properties. Expected at most 16, got {len(value)}.",
            param="metadata",
            code="object_above_max_properties",
        )
    for key, item in value.items():
        if len(key) > 64 or not isinstance(item, str) or len(item) > 512:
            raise BadRequest(
                f"Invalid 'metadata[{key[:64]!r}]': keys are at most 64 characters and values "
                "strings of at most 512.",
                param="metadata",
                code="invalid_value",
            )
    return value


# ------------------------------------------------------------------ input items


def _input_messages(value: Any, has_previous: bool) -> list[dict[str, Any]]:
    if value is None:
        if has_previous:
            return []
        raise missing_param("input")
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise invalid_type("input", "a string or an array of input items", value)
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        param = f"input[{i}]"
        if not isinstance(item, dict):
            raise invalid_type(param, "an object", item)
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, param))
        elif kind == "function_call":
            call = {
                "id": string(item, "call_id", param),
                "type": "function",
                "function": {
                    "name": string(item, "name", param),
                    "arguments": string(item, "arguments", param),
                },
            }
            last = messages[-1] if messages else None
            if last and last["role"] == "assistant" and last.get("tool_calls"):
                last["tool_calls"].append(call)  # parallel calls share one assistant turn
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            if output is None:
                raise missing_param(f"{param}.output")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": string(item, "call_id", param),
                    "content": output
                    if isinstance(output, str)
                    else _parts(output, f"{param}.output", "user"),
                }
            )
        elif kind in _SKIPPED_ITEMS:
            continue  # carries no text the local model reads
        else:
            raise BadRequest(
                f"Invalid value: {kind!r}. The local model reads input items of type "
                "'message', 'function_call', 'function_call_output', 'reasoning' and "
                "'item_reference'.",
                param=f"{param}.type",
                code="invalid_value",
            )
    return messages


def _message(item: dict[str, Any], param: str) -> dict[str, Any]:
    role = item.get("role")
    if role is None:
        raise missing_param(f"{param}.role")
    if role not in _MESSAGE_ROLES:
        raise invalid_value(f"{param}.role", role, _MESSAGE_ROLES)
    content = item.get("content")
    if content is None:
        raise missing_param(f"{param}.content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    return {"role": role, "content": _parts(content, f"{param}.content", role)}


def _parts(content: Any, param: str, role: str) -> list[dict[str, Any]]:
    """Responses content parts as chat content parts (text, image_url, file)."""
    if not isinstance(content, list):
        raise invalid_type(param, "a string or an array of content parts", content)
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        where = f"{param}[{i}]"
        if not isinstance(part, dict):
            raise invalid_type(where, "an object", part)
        kind = part.get("type")
        if kind in _TEXT_PARTS:
            parts.append({"type": "text", "text": string(part, "text", where)})
        elif kind == "refusal":
            parts.append({"type": "text", "text": string(part, "refusal", where)})
        elif kind == "input_image" and role != "assistant":
            url = part.get("image_url") or part.get("file_id")
            if not isinstance(url, str):
                raise missing_param(f"{where}.image_url")
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif kind == "input_file" and role != "assistant":
            file = {k: part[k] for k in ("file_data", "file_id", "filename") if k in part}
            if "file_url" in part:
                file["file_data"] = part["file_url"]
            parts.append({"type": "file", "file": file})
        elif kind == "input_audio" and role != "assistant":
            parts.append({"type": "input_audio", "input_audio": part.get("input_audio", {})})
        else:
            allowed = (
                ("output_text", "refusal")
                if role == "assistant"
                else ("input_text", "input_image", "input_file", "input_audio")
            )
            raise invalid_value(f"{where}.type", kind, allowed)
    return parts


def _check_call_outputs(messages: list[dict[str, Any]]) -> None:
    """Function calls and their outputs pair up, as OpenAI checks (else 400): every
    function_call_output answers an earlier function_call, and every function_call is
    answered before the conversation goes on."""
    calls: set[str] = set()
    waiting: list[str] = []
    for message in messages:
        if message["role"] == "tool":
            call_id = message["tool_call_id"]
            if call_id not in calls:
                raise BadRequest(
                    f"No tool call found for function call output with call_id {call_id}.",
                    param="input",
                    code="invalid_value",
                )
            if call_id in waiting:
                waiting.remove(call_id)
            continue
        if waiting:
            break
        for call in message.get("tool_calls") or ():
            calls.add(call["id"])
            waiting.append(call["id"])
    if waiting:
        raise BadRequest(
            f"No tool output found for function call {waiting[0]}.",
            param="input",
            code="invalid_value",
        )
