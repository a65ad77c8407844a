"""The Ray backend: the same batch, spread over the actors of a Ray cluster.

>>> report = await run_batch(chain, "inputs.jsonl", output="out.jsonl", backend="ray")

- **The driver** (this process) is the usual recorder (inputs read lazily,
  resume, prechecks, the one output file, ordered output, progress, the
  report) composed with a :class:`RayExecutor`, which hands *blocks* of items
  to worker actors and delivers the records they send back. It never holds
  more than ``workers * blocks_per_worker`` blocks in flight, so memory stays
  bounded whatever the number of inputs.
- **Each worker** runs a local executor on its blocks with its own
  ``max_concurrency``; the driver pulls records back as they finish (see
  :mod:`chainkit.runners._ray_worker`). ``rpm``/``tpm`` are global: one
  limiter actor holds the buckets. A 429 cools every worker down.
- **Chains travel** as a :class:`ChainRecipe` or pickled (see
  :mod:`chainkit.runners._ray_transport`).
- **Faults**: when a worker dies mid-block, the items of the block it had not
  returned run again on a fresh worker; the recorder keeps exactly one record
  per input (a second record for an index is dropped). After
  ``max_block_retries`` deaths the remaining items of a block become error
  records (``WorkerLostError``) rather than looping forever.
- **Warm workers**: see :mod:`chainkit.runners._ray_pool`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Unpack

from langchain_core.runnables import Runnable

from chainkit.errors import ChainkitError, ChainkitRunError, ConfigError
from chainkit.runners._executor import Deliver, Stopper, drain_tasks
from chainkit.runners._inputs import InputItem, known_total
from chainkit.runners._options import BatchKwargs, BatchOptions, resolve_options
from chainkit.runners._prepare import PreparedChain, prepare_chain
from chainkit.runners._ray_pool import (
    Pool,
    RaySettings,
    WorkerRef,
    cluster_cpus,
    connect,
    failure_error,
    first_line,
    import_ray,
    is_lost,
    release_ray_workers,
    worker_error,
)
from chainkit.runners._ray_transport import ChainRecipe, Transport, transport_for
from chainkit.runners._recorder import Recorder
from chainkit.runners._records import error_record
from chainkit.runners._report import BatchReport

__all__ = [
    "ChainRecipe",
    "RayBatchReport",
    "RayExecutor",
    "connect",
    "failure_error",
    "ray_executor",
    "release_ray_workers",
    "run_batch_ray",
]

log = logging.getLogger(__name__)

MAX_BLOCK_SIZE = 1024
TAKE_WAIT = 1.0  # seconds a worker holds the driver's request for records when it has none


class WorkerLostError(ChainkitRunError):
    """The worker running an item kept dying; the item was not run to its end."""


# ---------------------------------------------------------------------- report


@dataclass
class RayBatchReport(BatchReport):
    """:class:`BatchReport` of a batch run on Ray, plus how the work was spread."""

    backend: str = "ray"
    workers: int = 0
    block_size: int = 0
    blocks: int = 0
    startup: float = 0.0
    reused_workers: int = 0
    worker_restarts: int = 0
    rerun_items: int = 0
    duplicates_dropped: int = 0
    items_per_worker: dict[str, int] = field(default_factory=dict)
    worker_cpu: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["ray"] = {
            "workers": self.workers,
            "startup": round(self.startup, 3),
            "reused_workers": self.reused_workers,
            "block_size": self.block_size,
            "blocks": self.blocks,
            "worker_restarts": self.worker_restarts,
            "rerun_items": self.rerun_items,
            "duplicates_dropped": self.duplicates_dropped,
            "items_per_worker": dict(self.items_per_worker),
            "worker_cpu": round(self.worker_cpu, 3),
        }
        return data

    def _rows(self) -> list[tuple[str, str]]:
        rows = super()._rows()
        text = (
            f"{self.workers} workers (ready in {self.startup:.1f} s), "
            f"{self.blocks} blocks of <= {self.block_size} items"
        )
        if self.worker_restarts:
            text += (
                f"; {self.worker_restarts} workers lost, {self.rerun_items} items run again, "
                f"{self.duplicates_dropped} duplicate records dropped"
            )
        rows.insert(2, ("ray", text))
        return rows


# ---------------------------------------------------------------------- executor


class RayExecutor:
    """Runs items on Ray worker actors, a block at a time (an
    :class:`~chainkit.runners._executor.Executor`)."""

    report_class = RayBatchReport

    def __init__(
        self,
        prepared: PreparedChain,
        options: BatchOptions,
        *,
        ray: Any,
        transport: Transport,
        workers: int,
        worker_cpus: float,
        block_size: int,
        settings: RaySettings,
    ) -> None:
        self.prepared = (
            prepared  # the driver's look at the chain (its HTTP pools closed at the end)
        )
        self.options = options
        self.ray = ray
        self.transport = transport
        self.workers = workers
        self.worker_cpus = worker_cpus
        self.block_size = block_size
        self.settings_ = settings
        self.max_blocks = workers * settings.blocks_per_worker
        # what each worker runs: the local executor's options, limits held by the driver
        self.worker_options = options.replace(
            rpm=None,
            tpm=None,
            output=None,
            resume=False,
            retry_failed=False,
            overwrite=False,
            ordered=False,
            callbacks=None,
            progress=False,
            reorder_buffer=None,
            backend="local",
            ray_address=None,
            workers=None,
        )
        self._stopper = Stopper()
        self._pool: Pool | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = 0
        self._blocks = 0
        self._startup = 0.0
        self._rerun_items = 0
        self._duplicates = 0
        self._items_per_worker: dict[str, int] = {}

    @property
    def capacity(self) -> int:
        return self.max_blocks * self.block_size + self.block_size

    @property
    def in_flight(self) -> int:
        return self._active

    def settings(self) -> dict[str, Any]:
        attempts = self.options.retry.folded(
            self.prepared.folded_attempts, self.prepared.retry_types, self.prepared.retry_if
        ).attempts
        return {
            "attempts": attempts,
            "backend": "ray",
            "workers": self.workers,
            "block_size": self.block_size,
        }

    async def run(self, items: AsyncIterator[InputItem], deliver: Deliver) -> None:
        self._stopper.arm()
        try:
            await self._run(items, deliver)
        except BaseException as exc:
            cause = self._stopper.cause(exc)
            if cause is not None:
                raise cause from None
            raise

    async def _run(self, items: AsyncIterator[InputItem], deliver: Deliver) -> None:
        limits = self.options.limits
        pool = Pool(
            self.ray,
            size=self.workers,
            slots=self.settings_.blocks_per_worker,
            transport=self.transport,
            options=self.worker_options,
            rpm=limits.rpm,
            tpm=limits.tpm,
            cpus=self.worker_cpus,
            max_restarts=max(4, 2 * self.workers),
            on_error=self._stopper.stop,
        )
        self._pool = pool  # shut down in finish, after in-flight blocks had their grace
        started = time.monotonic()
        await pool.start()
        self._startup = time.monotonic() - started
        log.info(
            "%d Ray workers ready in %.1f s (%d reused)", self.workers, self._startup, pool.reused
        )
        room = asyncio.Semaphore(self.max_blocks)  # back-pressure: blocks in flight
        more = True
        while more:
            await room.acquire()
            try:
                block, more = await self._read_block(items)
            except BaseException:
                room.release()
                raise
            if not block:
                room.release()
                continue
            self._blocks += 1
            task = asyncio.create_task(self._drive(pool, block, deliver), name="chainkit-block")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(lambda _t: room.release())
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def _read_block(self, items: AsyncIterator[InputItem]) -> tuple[list[InputItem], bool]:
        """Up to ``block_size`` items; False when the inputs are done."""
        block: list[InputItem] = []
        while len(block) < self.block_size:
            try:
                block.append(await anext(items))
            except StopAsyncIteration:
                return block, False
        return block, True

    async def drain(self, grace: float) -> None:
        await drain_tasks(self._tasks, grace, "blocks")

    async def finish(self, report: BatchReport, *, completed: bool) -> None:
        await self.prepared.aclose()
        pool = self._pool
        if pool is not None:
            pool.shutdown(keep=self.settings_.keep_workers if completed else 0.0)
        self._collect(report, pool)

    # ------------------------------------------------------------------ blocks

    async def _drive(self, pool: Pool, block: list[InputItem], deliver: Deliver) -> None:
        """Run one block to its end: on a worker, and again elsewhere for what a dead one lost."""
        pending = {item.index: item for item in block}
        deaths = 0
        try:
            while pending and not pool.closed:
                worker = await pool.acquire()
                try:
                    await self._run_on(pool, worker, pending, deliver)
                except ChainkitError:  # the worker reported a failure of its own
                    pool.release(worker)
                    raise
                except Exception as exc:  # noqa: BLE001 - Ray's errors: sorted just below
                    if not is_lost(self.ray, exc):
                        pool.release(worker)
                        raise worker_error(self.ray, exc) from None
                    deaths += 1
                    self._rerun_items += len(pending)
                    if deaths > self.settings_.max_block_retries:
                        await self._give_up(pending, exc, deaths, deliver)
                        return
                    pool.lost(worker, exc)
                else:
                    pool.release(worker)
                    if pending:  # the worker ended the block without them: run them again
                        log.warning("a Ray worker skipped %d items; rerunning them", len(pending))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - stops the batch, raised by run()
            self._stopper.stop(exc)

    async def _run_on(
        self, pool: Pool, worker: WorkerRef, pending: dict[int, InputItem], deliver: Deliver
    ) -> None:
        rows = [(item.index, item.value, item.id, item.line) for item in pending.values()]
        self._active += len(rows)
        unfinished = len(rows)
        try:
            block_id = uuid.uuid4().hex
            started = await worker.handle.start_block.remote(block_id, rows)
            if "failure" in started:
                raise failure_error(started["failure"])
            while True:
                records, info = await worker.handle.take.remote(block_id, TAKE_WAIT)
                for record in records:
                    if pending.pop(record.index, None) is None:
                        self._duplicates += 1  # already written (a rerun of a lost block's item)
                        continue
                    unfinished -= 1
                    self._active -= 1
                    if not await deliver(record):
                        self._duplicates += 1
                if "cooldown" in info:
                    pool.cool_down(float(info["cooldown"]), worker)
                if "failure" in info:
                    raise failure_error(info["failure"])
                if "stats" in info:
                    pool.stats[worker.name] = info["stats"]
                    self._items_per_worker[worker.name] = info["stats"]["items"]
                    break
        finally:
            self._active -= unfinished

    async def _give_up(
        self, pending: dict[int, InputItem], exc: BaseException, deaths: int, deliver: Deliver
    ) -> None:
        """Error records for items whose workers kept dying (one record per input, still)."""
        lost = WorkerLostError(
            f"the Ray worker running this item died {deaths} times (last: "
            f"{first_line(exc)}); rerun with --resume --retry-failed"
        )
        for item in list(pending.values()):
            pending.pop(item.index, None)
            now = datetime.now(UTC)
            await deliver(error_record(item, lost, attempts=0, started=now, t0=time.monotonic()))

    def _collect(self, report: BatchReport, pool: Pool | None) -> None:
        """Fold the workers' counters into the report."""
        report.min_concurrency = self.options.max_concurrency
        if isinstance(report, RayBatchReport):
            report.workers = self.workers
            report.block_size = self.block_size
            report.blocks = self._blocks
            report.startup = self._startup
            report.rerun_items = self._rerun_items
            report.duplicates_dropped = self._duplicates
            report.items_per_worker = dict(self._items_per_worker)
            if pool is not None:
                report.reused_workers = pool.reused
                report.worker_restarts = pool.restarts
        stats = [s for s in (pool.stats.values() if pool is not None else ()) if s]
        if not stats:
            return
        if isinstance(report, RayBatchReport):
            report.worker_cpu = sum(s.get("cpu", 0.0) for s in stats)
        report.max_in_flight = sum(s["max_in_flight"] for s in stats)
        report.rate_limited = sum(s["rate_limited"] for s in stats)
        report.rate_limit_wait = sum(s["rate_limit_wait"] + s["cooldown_waited"] for s in stats)
        limit = min(s["min_limit"] for s in stats)
        report.min_concurrency = None if limit == float("inf") else max(1, int(limit))


# ---------------------------------------------------------------------- entry points


def ray_executor(
    chain: Runnable[Any, Any] | ChainRecipe,
    inputs: Any,
    options: BatchOptions,
    settings: RaySettings | None = None,
) -> tuple[PreparedChain, RayExecutor]:
    """The Ray executor for a batch, and the driver's look at the chain (for the recorder)."""
    settings = settings or RaySettings()
    if options.strategy != "sliding":
        raise ConfigError(
            f"strategy {options.strategy!r} runs only on the local backend; on Ray each worker "
            "uses 'sliding' (drop --strategy, or use --backend local)"
        )
    if options.callbacks or (options.config or {}).get("callbacks"):
        raise ConfigError(
            "callbacks (and --trace) are not supported with backend='ray': they would run "
            "inside the workers, not here; run without them, or with the local backend"
        )
    import_ray()  # a missing extra is a usage error, before anything else
    runnable, transport = transport_for(chain)
    name = options.name
    if isinstance(chain, ChainRecipe):
        name = name or chain.name
        options = options.replace(name=name)
    ray = connect(options.ray_address)
    cpus = cluster_cpus(ray)
    workers = options.workers if options.workers is not None else max(1, int(cpus))
    worker_cpus = settings.worker_cpus
    if worker_cpus is None:
        worker_cpus = min(1.0, max(cpus, 0.01) / workers)
    block_size = settings.block_size
    if block_size is None:
        block_size = min(MAX_BLOCK_SIZE, 4 * options.max_concurrency)
        total = known_total(inputs)
        if total:  # small batches: every worker gets work
            block_size = min(block_size, math.ceil(total / (workers * settings.blocks_per_worker)))
    prepared = prepare_chain(runnable, name=name, pool_size=options.max_concurrency)
    executor = RayExecutor(
        prepared,
        options,
        ray=ray,
        transport=transport,
        workers=workers,
        worker_cpus=worker_cpus,
        block_size=max(1, block_size),
        settings=settings,
    )
    return prepared, executor


async def run_batch_ray(
    chain: Runnable[Any, Any] | ChainRecipe,
    inputs: Iterable[Any] | Any,
    *,
    options: BatchOptions | None = None,
    block_size: int | None = None,
    blocks_per_worker: int = 2,
    worker_cpus: float | None = None,
    max_block_retries: int = 3,
    keep_workers: float = 60.0,
    **kwargs: Unpack[BatchKwargs],
) -> RayBatchReport:
    """:func:`~chainkit.runners.run_batch` on a Ray cluster (``run_batch(..., backend="ray")``).

    The same semantics and options as the local runner (one record per input,
    the same output file, resume, ordered output, progress, the report); with
    ``ray_address`` (the cluster to join: "auto", "ray://head:10001"; None starts
    a local Ray instance or joins ``$RAY_ADDRESS``), ``workers`` (worker actors,
    default one per CPU of the cluster), ``max_concurrency`` *per worker*, and
    ``rpm``/``tpm`` for the *whole* batch. A Runnable is sent to the workers
    pickled (OpenAI models as their settings, keys left out); a
    :class:`ChainRecipe` is built by each worker. Plus:

    Args:
        block_size: items handed to a worker at a time (default
            ``4 * max_concurrency``, smaller for small batches so every worker gets some).
        blocks_per_worker: blocks queued per worker (2: the next one is there when
            one ends); the driver holds at most ``workers * blocks_per_worker`` blocks.
        worker_cpus: CPUs each worker reserves (default ``min(1, cluster CPUs / workers)``).
        max_block_retries: how many times the unfinished items of a block run again
            after their worker died, before they become ``WorkerLostError`` records.
        keep_workers: seconds the workers of a finished batch stay up for this
            process's next batch (0: end them at once).

    Raises:
        ConfigError: Ray is missing or unreachable; an option that does not apply
            on Ray (``callbacks``, a strategy other than ``sliding``).
        ChainNotPortableError: ``chain`` cannot be pickled.
        ChainkitRunError: workers kept dying, or none could start (what finished
            is written: resume).
    """
    kwargs["backend"] = "ray"
    resolved = resolve_options(options, kwargs)
    settings = RaySettings(
        block_size=block_size,
        blocks_per_worker=blocks_per_worker,
        worker_cpus=worker_cpus,
        max_block_retries=max_block_retries,
        keep_workers=keep_workers,
    )
    prepared, executor = ray_executor(chain, inputs, resolved, settings)
    report = await Recorder(prepared, inputs, resolved, executor).run()
    assert isinstance(report, RayBatchReport)  # noqa: S101 - the executor's report_class
    return report
