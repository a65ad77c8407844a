"""The seam between the recorder and the backends: the :class:`Executor` protocol.

A batch is two objects composed by :func:`~chainkit.runners.run_batch`:

- the **recorder** (:class:`chainkit.runners._recorder.Recorder`) does the
  bookkeeping, the same for every backend: it reads the inputs lazily, skips
  what a resumed file already holds, records bad lines and missing variables
  (the *precheck*) without running them, keeps the reorder buffer, writes the
  results file, drives the progress bar and fills the report. It knows
  nothing about where items run.
- an **executor** runs the items it is handed and delivers one
  :class:`~chainkit.runners.ResultRecord` for each: the local one
  (:class:`chainkit.runners._local.LocalExecutor`: this event loop, four
  strategies, the retry loop), the Ray one
  (:class:`chainkit.runners._ray.RayExecutor`: blocks of items on worker
  actors, each running a local executor), the provider-batch one
  (:class:`chainkit.runners._provider_executor.ProviderBatchExecutor`: OpenAI's
  Batch API).

A new backend is one class with the members below (the Ray backend is the
example to read; the test double ``UpperExecutor`` in
``tests/runners/test_options.py`` is a whole backend in 20 lines), plus a name
in :data:`chainkit.runners._options.BACKENDS` and a branch in
:func:`chainkit.runners._runner.make_batch` that builds it. Options a backend
needs beyond :class:`~chainkit.runners.BatchOptions` go in a frozen settings
value of its own (``RaySettings``, ``ProviderBatchSettings``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from chainkit.runners._inputs import InputItem
from chainkit.runners._records import ResultRecord
from chainkit.runners._report import BatchReport

__all__ = ["Deliver", "Executor", "Stopper", "drain_tasks"]

log = logging.getLogger(__name__)

Deliver = Callable[[ResultRecord], Awaitable[bool]]
"""Hand one finished record to the recorder; False when a record for its index was already
written (a duplicate, e.g. an item run again after its worker died: it is dropped)."""


class Executor(Protocol):
    """Runs items somewhere; delivers exactly one record per item. What a backend implements.

    The recorder calls, in this order: :attr:`report_class` and :meth:`settings`
    (before the batch, for the report and the results file's header), then
    :meth:`run` once; if ``run`` raised (or was cancelled: Ctrl-C,
    ``iter_results`` left early, a full disk), :meth:`drain`; and always
    :meth:`finish` at the end. :attr:`in_flight` is read at any time.

    Records: build them with :func:`chainkit.runners._records.ok_record` and
    :func:`~chainkit.runners._records.error_record` (an item that fails, after
    its retries, is an error record, never an exception: the batch goes on).
    A backend that gets records back from elsewhere (a worker, a provider's
    batch file) delivers them as they are: the record's ``index`` says which
    input it belongs to.
    """

    @property
    def report_class(self) -> type[BatchReport]:
        """The report the recorder fills (a backend may add fields in a subclass)."""
        ...

    @property
    def capacity(self) -> int | None:
        """Items this executor may hold at once (read, not yet delivered): the recorder stops
        handing out items at ``capacity`` (plus its reorder buffer) until records come back.
        None: no bound (the executor reads everything first, like ``gather``)."""
        ...

    @property
    def in_flight(self) -> int:
        """Items started and not yet delivered (shown by the progress bar).

        An executor may also have a ``progress_detail`` property: a few words the
        progress display adds (openai-batch: its batches' states and request counts)."""
        ...

    def settings(self) -> dict[str, Any]:
        """Settings of this backend for the results file's header (e.g. ``{"backend": "ray",
        "workers": 4}``); merged over the options' own settings."""
        ...

    async def run(self, items: AsyncIterator[InputItem], deliver: Deliver) -> None:
        """Run every item of ``items`` and ``await deliver(record)`` once for each.

        ``items`` is lazy and applies back-pressure (reading waits while the
        executor holds ``capacity`` items). Items arrive prechecked: resumed
        ones are skipped, bad lines and missing variables already recorded.
        Return when every item read has been delivered. Raise only when the
        backend itself cannot go on (workers keep dying, a provider refuses the
        job): the batch stops and what was delivered stays written. An exception
        raised by ``deliver`` never reaches you (the recorder stops the batch
        through a cancellation instead).
        """
        ...

    async def drain(self, grace: float) -> None:
        """After :meth:`run` raised or was cancelled: let the items in flight deliver their
        records within ``grace`` seconds, then cancel the rest. Never raises."""
        ...

    async def finish(self, report: BatchReport, *, completed: bool) -> None:
        """The batch is over (``completed``: it ran to its end): release what the executor
        holds (connections, workers) and fold its counters into ``report``
        (``max_in_flight``, ``rate_limited``, ``rate_limit_wait``, ``min_concurrency``)."""
        ...


class Stopper:
    """Stop a task from elsewhere with an error of one's own, through a cancellation.

    For executors (and the recorder) whose failure is noticed in a side task
    (a worker died, the writer failed): :meth:`stop` records the cause and
    cancels the task that :meth:`arm` saw; where that task catches its
    ``CancelledError``, :meth:`cause` gives the error to raise instead, unless
    someone else cancelled the task too (then the cancellation wins: a caller's
    cancellation is never swallowed).
    """

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancels = 0

    def arm(self) -> None:
        """Watch the current task."""
        self._task = asyncio.current_task()

    def stop(self, error: BaseException) -> None:
        """Cancel the watched task because of ``error``; later errors are dropped (the task
        is stopping already: another cancellation would cut its clean-up short)."""
        if self.error is not None:
            return
        self.error = error
        task = self._task
        if task is not None and not task.done():
            self._cancels += 1
            task.cancel()

    def cause(self, exc: BaseException) -> BaseException | None:
        """Called with what the watched task caught: the error to raise instead of ``exc``,
        or None to let ``exc`` go on (it is not our cancellation, or not only ours)."""
        if self.error is None or not isinstance(exc, asyncio.CancelledError):
            return None
        task = asyncio.current_task()
        if task is None or task.cancelling() > self._cancels:
            return None
        for _ in range(self._cancels):
            task.uncancel()
        self._cancels = 0
        return self.error


async def drain_tasks(tasks: set[asyncio.Task[None]], grace: float, what: str) -> None:
    """Give ``tasks`` ``grace`` seconds to end, then cancel the rest (an executor's drain)."""
    pending = {t for t in tasks if not t.done()}
    if not pending:
        return
    try:
        if grace > 0:
            log.info(
                "stopping: no new inputs; waiting up to %.1f s for %d %s in flight",
                grace,
                len(pending),
                what,
            )
            _, pending = await asyncio.wait(pending, timeout=grace)
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5.0)
