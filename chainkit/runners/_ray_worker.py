"""What runs inside Ray: the worker actor, the shared rate limiter actor.

A :class:`Worker` runs a :class:`~chainkit.runners._local.LocalExecutor`
(the ``sliding`` strategy) on each block the driver starts on it, and hands the finished
records over in groups when the driver asks (:meth:`Worker.take`, a long
poll). Blocks of one worker share one ``max_concurrency`` (and one AIMD
limit), so a second block queued on a worker waits for free slots instead of
doubling the concurrency.

Workers are generic: the chain and the options come with :meth:`Worker.setup`,
so the driver can reuse a warm worker for its next batch.

Each worker has one async HTTP pool for its OpenAI models, made on the
actor's event loop (which lives as long as the actor) and given to the models
as ``http_async_client``: a batch would otherwise open (and close)
a pool for every block, and making one costs ~0.15 s (its TLS context).

Global limits:

- ``rpm``/``tpm`` buckets live in one :class:`Limiter` actor; every attempt of
  every worker takes from them (one actor call per attempt, made only when a
  limit is set), and real token usage is given back or charged after the call.
- a 429 cool-down goes through the driver: the worker that got the 429 cools
  down and halves its concurrency as the local executor does, and reports the
  pause with its next records; the driver tells every other worker, which
  cools down (and halves) too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import Runnable
from pydantic import BaseModel

from chainkit.errors import ChainkitError, ChainkitRunError, MissingAPIKeyError
from chainkit.models import HttpPool, use_http_pool
from chainkit.runners._inputs import InputItem
from chainkit.runners._limits import AdaptiveConcurrency, RateLimits
from chainkit.runners._local import LocalExecutor
from chainkit.runners._options import BatchOptions
from chainkit.runners._prepare import PreparedChain, prepare_chain
from chainkit.runners._ray_transport import (
    Transport,
    is_openai_model,
    load_chain,
)
from chainkit.runners._records import ResultRecord, sanitized

__all__ = ["FLUSH_INTERVAL", "FLUSH_RECORDS", "Limiter", "Worker", "block_executor", "failure_of"]

FLUSH_INTERVAL = 0.2  # a block's records go to the driver at most this often (seconds) ...
FLUSH_RECORDS = 256  # ... unless this many are ready

Row = tuple[int, Any, Any, "int | None"]  # index, value, id, line of one input


class Limiter:
    """The Ray actor holding a batch's ``rpm``/``tpm`` buckets, shared by every worker."""

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        self.limits = RateLimits.create(rpm, tpm)

    async def acquire(self, tokens: float) -> float:
        """Take one request and ``tokens`` tokens (first come, first served); seconds waited."""
        return await self.limits.acquire(tokens)

    def adjust(self, delta: float) -> None:
        """Charge ``delta`` tokens more (negative: give back) once the real usage is known."""
        self.limits.adjust_tokens(delta)


class RemoteLimits(RateLimits):
    """A worker's handle on the :class:`Limiter`, in place of the local runner's buckets."""

    def __init__(self, limiter: Any, *, requests: bool, tokens: bool) -> None:
        super().__init__()
        self._limiter = limiter
        self._requests, self._tokens = requests, tokens

    @property
    def active(self) -> bool:
        return self._limiter is not None and (self._requests or self._tokens)

    async def acquire(self, tokens: float) -> float:
        waited = float(await self._limiter.acquire.remote(tokens))
        self.waited += waited
        return waited

    def adjust_tokens(self, delta: float) -> None:
        if self._tokens and delta and self._limiter is not None:
            self._limiter.adjust.remote(delta)  # fire and forget


class SharedConcurrency(AdaptiveConcurrency):
    """One worker's AIMD concurrency; its 429 cool-downs are reported for the others."""

    def __init__(self, limit: int, on_signal: Callable[[], None]) -> None:
        super().__init__(limit)
        self.signals: list[float] = []
        self._on_signal = on_signal

    def on_rate_limited(self, pause: float) -> None:
        super().on_rate_limited(pause)
        self.signals.append(max(pause, 0.05))
        self._on_signal()

    def cool_down_from_elsewhere(self, pause: float) -> None:
        """Another worker got a 429: pause too, and back off as after one's own 429."""
        self.back_off(pause)


@dataclass
class WorkerState:
    """What the blocks of one worker share during one batch."""

    chain: PreparedChain
    options: BatchOptions
    limits: RemoteLimits
    concurrency: SharedConcurrency
    running: asyncio.Semaphore
    items: int = 0
    cpu: float = field(default_factory=time.process_time)  # this process's CPU at setup


@dataclass
class _Block:
    """A block running in a worker: its records not yet taken by the driver."""

    task: asyncio.Task[Any] | None = None
    finished: list[ResultRecord] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    taken: float = 0.0  # when the driver last took records

    async def deliver(self, record: ResultRecord) -> bool:
        self.finished.append(sanitized(record))  # plain JSON, to travel to the driver
        self.ready.set()
        return True


def block_executor(state: WorkerState) -> LocalExecutor:
    """A local executor for one block: the worker's chain, limiter and window, shared."""
    return LocalExecutor(
        state.chain,
        state.options,
        limits=state.limits,
        concurrency=state.concurrency,
        running=state.running,
        owns_chain=False,
    )


async def _each(items: list[InputItem]) -> AsyncIterator[InputItem]:
    for item in items:
        yield item


def with_http_pool(value: Any, pool: Any, depth: int = 0) -> Any:
    """``value`` with every OpenAI model in it rebuilt on ``pool`` (copies; none changed)."""
    if depth > 60:
        return value
    if is_openai_model(value):
        if getattr(value, "http_async_client", None) is not None:
            return value
        return use_http_pool(value, pool)
    if isinstance(value, BaseModel) and isinstance(value, Runnable):
        updates: dict[str, Any] = {}
        for key in type(value).model_fields:
            current = getattr(value, key, None)
            new = _with_http_pool_field(current, pool, depth + 1)
            if new is not current:
                updates[key] = new
        return value.model_copy(update=updates) if updates else value
    return value


def _with_http_pool_field(value: Any, pool: Any, depth: int) -> Any:
    if isinstance(value, Runnable):
        return with_http_pool(value, pool, depth)
    if isinstance(value, list | tuple):
        items = [_with_http_pool_field(v, pool, depth) for v in value]
        if any(a is not b for a, b in zip(items, value, strict=True)):
            return type(value)(items) if isinstance(value, list) else tuple(items)
        return value
    if isinstance(value, dict):
        mapped = {k: _with_http_pool_field(v, pool, depth) for k, v in value.items()}
        return mapped if any(mapped[k] is not v for k, v in value.items()) else value
    return value


class Worker:
    """A Ray actor running blocks of a batch with a local executor; the driver pulls records."""

    def __init__(self) -> None:
        self._state: WorkerState | None = None
        self._transport: Transport | None = None
        self._pool: HttpPool | None = None
        self._blocks: dict[str, _Block] = {}

    def _http_pool(self) -> HttpPool:
        if self._pool is None:
            self._pool = HttpPool()
        return self._pool

    async def setup(
        self,
        transport: Transport,
        options: BatchOptions,
        limiter: Any,
        limited: tuple[bool, bool],
    ) -> dict[str, Any]:
        """Get ready for a batch: build its chain (kept when it is the same as last time).

        Returns ``{"pid": ...}``, or ``{"failure": ...}`` when the chain cannot be
        built (chainkit's errors do not all survive Ray's exception pickling, so
        a failure travels as data; the driver raises it).
        """
        try:
            limit = options.max_concurrency
            if self._state is not None and self._transport == transport:
                prepared = self._state.chain
            else:
                chain = with_http_pool(load_chain(transport), self._http_pool())
                prepared = prepare_chain(chain, name=options.name, pool_size=limit)
            state = WorkerState(
                chain=prepared,
                options=options,
                limits=RemoteLimits(limiter, requests=limited[0], tokens=limited[1]),
                concurrency=SharedConcurrency(limit, self._wake),
                running=asyncio.Semaphore(limit),
            )
            block_executor(state)  # checks the chain and the options once, up front
        except Exception as exc:  # noqa: BLE001 - handed to the driver, raised there
            return {"failure": failure_of(exc)}
        old = self._state
        if old is not None and old.chain is not prepared:
            await old.chain.aclose()  # the last batch's chain and its HTTP pool
        self._state, self._transport = state, transport
        return {"pid": os.getpid()}

    def cool_down(self, pause: float) -> None:
        """The driver relays another worker's 429."""
        if self._state is not None:
            self._state.concurrency.cool_down_from_elsewhere(pause)

    def stats(self) -> dict[str, Any]:
        """Counters of the current batch (cumulative over its blocks)."""
        state = self._state
        if state is None:
            return {}
        concurrency = state.concurrency
        return {
            "pid": os.getpid(),
            "items": state.items,
            "max_in_flight": concurrency.max_in_flight,
            "rate_limited": concurrency.rate_limited,
            "cooldown_waited": concurrency.cooldown_waited,
            "min_limit": concurrency.min_limit,
            "rate_limit_wait": state.limits.waited,
            "cpu": time.process_time() - state.cpu,
        }

    def _wake(self) -> None:
        for block in self._blocks.values():
            block.ready.set()

    async def start_block(self, block_id: str, rows: list[Row]) -> dict[str, Any]:
        """Start running a block; the driver collects its records with :meth:`take`."""
        state = self._state
        if state is None:
            return {"failure": failure_of(ChainkitRunError("worker used before setup()"))}
        items = [InputItem(index=i, value=v, id=k, line=line) for i, v, k, line in rows]
        block = _Block()
        executor = block_executor(state)
        block.task = asyncio.create_task(
            executor.run(_each(items), block.deliver), name="chainkit-block"
        )
        block.task.add_done_callback(lambda _t: block.ready.set())
        self._blocks[block_id] = block
        return {}

    async def take(self, block_id: str, wait: float) -> tuple[list[ResultRecord], dict[str, Any]]:
        """The block's records finished since the last call (waiting up to ``wait`` seconds
        for one), with ``{"cooldown": s}`` after a 429 of this worker, and at the end
        ``{"stats": ...}``, or ``{"failure": ...}`` when the block broke down (a bug, not
        an item's error: those are records).

        A pull rather than a streaming generator: those do not work through Ray Client
        (``ray://`` addresses).
        """
        block, state = self._blocks.get(block_id), self._state
        if block is None or block.task is None or state is None:
            return [], {"failure": failure_of(ChainkitRunError(f"no block {block_id} here"))}
        if not block.finished and not block.task.done() and not state.concurrency.signals:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(block.ready.wait(), wait)
        # fewer, larger replies: a driver call costs far more than a record
        while (
            (delay := block.taken + FLUSH_INTERVAL - time.monotonic()) > 0
            and len(block.finished) < FLUSH_RECORDS
            and not block.task.done()
            and not state.concurrency.signals
        ):
            block.ready.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(block.ready.wait(), delay)
        block.taken = time.monotonic()
        block.ready.clear()
        info: dict[str, Any] = {}
        if state.concurrency.signals:
            info["cooldown"] = max(state.concurrency.signals)
            state.concurrency.signals.clear()
        records, block.finished = block.finished, []
        state.items += len(records)
        if block.task.done():
            del self._blocks[block_id]
            if block.task.cancelled():
                info["failure"] = failure_of(ChainkitRunError("the block was cancelled"))
            elif (error := block.task.exception()) is not None:
                info["failure"] = failure_of(error)
            else:
                info["stats"] = self.stats()
        return records, info


def failure_of(exc: BaseException) -> dict[str, Any]:
    """An exception raised in a worker, as plain data the driver turns back into an error."""
    return {
        "type": type(exc).__name__,
        "chainkit": isinstance(exc, ChainkitError),
        "message": str(exc),
        "env_var": exc.env_var if isinstance(exc, MissingAPIKeyError) else None,
        # chainkit's exceptions pickle with their fields (.missing, .suggestions, ...)
        "error": exc if isinstance(exc, ChainkitError) else None,
    }
