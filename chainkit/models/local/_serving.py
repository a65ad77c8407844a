"""What every endpoint of the local model shares: its state and the request plumbing.

An endpoint module adds its routes with an ``add_routes(app)`` function and
finds the server's :class:`LocalModel` as ``request.app[MODEL]``. The helpers
here read a request (the ``X-Chainkit-Faults`` header, the JSON body within
the size limit and the body deadline), answer errors as OpenAI's JSON, draw a
request's faults and wait. Waits need no care about clients that leave: the server cancels a
request's handler when its client disconnects (aiohttp's
``handler_cancellation``), so every sleep ends then and ``finally`` blocks run.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from chainkit.errors import ConfigError
from chainkit.models.local._errors import BadRequest, json_body
from chainkit.models.local._scripted import Script
from chainkit.models.local._settings import (
    FAULTS_HEADER,
    MAX_DELAY,
    LocalModelSettings,
    parse_overrides,
)
from chainkit.models.local._stats import LOG_SIZE, Stats
from chainkit.models.local._tokens import Rng, stable_seed

__all__ = [
    "BODY_TIMEOUT",
    "MODEL",
    "SSE_HEADERS",
    "LocalModel",
    "Plan",
    "error_response",
    "fault_error",
    "jittered",
    "json_response",
    "read_body",
    "read_json",
    "request_settings",
]

JSON_TYPE = "application/json"
BODY_TIMEOUT = 30.0  # seconds a request's whole body may take to arrive
SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}


@dataclass(slots=True)
class Plan:
    """What happens to one request besides its answer."""

    latency: float = 0.0
    hang: bool = False
    error: int = 0
    disconnect: bool = False
    cut_at: float = 0.5  # fraction of the stream sent before a disconnect
    rng: random.Random | None = None  # for jitter


CALM = Plan()


class LocalModel:
    """The state one server keeps: settings, counters, fault memory, ids."""

    def __init__(
        self,
        settings: LocalModelSettings,
        *,
        request_log: bool = False,
        body_timeout: float = BODY_TIMEOUT,
        log_size: int = LOG_SIZE,
    ) -> None:
        if (
            isinstance(body_timeout, bool)
            or not isinstance(body_timeout, int | float)
            or not 0 < body_timeout < math.inf
        ):
            raise ConfigError(
                f"the local model's body timeout (--body-timeout) must be > 0 seconds, "
                f"got {body_timeout!r}"
            )
        self.settings = settings
        self.request_log = request_log  # whether GET /stats?log=1 may show the prompts
        self.body_timeout = float(body_timeout)
        self.stats = Stats(log_size)
        self.script = Script()  # scripted replies (chainkit.testing)
        self.seen: dict[bytes, int] = {}
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(4).hex()
        self._closing: asyncio.Event | None = None

    def new_id(self, prefix: str) -> str:
        """A fresh object id like OpenAI's (``chatcmpl-...``, ``resp_...``)."""
        sep = "_" if prefix in ("resp", "msg", "fc", "rs", "file", "batch") else "-"
        return f"{prefix}{sep}{self._id_prefix}{next(self._ids):08x}"

    def reset(self) -> None:
        """Zero the counters and the log, and forget which requests were seen (faults)."""
        self.stats.reset()
        self.seen.clear()

    def close(self) -> None:
        """Release hanging requests (called on the server's loop before shutdown)."""
        self._closing_event().set()

    def _closing_event(self) -> asyncio.Event:
        if self._closing is None:
            self._closing = asyncio.Event()
        return self._closing

    async def hang(self) -> None:
        """Never answer: return only when the server closes (a client that leaves
        cancels the wait)."""
        await self._closing_event().wait()

    def plan(self, settings: LocalModelSettings, body: bytes) -> Plan:
        """The faults of one request, drawn from (seed, body, times this body was seen)."""
        if not (settings.has_faults or settings.has_delays):
            return CALM
        key = hashlib.blake2b(body, digest_size=12).digest()
        seen = self.seen.get(key, 0) + 1
        if len(self.seen) > 1_000_000:
            self.seen.clear()
        self.seen[key] = seen
        rng = Rng(stable_seed(settings.seed, key.hex(), seen))
        dist = settings.latency_distribution
        plan = Plan(rng=rng)
        plan.latency = min(dist.sample(rng), MAX_DELAY) if dist else 0.0
        hang, error, disconnect = rng.random(), rng.random(), rng.random()
        status = settings.error_statuses[rng.randrange(len(settings.error_statuses))]
        plan.cut_at = rng.random()
        plan.hang = hang < settings.hang_rate
        plan.error = status if error < settings.error_rate else 0
        plan.disconnect = disconnect < settings.disconnect_rate
        return plan


MODEL = web.AppKey("chainkit_local_model", LocalModel)


def jittered(base: float, jitter: float, rng: random.Random | None) -> float:
    """``base`` seconds spread by ``jitter`` (0..1), never above the delay cap."""
    if base <= 0:
        return 0.0
    if jitter > 0 and rng is not None:
        base *= 1.0 + jitter * (2.0 * rng.random() - 1.0)
    return min(base, MAX_DELAY)


def request_settings(request: web.Request, model: LocalModel) -> LocalModelSettings:
    """The server's settings with this request's ``X-Chainkit-Faults`` applied (or a 400)."""
    header = request.headers.get(FAULTS_HEADER)
    if header is None:
        return model.settings
    try:
        changes = parse_overrides(header)
        _check_body_limit(changes, model.settings.max_body_bytes)
        return model.settings.replace(**changes) if changes else model.settings
    except ConfigError as exc:
        raise BadRequest(str(exc), param=FAULTS_HEADER, code="invalid_header") from None


def _check_body_limit(changes: Mapping[str, Any], limit: int) -> None:
    """A client may lower the server's body limit for its request, not raise it."""
    wanted = changes.get("max_body_bytes")
    if isinstance(wanted, int) and wanted > limit:
        raise ConfigError(
            f"{FAULTS_HEADER}: max_body_bytes={wanted} is above this server's limit ({limit}); "
            "a request may only lower it (start the server with a larger "
            "LocalModelSettings.max_body_bytes)"
        )


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw body; 413 above ``limit`` bytes (counted as it comes when chunked), 408
    when it has not all arrived ``body_timeout`` seconds after the handler asked for it.

    aiohttp bounds neither: its idle timeout (``keepalive_timeout``) closes only a
    connection whose handler is idle, so a client that sends a body a byte every few
    seconds would hold its connection and request for as long as it liked. The
    deadline is for the whole body, not the gap between two reads (which such a client
    never exceeds); the 408 closes the connection.
    """
    deadline = request.app[MODEL].body_timeout
    try:
        async with asyncio.timeout(deadline):
            return await _read_body(request, limit)
    except TimeoutError:
        raise BadRequest(
            f"The request body did not arrive within {deadline:g} seconds (the local "
            f"model's --body-timeout); send it faster.",
            status=408,
            code="body_timeout",
            close=True,
        ) from None


async def _read_body(request: web.Request, limit: int) -> bytes:
    length = request.content_length
    if length is not None:
        if length > limit:
            raise too_large(length, limit)
        return await request.content.readexactly(length) if length else b""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(
    request: web.Request, settings: LocalModelSettings
) -> tuple[bytes, dict[str, Any]]:
    """The raw body and its JSON object; 413 above ``settings.max_body_bytes``, else 400
    unless a JSON object."""
    body = await read_body(request, settings.max_body_bytes)
    return body, json_body(body)


def too_large(size: int, limit: int) -> BadRequest:
    return BadRequest(
        f"Request body too large: {size} bytes; the limit is {limit} bytes "
        f"(LocalModelSettings.max_body_bytes).",
        status=413,
        code="request_too_large",
    )


def json_response(
    body: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON answer from ready bytes."""
    return web.Response(body=body, status=status, content_type=JSON_TYPE, headers=headers)


def error_response(error: BadRequest) -> web.Response:
    """OpenAI's error JSON for ``error``, with its status and headers."""
    response = json_response(error.body(), error.status, error.headers or None)
    if error.close:
        response.force_close()
    return response


def fault_error(status: int, settings: LocalModelSettings) -> BadRequest:
    """The error a fault answers with, worded as OpenAI words it."""
    note = "(injected by the chainkit local model's fault settings)"
    if status == 429:
        retry = settings.retry_after
        return BadRequest(
            f"Rate limit reached for requests {note}. Please try again in {retry:g}s.",
            status=429,
            type_="requests",
            code="rate_limit_exceeded",
            headers={
                "retry-after": f"{retry:g}",
                "retry-after-ms": str(round(retry * 1000)),
                "x-ratelimit-remaining-requests": "0",
            },
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


SHUTTING_DOWN = BadRequest(
    "The local model is shutting down; the request was never answered (hang fault).",
    status=503,
    type_="server_error",
    code="service_unavailable",
)
