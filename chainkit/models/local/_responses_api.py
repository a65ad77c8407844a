"""The local model's Responses API: ``POST /v1/responses`` and stored responses.

:class:`ResponsesAPI` turns a parsed request body into a response object (the JSON
OpenAI returns) or its SSE events (``response.created`` ... ``response.completed``,
each with its ``sequence_number``), writing the answer with the same generator as
Chat Completions (:func:`parse_chat`). Responses are kept in memory, bounded, so
``previous_response_id`` continues a conversation and ``GET``/``DELETE
/v1/responses/{id}`` work. Plain functions of the body: the HTTP app only routes.
"""

from __future__ import annotations

import base64
import itertools
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from chainkit.models.local._analysis import analyse
from chainkit.models.local._chat import model_request, scripted_answer
from chainkit.models.local._chat_options import logprob_entry
from chainkit.models.local._errors import BadRequest
from chainkit.models.local._requests import Answer, Choice, parse_chat
from chainkit.models.local._responses import Events
from chainkit.models.local._responses_events import Output, response_events
from chainkit.models.local._responses_input import ResponsesRequest, read_responses_request
from chainkit.models.local._responses_items import input_items, page
from chainkit.models.local._scripted import REPLY_HEADER
from chainkit.models.local._serving import LocalModel, json_response
from chainkit.models.local._tokens import count_tokens, tokenize

__all__ = ["RESPONSES_PATH", "ResponseResult", "ResponseStore", "ResponsesAPI", "add_routes"]

_ASKED = {
    "summary": "a summary",
    "haiku": "a haiku",
    "verse": "a verse",
    "story": "a story",
    "outline": "an outline",
    "joke": "a joke",
    "fact": "a fact",
    "list": "a list",
    "explain": "an explanation",
    "math": "a calculation",
    "greeting": "a greeting",
}
_EFFORT_FACTOR = {"minimal": 1, "low": 2, "medium": 4, "high": 8, "xhigh": 12}


@dataclass(slots=True)
class _Stored:
    response: dict[str, Any]
    conversation: list[dict[str, Any]]  # as chat messages, for previous_response_id
    items: list[dict[str, Any]]  # the input items, for GET .../input_items
    chars: int


class ResponseStore:
    """Stored responses and their conversations, oldest dropped first beyond the bounds."""

    def __init__(self, max_items: int = 512, max_chars: int = 32_000_000) -> None:
        self.max_items = max_items
        self.max_chars = max_chars
        self._stored: OrderedDict[str, _Stored] = OrderedDict()
        self._chars = 0

    def __len__(self) -> int:
        return len(self._stored)

    def put(
        self,
        response: dict[str, Any],
        conversation: list[dict[str, Any]],
        items: list[dict[str, Any]],
        chars: int,
    ) -> None:
        self._stored[response["id"]] = _Stored(response, conversation, items, chars)
        self._chars += chars
        while self._stored and (len(self._stored) > self.max_items or self._chars > self.max_chars):
            _, dropped = self._stored.popitem(last=False)
            self._chars -= dropped.chars

    def response(self, rid: str) -> dict[str, Any] | None:
        stored = self._stored.get(rid)
        return stored.response if stored else None

    def conversation(self, rid: str) -> list[dict[str, Any]] | None:
        stored = self._stored.get(rid)
        return stored.conversation if stored else None

    def items(self, rid: str) -> list[dict[str, Any]] | None:
        stored = self._stored.get(rid)
        return stored.items if stored else None

    def delete(self, rid: str) -> bool:
        stored = self._stored.pop(rid, None)
        if stored is None:
            return False
        self._chars -= stored.chars
        return True


@dataclass(slots=True)
class ResponseResult:
    """A created response: the answer behind it (for the app's stats) and the object."""

    answer: Answer
    response: dict[str, Any]
    outputs: list[Output]
    stream: bool

    def body(self) -> bytes:
        return orjson.dumps(self.response)

    def events(self) -> Events:
        """The SSE stream: events[:first] open it, each event up to tail is one paced step."""
        return response_events(self.response, self.outputs)


class ResponsesAPI:
    """``POST /v1/responses`` and ``GET``/``DELETE /v1/responses/{id}`` as functions."""

    def __init__(self, store: ResponseStore | None = None) -> None:
        self.store = store if store is not None else ResponseStore()
        self._prefix = os.urandom(6).hex()
        self._ids = itertools.count(1)

    def create(
        self,
        body: dict[str, Any],
        default_seed: int,
        script: Callable[[Answer], Answer] | None = None,
    ) -> ResponseResult:
        """Answer a request body (raises :class:`BadRequest` for a 4xx); ``script`` may
        replace the written answer (a test's scripted reply)."""
        previous_id = body.get("previous_response_id")
        previous = None
        if isinstance(previous_id, str):
            previous = self.store.conversation(previous_id)
            if previous is None:
                raise BadRequest(
                    f"Previous response with id '{previous_id}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
        request = read_responses_request(body, previous)
        try:
            answer = parse_chat(request.chat, default_seed)
        except BadRequest as exc:
            raise _in_responses_terms(exc) from None
        if script is not None:
            answer = script(answer)
        suffix = f"{self._prefix}{next(self._ids):010x}"
        outputs = _outputs(request, answer.choices[0], suffix)
        reasoning_tokens = _reasoning_tokens(request, outputs, answer)
        response = _response(request, answer, outputs, suffix, reasoning_tokens)
        if request.store:
            conversation = [*request.history, *_as_messages(outputs)]
            items = input_items(body.get("input"), suffix)
            chars = len(answer.prompt_text) + sum(len(o.item.get("arguments", "")) for o in outputs)
            chars += sum(len(p) for o in outputs for p in o.pieces) + len(orjson.dumps(items))
            self.store.put(response, conversation, items, chars)
        return ResponseResult(answer, response, outputs, request.stream)

    def retrieve(self, rid: str) -> bytes:
        response = self.store.response(rid)
        if response is None:
            raise _not_found(rid)
        return orjson.dumps(response)

    def input_items(self, rid: str, query: dict[str, str]) -> bytes:
        """A page of the stored response's input items (``order``, ``after``, ``limit``)."""
        items = self.store.items(rid)
        if items is None:
            raise _not_found(rid)
        return orjson.dumps(page(items, query))

    def delete(self, rid: str) -> bytes:
        if not self.store.delete(rid):
            raise _not_found(rid)
        return orjson.dumps({"id": rid, "object": "response", "deleted": True})


_CHAT_TERMS = (
    ("response_format.json_schema.schema", "text.format.schema"),
    ("response_format", "text.format"),
    ("max_completion_tokens", "max_output_tokens"),
)


def _in_responses_terms(error: BadRequest) -> BadRequest:
    """A Chat Completions error from the shared writer, naming the Responses parameters."""
    message, param = error.message, error.param
    for chat, responses in _CHAT_TERMS:
        message = message.replace(chat, responses)
        param = param.replace(chat, responses) if param else param
    error.message, error.param = message, param
    error.args = (message,)
    return error


def _not_found(rid: str) -> BadRequest:
    return BadRequest(f"Response with id '{rid}' not found.", param="response_id", status=404)


# ------------------------------------------------------------------ the response object


def _outputs(request: ResponsesRequest, choice: Choice, suffix: str) -> list[Output]:
    outputs: list[Output] = []
    status = "incomplete" if choice.finish_reason == "length" else "completed"
    if request.reasoning is not None:
        summary = _summary(request, choice) if request.reasoning["summary"] else ""
        item: dict[str, Any] = {
            "id": f"rs_{suffix}",
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": summary}] if summary else [],
        }
        if request.include_encrypted_reasoning:
            plain = summary or _summary(request, choice)
            item["encrypted_content"] = base64.b64encode(plain.encode()).decode()
        outputs.append(Output(item, tokenize(summary)))
    if choice.tool_calls is not None:
        for k, (call_id, name, fragments) in enumerate(choice.tool_calls):
            item = {
                "id": f"fc_{suffix}{k:02d}",
                "type": "function_call",
                "status": status,
                "call_id": call_id,
                "name": name,
                "arguments": "".join(fragments),
            }
            outputs.append(Output(item, fragments))
        return outputs
    text = choice.text
    top = request.logprobs
    logprobs = [] if top is None else [logprob_entry(p, top) for p in choice.pieces]
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs}
    item = {
        "id": f"msg_{suffix}",
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [part],
    }
    outputs.append(Output(item, choice.pieces))
    return outputs


def _summary(request: ResponsesRequest, choice: Choice) -> str:
    """A short reasoning summary that says what the answer will do."""
    messages = request.chat["messages"]
    user = next((m for m in reversed(messages) if m["role"] == "user"), messages[-1])
    text = user["content"] if isinstance(user["content"], str) else ""
    if not text and isinstance(user["content"], list):
        text = " ".join(p.get("text", "") for p in user["content"] if isinstance(p, dict))
    analysis = analyse(text)
    if messages[-1]["role"] == "tool":
        return (
            "**Reading the tool result**\n\nThe tool answered; I will give its result "
            f"back as the answer about {analysis.topic}."
        )
    if choice.tool_calls:
        name = choice.tool_calls[0][1]
        return (
            f"**Choosing a tool**\n\nThe request about {analysis.topic} needs the `{name}` "
            "tool; I will call it with arguments taken from the request."
        )
    if "response_format" in request.chat:
        return (
            "**Filling the schema**\n\nI will answer with a JSON object that follows the "
            f"requested format, with values taken from the request about {analysis.topic}."
        )
    asked = _ASKED.get(analysis.kind, "an answer")
    return (
        f"**Planning {asked}**\n\nThe user asks for {asked} about {analysis.topic}; "
        "I will keep it to the point and in the form asked for."
    )


def _reasoning_tokens(request: ResponsesRequest, outputs: list[Output], answer: Answer) -> int:
    if request.reasoning is None:
        return 0
    item = outputs[0].item
    text = item["summary"][0]["text"] if item["summary"] else "x" * 40
    tokens = count_tokens(text) * _EFFORT_FACTOR[request.reasoning["effort"]]
    if request.max_output_tokens is not None:
        tokens = min(tokens, max(0, request.max_output_tokens - answer.completion_tokens))
    return tokens


def _response(
    request: ResponsesRequest,
    answer: Answer,
    outputs: list[Output],
    suffix: str,
    reasoning_tokens: int,
) -> dict[str, Any]:
    incomplete = any(o.item.get("status") == "incomplete" for o in outputs)
    now = time.time()
    output_tokens = answer.completion_tokens + reasoning_tokens
    return {
        "id": f"resp_{suffix}",
        "object": "response",
        "created_at": int(now),
        "status": "incomplete" if incomplete else "completed",
        "background": False,
        "completed_at": None if incomplete else int(now),
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "max_tool_calls": None,
        "model": request.model,
        "output": [o.item for o in outputs],
        "parallel_tool_calls": request.parallel_tool_calls,
        "previous_response_id": request.previous_response_id,
        "prompt_cache_key": request.echo.get("prompt_cache_key"),
        "reasoning": request.reasoning or {"effort": None, "summary": None},
        "safety_identifier": None,
        "service_tier": request.service_tier,
        "store": request.store,
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "text": request.text,
        "tool_choice": request.tool_choice,
        "tools": request.tools,
        "top_logprobs": request.logprobs or 0,
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "truncation": request.echo["truncation"],
        "usage": {
            "input_tokens": answer.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": answer.prompt_tokens + output_tokens,
        },
        "user": request.echo.get("user"),
        "metadata": request.echo["metadata"],
    }


def _as_messages(outputs: list[Output]) -> list[dict[str, Any]]:
    """The output items as chat messages, for the stored conversation."""
    calls = [
        {
            "id": o.item["call_id"],
            "type": "function",
            "function": {"name": o.item["name"], "arguments": o.item["arguments"]},
        }
        for o in outputs
        if o.item["type"] == "function_call"
    ]
    if calls:
        return [{"role": "assistant", "content": None, "tool_calls": calls}]
    text = "".join(o.item["content"][0]["text"] for o in outputs if o.item["type"] == "message")
    return [{"role": "assistant", "content": text}]


RESPONSES_PATH = "/v1/responses"
RESPONSES = web.AppKey("chainkit_local_responses", ResponsesAPI)


def add_routes(app: web.Application) -> None:
    """Serve ``POST /v1/responses``, ``GET``/``DELETE /v1/responses/{id}`` and ``GET
    /v1/responses/{id}/input_items`` (also without the ``/v1`` prefix). Creating one takes
    the server's faults, delays and scripted replies and is counted in its stats, as chat
    completions are."""
    app[RESPONSES] = ResponsesAPI()
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/responses", _create)
        app.router.add_get(f"{prefix}/responses/{{rid}}", _retrieve)
        app.router.add_get(f"{prefix}/responses/{{rid}}/input_items", _input_items)
        app.router.add_delete(f"{prefix}/responses/{{rid}}", _delete)


async def _create(request: web.Request) -> web.StreamResponse:
    api = request.app[RESPONSES]
    header = request.headers.get(REPLY_HEADER)

    def make(payload: dict[str, Any], seed: int, model: LocalModel) -> ResponseResult:
        def script(answer: Answer) -> Answer:  # a test's scripted reply, if any
            return scripted_answer(answer, payload, model, header)

        return api.create(payload, seed, script)

    return await model_request(request, RESPONSES_PATH, make)


async def _retrieve(request: web.Request) -> web.Response:
    return json_response(request.app[RESPONSES].retrieve(request.match_info["rid"]))


async def _input_items(request: web.Request) -> web.Response:
    api = request.app[RESPONSES]
    return json_response(api.input_items(request.match_info["rid"], dict(request.query)))


async def _delete(request: web.Request) -> web.Response:
    return json_response(request.app[RESPONSES].delete(request.match_info["rid"]))
