"""run_batch, run_batch_sync and iter_results: one chain over many inputs.

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

Every item yields exactly one :class:`ResultRecord`; an item that fails
(after its retries, or at once for a non-transient error) is an error record,
and the batch goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import Runnable, RunnableConfig
from tenacity import AsyncRetrying, stop_after_attempt

from chainkit import __version__
from chainkit.errors import (
    ConfigError,
    InputError,
    MissingVariableError,
    ResumeMismatchError,
    redact,
)
from chainkit.runners._inputs import InputItem, iterate_inputs, known_total
from chainkit.runners._limits import AdaptiveConcurrency, RateLimits
from chainkit.runners._output import (
    FAILED,
    SUCCEEDED,
    UNSEEN,
    ResultWriter,
    ResumeState,
    compact_results,
    scan_results,
)
from chainkit.runners._prepare import PreparedChain, prepare_chain
from chainkit.runners._progress import NullProgress, ProgressSink, Snapshot, make_progress
from chainkit.runners._records import ErrorInfo, ResultRecord, ResultsHeader, to_jsonable
from chainkit.runners._report import BatchReport
from chainkit.runners._retry import (
    AttemptTimeoutError,
    RetryPolicy,
    classify_error,
    describe_error,
)
from chainkit.runners._usage import AttemptHandler

if TYPE_CHECKING:
    from chainkit.runners._ray_transport import ChainRecipe

__all__ = ["STRATEGIES", "ResultStream", "iter_results", "run_batch", "run_batch_sync"]

log = logging.getLogger(__name__)

Strategy = Literal["sliding", "fixed-batches", "abatch", "gather"]
STRATEGIES: tuple[str, ...] = ("sliding", "fixed-batches", "abatch", "gather")
Sink = Callable[[ResultRecord], Awaitable[None]]


def _check_options(
    *,
    max_concurrency: int,
    rpm: float | None,
    tpm: float | None,
    retries: int,
    timeout: float | None,
    resume: bool,
    retry_failed: bool,
    strategy: str,
    grace: float,
    reorder_buffer: int | None,
) -> str:
    if not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ConfigError(f"max_concurrency must be an integer >= 1, got {max_concurrency!r}")
    for label, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None and value <= 0:
            raise ConfigError(f"{label} must be > 0, got {value!r}; use None for no limit")
    if not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"retries must be an integer >= 0, got {retries!r}")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"timeout must be > 0 seconds, got {timeout!r}; use None for none")
    if retry_failed and not resume:
        raise ConfigError("retry_failed=True needs resume=True (it re-runs the failed records)")
    if grace < 0:
        raise ConfigError(f"grace must be >= 0 seconds, got {grace!r}")
    if reorder_buffer is not None and reorder_buffer < 1:
        raise ConfigError(f"reorder_buffer must be >= 1, got {reorder_buffer!r}")
    normalized = strategy.replace("_", "-").lower()
    if normalized not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; use one of: {', '.join(STRATEGIES)}")
    return normalized


class _Batch:
    """The state of one run: chain, limits, output, scheduling and the report."""

    def __init__(
        self,
        chain: Runnable[Any, Any],
        inputs: Any,
        *,
        max_concurrency: int,
        rpm: float | None,
        tpm: float | None,
        retries: int,
        timeout: float | None,
        output: str | Path | None,
        resume: bool,
        retry_failed: bool,
        overwrite: bool,
        ordered: bool,
        stream: bool,
        callbacks: list[BaseCallbackHandler] | None,
        config: RunnableConfig | None,
        progress: bool | str | ProgressSink | None,
        strategy: str,
        name: str | None,
        reorder_buffer: int | None,
        grace: float,
        backoff_base: float,
        backoff_max: float,
        max_retry_after: float,
    ) -> None:
        self.strategy = _check_options(
            max_concurrency=max_concurrency,
            rpm=rpm,
            tpm=tpm,
            retries=retries,
            timeout=timeout,
            resume=resume,
            retry_failed=retry_failed,
            strategy=strategy,
            grace=grace,
            reorder_buffer=reorder_buffer,
        )
        self.prepared: PreparedChain = prepare_chain(chain, name=name, pool_size=max_concurrency)
        self.chain = self.prepared.runnable
        self.inputs = inputs
        self.max_concurrency = max_concurrency
        self.rpm, self.tpm, self.retries, self.timeout = rpm, tpm, retries, timeout
        self.output = Path(output) if output is not None else None
        self.resume, self.retry_failed, self.overwrite = resume, retry_failed, overwrite
        self.ordered, self.stream = ordered, stream
        self.callbacks = list(callbacks or [])
        self.base_config: RunnableConfig = dict(config or {})  # type: ignore[assignment]
        self.grace = grace
        self.policy = RetryPolicy(
            attempts=max(retries + 1, self.prepared.folded_attempts),
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_retry_after=max_retry_after,
            extra_retry_on=self.prepared.retry_types,
            extra_retry_if=self.prepared.retry_if,
        )
        self.limits = RateLimits.create(rpm, tpm)
        unbounded = self.strategy == "gather"
        self.concurrency = AdaptiveConcurrency(None if unbounded else max_concurrency)
        window = max_concurrency
        buffer = reorder_buffer if reorder_buffer is not None else max(64, 4 * max_concurrency)
        self.reorder_buffer = buffer if ordered else window
        self._running = asyncio.Semaphore(window)
        self._open = asyncio.Semaphore(window + self.reorder_buffer)
        self.progress: ProgressSink = make_progress(progress)
        self.report = BatchReport(
            chain=self.prepared.identity.name,
            strategy=self.strategy,
            max_concurrency=None if unbounded else max_concurrency,
            output=str(self.output) if self.output is not None else None,
            notes=list(self.prepared.notes),
        )
        self._writer: ResultWriter | None = None
        self._resume: ResumeState | None = None
        self._superseded: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = 0
        self._seq = 0
        self._next_emit = 0
        self._buffer: dict[int, ResultRecord] = {}
        self._emit_lock = asyncio.Lock()
        self._sink: Sink | None = None
        self.keep_results = True
        self._main: asyncio.Task[Any] | None = None
        self._stopping = False
        self._emit_error: BaseException | None = None
        self._t0 = time.monotonic()

    # ------------------------------------------------------------------ run

    async def run(self, sink: Sink | None = None) -> BatchReport:
        self._sink = sink
        self._t0 = time.monotonic()
        self._main = asyncio.current_task()
        total = known_total(self.inputs)  # also: a missing input file fails here, before output
        self._open_output()
        self.report.total = total
        self.progress.start(total, f"batch {self.report.chain}")
        ticker = (
            None
            if isinstance(self.progress, NullProgress)
            else asyncio.create_task(self._tick(), name="chainkit-progress")
        )
        finished = False
        try:
            if self.strategy == "sliding":
                await self._run_sliding()
            elif self.strategy == "gather":
                await self._run_gather()
            else:
                await self._run_fixed()
            finished = True
        except BaseException as exc:
            self._stopping = True
            fatal = self._emit_error
            if fatal is None and isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
                self.report.cancelled = True
            await self._shutdown(exc)
            if fatal is not None and isinstance(exc, asyncio.CancelledError):
                raise fatal from None  # our own stop: the real cause, not a cancellation
            raise
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([ticker])
            await self.prepared.aclose()
            self._finish(finished)
        return self.report

    def _finish(self, finished: bool) -> None:
        self.report.elapsed = time.monotonic() - self._t0
        self.report.max_in_flight = self.concurrency.max_in_flight
        self.report.rate_limited = self.concurrency.rate_limited
        self.report.rate_limit_wait = self.limits.waited + self.concurrency.cooldown_waited
        limit = self.concurrency.min_limit
        self.report.min_concurrency = None if limit == float("inf") else max(1, int(limit))
        if self._writer is not None:
            self._writer.close()
            if finished and self._superseded and self.output is not None:
                dropped = compact_results(self.output, self._superseded)
                log.info("%s: replaced %d earlier failed records", self.output, dropped)
        self.progress.close(self._snapshot())
        if self.report.cancelled:
            log.warning("%s", self.resume_hint())

    def resume_hint(self) -> str:
        done = f"{self.report.done} done, {self.report.skipped} done before"
        if self.output is None:
            return f"batch interrupted ({done}); pass output=... to be able to resume"
        return (
            f"batch interrupted ({done}); finished items are in {self.output}: run it again "
            f"with resume=True (chainkit batch ... --output {self.output} --resume) to do the rest"
        )

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            self.progress.update(self._snapshot())

    def _snapshot(self) -> Snapshot:
        return Snapshot(
            done=self.report.done,
            total=self.report.total,
            succeeded=self.report.succeeded,
            failed=self.report.failed,
            skipped=self.report.skipped,
            retries=self.report.retries,
            in_flight=self._active,
            elapsed=time.monotonic() - self._t0,
        )

    async def _shutdown(self, exc: BaseException) -> None:
        """Stop: let in-flight items finish within the grace period, cancel the rest."""
        pending = {t for t in self._tasks if not t.done()}
        if not pending:
            self._flush_reorder_buffer()
            return
        grace = self.grace
        try:
            if grace > 0:
                log.warning(
                    "stopping: no new inputs; waiting up to %.1f s for %d items in flight",
                    grace,
                    len(pending),
                )
                _, pending = await asyncio.wait(pending, timeout=grace)
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5.0)
            self._flush_reorder_buffer()

    def _flush_reorder_buffer(self) -> None:
        """On a stop, write what waits in the reorder buffer (out of order: each has its index)."""
        for seq in sorted(self._buffer):
            record = self._buffer.pop(seq)
            try:
                if self._writer is not None:
                    self._writer.write_record(record)
                self.report.add(record, keep=self.keep_results and self.output is None)
            finally:
                self._open.release()

    # ------------------------------------------------------------------ output

    def _open_output(self) -> None:
        path = self.output
        if path is None:
            return
        exists = path.exists() and path.stat().st_size > 0
        if exists and not self.resume:
            if not self.overwrite:
                raise ConfigError(
                    f"output file {path} already exists; pass resume=True (--resume) to "
                    "continue it, overwrite=True (--overwrite) to start over, or choose "
                    "another file"
                )
            path.unlink()
            exists = False
        identity = self.prepared.identity
        state: ResumeState | None = None
        if exists:
            state = scan_results(path)
            if state.header is None and state.records:
                raise ResumeMismatchError(
                    f"{path} holds {state.records} records but no chainkit header, so which "
                    "chain wrote it is unknown; choose another output file"
                )
            if state.header is not None and state.header.chain.fingerprint != identity.fingerprint:
                old = state.header.chain
                raise ResumeMismatchError(
                    f"{path} was written by chain {old.name!r} (fingerprint {old.fingerprint}), "
                    f"not by {identity.name!r} ({identity.fingerprint}); resume with the same "
                    "chain and model, or write to another output file"
                )
            self._resume = state
            if state.header is None:  # only a partial header was there: start afresh
                exists = False
        self._writer = ResultWriter(path)
        self._writer.write_header(
            ResultsHeader(
                chain=identity,
                settings=self._settings(),
                created=datetime.now(UTC),
                resumed=exists,
                chainkit=__version__,
            )
        )

    def _settings(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "max_concurrency": self.max_concurrency,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "retries": self.retries,
            "attempts": self.policy.attempts,
            "timeout": self.timeout,
            "stream": self.stream,
            "ordered": self.ordered,
        }

    def _skip(self, item: InputItem) -> bool:
        state = self._resume
        if state is None:
            return False
        status = state.status(item.index)
        if status == UNSEEN:
            return False
        recorded = state.recorded_id(item.index)
        if recorded != item.id:
            raise ResumeMismatchError(
                f"{self.output}: record {item.index} is for id {recorded!r} but input "
                f"{item.index} has id {item.id!r}; the inputs changed since the first run: "
                "resume with the same inputs, or write to another output file"
            )
        if status == SUCCEEDED or (status == FAILED and not self.retry_failed):
            self.report.skipped += 1
            return True
        self._superseded.add(item.index)
        return False

    async def _deliver(self, seq: int, record: ResultRecord) -> None:
        """Write records in completion order, or in input order through the reorder buffer."""
        if self.ordered:
            self._buffer[seq] = record
        async with self._emit_lock:
            if not self.ordered:
                await self._emit(record)
                return
            while self._next_emit in self._buffer:
                ready = self._buffer.pop(self._next_emit)
                self._next_emit += 1
                await self._emit(ready)

    async def _emit(self, record: ResultRecord) -> None:
        try:
            if self._writer is not None:
                self._writer.write_record(record)
            self.report.add(record, keep=self.keep_results and self.output is None)
            if self._sink is not None:
                await self._sink(record)
        finally:
            self._open.release()

    # ------------------------------------------------------------------ strategies

    async def _items(self) -> AsyncGenerator[InputItem, None]:
        async for item in iterate_inputs(self.inputs):
            if not self._skip(item):
                yield item

    def _spawn(self, item: InputItem, first: _FirstAttempt | None = None) -> asyncio.Task[None]:
        seq = self._seq
        self._seq += 1
        task = asyncio.create_task(
            self._run_item(item, seq, first), name=f"chainkit-item-{item.index}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _wait_all(self) -> None:
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def _run_sliding(self) -> None:
        items = self._items()
        try:
            while True:
                await self._open.acquire()  # back-pressure from the writer / reorder buffer
                try:
                    await self._running.acquire()
                except BaseException:
                    self._open.release()
                    raise
                try:
                    item = await anext(items)
                except BaseException:
                    self._running.release()
                    self._open.release()
                    raise
                task = self._spawn(item)
                task.add_done_callback(lambda _t: self._running.release())
        except StopAsyncIteration:
            pass
        finally:
            await items.aclose()
        await self._wait_all()

    async def _run_fixed(self) -> None:
        batch: list[InputItem] = []
        async for item in self._items():
            batch.append(item)
            if len(batch) >= self.max_concurrency:
                await self._run_one_batch(batch)
                batch = []
        if batch:
            await self._run_one_batch(batch)

    async def _run_one_batch(self, batch: list[InputItem]) -> None:
        for _ in batch:
            await self._open.acquire()
        if self.strategy == "abatch":
            firsts = await self._abatch_first_attempts(batch)
            for item, first in zip(batch, firsts, strict=True):
                self._spawn(item, first)
        else:
            for item in batch:
                self._spawn(item)
        await self._wait_all()

    async def _run_gather(self) -> None:
        items = [item async for item in self._items()]
        self._open = asyncio.Semaphore(len(items) + 1)
        for _ in items:
            await self._open.acquire()
        for item in items:
            self._spawn(item)
        await self._wait_all()

    # ------------------------------------------------------------------ one item

    async def _run_item(
        self, item: InputItem, seq: int, first: _FirstAttempt | None = None
    ) -> None:
        self._active += 1
        try:
            record = await self._process(item, first=first)
        except asyncio.CancelledError:
            # Raised inside the chain, not by a stop of ours: it cancels the whole
            # batch (never swallowed, never turned into an error record).
            if not self._stopping and self._main is not None and not self._main.done():
                self._main.cancel()
            raise
        finally:
            self._active -= 1
        try:
            await self._deliver(seq, record)
        except Exception as exc:  # noqa: BLE001 - e.g. the disk is full: stop the batch
            if self._emit_error is None:
                self._emit_error = exc
            if self._main is not None and not self._main.done():
                self._main.cancel()

    def _precheck(self, item: InputItem) -> BaseException | None:
        if item.problem is not None:
            return item.problem
        required = self.prepared.required_vars
        if required and isinstance(item.value, dict):
            missing = required.difference(item.value)
            if missing:
                return MissingVariableError(
                    self.report.chain, missing, given=item.value.keys(), line=item.line
                )
        return None

    async def _process(self, item: InputItem, first: _FirstAttempt | None = None) -> ResultRecord:
        started = datetime.now(UTC)
        t0 = time.monotonic()
        problem = self._precheck(item)
        if problem is not None:
            return self._error_record(item, problem, attempts=0, started=started, t0=t0)
        # The first attempt runs outside tenacity (the common case costs nothing
        # extra); tenacity drives the retries, if the first attempt failed.
        attempts = 1
        state = _AttemptState()
        error: Exception
        if first is not None and not first.skipped:
            if first.error is None:
                state.output, state.usage = first.output, first.usage
                return self._ok_record(item, state, attempts, started, t0)
            error = first.error
        else:
            try:
                state = await self._attempt(item, attempts)
            except Exception as exc:  # noqa: BLE001 - classified below
                error = exc
            else:
                return self._ok_record(item, state, attempts, started, t0)
        if attempts >= self.policy.attempts or not self.policy.should_retry(error):
            return self._error_record(item, error, attempts=attempts, started=started, t0=t0)
        try:
            await asyncio.sleep(self.policy.wait_for(attempts, error))
            retrying = AsyncRetrying(
                stop=stop_after_attempt(self.policy.attempts - attempts),
                wait=self._tenacity_wait(attempts),
                retry=self.policy.tenacity_retry,
                reraise=True,
            )
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    state = await self._attempt(item, attempts)
        except Exception as exc:  # noqa: BLE001 - the item fails; the batch goes on
            return self._error_record(item, exc, attempts=attempts, started=started, t0=t0)
        return self._ok_record(item, state, attempts, started, t0)

    def _tenacity_wait(self, offset: int) -> Callable[[Any], float]:
        policy = self.policy

        def wait(retry_state: Any) -> float:
            outcome = retry_state.outcome
            exc = outcome.exception() if outcome is not None and outcome.failed else None
            return policy.wait_for(retry_state.attempt_number + offset, exc)

        return wait

    async def _attempt(self, item: InputItem, number: int) -> _AttemptState:
        await self.concurrency.acquire()
        handler: AttemptHandler | None = None
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
            state = _AttemptState()
            timeout_cm = asyncio.timeout(self.timeout)
            try:
                async with timeout_cm:
                    if self.stream:
                        await self._astream(item, config, state)
                    else:
                        state.output = await self.chain.ainvoke(item.value, config)
            except TimeoutError as exc:
                if timeout_cm.expired():
                    raise AttemptTimeoutError(self.timeout or 0.0) from exc
                raise
            state.usage = handler.usage
        except Exception as exc:
            kind = classify_error(exc)
            if kind.rate_limited:
                pause = kind.retry_after
                if pause is not None:
                    pause = min(pause, self.policy.max_retry_after)
                self.concurrency.on_rate_limited(
                    pause if pause is not None else self.policy.backoff(number)
                )
            raise
        finally:
            self.concurrency.release()
        self.concurrency.on_success()
        return state

    async def _astream(self, item: InputItem, config: RunnableConfig, state: _AttemptState) -> None:
        start = time.monotonic()
        final: Any = None
        first = True
        async for chunk in self.chain.astream(item.value, config):
            if first:
                state.ttft = time.monotonic() - start
                first = False
                final = chunk
                continue
            try:
                final = final + chunk
            except TypeError:  # cumulative chunks (JSON parsers): the last one is the whole
                final = chunk
        state.output = final

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

    async def _abatch_first_attempts(self, batch: list[InputItem]) -> list[_FirstAttempt]:
        """First attempts of a fixed batch through ``chain.abatch`` (the ``abatch`` strategy)."""
        firsts = [_FirstAttempt(skipped=True) for _ in batch]  # prechecks fail in _process
        runnable = [i for i, item in enumerate(batch) if self._precheck(item) is None]
        if not runnable:
            return firsts
        handlers = [
            AttemptHandler(
                self.limits,
                prepaid_tokens=0.0,
                completion_estimate=self.prepared.max_tokens,
                prepaid=False,
            )
            for _ in runnable
        ]
        configs = [self._config(batch[i], 1, h) for i, h in zip(runnable, handlers, strict=True)]
        for config in configs:
            config["max_concurrency"] = self.max_concurrency
        self._active += len(runnable)
        try:
            async with asyncio.timeout(self.timeout):
                outputs = await self.chain.abatch(
                    [batch[i].value for i in runnable], configs, return_exceptions=True
                )
        except TimeoutError:
            outputs = [AttemptTimeoutError(self.timeout or 0.0) for _ in runnable]
        finally:
            self._active -= len(runnable)
        for position, i in enumerate(runnable):
            value = outputs[position]
            if isinstance(value, Exception):
                kind = classify_error(value)
                if kind.rate_limited:
                    self.concurrency.on_rate_limited(kind.retry_after or self.policy.backoff(1))
                firsts[i] = _FirstAttempt(error=value)
            else:
                firsts[i] = _FirstAttempt(output=value, usage=handlers[position].usage)
        return firsts

    # ------------------------------------------------------------------ records

    def _ok_record(
        self, item: InputItem, state: _AttemptState, attempts: int, started: datetime, t0: float
    ) -> ResultRecord:
        try:
            output = to_jsonable(state.output)
        except Exception:  # noqa: BLE001 - an odd output object is kept as text
            output = str(state.output)
        usage = state.usage
        if usage is None:
            from chainkit.runners._records import usage_from_output

            usage = usage_from_output(state.output)
        return ResultRecord(
            index=item.index,
            id=item.id,
            line=item.line,
            input=item.value,
            output=output,
            attempts=attempts,
            started=started,
            ended=datetime.now(UTC),
            latency=time.monotonic() - t0,
            ttft=state.ttft,
            usage=usage,
        )

    def _error_record(
        self,
        item: InputItem,
        exc: BaseException,
        *,
        attempts: int,
        started: datetime,
        t0: float,
    ) -> ResultRecord:
        kind, message = describe_error(exc)
        status = classify_error(exc).status
        if isinstance(exc, InputError | MissingVariableError):
            status = None
        log.debug("item %s failed after %d attempts: %s: %s", item.index, attempts, kind, message)
        return ResultRecord(
            index=item.index,
            id=item.id,
            line=item.line,
            input=item.value,
            error=ErrorInfo(type=kind, message=redact(message), status=status, attempts=attempts),
            attempts=attempts,
            started=started,
            ended=datetime.now(UTC),
            latency=time.monotonic() - t0,
        )


class _AttemptState:
    __slots__ = ("output", "ttft", "usage")

    def __init__(self) -> None:
        self.output: Any = None
        self.ttft: float | None = None
        self.usage: Any = None


class _FirstAttempt:
    __slots__ = ("error", "output", "skipped", "usage")

    def __init__(
        self,
        output: Any = None,
        error: Exception | None = None,
        usage: Any = None,
        skipped: bool = False,
    ) -> None:
        self.output = output
        self.error = error
        self.usage = usage
        self.skipped = skipped


# ---------------------------------------------------------------------- public API


async def run_batch(
    chain: Runnable[Any, Any] | ChainRecipe,
    inputs: Iterable[Any] | Any,
    *,
    max_concurrency: int = 8,
    rpm: float | None = None,
    tpm: float | None = None,
    retries: int = 3,
    timeout: float | None = None,  # noqa: ASYNC109 - seconds per attempt, not a deadline
    output: str | Path | None = None,
    resume: bool = False,
    retry_failed: bool = False,
    overwrite: bool = False,
    ordered: bool = False,
    stream: bool = False,
    callbacks: list[BaseCallbackHandler] | None = None,
    config: RunnableConfig | None = None,
    progress: bool | str | ProgressSink | None = True,
    strategy: Strategy | str = "sliding",
    name: str | None = None,
    reorder_buffer: int | None = None,
    grace: float = 2.0,
    backoff_base: float = 0.5,
    backoff_max: float = 20.0,
    max_retry_after: float = 60.0,
    backend: Literal["local", "ray"] | str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
) -> BatchReport:
    """Run ``chain`` over ``inputs`` concurrently, within limits, with one record per input.

    Args:
        chain: any LangChain ``Runnable`` (``make_chain(...)``, ``prompt | model``, ...).
        inputs: a list, any iterable, an async iterable, or the path of a JSONL file
            (one JSON object of template variables per line). Read lazily.
        max_concurrency: items in flight at most (also put in each item's RunnableConfig).
        rpm, tpm: requests / tokens per minute for the whole batch (smooth buckets).
        retries: extra attempts per item for transient errors (429, 408, 409, 5xx,
            timeouts, connection errors, cut streams); others fail the item at once.
        timeout: seconds per attempt (a timed-out attempt is retried like a 5xx).
        output: a JSONL file to append records to (header line first); without one
            the records are kept in ``report.results``.
        resume: continue ``output``: inputs already recorded are not run again.
        retry_failed: with ``resume``, run the inputs recorded as failed again.
        overwrite: start ``output`` over when it exists (without it that is an error).
        ordered: write records in input order (through a bounded reorder buffer)
            instead of completion order.
        stream: run each item through ``astream`` (measures time to first token).
        callbacks: LangChain callback handlers attached to every item (StreamCapture...).
        config: a base RunnableConfig (tags, metadata, callbacks) for every item.
        progress: True (a bar on a terminal, lines in logs, HTML in Jupyter), False,
            "rich", "plain", "notebook", or your own ProgressSink.
        strategy: "sliding" (default), "fixed-batches", "abatch" or "gather".
        name: the chain's name in the header and report (default: its LangChain name).
        reorder_buffer: with ordered=True, completed records held back at most
            (default max(64, 4 * max_concurrency)); when full, no new input is read
            until the oldest item is done.
        grace: seconds in-flight items get to finish after a cancellation.
        backoff_base, backoff_max: full-jitter exponential backoff bounds (seconds).
        max_retry_after: cap on a server's Retry-After (seconds).
        backend: "local" (this process) or "ray" (a Ray cluster; ``pip install
            'chainkit[ray]'``; see :func:`chainkit.runners.run_batch_ray`).
        ray_address, workers: with backend="ray", the cluster to join (None starts a
            local Ray instance) and the number of worker actors.

    Returns:
        A :class:`BatchReport`.

    Raises:
        ConfigError: bad options, or ``output`` exists and neither resume nor overwrite.
        ResumeMismatchError: ``output`` was written by another chain, or the inputs changed.
        asyncio.CancelledError: after flushing what finished (never swallowed).
    """
    if backend == "ray":
        from chainkit.runners._ray import run_batch_ray

        return await run_batch_ray(
            chain,
            inputs,
            ray_address=ray_address,
            workers=workers,
            max_concurrency=max_concurrency,
            rpm=rpm,
            tpm=tpm,
            retries=retries,
            timeout=timeout,
            output=output,
            resume=resume,
            retry_failed=retry_failed,
            overwrite=overwrite,
            ordered=ordered,
            stream=stream,
            callbacks=callbacks,
            config=config,
            progress=progress,
            strategy=strategy,
            name=name,
            reorder_buffer=reorder_buffer,
            grace=grace,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_retry_after=max_retry_after,
        )
    from chainkit.runners._ray import local_chain

    chain, name = local_chain(
        chain, name, backend=backend, ray_address=ray_address, workers=workers
    )
    batch = _Batch(
        chain,
        inputs,
        max_concurrency=max_concurrency,
        rpm=rpm,
        tpm=tpm,
        retries=retries,
        timeout=timeout,
        output=output,
        resume=resume,
        retry_failed=retry_failed,
        overwrite=overwrite,
        ordered=ordered,
        stream=stream,
        callbacks=callbacks,
        config=config,
        progress=progress,
        strategy=strategy,
        name=name,
        reorder_buffer=reorder_buffer,
        grace=grace,
        backoff_base=backoff_base,
        backoff_max=backoff_max,
        max_retry_after=max_retry_after,
    )
    return await batch.run()


def run_batch_sync(
    chain: Runnable[Any, Any] | ChainRecipe,
    inputs: Iterable[Any] | Any,
    *,
    max_concurrency: int = 8,
    rpm: float | None = None,
    tpm: float | None = None,
    retries: int = 3,
    timeout: float | None = None,
    output: str | Path | None = None,
    resume: bool = False,
    retry_failed: bool = False,
    overwrite: bool = False,
    ordered: bool = False,
    stream: bool = False,
    callbacks: list[BaseCallbackHandler] | None = None,
    config: RunnableConfig | None = None,
    progress: bool | str | ProgressSink | None = True,
    strategy: Strategy | str = "sliding",
    name: str | None = None,
    reorder_buffer: int | None = None,
    grace: float = 2.0,
    backoff_base: float = 0.5,
    backoff_max: float = 20.0,
    max_retry_after: float = 60.0,
    backend: Literal["local", "ray"] | str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
) -> BatchReport:
    """:func:`run_batch` for synchronous code; also works inside a running event loop.

    Without a running loop it uses ``asyncio.run``. Inside one (a Jupyter cell,
    an async framework) it runs the batch on its own loop in a worker thread
    and waits; Ctrl-C (or "interrupt kernel") cancels it the same way.
    """
    kwargs: dict[str, Any] = {
        "max_concurrency": max_concurrency,
        "rpm": rpm,
        "tpm": tpm,
        "retries": retries,
        "timeout": timeout,
        "output": output,
        "resume": resume,
        "retry_failed": retry_failed,
        "overwrite": overwrite,
        "ordered": ordered,
        "stream": stream,
        "callbacks": callbacks,
        "config": config,
        "progress": progress,
        "strategy": strategy,
        "name": name,
        "reorder_buffer": reorder_buffer,
        "grace": grace,
        "backoff_base": backoff_base,
        "backoff_max": backoff_max,
        "max_retry_after": max_retry_after,
        "backend": backend,
        "ray_address": ray_address,
        "workers": workers,
    }
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_batch(chain, inputs, **kwargs))
    return _run_in_thread(lambda: run_batch(chain, inputs, **kwargs))


def _run_in_thread(factory: Callable[[], Awaitable[BatchReport]]) -> BatchReport:
    box: dict[str, Any] = {}
    ready = threading.Event()

    def target() -> None:
        loop = asyncio.new_event_loop()
        try:
            task = loop.create_task(_as_coroutine(factory))
            box["loop"], box["task"] = loop, task
            ready.set()
            box["value"] = loop.run_until_complete(task)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread below
            box["error"] = exc
        finally:
            ready.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=target, name="chainkit-batch", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
    except KeyboardInterrupt:
        ready.wait()
        loop, task = box.get("loop"), box.get("task")
        if loop is not None and task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
        thread.join()
        raise
    if "error" in box:
        error: BaseException = box["error"]
        if isinstance(error, asyncio.CancelledError):
            raise KeyboardInterrupt from error
        raise error
    value: BatchReport = box["value"]
    return value


async def _as_coroutine(factory: Callable[[], Awaitable[BatchReport]]) -> BatchReport:
    return await factory()


class ResultStream:
    """The async iterator returned by :func:`iter_results`; ``report`` is set when it ends.

    Leaving the ``async for`` early (``break``, an exception, a cancellation)
    stops the batch like a cancellation: in-flight items get the grace
    period, and what finished is written. ``await stream.aclose()`` does the
    same explicitly.
    """

    def __init__(self, batch: _Batch) -> None:
        self._batch = batch
        self._queue: asyncio.Queue[ResultRecord | _End] = asyncio.Queue(maxsize=1)
        self._task: asyncio.Task[BatchReport] | None = None
        self._started = False
        self.report: BatchReport | None = None

    def __aiter__(self) -> AsyncIterator[ResultRecord]:
        if self._started:
            raise RuntimeError("iter_results(...) can be iterated only once")
        self._started = True
        return self._iterate()

    async def _drive(self) -> BatchReport:
        try:
            return await self._batch.run(sink=self._queue.put)
        finally:
            await self._queue.put(_End())

    async def _iterate(self) -> AsyncIterator[ResultRecord]:
        task = asyncio.create_task(self._drive(), name="chainkit-iter-results")
        self._task = task
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, _End):
                    break
                yield item
            await asyncio.wait([task])
            self.report = task.result()  # re-raises the batch's error, if any
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Stop the batch (what finished is written) and wait for it to wind down."""
        task = self._task
        if task is None:
            return
        if not task.done():
            task.cancel()
            while not task.done():
                with contextlib.suppress(asyncio.QueueEmpty):
                    self._queue.get_nowait()  # unblock an item waiting to hand its record over
                await asyncio.wait([task], timeout=0.05)
        if self.report is None:
            self.report = self._batch.report


class _End:
    pass


def iter_results(
    chain: Runnable[Any, Any] | ChainRecipe,
    inputs: Iterable[Any] | Any,
    *,
    max_concurrency: int = 8,
    rpm: float | None = None,
    tpm: float | None = None,
    retries: int = 3,
    timeout: float | None = None,
    output: str | Path | None = None,
    resume: bool = False,
    retry_failed: bool = False,
    overwrite: bool = False,
    ordered: bool = False,
    stream: bool = False,
    callbacks: list[BaseCallbackHandler] | None = None,
    config: RunnableConfig | None = None,
    progress: bool | str | ProgressSink | None = True,
    strategy: Strategy | str = "sliding",
    name: str | None = None,
    reorder_buffer: int | None = None,
    grace: float = 2.0,
    backoff_base: float = 0.5,
    backoff_max: float = 20.0,
    max_retry_after: float = 60.0,
    backend: Literal["local", "ray"] | str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
) -> ResultStream:
    """Like :func:`run_batch`, but yield each :class:`ResultRecord` as it is written.

    >>> async for record in iter_results(chain, inputs, progress=False):
    ...     print(record.index, record.output or record.error)

    A slow consumer slows the batch down (no unbounded queue). The report is
    in ``stream.report`` once the iteration ends.
    """
    options: dict[str, Any] = {
        "max_concurrency": max_concurrency,
        "rpm": rpm,
        "tpm": tpm,
        "retries": retries,
        "timeout": timeout,
        "output": output,
        "resume": resume,
        "retry_failed": retry_failed,
        "overwrite": overwrite,
        "ordered": ordered,
        "stream": stream,
        "callbacks": callbacks,
        "config": config,
        "progress": progress,
        "strategy": strategy,
        "name": name,
        "reorder_buffer": reorder_buffer,
        "grace": grace,
        "backoff_base": backoff_base,
        "backoff_max": backoff_max,
        "max_retry_after": max_retry_after,
    }
    from chainkit.runners._ray import local_chain, ray_batch

    batch: _Batch
    if backend == "ray":
        batch = ray_batch(chain, inputs, ray_address=ray_address, workers=workers, **options)
    else:
        runnable, options["name"] = local_chain(
            chain, name, backend=backend, ray_address=ray_address, workers=workers
        )
        batch = _Batch(runnable, inputs, **options)
    batch.keep_results = False
    return ResultStream(batch)
