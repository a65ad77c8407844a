"""The lean path for synchronous calls (``invoke``, ``stream``, ``batch``).

langchain-openai's sync methods call ``model.client`` / ``model.root_client``
(the SDK's sync client). :class:`LeanOpenAI` stands in for it and runs the
async lean path (``_lean``) on one event loop in a daemon thread of the process
(``chainkit._bridge.LoopThread``): the same requests, answers, errors and
retries, over the same :class:`~chainkit.models._http.HttpPool` (which opens a
session for that loop). A stream hands its chunks over one at a time; leaving
it early closes it, and its connection, on the loop. The loop thread stops at
interpreter exit, closing its sessions.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

from chainkit._bridge import LoopThread
from chainkit.models._lean import LeanAsyncOpenAI, LeanEndpoint, LeanStream, _fallback

__all__ = ["LeanOpenAI"]

T = TypeVar("T")

_LOCK = threading.Lock()
_THREAD: list[LoopThread] = []


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the lean path's loop thread and wait for its value."""
    with _LOCK:
        if not _THREAD:
            thread = LoopThread("chainkit-lean-http").start()
            atexit.register(thread.stop)
            _THREAD.append(thread)
    return _THREAD[0].run(coro)


class _SyncStream:
    """A :class:`LeanStream` (or a structured one) iterated from a sync thread."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._iterator = stream.__aiter__()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return _run(self._iterator.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def __enter__(self) -> _SyncStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        _run(self._close())

    async def _close(self) -> None:
        aclose = getattr(self._iterator, "aclose", None)
        if aclose is not None:
            await aclose()
        await self._stream.close()

    def get_final_completion(self) -> Any:
        return _run(self._stream.get_final_completion())


class _StructuredStreamManager:
    """``beta.chat.completions.stream(...)``: a context manager around a structured stream."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._sync: _SyncStream | None = None

    def __enter__(self) -> _SyncStream:
        self._sync = _SyncStream(_run(self._stream.__aenter__()))
        return self._sync

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sync is not None:
            self._sync.close()


def _sync_answer(value: Any) -> Any:
    return _SyncStream(value) if isinstance(value, LeanStream) else value


class _SyncRaw:
    def __init__(self, endpoint: _SyncEndpoint) -> None:
        self._endpoint = endpoint

    def __getattr__(self, name: str) -> Any:
        _fallback(f"sync completions.with_raw_response.{name}")
        return getattr(self._endpoint.stock.with_raw_response, name)

    def create(self, **params: Any) -> Any:
        endpoint = self._endpoint
        if not endpoint.lean.supports(params):
            return endpoint.stock.with_raw_response.create(**params)
        raw = _run(endpoint.lean.with_raw_response.create(**params))
        raw._parsed = _sync_answer(raw._parsed)
        return raw

    def parse(self, **params: Any) -> Any:
        endpoint = self._endpoint
        if not endpoint.lean.supports(params):
            return endpoint.stock.with_raw_response.parse(**params)
        return _run(endpoint.lean.with_raw_response.parse(**params))


class _SyncEndpoint:
    """The sync ``chat.completions`` / ``completions`` over a :class:`LeanEndpoint`."""

    def __init__(self, stock: Any, lean: LeanEndpoint) -> None:
        self.stock = stock
        self.lean = lean
        self._client = getattr(stock, "_client", None)
        self.with_raw_response = _SyncRaw(self)

    def __getattr__(self, name: str) -> Any:
        _fallback(f"sync completions.{name}")
        return getattr(self.stock, name)

    def create(self, **params: Any) -> Any:
        if not self.lean.supports(params):
            return self.stock.create(**params)
        return _sync_answer(_run(self.lean.create(**params)))

    def parse(self, **params: Any) -> Any:
        if not self.lean.supports(params):
            return self.stock.parse(**params)
        return _run(self.lean.parse(**params))

    def stream(self, **params: Any) -> Any:
        if not self.lean.supports(params):
            return self.stock.stream(**params)
        from chainkit.models._lean_parse import StructuredStream

        return _StructuredStreamManager(StructuredStream(self.lean, params))


class _Namespace:
    """``chat`` / ``beta`` / ``beta.chat``: one lean attribute, the rest the SDK's."""

    def __init__(self, stock: Any, name: str, **lean: Any) -> None:
        self._stock = stock
        self._name = name
        self.__dict__.update(lean)

    def __getattr__(self, name: str) -> Any:
        _fallback(f"sync {self._name}.{name}")
        return getattr(self._stock, name)


class LeanOpenAI:
    """An ``openai.OpenAI`` whose chat and text completions take the lean path."""

    def __init__(self, stock: Any, lean: LeanAsyncOpenAI) -> None:
        self.stock = stock
        chat_endpoint: LeanEndpoint = lean.chat.completions
        chat = _SyncEndpoint(stock.chat.completions, chat_endpoint)
        self.chat = _Namespace(stock.chat, "chat", completions=chat)
        self.completions = _SyncEndpoint(stock.completions, lean.completions)
        beta_chat = _Namespace(stock.beta.chat, "beta.chat", completions=chat)
        self.beta = _Namespace(stock.beta, "beta", chat=beta_chat)

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_") and name not in ("base_url", "api_key", "max_retries"):
            _fallback(f"sync {name}")
        return getattr(self.stock, name)
