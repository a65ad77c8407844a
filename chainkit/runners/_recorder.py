"""The recorder: a batch's bookkeeping, the same whatever runs the items.

It reads the inputs lazily, skips what a resumed results file already holds,
records bad lines and missing variables without running them (the
precheck), hands the other items to an :class:`~chainkit.runners._executor.Executor`
with back-pressure, puts the records it gets back in order when asked
(through a bounded reorder buffer), writes them, and keeps the progress bar
and the :class:`BatchReport`. Every input yields exactly one record.

On a stop (a cancellation, Ctrl-C, ``iter_results`` left early, an error of
the backend or of the writer), no new input is read, the executor gets
``grace`` seconds for what is in flight, what waits in the reorder buffer is
written, and the error goes on (a cancellation is never swallowed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chainkit import __version__
from chainkit.errors import (
    ConfigError,
    MissingVariableError,
    OutputExistsError,
    ResumeMismatchError,
)
from chainkit.runners._executor import Executor, Stopper
from chainkit.runners._guard import ResultsLock, refuse_input_as_output
from chainkit.runners._inputs import InputItem, iterate_inputs, known_total
from chainkit.runners._options import BatchOptions
from chainkit.runners._output import (
    FAILED,
    SUCCEEDED,
    UNSEEN,
    ResultWriter,
    ResumeState,
    compact_results,
    scan_results,
)
from chainkit.runners._prepare import PreparedChain
from chainkit.runners._progress import NullProgress, ProgressSink, Snapshot, make_progress
from chainkit.runners._records import ResultRecord, ResultsHeader, error_record, sanitized
from chainkit.runners._report import BatchReport
from chainkit.trace import register_env_secrets

__all__ = ["Recorder", "Sink"]

log = logging.getLogger(__name__)

Sink = Callable[[ResultRecord], Awaitable[None]]


class Recorder:
    """One batch: ``chain``'s facts (name, fingerprint, variables), the inputs, the options,
    and the executor that runs the items. :meth:`run` runs it once."""

    def __init__(
        self,
        chain: PreparedChain,
        inputs: Any,
        options: BatchOptions,
        executor: Executor,
        *,
        keep_results: bool = True,
    ) -> None:
        self.chain = chain
        self.inputs = inputs
        self.options = options
        self.executor = executor
        self.output = options.output_path
        self.keep_results = keep_results and self.output is None
        capacity = executor.capacity
        if capacity is None:
            self._open: asyncio.Semaphore | None = None
        else:
            buffer = options.reorder_buffer
            if buffer is None:
                buffer = max(64, 4 * options.max_concurrency)
            self._open = asyncio.Semaphore(capacity + (buffer if options.ordered else capacity))
        self.progress: ProgressSink = make_progress(options.progress)
        self.report = executor.report_class(
            chain=chain.identity.name,
            strategy=options.strategy,
            max_concurrency=options.max_concurrency,
            output=str(self.output) if self.output is not None else None,
            notes=list(chain.notes),
        )
        self._writer: ResultWriter | None = None
        self._lock: ResultsLock | None = None
        self._resume: ResumeState | None = None
        self._superseded: set[int] = set()
        self._pending: dict[int, int] = {}  # index -> output sequence number
        self._seq = 0
        self._next_emit = 0
        self._buffer: dict[int, ResultRecord] = {}
        self._emit_lock = asyncio.Lock()
        self._sink: Sink | None = None
        self._stopper = Stopper()  # a failed write stops the batch with its error
        self._t0 = time.monotonic()

    # ------------------------------------------------------------------ run

    async def run(self, sink: Sink | None = None) -> BatchReport:
        """Run the batch to its end; the report. ``sink`` gets each record as it is written."""
        self._sink = sink
        self._t0 = time.monotonic()
        self._stopper.arm()
        register_env_secrets()  # so that no record carries one (inputs, outputs, errors)
        total = known_total(self.inputs)  # also: a missing input file fails here, before output
        self._open_output(total)
        self.report.total = total
        self.progress.start(total, f"batch {self.report.chain}")
        ticker = (
            None
            if isinstance(self.progress, NullProgress)
            else asyncio.create_task(self._tick(), name="chainkit-progress")
        )
        completed = False
        items = self._items()
        try:
            await self.executor.run(items, self._deliver)
            completed = True
        except BaseException as exc:
            cause = self._stopper.cause(exc)
            if cause is None and isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
                self.report.cancelled = True
            await self.executor.drain(self.options.grace)
            self._flush_reorder_buffer()
            if cause is not None:
                raise cause from None  # our own stop: the real cause, not a cancellation
            raise
        finally:
            with contextlib.suppress(RuntimeError):  # still running only if its reader was cut
                await items.aclose()
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([ticker])
            await self.executor.finish(self.report, completed=completed)
            self._finish(completed)
        return self.report

    def _finish(self, completed: bool) -> None:
        self.report.elapsed = time.monotonic() - self._t0
        if self._writer is not None:
            self._writer.close()
            if completed and self._superseded and self.output is not None:
                dropped = compact_results(self.output, self._superseded)
                log.info("%s: replaced %d earlier failed records", self.output, dropped)
        if self._lock is not None:
            self._lock.release()
        self.progress.close(self._snapshot())
        if self.report.cancelled:
            # the CLI drops this record (``resume_hint``) and prints its own line
            log.warning("%s", self.resume_hint(), extra={"resume_hint": True})

    def resume_hint(self) -> str:
        done = f"{self.report.done} done, {self.report.skipped} done before"
        if self.output is None:
            return f"batch interrupted ({done}); pass output=... to be able to resume"
        return (
            f"batch interrupted ({done}); finished items are in {self.output}: run it again "
            f"with resume=True and the same output to do the rest"
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
            in_flight=self.executor.in_flight,
            elapsed=time.monotonic() - self._t0,
            detail=getattr(self.executor, "progress_detail", ""),  # optional (openai-batch)
        )

    # ------------------------------------------------------------------ inputs

    async def _items(self) -> AsyncGenerator[InputItem, None]:
        """The items to run, lazily: resumed ones skipped, prechecked, one slot each."""
        async for item in iterate_inputs(self.inputs):
            if self._skip(item):
                continue
            if self._open is not None:
                await self._open.acquire()  # back-pressure from the writer / reorder buffer
            seq = self._seq
            self._seq += 1
            problem = self._precheck(item)
            if problem is not None:  # bad line, missing variable: recorded, never run
                record = error_record(
                    item, problem, attempts=0, started=datetime.now(UTC), t0=time.monotonic()
                )
                await self._place(seq, record)
                continue
            self._pending[item.index] = seq
            yield item

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
        if status == SUCCEEDED or (status == FAILED and not self.options.retry_failed):
            self.report.skipped += 1
            return True
        self._superseded.add(item.index)
        return False

    def _precheck(self, item: InputItem) -> BaseException | None:
        if item.problem is not None:
            return item.problem
        required = self.chain.required_vars
        if required and isinstance(item.value, dict):
            missing = required.difference(item.value)
            if missing:
                return MissingVariableError(
                    self.report.chain, missing, given=item.value.keys(), line=item.line
                )
        return None

    # ------------------------------------------------------------------ records

    async def _deliver(self, record: ResultRecord) -> bool:
        """The executor's :data:`~chainkit.runners._executor.Deliver`."""
        seq = self._pending.pop(record.index, None)
        if seq is None:
            return False  # a second record for an input: the first one stands
        try:
            await self._place(seq, record)
        except Exception as exc:  # noqa: BLE001 - e.g. the disk is full: stop the batch
            self._stopper.stop(exc)
        return True

    async def _place(self, seq: int, record: ResultRecord) -> None:
        """Write in completion order, or in input order through the reorder buffer."""
        record = sanitized(record)  # whichever backend made it: no secret, plain JSON
        if self.options.ordered:
            self._buffer[seq] = record
        async with self._emit_lock:
            if not self.options.ordered:
                await self._emit(record)
                return
            while self._next_emit in self._buffer:
                ready = self._buffer.pop(self._next_emit)
                self._next_emit += 1
                await self._emit(ready)

    async def _emit(self, record: ResultRecord) -> None:
        try:
            self._write(record)
            if self._sink is not None:
                await self._sink(record)
        finally:
            if self._open is not None:
                self._open.release()

    def _write(self, record: ResultRecord) -> None:
        if self._writer is not None:
            self._writer.write_record(record)
        self.report.add(record, keep=self.keep_results)

    def _flush_reorder_buffer(self) -> None:
        """On a stop, write what waits in the reorder buffer (out of order: each has its index)."""
        for seq in sorted(self._buffer):
            record = self._buffer.pop(seq)
            try:
                self._write(record)
            finally:
                if self._open is not None:
                    self._open.release()

    # ------------------------------------------------------------------ output

    def _open_output(self, total: int | None) -> None:
        path = self.output
        if path is None:
            return
        if path.is_dir():
            raise ConfigError(
                f"output {path} is a directory; pass a file in it, e.g. {path / 'results.jsonl'}"
            )
        refuse_input_as_output(path, self.inputs)
        lock = self._lock = ResultsLock(path)
        lock.acquire()  # one writer at a time, across processes
        try:
            self._open_locked(path, lock, total)
        except BaseException:
            lock.release()
            raise

    def _open_locked(self, path: Path, lock: ResultsLock, total: int | None) -> None:
        exists = path.exists() and path.stat().st_size > 0
        if exists and not self.options.resume:
            if not self.options.overwrite:
                raise OutputExistsError(str(path))
            lock.truncate()
            exists = False
        identity = self.chain.identity
        if exists:
            state = scan_results(path, total)
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
        settings = {**self.options.settings(), **self.executor.settings()}
        self._writer.write_header(
            ResultsHeader(
                chain=identity,
                settings=settings,
                created=datetime.now(UTC),
                resumed=exists,
                chainkit=__version__,
            )
        )
