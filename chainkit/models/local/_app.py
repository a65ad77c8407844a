"""The local model's HTTP app: a small raw ASGI app speaking OpenAI's wire format.

No framework per request: routing is a dict lookup, JSON goes through orjson,
SSE chunks are built from byte templates, and when nothing paces the answer a
whole stream is sent in one body (clients parse SSE events however the bytes
are split).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson

from chainkit.errors import ConfigError
from chainkit.models.local._schema import SchemaValues, json_object
from chainkit.models.local._settings import FAULTS_HEADER, LocalModelSettings, parse_overrides
from chainkit.models.local._stats import Stats
from chainkit.models.local._text import (
    Analysis,
    Rng,
    analyse,
    count_tokens,
    stable_seed,
    tokenize,
    write,
)

__all__ = ["LocalModelApp", "create_app"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
MODELS = ("chainkit-local", "gpt-3.5-turbo-instruct", "gpt-4o-mini", "gpt-4o", "gpt-4.1-mini")
FINGERPRINT = "fp_chainkit"
COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # as OpenAI's legacy completions endpoint

# fmt: off
_CHAT_FIELDS = frozenset((
    "messages", "model", "audio", "frequency_penalty", "function_call", "functions",
    "logit_bias", "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities",
    "moderation", "n", "parallel_tool_calls", "prediction", "presence_penalty",
    "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention", "reasoning_effort",
    "response_format", "safety_identifier", "seed", "service_tier", "stop", "store", "stream",
    "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user",
    "verbosity", "web_search_options",
))
# fmt: on
# fmt: off
_COMPLETION_FIELDS = frozenset((
    "model", "prompt", "best_of", "echo", "frequency_penalty", "logit_bias", "logprobs",
    "max_tokens", "n", "presence_penalty", "seed", "stop", "stream", "stream_options", "suffix",
    "temperature", "top_p", "user",
))
# fmt: on
_ROLES = ("system", "assistant", "user", "function", "tool", "developer")
_JSON = (b"content-type", b"application/json")
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
_DONE = b"data: [DONE]\n\n"
_FAULTS_HEADER_BYTES = FAULTS_HEADER.encode()
_NO_DELAY = 0.0


class InjectedDisconnect(Exception):  # noqa: N818 - a signal, not an error condition
    """Raised inside the app to make the server drop a stream's connection."""


class _DisconnectLogFilter(logging.Filter):
    """Keep uvicorn from logging our deliberate disconnects as application errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, InjectedDisconnect)


_log_filter = _DisconnectLogFilter()


def install_log_filter() -> None:
    log = logging.getLogger("uvicorn.error")
    if _log_filter not in log.filters:
        log.addFilter(_log_filter)


class BadRequest(Exception):  # noqa: N818 - named after the HTTP status
    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int = 400,
        type_: str = "invalid_request_error",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status
        self.type = type_
        self.headers = headers or []

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


# ------------------------------------------------------------------ validation


def _type_name(value: Any) -> str:
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


def _invalid_type(param: str, expected: str, value: Any) -> BadRequest:
    return BadRequest(
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _missing(param: str) -> BadRequest:
    return BadRequest(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def _opt_int(body: dict[str, Any], name: str, lo: int, hi: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid_type(name, "an integer", value)
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


def _opt_number(body: dict[str, Any], name: str, lo: float, hi: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid_type(name, "a decimal", value)
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


def _opt_bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _invalid_type(name, "a boolean", value)
    return value


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise _missing("model")
    if not isinstance(model, str):
        raise _invalid_type("model", "a string", model)
    if not model:
        raise BadRequest("you must provide a model parameter", param="model")
    return model


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
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
    raise _invalid_type("stop", "a string or an array of strings", stop)


def _include_usage(body: dict[str, Any], stream: bool) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise _invalid_type("stream_options", "an object", options)
    if not stream:
        raise BadRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    value = options.get("include_usage")
    if value is not None and not isinstance(value, bool):
        raise _invalid_type("stream_options.include_usage", "a boolean", value)
    return bool(value)


def _unknown_fields(body: dict[str, Any], known: frozenset[str]) -> None:
    for key in body:
        if key not in known:
            raise BadRequest(f"Unrecognized request argument supplied: {key}")


def _content_text(content: Any, param: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict):
                raise _invalid_type(f"{param}[{i}]", "an object", part)
            if part.get("type") in ("text", "input_text", "refusal"):
                text = part.get("text", part.get("refusal"))
                if not isinstance(text, str):
                    raise _invalid_type(f"{param}[{i}].text", "a string", text)
                parts.append(text)
        return "\n".join(parts)
    raise _invalid_type(param, "one of a string or array of objects", content)


# ------------------------------------------------------------------ requests


@dataclass(slots=True)
class Choice:
    """One answer: its pieces (content tokens or argument fragments) and why it ended."""

    index: int
    pieces: list[str]
    finish_reason: str
    tool_calls: list[tuple[str, str, list[str]]] | None = None  # (id, name, fragments)

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def tokens(self) -> int:
        if self.tool_calls is not None:
            return sum(len(frags) + 1 for _, _, frags in self.tool_calls)
        return len(self.pieces)


@dataclass(slots=True)
class Answer:
    choices: list[Choice]
    prompt_tokens: int
    prompt_text: str
    stream: bool
    include_usage: bool
    model: str
    echo_prompts: list[str] = field(default_factory=list)

    @property
    def completion_tokens(self) -> int:
        return sum(c.tokens for c in self.choices)


def _cut(text: str, stop: tuple[str, ...], max_tokens: int | None) -> tuple[list[str], str]:
    finish = "stop"
    if stop:
        cuts = [i for i in (text.find(s) for s in stop) if i >= 0]
        if cuts:
            text = text[: min(cuts)]
    pieces = tokenize(text)
    if max_tokens is not None and len(pieces) > max_tokens:
        pieces = pieces[:max_tokens]
        finish = "length"
    return pieces, finish


def _variant(temperature: float | None, seed: int | None, default_seed: int) -> tuple[Any, ...]:
    if temperature == 0:
        return ("t0",)
    return (
        "t",
        temperature if temperature is not None else 1.0,
        seed if seed is not None else default_seed,
    )


def _messages(body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """The validated messages, and (role, text) for each."""
    messages = body.get("messages")
    if messages is None:
        raise _missing("messages")
    if not isinstance(messages, list):
        raise _invalid_type("messages", "an array", messages)
    if not messages:
        raise BadRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    texts: list[tuple[str, str]] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise _invalid_type(f"messages[{i}]", "an object", msg)
        role = msg.get("role")
        if role is None:
            raise _missing(f"messages[{i}].role")
        if role not in _ROLES:
            raise BadRequest(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                f"'user', 'function', 'tool', and 'developer'.",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
        if "content" not in msg and role in ("user", "system", "developer", "tool"):
            raise _missing(f"messages[{i}].content")
        texts.append((role, _content_text(msg.get("content"), f"messages[{i}].content")))
    return messages, texts


@lru_cache(maxsize=2048)
def _written(analysis: Analysis, seed: int) -> str:
    """The text for ``analysis`` with templates chosen by ``seed`` (cached)."""
    return write(analysis, Rng(seed))


def parse_chat(body: dict[str, Any], default_seed: int) -> Answer:
    _unknown_fields(body, _CHAT_FIELDS)
    model = _model(body)
    messages, texts = _messages(body)
    stream = _opt_bool(body, "stream")
    include_usage = _include_usage(body, stream)
    n = _opt_int(body, "n", 1, 128) or 1
    max_tokens = _opt_int(body, "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = _opt_int(body, "max_tokens", 1)
    temperature = _opt_number(body, "temperature", 0, 2)
    _opt_number(body, "top_p", 0, 1)
    _opt_number(body, "presence_penalty", -2, 2)
    _opt_number(body, "frequency_penalty", -2, 2)
    seed = _opt_int(body, "seed", -(2**63))
    stop = _stop(body)
    mode, schema, tools, forced = _structured(body)

    prompt_text = "\n".join(text for _, text in texts)
    prompt_tokens = sum(count_tokens(text) + 4 for _, text in texts) + 3
    if tools:
        prompt_tokens += count_tokens(orjson.dumps(tools).decode())
    variant = _variant(temperature, seed, default_seed)
    last_role = texts[-1][0]
    user_text = next((text for role, text in reversed(texts) if role == "user"), texts[-1][1])
    if mode == "json_object":  # a schema given in the prompt, as users of JSON mode do
        schema, user_text = _schema_in_prompt(texts, user_text)
        mode = "json_schema" if schema is not None else mode
    analysis = analyse(user_text)
    choices = []
    for i in range(n):
        seed_i = stable_seed("chat", prompt_text, model, variant, i)
        if last_role in ("tool", "function"):
            text = _tool_result_answer(messages, user_text)
            pieces, finish = _cut(text, stop, max_tokens)
            choices.append(Choice(i, pieces, finish))
        elif tools and (forced is not None or last_role == "user"):
            rng = Rng(seed_i)
            call = _tool_call(tools, forced, analysis, rng, f"{prompt_text}{i}")
            choices.append(_tool_choice(i, call, max_tokens))
        elif mode in ("json_schema", "json_object"):
            rng = Rng(seed_i)
            value = (
                SchemaValues(schema, analysis, rng).value(schema)
                if mode == "json_schema" and schema is not None
                else json_object(analysis, rng)
            )
            pieces, finish = _cut(orjson.dumps(value).decode(), (), max_tokens)
            choices.append(Choice(i, pieces, finish))
        else:
            pieces, finish = _cut(_written(analysis, seed_i), stop, max_tokens)
            choices.append(Choice(i, pieces, finish))
    return Answer(choices, prompt_tokens, prompt_text, stream, include_usage, model)


def _schema_in_prompt(
    texts: list[tuple[str, str]], user_text: str
) -> tuple[dict[str, Any] | None, str]:
    """A JSON Schema written into a message, and the user's text without it."""
    for _, text in reversed(texts):
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start or '"properties"' not in text:
            continue
        try:
            schema = orjson.loads(text[start : end + 1])
        except orjson.JSONDecodeError:
            continue
        if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
            if text == user_text:
                user_text = f"{text[:start]} {text[end + 1 :]}".strip()
            return schema, user_text
    return None, user_text


def _structured(
    body: dict[str, Any],
) -> tuple[str, dict[str, Any] | None, list[dict[str, Any]] | None, str | None]:
    """(mode, schema, tools, forced tool name) from response_format / tools / tool_choice."""
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _invalid_type("tools", "an array", tools)
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise _invalid_type(f"tools[{i}]", "an object", tool)
            function = tool.get("function")
            if not isinstance(function, dict):
                raise _missing(f"tools[{i}].function")
            if not isinstance(function.get("name"), str):
                raise _missing(f"tools[{i}].function.name")
            params = function.get("parameters")
            if params is not None and not isinstance(params, dict):
                raise _invalid_type(f"tools[{i}].function.parameters", "an object", params)
    choice = body.get("tool_choice")
    forced: str | None = None  # "" = any tool, a name = that tool, None = the model decides
    if tools:
        if choice in (None, "auto"):
            pass
        elif choice == "none":
            tools = None
        elif choice in ("required", "any"):
            forced = ""
        elif isinstance(choice, dict):
            name = (
                (choice.get("function") or {}).get("name")
                if isinstance(choice.get("function"), dict)
                else None
            )
            if not isinstance(name, str) or name not in {t["function"]["name"] for t in tools}:
                raise BadRequest(
                    f"Invalid value for 'tool_choice': function {name!r} is not in 'tools'.",
                    param="tool_choice",
                    code="invalid_value",
                )
            forced = name
        else:
            raise BadRequest(
                f"Invalid value: {choice!r}. Supported values are: 'none', 'auto', and 'required'.",
                param="tool_choice",
                code="invalid_value",
            )
        return "tools", None, tools, forced
    fmt = body.get("response_format")
    if fmt is None:
        return "text", None, None, None
    if not isinstance(fmt, dict):
        raise _invalid_type("response_format", "an object", fmt)
    kind = fmt.get("type")
    if kind == "text":
        return "text", None, None, None
    if kind == "json_object":
        return "json_object", None, None, None
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict):
            raise _missing("response_format.json_schema")
        schema = spec.get("schema", {})
        if not isinstance(schema, dict):
            raise _invalid_type("response_format.json_schema.schema", "an object", schema)
        return "json_schema", schema, None, None
    raise BadRequest(
        f"Invalid value: {kind!r}. Supported values are: 'text', 'json_object', and 'json_schema'.",
        param="response_format.type",
        code="invalid_value",
    )


def _tool_call(
    tools: list[dict[str, Any]],
    forced: str | None,
    analysis: Analysis,
    rng: random.Random,
    salt: str,
) -> tuple[str, str, str]:
    """(call id, function name, JSON arguments) for the tool the prompt calls for."""
    if forced:
        tool = next(t for t in tools if t["function"]["name"] == forced)
    else:
        tool = _best_tool(tools, analysis)
    function = tool["function"]
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    args = SchemaValues(schema, analysis, rng).value(schema)
    if not isinstance(args, dict):
        args = {}
    call_id = f"call_{stable_seed('call', salt, function['name']):016x}"
    return call_id, function["name"], orjson.dumps(args).decode()


def _tool_choice(index: int, call: tuple[str, str, str], max_tokens: int | None) -> Choice:
    call_id, name, arguments = call
    fragments, finish = _cut(arguments, (), max_tokens)
    finish = "length" if finish == "length" else "tool_calls"
    return Choice(index, fragments, finish, [(call_id, name, fragments)])


def _best_tool(tools: list[dict[str, Any]], analysis: Analysis) -> dict[str, Any]:
    words = {w.lower() for w in tokenize(analysis.text.lower()) if w.strip().isalnum()}
    words = {w.strip() for w in words}

    def score(tool: dict[str, Any]) -> int:
        function = tool["function"]
        text = f"{function['name'].replace('_', ' ')} {function.get('description') or ''}"
        return sum(1 for w in set(text.lower().split()) if w.strip(".,") in words)

    return max(tools, key=score)  # ties: the first listed


def _tool_result_answer(messages: list[Any], question: str) -> str:
    results: list[tuple[str, str]] = []
    names: dict[str, str] = {}
    for msg in messages:
        for call in msg.get("tool_calls") or ():
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                names[str(call.get("id"))] = str(call["function"].get("name", "tool"))
    for msg in reversed(messages):
        if msg.get("role") not in ("tool", "function"):
            break
        name = msg.get("name") or names.get(str(msg.get("tool_call_id")), "tool")
        content = _content_text(msg.get("content"), "content").strip()
        results.append((str(name), content))
    results.reverse()
    said = "; ".join(f"the {name} tool returned {content}" for name, content in results)
    said = said[:1].upper() + said[1:]
    answer = results[-1][1] if results else ""
    if question and len(answer) < 200:
        return f'{said}. So the answer to "{question.strip()}" is {answer}.'
    return f"{said}."


def parse_completion(body: dict[str, Any], default_seed: int) -> Answer:
    _unknown_fields(body, _COMPLETION_FIELDS)
    model = _model(body)
    prompt = body.get("prompt")
    if prompt is None:
        raise _missing("prompt")
    prompts: list[str]
    if isinstance(prompt, str):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompts = list(prompt)
    elif (
        isinstance(prompt, list)
        and prompt
        and all(isinstance(p, int) and not isinstance(p, bool) for p in prompt)
    ):
        prompts = [" ".join(str(p) for p in prompt)]
    elif (
        isinstance(prompt, list)
        and prompt
        and all(isinstance(p, list) and all(isinstance(x, int) for x in p) for p in prompt)
    ):
        prompts = [" ".join(str(x) for x in p) for p in prompt]
    else:
        raise _invalid_type(
            "prompt", "a string, an array of strings or an array of token arrays", prompt
        )
    stream = _opt_bool(body, "stream")
    include_usage = _include_usage(body, stream)
    n = _opt_int(body, "n", 1, 128) or 1
    _opt_int(body, "best_of", 1, 20)
    _opt_int(body, "logprobs", 0, 5)
    max_tokens = _opt_int(body, "max_tokens", 0)
    if max_tokens is None:
        max_tokens = COMPLETIONS_DEFAULT_MAX_TOKENS
    temperature = _opt_number(body, "temperature", 0, 2)
    _opt_number(body, "top_p", 0, 1)
    _opt_number(body, "presence_penalty", -2, 2)
    _opt_number(body, "frequency_penalty", -2, 2)
    seed = _opt_int(body, "seed", -(2**63))
    echo = _opt_bool(body, "echo")
    stop = _stop(body)
    variant = _variant(temperature, seed, default_seed)
    choices = []
    for p_index, text in enumerate(prompts):
        analysis = analyse(text)
        lead = "" if not text or text[-1].isspace() else "\n\n"
        for j in range(n):
            seed_j = stable_seed("completion", text, model, variant, j)
            pieces, finish = _cut(lead + _written(analysis, seed_j), stop, max_tokens)
            choices.append(Choice(p_index * n + j, pieces, finish))
    answer = Answer(
        choices,
        sum(count_tokens(p) for p in prompts),
        "\n".join(prompts),
        stream,
        include_usage,
        model,
    )
    if echo:
        answer.echo_prompts = [p for p in prompts for _ in range(n)]
    return answer


# ------------------------------------------------------------------ responses


def _usage(answer: Answer, chat: bool) -> dict[str, Any]:
    completion = answer.completion_tokens
    usage: dict[str, Any] = {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": answer.prompt_tokens + completion,
    }
    if chat:
        usage["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": 0}
        usage["completion_tokens_details"] = {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    return usage


def chat_body(answer: Answer, rid: str, created: int) -> bytes:
    choices = []
    for c in answer.choices:
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if c.tool_calls is not None:
            message["tool_calls"] = [
                {
                    "id": cid,
                    "type": "function",
                    "function": {"name": name, "arguments": "".join(frags)},
                }
                for cid, name, frags in c.tool_calls
            ]
        else:
            message["content"] = c.text
        message["annotations"] = []
        choices.append(
            {
                "index": c.index,
                "message": message,
                "logprobs": None,
                "finish_reason": c.finish_reason,
            }
        )
    return orjson.dumps(
        {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": answer.model,
            "choices": choices,
            "usage": _usage(answer, chat=True),
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }
    )


def completion_body(answer: Answer, rid: str, created: int) -> bytes:
    choices = []
    for c in answer.choices:
        text = c.text
        if answer.echo_prompts:
            text = answer.echo_prompts[c.index] + text
        choices.append(
            {"text": text, "index": c.index, "logprobs": None, "finish_reason": c.finish_reason}
        )
    return orjson.dumps(
        {
            "id": rid,
            "object": "text_completion",
            "created": created,
            "model": answer.model,
            "system_fingerprint": FINGERPRINT,
            "choices": choices,
            "usage": _usage(answer, chat=False),
        }
    )


@dataclass(slots=True)
class Events:
    """SSE events of one stream: ``events[:first]`` open it, ``events[tail:]`` close it,
    each event in between is one paced token."""

    events: list[bytes]
    first: int
    tail: int


def chat_events(answer: Answer, rid: str, created: int) -> Events:
    head = (
        b'data: {"id":"' + rid.encode() + b'","object":"chat.completion.chunk","created":'
        + str(created).encode() + b',"model":' + orjson.dumps(answer.model)
        + b',"system_fingerprint":"' + FINGERPRINT.encode() + b'","choices":['
    )  # fmt: skip
    end = b',"logprobs":null,"finish_reason":null}]}\n\n'
    dumps = orjson.dumps
    events: list[bytes] = []
    middle: list[bytes] = []
    for c in answer.choices:
        idx = b'{"index":' + str(c.index).encode()
        if c.tool_calls is None:
            events.append(
                idx.join((head, b',"delta":{"role":"assistant","content":"","refusal":null}' + end))
            )
            pre = head + idx + b',"delta":{"content":'
            suf = b"}" + end
            middle += [pre + dumps(piece) + suf for piece in c.pieces]
            continue
        for k, (cid, name, frags) in enumerate(c.tool_calls):
            call = dumps(
                {
                    "index": k,
                    "id": cid,
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }
            )
            if k == 0:
                events.append(
                    head + idx + b',"delta":{"role":"assistant","content":null,"tool_calls":['
                    + call + b'],"refusal":null}' + end
                )  # fmt: skip
            else:
                middle.append(head + idx + b',"delta":{"tool_calls":[' + call + b"]}" + end)
            pre = head + idx + b',"delta":{"tool_calls":[{"index":' + str(k).encode()
            pre += b',"function":{"arguments":'
            suf = b"}}]}" + end
            middle += [pre + dumps(frag) + suf for frag in frags]
    first = len(events)
    events += middle
    tail = len(events)
    for c in answer.choices:
        events.append(
            head + b'{"index":' + str(c.index).encode() + b',"delta":{},"logprobs":null,'
            b'"finish_reason":"' + c.finish_reason.encode() + b'"}]}\n\n'
        )
    if answer.include_usage:
        events.append(head + b'],"usage":' + dumps(_usage(answer, chat=True)) + b"}\n\n")
    events.append(_DONE)
    return Events(events, first, tail)


def completion_events(answer: Answer, rid: str, created: int) -> Events:
    head = (
        b'data: {"id":"' + rid.encode() + b'","object":"text_completion","created":'
        + str(created).encode() + b',"model":' + orjson.dumps(answer.model)
        + b',"system_fingerprint":"' + FINGERPRINT.encode() + b'","choices":['
    )  # fmt: skip
    dumps = orjson.dumps
    events: list[bytes] = []
    for c in answer.choices:
        suf = b',"index":' + str(c.index).encode() + b',"logprobs":null,"finish_reason":null}]}\n\n'
        pre = head + b'{"text":'
        if answer.echo_prompts:
            events.append(pre + dumps(answer.echo_prompts[c.index]) + suf)
        events += [pre + dumps(piece) + suf for piece in c.pieces]
    tail = len(events)
    for c in answer.choices:
        events.append(
            head + b'{"text":"","index":' + str(c.index).encode() + b',"logprobs":null,'
            b'"finish_reason":"' + c.finish_reason.encode() + b'"}]}\n\n'
        )
    if answer.include_usage:
        events.append(head + b'],"usage":' + dumps(_usage(answer, chat=False)) + b"}\n\n")
    events.append(_DONE)
    return Events(events, 0, tail)


# ------------------------------------------------------------------ faults


@dataclass(slots=True)
class Plan:
    """What happens to one request besides its answer."""

    latency: float = 0.0
    hang: bool = False
    error: int = 0
    disconnect: bool = False
    cut_at: float = 0.5  # fraction of the stream sent before a disconnect
    rng: random.Random | None = None  # for jitter


_CALM = Plan()


def _jittered(base: float, jitter: float, rng: random.Random | None) -> float:
    if base <= 0:
        return 0.0
    if jitter <= 0 or rng is None:
        return base
    return base * (1.0 + jitter * (2.0 * rng.random() - 1.0))


# ------------------------------------------------------------------ the app


class LocalModelApp:
    """The ASGI app. ``settings`` apply to every request unless a request's
    ``X-Chainkit-Faults`` header overrides them."""

    def __init__(self, settings: LocalModelSettings | None = None) -> None:
        self.settings = settings or LocalModelSettings()
        self.stats = Stats()
        self._seen: dict[bytes, int] = {}
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(4).hex()
        self._closing: asyncio.Event | None = None
        self._routes: dict[str, tuple[str, Callable[..., Awaitable[None]]]] = {
            CHAT_PATH: ("POST", self._chat),
            "/chat/completions": ("POST", self._chat),
            COMPLETIONS_PATH: ("POST", self._completions),
            "/completions": ("POST", self._completions),
            "/v1/models": ("GET", self._models),
            "/models": ("GET", self._models),
            "/health": ("GET", self._health),
            "/stats": ("GET", self._stats),
            "/stats/reset": ("POST", self._stats_reset),
        }
        install_log_filter()

    # -- lifecycle hooks used by the background server
    def close(self) -> None:
        """Release hanging requests (called on the server's loop before shutdown)."""
        if self._closing is None:
            self._closing = asyncio.Event()
        self._closing.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        route = self._routes.get(path)
        method = scope["method"]
        if route is None:
            if path.startswith(("/v1/models/", "/models/")) and method == "GET":
                await self._model(send, path.rsplit("/", 1)[1])
                return
            error = BadRequest(f"Invalid URL ({method} {scope['path']})", status=404)
            await _send_error(send, error)
            return
        if route[0] != method:
            error = BadRequest(
                f"Method not allowed: {method} {path} (use {route[0]})",
                status=405,
                headers=[(b"allow", route[0].encode())],
                code="method_not_allowed",
            )
            await _send_error(send, error)
            return
        await route[1](scope, receive, send)

    # -- small endpoints
    async def _models(self, scope: Scope, receive: Receive, send: Send) -> None:
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "chainkit"}
            for m in MODELS
        ]
        await _send_json(send, 200, orjson.dumps({"object": "list", "data": data}))

    async def _model(self, send: Send, model: str) -> None:
        body = {"id": model, "object": "model", "created": 1700000000, "owned_by": "chainkit"}
        await _send_json(send, 200, orjson.dumps(body))

    async def _health(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _send_json(send, 200, b'{"status":"ok"}')

    async def _stats(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        with_log = any(part in ("log", "log=1", "log=true", "log=yes") for part in query.split("&"))
        await _send_json(send, 200, orjson.dumps(self.stats.snapshot(log=with_log)))

    async def _stats_reset(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.stats.reset()
        self._seen.clear()
        await _send_json(send, 200, orjson.dumps(self.stats.snapshot()))

    # -- model endpoints
    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._model_request(scope, receive, send, CHAT_PATH, parse_chat)

    async def _completions(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._model_request(scope, receive, send, COMPLETIONS_PATH, parse_completion)

    async def _model_request(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        endpoint: str,
        parse: Callable[[dict[str, Any], int], Answer],
    ) -> None:
        rec = _Record(time.time())
        client = scope.get("client")
        client = (client[0], client[1]) if client else None
        self.stats.begin(client)
        try:
            await self._answer(
                rec, scope=scope, receive=receive, send=send, endpoint=endpoint, parse=parse
            )
        except InjectedDisconnect:
            raise
        except Exception as exc:
            logger.exception("local model: unexpected error on %s", endpoint)
            rec.status, rec.outcome = 500, "server_error"
            error = BadRequest(
                f"The local model failed on this request: {type(exc).__name__}: {exc}",
                status=500,
                type_="server_error",
            )
            await _send_error(send, error)
        finally:
            self.stats.end(
                t_start=rec.t_start,
                endpoint=endpoint,
                status=rec.status,
                outcome=rec.outcome,
                stream=rec.stream,
                digest=rec.digest,
                prompt=rec.prompt,
                prompt_tokens=rec.prompt_tokens,
                completion_tokens=rec.completion_tokens,
                client=client,
            )

    async def _answer(
        self,
        rec: _Record,
        *,
        scope: Scope,
        receive: Receive,
        send: Send,
        endpoint: str,
        parse: Callable[[dict[str, Any], int], Answer],
    ) -> None:
        try:
            settings, length = self._request_settings(scope)
            body = await _read_body(receive, settings.max_body_bytes, length)
            answer = parse(_json_object(body), settings.seed)
        except BadRequest as exc:
            rec.status, rec.outcome = exc.status, "bad_request"
            await _send_error(send, exc)
            return
        except _ClientGone:
            rec.status, rec.outcome = 499, "client_gone"
            return
        rec.stream = answer.stream
        rec.prompt = answer.prompt_text
        rec.digest = hashlib.sha256(answer.prompt_text.encode()).hexdigest()[:16]
        rec.prompt_tokens = answer.prompt_tokens
        plan = self._plan(settings, body) if settings.has_faults or settings.has_delays else _CALM
        if plan.hang:
            rec.outcome = "hang"
            rec.status = await self._hang(receive)
            if rec.status == 503:  # the server is stopping: release the client
                error = BadRequest(
                    "The local model is shutting down; the request was never answered "
                    "(hang fault).",
                    status=503,
                    type_="server_error",
                    code="service_unavailable",
                )
                await _send_error(send, error)
            return
        if plan.latency > 0:
            await asyncio.sleep(plan.latency)
        if plan.error:
            rec.status, rec.outcome = plan.error, "error"
            await _send_error(send, _fault_error(plan.error, settings))
            return
        chat = endpoint == CHAT_PATH
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{self._id_prefix}{next(self._ids):08x}"
        created = int(rec.t_start)
        if answer.stream:
            events = (chat_events if chat else completion_events)(answer, rid, created)
            rec.outcome = "completed"
            rec.completion_tokens = answer.completion_tokens
            await self._stream(
                rec, send=send, receive=receive, ev=events, settings=settings, plan=plan
            )
            return
        rec.completion_tokens = completion = answer.completion_tokens
        delay = settings.ttft + settings.token_delay * completion
        if delay > 0:
            await asyncio.sleep(_jittered(delay, settings.jitter, plan.rng))
        await _send_json(send, 200, (chat_body if chat else completion_body)(answer, rid, created))

    def _request_settings(self, scope: Scope) -> tuple[LocalModelSettings, int | None]:
        settings = self.settings
        length: int | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise BadRequest("Invalid Content-Length header") from None
            elif name == _FAULTS_HEADER_BYTES:
                try:
                    changes = parse_overrides(value.decode("latin-1"))
                    settings = settings.replace(**changes) if changes else settings
                except ConfigError as exc:
                    raise BadRequest(str(exc), param=FAULTS_HEADER, code="invalid_header") from None
        return settings, length

    def _plan(self, settings: LocalModelSettings, body: bytes) -> Plan:
        key = hashlib.blake2b(body, digest_size=12).digest()
        seen = self._seen.get(key, 0) + 1
        if len(self._seen) > 1_000_000:
            self._seen.clear()
        self._seen[key] = seen
        rng = Rng(stable_seed(settings.seed, key.hex(), seen))
        dist = settings.latency_distribution
        plan = Plan(rng=rng)
        plan.latency = dist.sample(rng) if dist else 0.0
        hang, error, disconnect = rng.random(), rng.random(), rng.random()
        status = settings.error_statuses[rng.randrange(len(settings.error_statuses))]
        plan.cut_at = rng.random()
        plan.hang = hang < settings.hang_rate
        plan.error = status if error < settings.error_rate else 0
        plan.disconnect = disconnect < settings.disconnect_rate
        return plan

    async def _hang(self, receive: Receive) -> int:
        """Never answer: wait until the client goes away (499) or the server closes (503)."""
        if self._closing is None:
            self._closing = asyncio.Event()
        gone = asyncio.ensure_future(_wait_disconnect(receive))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait((gone, closing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            closing.cancel()
        return 499 if gone.done() and not gone.cancelled() else 503

    async def _stream(
        self,
        rec: _Record,
        *,
        send: Send,
        receive: Receive,
        ev: Events,
        settings: LocalModelSettings,
        plan: Plan,
    ) -> None:
        """Send a stream, paced when delays are set; note in ``rec`` how it ended."""
        events = ev.events
        n_tokens = ev.tail - ev.first
        cut = -1
        if plan.disconnect:
            cut = ev.first + (min(n_tokens - 1, int(plan.cut_at * n_tokens)) if n_tokens > 1 else 0)
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        if not (settings.ttft > 0 or settings.token_delay > 0):
            if cut >= 0:
                rec.outcome, rec.completion_tokens = "cut_fault", cut - ev.first
                body = b"".join(events[:cut])
                await send({"type": "http.response.body", "body": body, "more_body": True})
                raise InjectedDisconnect
            body = b"".join(events)
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        watcher = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            if ev.first:
                body = b"".join(events[: ev.first])
                await send({"type": "http.response.body", "body": body, "more_body": True})
            jitter, rng = settings.jitter, plan.rng
            for i in range(ev.first, ev.tail):
                delay = settings.ttft if i == ev.first else settings.token_delay
                if delay > 0:
                    await asyncio.sleep(_jittered(delay, jitter, rng))
                if watcher.done():
                    rec.outcome, rec.completion_tokens = "cut_client", i - ev.first
                    return
                if i == cut:
                    rec.outcome, rec.completion_tokens = "cut_fault", i - ev.first
                    raise InjectedDisconnect
                last = i + 1 == ev.tail
                body = b"".join(events[i:]) if last else events[i]
                await send({"type": "http.response.body", "body": body, "more_body": not last})
            if n_tokens == 0:
                if settings.ttft > 0:
                    await asyncio.sleep(_jittered(settings.ttft, jitter, rng))
                body = b"".join(events[ev.tail :])
                await send({"type": "http.response.body", "body": body, "more_body": False})
        finally:
            watcher.cancel()


@dataclass(slots=True)
class _Record:
    """What the request log and counters learn about one request."""

    t_start: float
    status: int = 200
    outcome: str = "ok"
    stream: bool = False
    prompt: str = ""
    digest: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _ClientGone(Exception):  # noqa: N818
    pass


def _json_object(body: bytes) -> dict[str, Any]:
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
            f"{_type_name(payload)} instead.",
            code="invalid_type",
        )
    return payload


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _read_body(receive: Receive, limit: int, length: int | None) -> bytes:
    if length is not None and length > limit:
        raise _too_large(length, limit)
    message = await receive()
    if message["type"] == "http.disconnect":
        raise _ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise _too_large(len(body), limit)
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _too_large(size: int, limit: int) -> BadRequest:
    return BadRequest(
        f"Request body too large: {size} bytes; the limit is {limit} bytes "
        f"(LocalModelSettings.max_body_bytes).",
        status=413,
        code="request_too_large",
    )


def _fault_error(status: int, settings: LocalModelSettings) -> BadRequest:
    note = "(injected by the chainkit local model's fault settings)"
    if status == 429:
        retry = settings.retry_after
        return BadRequest(
            f"Rate limit reached for requests {note}. Please try again in {retry:g}s.",
            status=429,
            type_="requests",
            code="rate_limit_exceeded",
            headers=[
                (b"retry-after", f"{retry:g}".encode()),
                (b"retry-after-ms", str(round(retry * 1000)).encode()),
                (b"x-ratelimit-remaining-requests", b"0"),
            ],
        )
    if status == 503:
        return BadRequest(
            f"The server is overloaded or not ready yet {note}.",
            status=503,
            type_="server_error",
            code="service_unavailable",
        )
    if status >= 500:
        return BadRequest(
            f"The server had an error while processing your request {note}.",
            status=status,
            type_="server_error",
        )
    return BadRequest(f"Request failed with status {status} {note}.", status=status)


async def _send_json(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    head = [_JSON, (b"content-length", str(len(body)).encode())]
    if headers:
        head += headers
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_error(send: Send, error: BadRequest) -> None:
    await _send_json(send, error.status, error.body(), error.headers)


def create_app(settings: LocalModelSettings | None = None) -> LocalModelApp:
    """The local model as an ASGI app (serve it with any ASGI server)."""
    return LocalModelApp(settings)
