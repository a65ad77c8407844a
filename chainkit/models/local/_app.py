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
from dataclasses import dataclass
from typing import Any

import orjson

from chainkit.errors import ConfigError
from chainkit.models.local._batch_api import BatchApi
from chainkit.models.local._embeddings import create_embeddings
from chainkit.models.local._requests import (
    Answer,
    BadRequest,
    json_body,
    parse_chat,
    parse_completion,
)
from chainkit.models.local._responses import (
    Events,
    chat_body,
    chat_events,
    completion_body,
    completion_events,
)
from chainkit.models.local._responses_api import ResponsesAPI
from chainkit.models.local._settings import FAULTS_HEADER, LocalModelSettings, parse_overrides
from chainkit.models.local._stats import Stats
from chainkit.models.local._text import (
    Rng,
    stable_seed,
)

__all__ = ["LocalModelApp", "create_app"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Header = tuple[bytes, bytes]

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
MODELS = ("chainkit-local", "gpt-3.5-turbo-instruct", "gpt-4o-mini", "gpt-4o", "gpt-4.1-mini")
_JSON = (b"content-type", b"application/json")
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
_DONE = b"data: [DONE]\n\n"
_FAULTS_HEADER_BYTES = FAULTS_HEADER.encode()


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
        self.batch_api = BatchApi()
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
            "/v1/responses": ("POST", self._responses),
            "/v1/embeddings": ("POST", self._embeddings),
        }
        self.responses = ResponsesAPI()
        self._fast_routes: dict[str, tuple[str, Callable[[dict[str, Any], int], Answer]]] = {
            CHAT_PATH: (CHAT_PATH, parse_chat),
            "/chat/completions": (CHAT_PATH, parse_chat),
            COMPLETIONS_PATH: (COMPLETIONS_PATH, parse_completion),
            "/completions": (COMPLETIONS_PATH, parse_completion),
        }
        install_log_filter()

    # -- lifecycle hooks used by the background server
    def close(self) -> None:
        """Release hanging requests (called on the server's loop before shutdown)."""
        if self._closing is None:
            self._closing = asyncio.Event()
        self._closing.set()
        self.batch_api.close()

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
            if path.startswith("/v1/responses/") and method in ("GET", "DELETE"):
                rid = path.rsplit("/", 1)[1]
                try:
                    api = self.responses
                    data = api.retrieve(rid) if method == "GET" else api.delete(rid)
                except BadRequest as exc:
                    await _send_error(send, exc)
                    return
                await _send_json(send, 200, data)
                return
            if self.batch_api.handles(path):
                await self._files_and_batches(scope, receive, send, path)
                return
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

    async def _files_and_batches(
        self, scope: Scope, receive: Receive, send: Send, path: str
    ) -> None:
        method: str = scope["method"]
        try:
            settings, length = self._request_settings(scope)
            limit = self.batch_api.body_limit(method, path, settings)
            body = await _read_body(receive, limit, length)
            content_type = next(
                (v.decode("latin-1") for k, v in scope["headers"] if k == b"content-type"), ""
            )
            query = scope.get("query_string", b"").decode("latin-1")
            status, kind, reply = self.batch_api.respond(
                method, path, query=query, content_type=content_type, body=body, settings=settings
            )
        except BadRequest as exc:
            await _send_error(send, exc)
            return
        except _ClientGone:
            return
        head = [(b"content-type", kind.encode()), (b"content-length", str(len(reply)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": reply, "more_body": False})

    async def _responses(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await _read_body(receive, self.settings.max_body_bytes, None)
            result = self.responses.create(json_body(body), self.settings.seed)
        except BadRequest as exc:
            await _send_error(send, exc)
            return
        if not result.stream:
            await _send_json(send, 200, result.body())
            return
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        data = b"".join(result.events().events)
        await send({"type": "http.response.body", "body": data, "more_body": False})

    async def _embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await _read_body(receive, self.settings.max_body_bytes, None)
            data, _ = create_embeddings(json_body(body))
        except BadRequest as exc:
            await _send_error(send, exc)
            return
        await _send_json(send, 200, data)

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
            answer = parse(json_body(body), settings.seed)
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

    def answer_now(self, scope: Scope, body: bytes) -> tuple[int, list[Header], bytes] | None:
        """A complete response for a request that needs no waiting, else None.

        The built-in HTTP server calls this first: a calm, non-streamed model request
        is answered without the ASGI messages (about a fifth of the server's CPU per
        request); anything else (streams, faults, delays, other endpoints) returns
        None and goes through the ASGI app as usual. The answer is the same either way.
        """
        route = self._fast_routes.get(scope["path"])
        settings = self.settings
        if (
            route is None
            or scope["method"] != "POST"
            or settings.has_faults
            or settings.has_delays
            or len(body) > settings.max_body_bytes
            or any(name == _FAULTS_HEADER_BYTES for name, _ in scope["headers"])
        ):
            return None
        endpoint, parse = route
        try:
            payload = json_body(body)
        except BadRequest:
            return None  # the ASGI path answers and records it
        if payload.get("stream"):
            return None
        rec = _Record(time.time())
        client = scope.get("client")
        client = (client[0], client[1]) if client else None
        self.stats.begin(client)
        try:
            try:
                answer = parse(payload, settings.seed)
            except BadRequest as exc:
                rec.status, rec.outcome = exc.status, "bad_request"
                return exc.status, [_JSON, *exc.headers], exc.body()
            rec.prompt = answer.prompt_text
            rec.digest = hashlib.sha256(answer.prompt_text.encode()).hexdigest()[:16]
            rec.prompt_tokens = answer.prompt_tokens
            rec.completion_tokens = answer.completion_tokens
            chat = endpoint == CHAT_PATH
            rid = f"{'chatcmpl' if chat else 'cmpl'}-{self._id_prefix}{next(self._ids):08x}"
            created = int(rec.t_start)
            return 200, [_JSON], (chat_body if chat else completion_body)(answer, rid, created)
        except Exception as exc:
            logger.exception("local model: unexpected error on %s", endpoint)
            rec.status, rec.outcome = 500, "server_error"
            error = BadRequest(
                f"The local model failed on this request: {type(exc).__name__}: {exc}",
                status=500,
                type_="server_error",
            )
            return 500, [_JSON], error.body()
        finally:
            self.stats.end(
                t_start=rec.t_start,
                endpoint=endpoint,
                status=rec.status,
                outcome=rec.outcome,
                digest=rec.digest,
                prompt=rec.prompt,
                prompt_tokens=rec.prompt_tokens,
                completion_tokens=rec.completion_tokens,
                client=client,
            )

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
