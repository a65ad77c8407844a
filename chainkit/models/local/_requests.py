"""Reading OpenAI chat and completions requests into answers (fields: ``_fields``).

A request body becomes an :class:`Answer`: its choices as token pieces (text, JSON
or tool-call argument fragments) with their finish reasons, and the token counts.
Anything malformed raises :class:`BadRequest`, which renders as OpenAI's error JSON.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson

from chainkit.models.local._analysis import STOP_WORDS, Analysis, analyse
from chainkit.models.local._chat_options import (
    ChatOptions,
    check_history,
    media_note,
    read_options,
)
from chainkit.models.local._errors import BadRequest, json_body
from chainkit.models.local._fields import (
    check_known_fields,
    content_text,
    invalid_type,
    missing_param,
    opt_bool,
    opt_int,
    opt_number,
    read_include_usage,
    read_max_tokens,
    read_model,
    read_stop,
)
from chainkit.models.local._instructed import write
from chainkit.models.local._schema import SchemaValues, json_object
from chainkit.models.local._tokens import Rng, count_tokens, stable_seed, tokenize

__all__ = [
    "COMPLETIONS_DEFAULT_MAX_TOKENS",
    "Answer",
    "BadRequest",
    "Choice",
    "cut",
    "json_body",
    "parse_chat",
    "parse_completion",
]

COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # as OpenAI's legacy completions endpoint
MAX_CHOICES = 128  # n x prompts per request

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
    options: ChatOptions = field(default_factory=ChatOptions)
    logprobs: int | None = None  # completions: how many alternatives per token
    stop: tuple[str, ...] = ()
    max_tokens: int | None = None

    @property
    def completion_tokens(self) -> int:
        return sum(c.tokens for c in self.choices)


def cut(text: str, stop: tuple[str, ...], max_tokens: int | None) -> tuple[list[str], str]:
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
        raise missing_param("messages")
    if not isinstance(messages, list):
        raise invalid_type("messages", "an array", messages)
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
            raise invalid_type(f"messages[{i}]", "an object", msg)
        role = msg.get("role")
        if role is None:
            raise missing_param(f"messages[{i}].role")
        if role not in _ROLES:
            raise BadRequest(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                f"'user', 'function', 'tool', and 'developer'.",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
        if "content" not in msg and role in ("user", "system", "developer", "tool"):
            raise missing_param(f"messages[{i}].content")
        texts.append((role, content_text(msg.get("content"), f"messages[{i}].content")))
    return messages, texts


@lru_cache(maxsize=2048)
def _written(analysis: Analysis, seed: int) -> str:
    """The text for ``analysis`` with templates chosen by ``seed`` (cached)."""
    return write(analysis, Rng(seed))


def _sampling(
    body: dict[str, Any],
) -> tuple[int, int | None, float | None, int | None, tuple[str, ...]]:
    """(n, max tokens, temperature, seed, stop) of a chat request, validated."""
    n = opt_int(body, "n", 1, 128) or 1
    max_tokens = read_max_tokens(body, "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = read_max_tokens(body, "max_tokens", 1)
    temperature = opt_number(body, "temperature", 0, 2)
    opt_number(body, "top_p", 0, 1)
    opt_number(body, "presence_penalty", -2, 2)
    opt_number(body, "frequency_penalty", -2, 2)
    seed = opt_int(body, "seed", -(2**63))
    return n, max_tokens, temperature, seed, read_stop(body)


def parse_chat(body: dict[str, Any], default_seed: int) -> Answer:
    check_known_fields(body, _CHAT_FIELDS)
    model = read_model(body)
    messages, texts = _messages(body)
    stream = opt_bool(body, "stream")
    include_usage = read_include_usage(body, stream)
    n, max_tokens, temperature, seed, stop = _sampling(body)
    mode, schema, tools, forced = _structured(body)
    options = read_options(body, model)
    check_history(messages)

    prompt_text = "\n".join(text for _, text in texts)
    prompt_tokens = sum(count_tokens(text) + 4 for _, text in texts) + 3
    if tools:
        prompt_tokens += count_tokens(orjson.dumps(tools).decode())
    variant = _variant(temperature, seed, default_seed)
    last_role = texts[-1][0]
    user_at = next((i for i in range(len(texts) - 1, -1, -1) if texts[i][0] == "user"), None)
    user_text = texts[user_at][1] if user_at is not None else texts[-1][1]
    if user_at is not None:
        options.media = media_note(messages[user_at].get("content"), f"messages[{user_at}].content")
    if mode == "json_object":  # a schema given in the prompt, as users of JSON mode do
        schema, user_text = _schema_in_prompt(texts, user_text)
        mode = "json_schema" if schema is not None else mode
    analysis = analyse(user_text)
    structured = mode in ("json_schema", "json_object")
    after_tool = last_role in ("tool", "function")
    # with a response format too, a tool is called only when the prompt names what it does
    call_tool = bool(tools) and (
        forced is not None
        or (not after_tool and (not structured or _tool_score(tools or [], analysis) > 0))
    )
    choices = []
    for i in range(n):
        seed_i = stable_seed("chat", prompt_text, model, variant, i)
        if call_tool and tools:
            rng = Rng(seed_i)
            call = _tool_call(tools, forced, analysis, rng, f"{prompt_text}{i}")
            choices.append(_tool_choice(i, call, max_tokens))
        elif structured:
            rng = Rng(seed_i)
            value = (
                SchemaValues(schema, analysis, rng).value(schema)
                if mode == "json_schema" and schema is not None
                else json_object(analysis, rng)
            )
            pieces, finish = cut(orjson.dumps(value).decode(), (), max_tokens)
            choices.append(Choice(i, pieces, finish))
        elif after_tool:
            text = _tool_result_answer(messages, user_text)
            pieces, finish = cut(text, stop, max_tokens)
            choices.append(Choice(i, pieces, finish))
        else:
            text = options.media + _written(analysis, seed_i)
            pieces, finish = cut(text, stop, max_tokens)
            choices.append(Choice(i, pieces, finish))
    answer = Answer(choices, prompt_tokens, prompt_text, stream, include_usage, model)
    answer.options, answer.stop, answer.max_tokens = options, stop, max_tokens
    return answer


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
            raise invalid_type("tools", "an array", tools)
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise invalid_type(f"tools[{i}]", "an object", tool)
            function = tool.get("function")
            if not isinstance(function, dict):
                raise missing_param(f"tools[{i}].function")
            if not isinstance(function.get("name"), str):
                raise missing_param(f"tools[{i}].function.name")
            params = function.get("parameters")
            if params is not None and not isinstance(params, dict):
                raise invalid_type(f"tools[{i}].function.parameters", "an object", params)
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
    fmt = body.get("response_format")
    if fmt is None:
        return "text", None, tools, forced
    if not isinstance(fmt, dict):
        raise invalid_type("response_format", "an object", fmt)
    kind = fmt.get("type")
    if kind == "text":
        return "text", None, tools, forced
    if kind == "json_object":
        return "json_object", None, tools, forced
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict):
            raise missing_param("response_format.json_schema")
        schema = spec.get("schema", {})
        if not isinstance(schema, dict):
            raise invalid_type("response_format.json_schema.schema", "an object", schema)
        return "json_schema", schema, tools, forced
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
    param = f"tools[{tools.index(tool)}].function.parameters"
    args = SchemaValues(schema, analysis, rng, param).value(schema)
    if not isinstance(args, dict):
        args = {}
    call_id = f"call_{stable_seed('call', salt, function['name']):016x}"
    return call_id, function["name"], orjson.dumps(args).decode()


def _tool_choice(index: int, call: tuple[str, str, str], max_tokens: int | None) -> Choice:
    call_id, name, arguments = call
    fragments, finish = cut(arguments, (), max_tokens)
    finish = "length" if finish == "length" else "tool_calls"
    return Choice(index, fragments, finish, [(call_id, name, fragments)])


def _scorer(analysis: Analysis) -> Callable[[dict[str, Any]], int]:
    """How many of the prompt's words a tool's name and description share."""
    words = {w.lower() for w in tokenize(analysis.text.lower()) if w.strip().isalnum()}
    words = {w.strip() for w in words} - STOP_WORDS

    def score(tool: dict[str, Any]) -> int:
        function = tool["function"]
        text = f"{function['name'].replace('_', ' ')} {function.get('description') or ''}"
        return sum(1 for w in set(text.lower().split()) if w.strip(".,") in words)

    return score


def _best_tool(tools: list[dict[str, Any]], analysis: Analysis) -> dict[str, Any]:
    return max(tools, key=_scorer(analysis))  # ties: the first listed


def _tool_score(tools: list[dict[str, Any]], analysis: Analysis) -> int:
    return max(map(_scorer(analysis), tools))


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
        content = content_text(msg.get("content"), "content").strip()
        results.append((str(name), content))
    results.reverse()
    said = "; ".join(f"the {name} tool returned {content}" for name, content in results)
    said = said[:1].upper() + said[1:]
    answer = results[-1][1] if results else ""
    if question and len(answer) < 200:
        return f'{said}. So the answer to "{question.strip()}" is {answer}.'
    return f"{said}."


def parse_completion(body: dict[str, Any], default_seed: int) -> Answer:
    check_known_fields(body, _COMPLETION_FIELDS)
    model = read_model(body)
    prompt = body.get("prompt")
    if prompt is None:
        raise missing_param("prompt")
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
        raise invalid_type(
            "prompt", "a string, an array of strings or an array of token arrays", prompt
        )
    stream = opt_bool(body, "stream")
    include_usage = read_include_usage(body, stream)
    n = opt_int(body, "n", 1, 128) or 1
    opt_int(body, "best_of", 1, 20)
    logprobs = opt_int(body, "logprobs", 0, 5)
    max_tokens = read_max_tokens(body, "max_tokens", 0)
    if max_tokens is None:
        max_tokens = COMPLETIONS_DEFAULT_MAX_TOKENS
    if n * len(prompts) > MAX_CHOICES:
        raise BadRequest(
            f"Invalid 'n': {n} completions for each of {len(prompts)} prompts make "
            f"{n * len(prompts)} choices; the local model writes at most {MAX_CHOICES} per "
            f"request. Send fewer prompts per request or a smaller n.",
            param="n",
            code="invalid_value",
        )
    temperature = opt_number(body, "temperature", 0, 2)
    opt_number(body, "top_p", 0, 1)
    opt_number(body, "presence_penalty", -2, 2)
    opt_number(body, "frequency_penalty", -2, 2)
    seed = opt_int(body, "seed", -(2**63))
    echo = opt_bool(body, "echo")
    stop = read_stop(body)
    variant = _variant(temperature, seed, default_seed)
    choices = []
    for p_index, text in enumerate(prompts):
        analysis = analyse(text)
        lead = "" if not text or text[-1].isspace() else "\n\n"
        for j in range(n):
            seed_j = stable_seed("completion", text, model, variant, j)
            pieces, finish = cut(lead + _written(analysis, seed_j), stop, max_tokens)
            choices.append(Choice(p_index * n + j, pieces, finish))
    answer = Answer(
        choices,
        sum(count_tokens(p) for p in prompts),
        "\n".join(prompts),
        stream,
        include_usage,
        model,
    )
    answer.logprobs, answer.stop, answer.max_tokens = logprobs, stop, max_tokens
    if echo:
        answer.echo_prompts = [p for p in prompts for _ in range(n)]
    return answer
