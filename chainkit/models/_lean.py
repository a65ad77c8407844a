"""The lean Chat Completions (and Completions) path behind ``ChatOpenAI`` and ``OpenAI``.

langchain-openai calls ``model.async_client.create(**payload)`` (or
``.with_raw_response.create``) and accepts plain dicts back: a whole answer
for ``_create_chat_result``, or an async iterable of chunk dicts for
``_convert_chunk_to_generation_chunk``. :class:`LeanEndpoint` stands in for the
SDK's ``chat.completions`` / ``completions`` resource and answers exactly that,
over aiohttp (from the model's :class:`~chainkit.models._http.HttpPool`) with
orjson, without building the SDK's pydantic object for every answer and chunk
only to have langchain-openai dump it back to a dict.

Structured output (``parse``, ``beta.chat.completions.stream``) goes the same
way, with the SDK's own helpers around it (see ``_lean_parse``). What it does
not cover takes the SDK's own path, on the same pool, with a debug log line and
a count in :func:`fallbacks`: parameters it does not know (audio,
``extra_query``, a non-JSON body), the Responses API, files, anything else.
Errors are the SDK's exception classes with the same status, headers and body,
and the SDK's retry policy applies (``max_retries`` of the client). Leaving a
stream early closes its connection. Sync calls: ``_lean_sync``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace, TracebackType
from typing import Any

import aiohttp
import httpx2
import openai
import orjson
from pydantic import PrivateAttr

from chainkit.models._http import HttpPool
from chainkit.models._lean_parse import StructuredStream, parse_body, parsed_answer
from chainkit.models._wire import (
    completion_dict,
    connection_error,
    retry_delay,
    should_retry,
    sse_events,
    status_error,
    stream_error,
    text_completion_dict,
    timeout_error,
)

__all__ = ["LeanAsyncOpenAI", "LeanEndpoint", "LeanStream", "fallbacks"]

log = logging.getLogger(__name__)

_FALLBACKS: Counter[str] = Counter()

_OPTIONS = frozenset({"extra_headers", "extra_body", "timeout"})
_SAMPLING = frozenset(
    {
        "model",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "n",
        "stop",
        "max_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "user",
        "seed",
    }
)
CHAT_PARAMS = (
    _OPTIONS
    | _SAMPLING
    | {
        "messages",
        "max_completion_tokens",
        "top_logprobs",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "functions",
        "function_call",
        "response_format",
        "metadata",
        "store",
        "reasoning_effort",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
        "verbosity",
    }
)
COMPLETION_PARAMS = _OPTIONS | _SAMPLING | {"prompt", "best_of", "echo", "suffix"}
# attributes of a client that are settings, not calls: reading them is no fallback
_PLAIN = frozenset({"base_url", "api_key", "timeout", "max_retries", "organization", "project"})


def fallbacks() -> dict[str, int]:
    """How many calls took the openai SDK's path since start, by reason."""
    return dict(_FALLBACKS)


def _fallback(reason: str) -> None:
    _FALLBACKS[reason] += 1
    log.debug("lean path: %s takes the openai SDK's path", reason)


def _client_timeout(value: object) -> aiohttp.ClientTimeout:
    """aiohttp's timeout for an httpx(2)/openai one: connect and per-read bounds."""
    if isinstance(value, httpx2.Timeout):
        return aiohttp.ClientTimeout(total=None, sock_connect=value.connect, sock_read=value.read)
    if isinstance(value, int | float):
        return aiohttp.ClientTimeout(total=None, sock_connect=value, sock_read=value)
    return aiohttp.ClientTimeout(total=None)


def _stream_timeout(base: aiohttp.ClientTimeout, chunk: float | None) -> aiohttp.ClientTimeout:
    """``base`` with reads bounded by ``chunk`` too: the longest wait between two chunks."""
    if chunk is None or chunk <= 0:
        return base
    read = chunk if base.sock_read is None else min(base.sock_read, chunk)
    return aiohttp.ClientTimeout(total=None, sock_connect=base.sock_connect, sock_read=read)


class LeanEndpoint:
    """``chat.completions`` or ``completions`` of an ``AsyncOpenAI``, answered with dicts."""

    def __init__(
        self,
        stock: Any,
        root: openai.AsyncOpenAI,
        pool: HttpPool,
        *,
        chat: bool,
        chunk_timeout: float | None = None,
    ) -> None:
        self._stock = stock
        self._client = root  # as the SDK's resources have it
        self._pool = pool
        self._url = f"{root.base_url}{'chat/completions' if chat else 'completions'}"
        merged = {**root.default_headers, **root.auth_headers}
        self._headers = {k: v for k, v in merged.items() if isinstance(v, str)}
        self._query = {str(k): str(v) for k, v in root.default_query.items()} or None
        self._timeout = _client_timeout(root.timeout)
        self._stream_timeout = _stream_timeout(self._timeout, chunk_timeout)
        self._max_retries = root.max_retries
        self._chat = chat
        self._params = CHAT_PARAMS if chat else COMPLETION_PARAMS
        self._shape: Callable[[dict[str, Any]], dict[str, Any]] = (
            completion_dict if chat else text_completion_dict
        )
        self.with_raw_response = _RawEndpoint(self)

    def __getattr__(self, name: str) -> Any:
        _fallback(f"completions.{name}")
        return getattr(self._stock, name)

    def _request(self, params: dict[str, Any]) -> tuple[bytes, dict[str, str], Any] | None:
        """(body, headers, timeout), or None when the SDK's path must take the call."""
        if not params.keys() <= self._params:
            _fallback(f"parameters {sorted(params.keys() - self._params)}")
            return None
        headers = self._headers
        timeout = self._stream_timeout if params.get("stream") else self._timeout
        if "extra_headers" in params or "extra_body" in params or "timeout" in params:
            params = dict(params)
            extra_headers = params.pop("extra_headers", None) or {}
            headers = {**headers, **extra_headers}
            headers = {k: v for k, v in headers.items() if isinstance(v, str)}
            params.update(params.pop("extra_body", None) or {})
            if "timeout" in params:
                value = params.pop("timeout")
                if value is not None and not isinstance(value, int | float | httpx2.Timeout):
                    _fallback("timeout")
                    return None
                timeout = _client_timeout(value)
                if params.get("stream"):
                    timeout = _stream_timeout(timeout, self._stream_timeout.sock_read)
        try:
            return orjson.dumps(params), headers, timeout
        except TypeError:  # a value only the SDK can serialise (a pydantic class, NotGiven)
            _fallback("a body orjson cannot serialise")
            return None

    async def create(self, **params: Any) -> Any:
        """The answer as a dict, or a :class:`LeanStream` of chunk dicts for ``stream=True``."""
        request = self._request(params)
        if request is None:
            return await self._stock.create(**params)
        response = await self._send(*request)
        if params.get("stream"):
            return LeanStream(response, self._url)
        return await self._read(response)

    async def parse(self, **params: Any) -> Any:
        """``chat.completions.parse``: the answer with ``parsed`` (structured output)."""
        request = self._request(parse_body(params, stream=False))
        if request is None:
            return await self._stock.parse(**params)
        return parsed_answer(params, await self._read(await self._send(*request)))

    async def open_stream(self, body: dict[str, Any]) -> LeanStream:
        """A stream of ``body`` (already checked by :meth:`supports`) on the lean path."""
        request = self._request(body)
        if request is None:  # pragma: no cover - supports() said yes
            raise RuntimeError("open_stream() of a body the lean path does not take")
        return LeanStream(await self._send(*request), self._url)

    def supports(self, params: dict[str, Any]) -> bool:
        """Whether the lean path takes ``params`` (counted as a fallback when not)."""
        if params.keys() <= self._params:
            return True
        _fallback(f"parameters {sorted(params.keys() - self._params)}")
        return False

    async def _read(self, response: aiohttp.ClientResponse) -> Any:
        try:
            body = await response.read()
        except TimeoutError as exc:
            raise timeout_error(self._url) from exc
        except aiohttp.ClientError as exc:
            raise connection_error(self._url) from exc
        data = orjson.loads(body)
        if not isinstance(data, dict):
            return data
        data = self._shape(data)
        return ChatAnswer.of(data) if self._chat else data

    async def _send(
        self,
        body: bytes,
        headers: dict[str, str],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's per-read bounds, not a deadline
    ) -> aiohttp.ClientResponse:
        """POST ``body``; retried as the SDK retries; an error answer raised as the SDK's."""
        session = self._pool.session()
        retries_taken = 0
        while True:
            try:
                response = await session.post(
                    self._url, data=body, headers=headers, params=self._query, timeout=timeout
                )
            except (TimeoutError, aiohttp.ClientError) as exc:
                if retries_taken < self._max_retries:
                    await asyncio.sleep(retry_delay(retries_taken))
                    retries_taken += 1
                    continue
                if isinstance(exc, TimeoutError):
                    raise timeout_error(self._url) from exc
                raise connection_error(self._url) from exc
            if response.status < 400:
                return response
            try:
                content = await response.read()
            except (TimeoutError, aiohttp.ClientError):
                content = b""
            finally:
                response.release()
            if retries_taken < self._max_retries and should_retry(
                response.status, response.headers
            ):
                await asyncio.sleep(retry_delay(retries_taken, response.headers))
                retries_taken += 1
                continue
            raise status_error(response.status, list(response.headers.items()), content, self._url)


class ChatAnswer(openai.BaseModel):
    """A Chat Completions answer that langchain-openai reads as it reads the SDK's.

    ``_create_chat_result`` takes ``model_dump()`` (here: the dict as parsed, no
    pydantic work) and, for an SDK object, copies ``choices[0].message.refusal``
    into ``additional_kwargs``; this keeps that detail the same on both paths.
    """

    _body: dict[str, Any] = PrivateAttr(default_factory=dict)

    @classmethod
    def of(cls, body: dict[str, Any]) -> ChatAnswer:
        answer = cls.model_construct()
        answer._body = body
        return answer

    def model_dump(self, *_args: Any, **_kwargs: Any) -> dict[str, Any]:
        return self._body

    @property
    def choices(self) -> list[Any]:
        return [
            SimpleNamespace(
                message=SimpleNamespace(refusal=(c.get("message") or {}).get("refusal"))
            )
            for c in self._body.get("choices") or ()
        ]


class _RawEndpoint:
    """``.with_raw_response`` of a :class:`LeanEndpoint`: ``create`` with the headers."""

    def __init__(self, endpoint: LeanEndpoint) -> None:
        self._endpoint = endpoint

    def __getattr__(self, name: str) -> Any:
        _fallback(f"completions.with_raw_response.{name}")
        return getattr(self._endpoint._stock.with_raw_response, name)

    async def parse(self, **params: Any) -> Any:
        endpoint = self._endpoint
        request = endpoint._request(parse_body(params, stream=False))
        if request is None:
            return await endpoint._stock.with_raw_response.parse(**params)
        response = await endpoint._send(*request)
        return _RawResponse(response, parsed_answer(params, await endpoint._read(response)))

    async def create(self, **params: Any) -> Any:
        endpoint = self._endpoint
        request = endpoint._request(params)
        if request is None:
            return await endpoint._stock.with_raw_response.create(**params)
        response = await endpoint._send(*request)
        if params.get("stream"):
            return _RawResponse(response, LeanStream(response, endpoint._url))
        return _RawResponse(response, await endpoint._read(response))


class _RawResponse:
    """What langchain-openai reads of the SDK's raw response: ``parse()`` and ``headers``."""

    def __init__(self, response: aiohttp.ClientResponse, parsed: Any) -> None:
        self._response = response
        self._parsed = parsed
        self._headers: httpx2.Headers | None = None

    def parse(self) -> Any:
        return self._parsed

    @property
    def headers(self) -> httpx2.Headers:
        if self._headers is None:
            self._headers = httpx2.Headers(list(self._response.raw_headers))
        return self._headers

    @property
    def status_code(self) -> int:
        return self._response.status


class LeanStream:
    """The chunks of a streamed answer as dicts; closing it early closes its connection."""

    def __init__(self, response: aiohttp.ClientResponse, url: str) -> None:
        self.response = response
        self._url = url
        self._iterator = self._chunks()

    async def _chunks(self) -> AsyncIterator[Any]:
        response = self.response
        done = False
        try:
            async for data in sse_events(response.content.iter_any()):
                if data.startswith(b"[DONE]"):
                    done = True
                    break
                chunk = orjson.loads(data)
                if isinstance(chunk, dict) and chunk.get("error"):
                    raise stream_error(chunk, self._url)
                yield chunk
            if done:  # read the end of the body so the connection can be reused
                async for _ in response.content.iter_any():
                    pass
                done = response.content.at_eof()
        except TimeoutError as exc:
            raise timeout_error(self._url) from exc
        except aiohttp.ClientError as exc:
            raise connection_error(self._url) from exc
        finally:
            if done:
                response.release()
            else:  # left early, cancelled or broken: cut the connection
                response.close()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterator

    async def __anext__(self) -> Any:
        return await self._iterator.__anext__()

    async def __aenter__(self) -> LeanStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop reading; an unfinished body's connection is closed, not reused."""
        await self._iterator.aclose()  # type: ignore[attr-defined]
        if not self.response.closed:
            self.response.close()


class _LeanChat:
    def __init__(self, stock: Any, completions: Any) -> None:
        self._stock = stock
        self.completions = completions

    def __getattr__(self, name: str) -> Any:
        _fallback(f"chat.{name}")
        return getattr(self._stock, name)


class _BetaCompletions:
    """``beta.chat.completions``: ``stream`` (structured output streamed) on the lean path."""

    def __init__(self, stock: Any, endpoint: LeanEndpoint) -> None:
        self._stock = stock
        self._endpoint = endpoint

    def __getattr__(self, name: str) -> Any:
        _fallback(f"beta.chat.completions.{name}")
        return getattr(self._stock, name)

    def stream(self, **params: Any) -> Any:
        if not self._endpoint.supports(params):
            return self._stock.stream(**params)
        return StructuredStream(self._endpoint, params)


class _Beta:
    def __init__(self, stock: Any, endpoint: LeanEndpoint) -> None:
        self._stock = stock
        self.chat = _LeanChat(stock.chat, _BetaCompletions(stock.chat.completions, endpoint))

    def __getattr__(self, name: str) -> Any:
        _fallback(f"beta.{name}")
        return getattr(self._stock, name)


class LeanAsyncOpenAI:
    """An ``openai.AsyncOpenAI`` whose ``chat.completions`` and ``completions`` are lean.

    Everything else (``responses``, ``beta``, ``files``, ``with_raw_response``)
    is the wrapped client's own, counted as a fallback.
    """

    def __init__(
        self, stock: openai.AsyncOpenAI, pool: HttpPool, *, chunk_timeout: float | None = None
    ) -> None:
        self.stock = stock
        self.pool = pool
        self.chunk_timeout = chunk_timeout
        chat = LeanEndpoint(
            stock.chat.completions, stock, pool, chat=True, chunk_timeout=chunk_timeout
        )
        self.chat = _LeanChat(stock.chat, chat)
        self.beta = _Beta(stock.beta, chat)
        self.completions = LeanEndpoint(
            stock.completions, stock, pool, chat=False, chunk_timeout=chunk_timeout
        )

    def __getattr__(self, name: str) -> Any:
        if name not in _PLAIN and not name.startswith("_"):
            _fallback(name)
        return getattr(self.stock, name)

    def __repr__(self) -> str:
        return f"LeanAsyncOpenAI({self.stock.base_url}, {self.pool!r})"
