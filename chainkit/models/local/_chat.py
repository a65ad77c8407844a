"""``POST /v1/chat/completions`` and ``POST /v1/completions``: answers, streams, faults.

A request becomes an :class:`~chainkit.models.local._requests.Answer` (validated,
written), then goes out as one JSON body or as SSE events, paced by the delay
settings and cut or failed by the fault settings. When nothing paces a stream
the whole event sequence is sent in one body (clients parse SSE events however
the bytes are split). Other endpoints that write answers (responses, embeddings)
go through the same :func:`model_request` with their own :class:`Reply`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from chainkit.models.local._errors import BadRequest
from chainkit.models.local._requests import Answer, parse_chat, parse_completion
from chainkit.models.local._responses import (
    Events,
    chat_body,
    chat_events,
    completion_body,
    completion_events,
)
from chainkit.models.local._scripted import REPLY_HEADER
from chainkit.models.local._serving import (
    MODEL,
    SHUTTING_DOWN,
    SSE_HEADERS,
    LocalModel,
    Plan,
    error_response,
    fault_error,
    jittered,
    json_response,
    read_json,
    request_settings,
)
from chainkit.models.local._settings import LocalModelSettings

__all__ = [
    "CHAT_PATH",
    "COMPLETIONS_PATH",
    "Reply",
    "add_routes",
    "model_request",
    "scripted_answer",
]

logger = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"


class Reply(Protocol):
    """An endpoint's answer: the written :class:`Answer` (for the counters), whether it
    streams, and its JSON body or SSE events."""

    @property
    def answer(self) -> Answer: ...

    @property
    def stream(self) -> bool: ...

    def body(self) -> bytes: ...

    def events(self) -> Events: ...


# (JSON body, seed, server) -> the reply, or an awaitable of it (work done off the loop)
Make = Callable[[dict[str, Any], int, LocalModel], Reply | Awaitable[Reply]]


@dataclass(slots=True)
class _Completion:
    """A chat completion or a (legacy) completion as a :class:`Reply`."""

    answer: Answer
    chat: bool
    rid: str
    created: int

    @property
    def stream(self) -> bool:
        return self.answer.stream

    def body(self) -> bytes:
        return (chat_body if self.chat else completion_body)(self.answer, self.rid, self.created)

    def events(self) -> Events:
        return (chat_events if self.chat else completion_events)(
            self.answer, self.rid, self.created
        )


def _make_chat(payload: dict[str, Any], seed: int, model: LocalModel, header: str | None) -> Reply:
    answer = scripted_answer(parse_chat(payload, seed), payload, model, header)
    return _Completion(answer, True, model.new_id("chatcmpl"), int(time.time()))


def _make_completion(
    payload: dict[str, Any], seed: int, model: LocalModel, header: str | None
) -> Reply:
    answer = scripted_answer(parse_completion(payload, seed), payload, model, header)
    return _Completion(answer, False, model.new_id("cmpl"), int(time.time()))


def scripted_answer(
    answer: Answer, payload: dict[str, Any], model: LocalModel, header: str | None
) -> Answer:
    """The answer a test scripted for this request, if any (else the written one)."""
    scripted = model.script.next(payload, header)
    return answer if scripted is None else scripted.apply(answer, answer.prompt_text)


def add_routes(app: web.Application) -> None:
    """Serve chat completions and completions (also without the ``/v1`` prefix)."""
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/chat/completions", _chat)
        app.router.add_post(f"{prefix}/completions", _completions)


async def _chat(request: web.Request) -> web.StreamResponse:
    header = request.headers.get(REPLY_HEADER)
    return await model_request(request, CHAT_PATH, functools.partial(_make_chat, header=header))


async def _completions(request: web.Request) -> web.StreamResponse:
    header = request.headers.get(REPLY_HEADER)
    make = functools.partial(_make_completion, header=header)
    return await model_request(request, COMPLETIONS_PATH, make)


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


async def model_request(request: web.Request, endpoint: str, make: Make) -> web.StreamResponse:
    """Answer one model request: read it, make its reply, apply the faults, send it,
    and count it under ``endpoint``."""
    model = request.app[MODEL]
    rec = _Record(time.time())
    peer = request.transport.get_extra_info("peername") if request.transport else None
    client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
    model.stats.begin(request.transport)
    try:
        return await _answer(request, model, rec, endpoint, make)
    except BadRequest as exc:
        rec.status, rec.outcome = exc.status, "bad_request"
        return error_response(exc)
    except asyncio.CancelledError:  # the client left (or the server stops)
        rec.status = 499
        if rec.outcome == "completed":
            rec.outcome = "cut_client"
        elif rec.outcome != "hang":
            rec.outcome = "client_gone"
        raise
    except Exception as exc:
        logger.exception("local model: unexpected error on %s", endpoint)
        rec.status, rec.outcome = 500, "server_error"
        return error_response(
            BadRequest(
                f"The local model failed on this request: {type(exc).__name__}: {exc}",
                status=500,
                type_="server_error",
            )
        )
    finally:
        model.stats.end(
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
    request: web.Request, model: LocalModel, rec: _Record, endpoint: str, make: Make
) -> web.StreamResponse:
    settings = request_settings(request, model)
    body, payload = await read_json(request, settings)
    made = make(payload, settings.seed, model)
    reply = await made if inspect.isawaitable(made) else made
    answer = reply.answer
    rec.stream = reply.stream
    rec.prompt = answer.prompt_text
    rec.digest = hashlib.sha256(answer.prompt_text.encode()).hexdigest()[:16]
    rec.prompt_tokens = answer.prompt_tokens
    plan = model.plan(settings, body)
    if plan.hang:
        rec.outcome = "hang"
        await model.hang()
        rec.status = SHUTTING_DOWN.status  # the server is stopping: release the client
        return error_response(SHUTTING_DOWN)
    if plan.latency > 0:
        await asyncio.sleep(plan.latency)
    if plan.error:
        rec.status, rec.outcome = plan.error, "error"
        return error_response(fault_error(plan.error, settings))
    rec.completion_tokens = answer.completion_tokens
    if reply.stream:
        rec.outcome = "completed"
        return await _stream(request, rec, reply.events(), settings, plan)
    delay = settings.ttft + settings.token_delay * answer.completion_tokens
    if delay > 0:
        await asyncio.sleep(jittered(delay, settings.jitter, plan.rng))
    return json_response(reply.body())


async def _stream(
    request: web.Request,
    rec: _Record,
    ev: Events,
    settings: LocalModelSettings,
    plan: Plan,
) -> web.StreamResponse:
    """Send a stream, paced when delays are set; note in ``rec`` how it ended."""
    events = ev.events
    n_tokens = ev.tail - ev.first
    cut = -1
    if plan.disconnect:
        cut = ev.first + (min(n_tokens - 1, int(plan.cut_at * n_tokens)) if n_tokens > 1 else 0)
    paced = settings.ttft > 0 or settings.token_delay > 0
    if not paced and cut < 0:
        return web.Response(body=b"".join(events), headers=SSE_HEADERS)
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    if not paced:
        rec.outcome, rec.completion_tokens = "cut_fault", cut - ev.first
        await response.write(b"".join(events[:cut]))
        return _drop(request, response)
    if ev.first:
        await response.write(b"".join(events[: ev.first]))
    jitter, rng = settings.jitter, plan.rng
    for i in range(ev.first, ev.tail):
        delay = settings.ttft if i == ev.first else settings.token_delay
        if delay > 0:
            await asyncio.sleep(jittered(delay, jitter, rng))
        rec.completion_tokens = i - ev.first
        if i == cut:
            rec.outcome = "cut_fault"
            return _drop(request, response)
        last = i + 1 == ev.tail
        await response.write(b"".join(events[i:]) if last else events[i])
    if n_tokens == 0:
        if settings.ttft > 0:
            await asyncio.sleep(jittered(settings.ttft, jitter, rng))
        await response.write(b"".join(events[ev.tail :]))
    rec.completion_tokens = n_tokens
    await response.write_eof()
    return response


def _drop(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """End a stream the way a broken connection does: what was sent, then no more."""
    transport = request.transport
    if transport is not None:
        transport.close()  # the written events are flushed first, then the socket closes
    return response
