"""The local executor: items run on this event loop, within limits, with one retry loop.

How the work is scheduled (``strategy``):

``sliding`` (the default)
    A window of at most ``max_concurrency`` items in flight. Inputs are read
    lazily; as soon as one item finishes, the next input is read and started.
    Each item runs its *whole* chain on its own with ``chain.ainvoke`` (or
    ``astream``), with ``max_concurrency`` in its ``RunnableConfig`` so that
    nested batch steps (``RunnableParallel``, an inner ``.abatch``) honour it
    too. This is what ``Runnable.abatch_as_completed`` does for a list (a
    semaphore around per-input ``ainvoke``), made lazy, retried per item and
    recorded. It is deliberately *not* ``RunnableSequence.abatch``, which runs
    step by step for the whole batch: one slow input in step one would hold
    back every other input's step two.
``fixed-batches``
    The second seed's loop: ``max_concurrency`` inputs at a time, gathered,
    and the next batch only when the slowest of the current one is done.
``abatch``
    The same fixed batches through LangChain's own ``chain.abatch(batch,
    config={"max_concurrency": ...}, return_exceptions=True)``; items that
    fail transiently are then retried one by one. Step-by-step barriers
    included, for comparison.
``gather``
    Every input started at once (``asyncio.gather``); no concurrency bound
    (rate limits still apply). Reads all inputs first.

Measured numbers for each are in ``benchmarks/README.md``.

Retries: one plain loop (:meth:`LocalExecutor._process`): an attempt, and on a
transient error a wait of :meth:`RetryPolicy.wait_for` and another attempt,
``policy.attempts`` in all. The rate limits (``rpm``/``tpm`` buckets) and the
adaptive concurrency come in through the constructor, so that a Ray worker
shares one limiter between the executors of its blocks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from langchain_core.runnables import RunnableConfig

from chainkit.runners._executor import Deliver, drain_tasks
from chainkit.runners._inputs import InputItem
from chainkit.runners._limits import AdaptiveConcurrency, RateLimits
from chainkit.runners._options import BatchOptions
from chainkit.runners._prepare import PreparedChain
from chainkit.runners._records import ResultRecord, error_record, ok_record
from chainkit.runners._report import BatchReport
from chainkit.runners._retry import AttemptTimeoutError, classify_error
from chainkit.runners._usage import AttemptHandler
from chainkit.trace import add_chunk

__all__ = ["LocalExecutor"]


@dataclass(slots=True)
class _Outcome:
    """What one attempt produced."""

    output: Any = None
    ttft: float | None = None
    usage: Any = None
    error: Exception | None = None


class LocalExecutor:
    """Runs items on this event loop (an :class:`~chainkit.runners._executor.Executor`).

    ``limits`` (the ``rpm``/``tpm`` buckets), ``concurrency`` (the adaptive window)
    and ``running`` (the window's slots) default to this batch's own; a Ray worker
    passes the ones its blocks share. ``owns_chain``: close the chain's HTTP pools
    at the end.
    """

    report_class = BatchReport

    def __init__(
        self,
        chain: PreparedChain,
        options: BatchOptions,
        *,
        limits: RateLimits | None = None,
        concurrency: AdaptiveConcurrency | None = None,
        running: asyncio.Semaphore | None = None,
        owns_chain: bool = True,
    ) -> None:
        self.prepared = chain
        self.chain = chain.runnable
        self.options = options
        self.strategy = options.strategy
        self.max_concurrency = options.max_concurrency
        self.policy = options.retry.folded(chain.folded_attempts, chain.retry_types, chain.retry_if)
        self.limits = (
            limits
            if limits is not None
            else RateLimits.create(options.limits.rpm, options.limits.tpm)
        )
        unbounded = self.strategy == "gather"
        self.concurrency = concurrency or AdaptiveConcurrency(
            None if unbounded else self.max_concurrency, clock=self.limits.clock
        )
        self._running = running or asyncio.Semaphore(self.max_concurrency)
        self.callbacks = list(options.callbacks or [])
        self.base_config: RunnableConfig = dict(options.config or {})  # type: ignore[assignment]
        self.owns_chain = owns_chain
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = 0
        self._main: asyncio.Task[Any] | None = None
        self._stopping = False

    # ------------------------------------------------------------------ the protocol

    @property
    def capacity(self) -> int | None:
        return None if self.strategy == "gather" else self.max_concurrency

    @property
    def in_flight(self) -> int:
        return self._active

    def settings(self) -> dict[str, Any]:
        return {"attempts": self.policy.attempts}

    async def run(self, items: AsyncIterator[InputItem], deliver: Deliver) -> None:
        self._main = asyncio.current_task()
        if self.strategy == "sliding":
            await self._run_sliding(items, deliver)
        elif self.strategy == "gather":
            batch = [item async for item in items]
            await self._run_together(batch, deliver)
        else:
            batch = []
            async for item in items:
                batch.append(item)
                if len(batch) >= self.max_concurrency:
                    await self._run_together(batch, deliver)
                    batch = []
            if batch:
                await self._run_together(batch, deliver)

    async def drain(self, grace: float) -> None:
        """Let in-flight items finish within ``grace`` seconds, cancel the rest."""
        self._stopping = True
        await drain_tasks(self._tasks, grace, "items")

    async def finish(self, report: BatchReport, *, completed: bool) -> None:
        if self.owns_chain:
            await self.prepared.aclose()
        concurrency = self.concurrency
        report.max_concurrency = concurrency.ceiling
        report.max_in_flight = concurrency.max_in_flight
        report.rate_limited = concurrency.rate_limited
        clocks = {id(c): c for c in (self.limits.clock, concurrency.clock)}.values()
        report.rate_limit_wait = sum(clock.total for clock in clocks)  # wall time, not summed
        limit = concurrency.min_limit
        report.min_concurrency = None if limit == float("inf") else max(1, int(limit))

    # ------------------------------------------------------------------ strategies

    def _spawn(
        self, item: InputItem, deliver: Deliver, first: _Outcome | None = None
    ) -> asyncio.Task[None]:
        task = asyncio.create_task(
            self._run_item(item, deliver, first), name=f"chainkit-item-{item.index}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _wait_all(self) -> None:
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def _run_sliding(self, items: AsyncIterator[InputItem], deliver: Deliver) -> None:
        while True:
            await self._running.acquire()
            try:
                item = await anext(items)
            except StopAsyncIteration:
                self._running.release()
                break
            except BaseException:
                self._running.release()
                raise
            task = self._spawn(item, deliver)
            task.add_done_callback(lambda _t: self._running.release())
        await self._wait_all()

    async def _run_together(self, batch: list[InputItem], deliver: Deliver) -> None:
        """Start every item of ``batch`` (after ``abatch`` first attempts, for that strategy)."""
        if self.strategy == "abatch":
            firsts = await self._abatch_first_attempts(batch)
            for item, first in zip(batch, firsts, strict=True):
                self._spawn(item, deliver, first)
        else:
            for item in batch:
                self._spawn(item, deliver)
        await self._wait_all()

    # ------------------------------------------------------------------ one item

    async def _run_item(self, item: InputItem, deliver: Deliver, first: _Outcome | None) -> None:
        self._active += 1
        try:
            record = await self._process(item, first)
        except asyncio.CancelledError:
            # Raised inside the chain, not by a stop of ours: it cancels the whole
            # batch (never swallowed, never turned into an error record).
            if not self._stopping and self._main is not None and not self._main.done():
                self._main.cancel()
            raise
        finally:
            self._active -= 1
        await deliver(record)

    async def _process(self, item: InputItem, first: _Outcome | None = None) -> ResultRecord:
        """The retry loop: attempts until one succeeds, a non-transient error, or the limit."""
        started, t0 = datetime.now(UTC), time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            if first is not None and attempts == 1:
                outcome = first
            else:
                try:
                    outcome = await self._attempt(item, attempts)
                except Exception as exc:  # noqa: BLE001 - classified below: retried or recorded
                    outcome = _Outcome(error=exc)
            error = outcome.error
            if error is None:
                return ok_record(
                    item,
                    outcome.output,
                    attempts=attempts,
                    started=started,
                    t0=t0,
                    usage=outcome.usage,
                    ttft=outcome.ttft,
                )
            if attempts >= self.policy.attempts or not self.policy.should_retry(error):
                return error_record(item, error, attempts=attempts, started=started, t0=t0)
            await asyncio.sleep(self.policy.wait_for(attempts, error))

    async def _attempt(self, item: InputItem, number: int) -> _Outcome:
        await self.concurrency.acquire()
        try:
            estimate = self.prepared.estimate_tokens(item.value)
            if self.limits.active:
                await self.limits.acquire(estimate)
            handler = AttemptHandler(
                self.limits,
                prepaid_tokens=estimate,
                completion_estimate=self.prepared.max_tokens,
            )
            config = self._config(item, number, handler)
            outcome = _Outcome()
            timeout = self.options.timeout
            timeout_cm = asyncio.timeout(timeout)
            try:
                async with timeout_cm:
                    if self.options.stream:
                        await self._astream(item, config, outcome)
                    else:
                        outcome.output = await self.chain.ainvoke(item.value, config)
            except TimeoutError as exc:
                if timeout_cm.expired():
                    raise AttemptTimeoutError(timeout or 0.0) from exc
                raise
            outcome.usage = handler.usage
        except Exception as exc:
            self._note_failure(exc, number)
            raise
        finally:
            self.concurrency.release()
        self.concurrency.on_success()
        return outcome

    def _note_failure(self, exc: Exception, number: int) -> None:
        """A 429 cools the whole batch down (for Retry-After, else a backoff)."""
        kind = classify_error(exc)
        if kind.rate_limited:
            pause = kind.retry_after
            if pause is not None:
                pause = min(pause, self.policy.max_retry_after)
            self.concurrency.on_rate_limited(
                pause if pause is not None else self.policy.backoff(number)
            )

    async def _astream(self, item: InputItem, config: RunnableConfig, outcome: _Outcome) -> None:
        start = time.monotonic()
        final: Any = None
        async for chunk in self.chain.astream(item.value, config):
            if outcome.ttft is None:
                outcome.ttft = time.monotonic() - start
            final = add_chunk(final, chunk)
        outcome.output = final

    def _config(self, item: InputItem, attempt: int, handler: AttemptHandler) -> RunnableConfig:
        base = self.base_config
        metadata = {
            **(base.get("metadata") or {}),
            "chainkit_index": item.index,
            "chainkit_id": item.id,
            "chainkit_attempt": attempt,
        }
        callbacks = base.get("callbacks")
        handlers: list[Any] = list(callbacks) if isinstance(callbacks, list) else []
        config: RunnableConfig = {
            **base,
            "callbacks": [*handlers, *self.callbacks, handler],
            "max_concurrency": self.max_concurrency,
            "metadata": metadata,
        }
        if attempt > 1:
            config["tags"] = [*(base.get("tags") or []), f"retry:attempt:{attempt}"]
        return config

    async def _abatch_first_attempts(self, batch: list[InputItem]) -> list[_Outcome]:
        """First attempts of a fixed batch through ``chain.abatch`` (the ``abatch`` strategy)."""
        handlers = [
            AttemptHandler(
                self.limits,
                prepaid_tokens=0.0,
                completion_estimate=self.prepared.max_tokens,
                prepaid=False,
            )
            for _ in batch
        ]
        configs = [self._config(item, 1, h) for item, h in zip(batch, handlers, strict=True)]
        timeout = self.options.timeout
        self._active += len(batch)
        try:
            async with asyncio.timeout(timeout):
                outputs = await self.chain.abatch(
                    [item.value for item in batch], configs, return_exceptions=True
                )
        except TimeoutError:
            outputs = [AttemptTimeoutError(timeout or 0.0) for _ in batch]
        finally:
            self._active -= len(batch)
        firsts: list[_Outcome] = []
        for value, handler in zip(outputs, handlers, strict=True):
            if isinstance(value, Exception):
                self._note_failure(value, 1)
                firsts.append(_Outcome(error=value))
            else:
                firsts.append(_Outcome(output=value, usage=handler.usage))
        return firsts
