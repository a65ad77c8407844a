"""The runner on Ray: the same batch, spread over the actors of a Ray cluster.

>>> report = await run_batch(chain, "inputs.jsonl", output="out.jsonl", backend="ray")

- **The driver** (this process) reads the inputs lazily as the local runner
  does (resume skips, bad lines and missing variables are settled here) and
  hands *blocks* of items to worker actors. It never holds more than
  ``workers * blocks_per_worker`` blocks in flight, so memory stays bounded
  whatever the number of inputs. It alone writes the output file: the same
  format, resume, ordered output, progress and report as the local runner
  (this module subclasses it).
- **Each worker** runs the local runner on its blocks with its own
  ``max_concurrency``; the driver pulls records back as they finish (see
  :mod:`chainkit.runners._ray_worker`). ``rpm``/``tpm`` are global: one
  limiter actor holds the buckets. A 429 cools every worker down.
- **Chains travel** as a :class:`ChainRecipe` or pickled (see
  :mod:`chainkit.runners._ray_transport`).
- **Faults**: when a worker dies mid-block, the items of the block it had not
  returned run again on a fresh worker; the driver keeps exactly one record
  per input (a second record for an index is dropped). After
  ``max_block_retries`` deaths the remaining items of a block become error
  records (``WorkerLostError``) rather than looping forever.
- **Warm workers**: a batch that ends normally leaves its workers idle for
  ``keep_workers`` seconds (default 60), and the next batch of this process
  reuses them instead of starting new processes; :func:`release_ray_workers`
  ends them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import Runnable, RunnableConfig

from chainkit.errors import ChainkitError, ChainkitRunError, ConfigError
from chainkit.runners._inputs import InputItem, known_total
from chainkit.runners._progress import ProgressSink
from chainkit.runners._ray_transport import ChainRecipe, Transport, transport_for
from chainkit.runners._ray_worker import Limiter, Worker
from chainkit.runners._records import ErrorInfo, ResultRecord
from chainkit.runners._report import BatchReport
from chainkit.runners._runner import _Batch

__all__ = [
    "ChainRecipe",
    "RayBatchReport",
    "connect",
    "local_chain",
    "ray_batch",
    "release_ray_workers",
    "run_batch_ray",
]

log = logging.getLogger(__name__)

NAMESPACE = "chainkit"
MAX_BLOCK_SIZE = 1024
WORKER_START_TIMEOUT = 300.0  # seconds a new worker may take to be placed and ready
TAKE_WAIT = 1.0  # seconds a worker holds the driver's request for records when it has none


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


# ---------------------------------------------------------------------- warm workers


@dataclass
class _WorkerRef:
    handle: Any
    name: str
    alive: bool = True


class _Parked:
    """Idle workers of this process, kept for the next batch until ``keep`` seconds pass."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[str, float] | None = None
        self._workers: list[_WorkerRef] = []
        self._timer: threading.Timer | None = None

    def take(self, ray: Any, key: tuple[str, float], count: int) -> list[_WorkerRef]:
        """Up to ``count`` idle workers made with ``key`` (the others stay parked); idle
        workers made otherwise (another Ray session, other CPU reservations) are ended."""
        with self._lock:
            if self._key == key:
                taken, self._workers = self._workers[:count], self._workers[count:]
                stale: list[_WorkerRef] = []
            else:
                taken, stale, self._workers = [], self._workers, []
            if not self._workers:
                self._key = None
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
        for worker in stale:
            _kill(ray, worker.handle)
        return [_WorkerRef(w.handle, w.name) for w in taken]

    def put(self, ray: Any, key: tuple[str, float], workers: list[_WorkerRef], keep: float) -> None:
        with self._lock:
            stale = self._workers if self._key != key else []
            self._workers = ([] if stale else self._workers) + workers
            self._key = key
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(keep, self.release, args=(ray,))
            self._timer.daemon = True
            self._timer.start()
        for worker in stale:
            _kill(ray, worker.handle)

    def release(self, ray: Any = None) -> int:
        with self._lock:
            workers, self._workers, self._key = self._workers, [], None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if workers:
            ray = ray or _import_ray()
            for worker in workers:
                _kill(ray, worker.handle)
        return len(workers)


_parked = _Parked()


def release_ray_workers() -> int:
    """End the idle Ray workers kept for the next batch (freeing their CPUs); how many."""
    return _parked.release()


# ---------------------------------------------------------------------- worker pool


class _Pool:
    """The workers of one batch: a queue of free slots, replacements for dead workers."""

    def __init__(
        self,
        ray: Any,
        *,
        size: int,
        slots: int,
        transport: Transport,
        options: dict[str, Any],
        rpm: float | None,
        tpm: float | None,
        cpus: float,
        max_restarts: int,
        on_error: Callable[[BaseException], None],
    ) -> None:
        self.ray = ray
        self.on_error = on_error
        self.size, self.slots = size, slots
        self.transport, self.options = transport, options
        self.limited = (rpm is not None, tpm is not None)
        self.cpus = cpus
        self.key = (str(ray.get_runtime_context().get_job_id()), cpus)
        self.max_restarts = max_restarts
        self.restarts = 0
        self.reused = 0
        self.limiter: Any = None
        if rpm is not None or tpm is not None:
            limit = int(options["max_concurrency"])
            self.limiter = (
                _remote(ray, Limiter)
                .options(
                    name=f"chainkit-limiter-{uuid.uuid4().hex[:8]}",
                    namespace=NAMESPACE,
                    num_cpus=0,
                    max_concurrency=max(1000, 4 * size * limit),
                )
                .remote(rpm, tpm)
            )
        self.free: asyncio.Queue[_WorkerRef] = asyncio.Queue()
        self.workers: list[_WorkerRef] = []
        self.stats: dict[str, dict[str, Any]] = {}
        self.closed = False
        self._replacing: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        warm = _parked.take(self.ray, self.key, self.size)
        tasks = [asyncio.create_task(self._spawn(handle)) for handle in warm]
        tasks += [asyncio.create_task(self._spawn()) for _ in range(self.size - len(warm))]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    def _new_worker(self) -> _WorkerRef:
        name = f"chainkit-worker-{uuid.uuid4().hex[:8]}"
        handle = (
            _remote(self.ray, Worker)
            .options(
                name=name,
                namespace=NAMESPACE,
                num_cpus=self.cpus,
                max_concurrency=self.slots + 4,
                max_restarts=0,
                max_task_retries=0,
                scheduling_strategy="SPREAD",
            )
            .remote()
        )
        return _WorkerRef(handle, name)

    async def _spawn(self, warm: _WorkerRef | None = None) -> None:
        """Get one worker ready (a warm one when given, else a new one), retrying lost ones."""
        while not self.closed:
            worker = warm if warm is not None else self._new_worker()
            handle = worker.handle
            self.workers.append(worker)
            try:
                ready = await asyncio.wait_for(
                    handle.setup.remote(self.transport, self.options, self.limiter, self.limited),
                    None if warm is not None else WORKER_START_TIMEOUT,
                )
            except TimeoutError:
                worker.alive = False
                _kill(self.ray, handle)
                raise ChainkitRunError(
                    f"a Ray worker was not ready within {WORKER_START_TIMEOUT:.0f} s: the "
                    f"cluster may lack room for it (each worker reserves {self.cpus:g} CPU); "
                    "use fewer --workers, or check `ray status`"
                ) from None
            except Exception as exc:  # noqa: BLE001 - Ray's errors: sorted just below
                worker.alive = False
                _kill(self.ray, handle)
                if not _is_lost(self.ray, exc):
                    raise _worker_error(self.ray, exc) from None
                if warm is None:
                    self._count_restart(exc)
                warm = None  # a parked worker that died meanwhile: start a new one
                continue
            if "failure" in ready:
                worker.alive = False
                _kill(self.ray, handle)
                raise failure_error(ready["failure"])
            if warm is not None:
                self.reused += 1
            for _ in range(self.slots):
                self.free.put_nowait(worker)
            return

    def _count_restart(self, exc: BaseException) -> None:
        self.restarts += 1
        if self.restarts > self.max_restarts:
            raise ChainkitRunError(
                f"Ray workers died {self.restarts} times (last: {_first_line(exc)}); the "
                "records that finished are written: fix the cluster and resume the batch"
            )

    async def acquire(self) -> _WorkerRef:
        while True:
            worker = await self.free.get()
            if worker.alive:
                return worker

    def release(self, worker: _WorkerRef) -> None:
        if worker.alive:
            self.free.put_nowait(worker)

    def lost(self, worker: _WorkerRef, exc: BaseException) -> None:
        """``worker`` died or cannot be reached: make sure it is gone, start another (in the
        background: the other workers take the lost items meanwhile)."""
        if not worker.alive or self.closed:
            return  # another block saw it first and replaced it, or the batch is ending
        worker.alive = False
        log.warning("Ray worker %s lost (%s); starting another", worker.name, _first_line(exc))
        _kill(self.ray, worker.handle)
        self._count_restart(exc)
        task = asyncio.create_task(self._spawn(), name="chainkit-replace-worker")
        self._replacing.add(task)
        task.add_done_callback(self._replaced)

    def _replaced(self, task: asyncio.Task[None]) -> None:
        self._replacing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.on_error(task.exception() or ChainkitRunError("a Ray worker did not start"))

    def cool_down(self, pause: float, source: _WorkerRef) -> None:
        """Relay a worker's 429 cool-down to every other worker."""
        for worker in self.workers:
            if worker.alive and worker is not source:
                with contextlib.suppress(Exception):
                    worker.handle.cool_down.remote(pause)

    def shutdown(self, *, keep: float) -> None:
        """End the batch's actors; with ``keep`` > 0 the live workers wait for the next batch."""
        if self.closed:
            return
        self.closed = True
        for task in self._replacing:
            task.cancel()
        alive = [w for w in self.workers if w.alive]
        if keep > 0 and alive:
            _parked.put(self.ray, self.key, alive, keep)
        else:
            for worker in alive:
                _kill(self.ray, worker.handle)
        if self.limiter is not None:
            _kill(self.ray, self.limiter)


@functools.cache
def _remote(ray: Any, cls: type[Any]) -> Any:
    """``ray.remote(cls)``, once per process (each call would export the class again)."""
    return ray.remote(cls)


def _kill(ray: Any, handle: Any) -> None:
    with contextlib.suppress(Exception):
        ray.kill(handle, no_restart=True)


def _is_lost(ray: Any, exc: BaseException) -> bool:
    """A worker died or cannot be reached (as opposed to an error raised by our code)."""
    errors = ray.exceptions
    if isinstance(exc, errors.RayTaskError):
        return False
    return isinstance(exc, errors.RayError)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def failure_error(failure: dict[str, Any]) -> BaseException:
    """The driver's exception for a worker's ``failure``: the worker's own chainkit exception
    (they pickle with their fields), else a run error."""
    env_var = failure.get("env_var")
    if env_var:
        return ConfigError(
            f"the Ray workers have no {env_var}: API keys are not sent to workers; set "
            f"{env_var} in their environment (the cluster's, or "
            "ray.init(runtime_env={'env_vars': ...}))"
        )
    error = failure.get("error")
    if isinstance(error, ChainkitError):  # it pickled with its fields
        return error
    message = str(failure.get("message", "")).strip()
    first = message.splitlines()[0] if message else ""
    return ChainkitRunError(f"a Ray worker failed: {failure.get('type')}: {first}")


def _worker_error(ray: Any, exc: BaseException) -> BaseException:
    """An error Ray raised for a worker call that is not a lost worker (one line)."""
    cause = getattr(exc, "cause", None) if isinstance(exc, ray.exceptions.RayTaskError) else None
    return ChainkitRunError(f"a Ray worker failed: {_first_line(cause or exc)}")


# ---------------------------------------------------------------------- driver


class _RayBatch(_Batch):
    """The driver: reads inputs, dispatches blocks to workers, writes what comes back."""

    def __init__(
        self,
        chain: Runnable[Any, Any],
        inputs: Any,
        *,
        ray: Any,
        transport: Transport,
        workers: int,
        worker_cpus: float,
        block_size: int | None,
        blocks_per_worker: int,
        max_block_retries: int,
        keep_workers: float,
        worker_options: dict[str, Any],
        **kwargs: Any,
    ) -> None:
        super().__init__(chain, inputs, **kwargs)
        self.ray = ray
        self.transport = transport
        self.workers = workers
        self.worker_cpus = worker_cpus
        self.blocks_per_worker = blocks_per_worker
        self.max_block_retries = max_block_retries
        self.keep_workers = keep_workers
        self.worker_options = worker_options
        if block_size is None:
            block_size = min(MAX_BLOCK_SIZE, 4 * self.max_concurrency)
            total = known_total(inputs)
            if total:  # small batches: every worker gets work
                block_size = min(block_size, math.ceil(total / (workers * blocks_per_worker)))
        self.block_size = max(1, block_size)
        self.max_blocks = workers * blocks_per_worker
        # every item read holds a slot until its record is written
        self._open = asyncio.Semaphore(
            self.max_blocks * self.block_size + self.reorder_buffer + self.block_size
        )
        base = self.report
        self.ray_report = RayBatchReport(
            chain=base.chain,
            strategy=base.strategy,
            max_concurrency=self.max_concurrency,
            output=base.output,
            notes=list(base.notes),
            workers=workers,
            block_size=self.block_size,
        )
        self.report = self.ray_report
        self._fatal: BaseException | None = None
        self._failure = asyncio.Event()
        self._pool: _Pool | None = None
        self._finished = False

    def _settings(self) -> dict[str, Any]:
        return {
            **super()._settings(),
            "backend": "ray",
            "workers": self.workers,
            "block_size": self.block_size,
        }

    async def _run_sliding(self) -> None:
        pool = _Pool(
            self.ray,
            size=self.workers,
            slots=self.blocks_per_worker,
            transport=self.transport,
            options=self.worker_options,
            rpm=self.rpm,
            tpm=self.tpm,
            cpus=self.worker_cpus,
            max_restarts=max(4, 2 * self.workers),
            on_error=self._fail,
        )
        self._pool = pool  # shut down in _finish, after in-flight blocks had their grace
        started = time.monotonic()
        await pool.start()
        self.ray_report.startup = time.monotonic() - started
        self.ray_report.reused_workers = pool.reused
        log.info(
            "%d Ray workers ready in %.1f s (%d reused)",
            self.workers,
            self.ray_report.startup,
            pool.reused,
        )
        await self._dispatch(pool)
        self._finished = True

    def _finish(self, finished: bool) -> None:
        pool = self._pool
        if pool is not None:
            pool.shutdown(keep=self.keep_workers if self._finished else 0.0)
            self._collect(pool)
        super()._finish(finished)

    def _failed(self) -> bool:
        return self._fatal is not None

    def _fail(self, exc: BaseException) -> None:
        """A block cannot go on (a worker raised, workers keep dying): stop the batch."""
        if self._fatal is None:
            self._fatal = exc
        self._failure.set()
        self._open.release()  # wake the reader if it waits for room in the writer

    async def _dispatch(self, pool: _Pool) -> None:
        room = asyncio.Semaphore(self.max_blocks)  # back-pressure: blocks in flight
        items = self._items()
        try:
            while not self._failed():
                if not await self._unless_failed(room.acquire()):
                    break
                try:
                    block, more = await self._read_block(items)
                except BaseException:
                    room.release()
                    raise
                if block:
                    self.ray_report.blocks += 1
                    task = asyncio.create_task(self._drive(pool, block), name="chainkit-block")
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                    task.add_done_callback(lambda _t: room.release())
                else:
                    room.release()
                if not more:
                    break
        finally:
            await items.aclose()
        while self._tasks and not self._failed():
            await self._unless_failed(asyncio.wait(set(self._tasks)))
        if self._fatal is not None:
            raise self._fatal

    async def _unless_failed(self, awaitable: Awaitable[Any]) -> bool:
        """Await ``awaitable`` unless the batch fails first (then cancel it); True if done."""
        waiter = asyncio.ensure_future(awaitable)
        failed = asyncio.ensure_future(self._failure.wait())
        try:
            await asyncio.wait({waiter, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
            if not waiter.done():
                waiter.cancel()
        return not waiter.cancelled()

    async def _read_block(
        self, items: AsyncGenerator[InputItem, None]
    ) -> tuple[list[tuple[int, InputItem]], bool]:
        """Up to ``block_size`` items (with their output sequence numbers); False when done."""
        block: list[tuple[int, InputItem]] = []
        while len(block) < self.block_size and not self._failed():
            if block and self._open.locked():
                break  # do not sit on a partial block while the writer catches up
            await self._open.acquire()
            try:
                item = await anext(items)
            except StopAsyncIteration:
                self._open.release()
                return block, False
            except BaseException:
                self._open.release()
                raise
            seq = self._seq
            self._seq += 1
            problem = self._precheck(item)
            if problem is not None:  # bad line, missing variable: recorded here, never sent
                started, t0 = datetime.now(UTC), time.monotonic()
                record = self._error_record(item, problem, attempts=0, started=started, t0=t0)
                await self._deliver(seq, record)
                continue
            block.append((seq, item))
        return block, True

    async def _drive(self, pool: _Pool, block: list[tuple[int, InputItem]]) -> None:
        """Run one block to its end: on a worker, and again elsewhere for what a dead one lost."""
        pending = {item.index: (seq, item) for seq, item in block}
        deaths = 0
        try:
            while pending and not pool.closed:
                worker = await pool.acquire()
                try:
                    await self._run_on(pool, worker, pending)
                except ChainkitError:  # the worker reported a failure of its own
                    pool.release(worker)
                    raise
                except Exception as exc:  # noqa: BLE001 - Ray's errors: sorted just below
                    if not _is_lost(self.ray, exc):
                        pool.release(worker)
                        raise _worker_error(self.ray, exc) from None
                    deaths += 1
                    self.ray_report.rerun_items += len(pending)
                    if deaths > self.max_block_retries:
                        await self._give_up(pending, exc, deaths)
                        return
                    pool.lost(worker, exc)
                else:
                    pool.release(worker)
                    if pending:  # the worker ended the block without them: run them again
                        log.warning("a Ray worker skipped %d items; rerunning them", len(pending))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the dispatcher, raised there
            self._fail(exc)

    async def _run_on(
        self, pool: _Pool, worker: _WorkerRef, pending: dict[int, tuple[int, InputItem]]
    ) -> None:
        rows = [(item.index, item.value, item.id, item.line) for _, item in pending.values()]
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
                    entry = pending.pop(record.index, None)
                    if entry is None:  # already written (a rerun of a lost block's item)
                        self.ray_report.duplicates_dropped += 1
                        continue
                    unfinished -= 1
                    self._active -= 1
                    await self._deliver(entry[0], record)
                if "cooldown" in info:
                    pool.cool_down(float(info["cooldown"]), worker)
                if "failure" in info:
                    raise failure_error(info["failure"])
                if "stats" in info:
                    pool.stats[worker.name] = info["stats"]
                    self.ray_report.items_per_worker[worker.name] = info["stats"]["items"]
                    break
        finally:
            self._active -= unfinished

    async def _give_up(
        self, pending: dict[int, tuple[int, InputItem]], exc: BaseException, deaths: int
    ) -> None:
        """Error records for items whose workers kept dying (one record per input, still)."""
        for seq, item in list(pending.values()):
            now = datetime.now(UTC)
            record = ResultRecord(
                index=item.index,
                id=item.id,
                line=item.line,
                input=item.value,
                error=ErrorInfo(
                    type="WorkerLostError",
                    message=(
                        f"the Ray worker running this item died {deaths} times (last: "
                        f"{_first_line(exc)}); rerun with --resume --retry-failed"
                    ),
                    attempts=0,
                ),
                attempts=0,
                started=now,
                ended=now,
                latency=0.0,
            )
            pending.pop(item.index, None)
            await self._deliver(seq, record)

    def _collect(self, pool: _Pool) -> None:
        """Fold the workers' counters into the report (through the local runner's fields)."""
        self.ray_report.worker_restarts = pool.restarts
        stats = [s for s in pool.stats.values() if s]
        if not stats:
            return
        self.ray_report.worker_cpu = sum(s.get("cpu", 0.0) for s in stats)
        self.concurrency.max_in_flight = sum(s["max_in_flight"] for s in stats)
        self.concurrency.rate_limited = sum(s["rate_limited"] for s in stats)
        self.concurrency.cooldown_waited = sum(s["cooldown_waited"] for s in stats)
        self.concurrency.min_limit = min(s["min_limit"] for s in stats)
        self.limits.waited = sum(s["rate_limit_wait"] for s in stats)


# ---------------------------------------------------------------------- entry point


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "backend='ray' needs Ray, which is not installed: pip install 'chainkit[ray]'"
        ) from None
    return ray


def connect(ray_address: str | None = None) -> Any:
    """Join the Ray cluster at ``ray_address`` ("auto", "ray://head:10001", "head:6379"), or
    start a local Ray instance when it is None (``$RAY_ADDRESS`` is joined when set).

    Does nothing when Ray is already initialized in this process. Returns the
    ``ray`` module.
    """
    ray = _import_ray()
    if ray.is_initialized():
        if ray_address is not None:
            log.debug("Ray is already initialized here; ignoring ray_address=%r", ray_address)
        return ray
    address = ray_address
    if address is None and not os.environ.get("RAY_ADDRESS"):
        address = "local"
    kwargs: dict[str, Any] = {"namespace": NAMESPACE, "configure_logging": False}
    if address == "local":
        kwargs["include_dashboard"] = False
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = ray_address or os.environ.get("RAY_ADDRESS") or "a local Ray instance"
        raise ConfigError(
            f"cannot start or join Ray at {where}: {_first_line(exc)}; check --ray-address "
            "(auto, ray://head:10001 or head:6379) and that the cluster is up (`ray status`)"
        ) from None
    return ray


def _cluster_cpus(ray: Any) -> float:
    try:
        return float(ray.cluster_resources().get("CPU", 1.0))
    except Exception:  # noqa: BLE001 - a Ray Client connection may not say
        return 1.0


def ray_batch(
    chain: Runnable[Any, Any] | ChainRecipe,
    inputs: Iterable[Any] | Any,
    *,
    ray_address: str | None = None,
    workers: int | None = None,
    block_size: int | None = None,
    blocks_per_worker: int = 2,
    worker_cpus: float | None = None,
    max_block_retries: int = 3,
    keep_workers: float = 60.0,
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
    strategy: str = "sliding",
    name: str | None = None,
    reorder_buffer: int | None = None,
    grace: float = 2.0,
    backoff_base: float = 0.5,
    backoff_max: float = 20.0,
    max_retry_after: float = 60.0,
) -> _RayBatch:
    """The driver of a batch on Ray, not started yet (``run_batch_ray`` runs it,
    ``iter_results(..., backend="ray")`` iterates over its records)."""
    if strategy.replace("_", "-").lower() != "sliding":
        raise ConfigError(
            f"strategy {strategy!r} runs only on the local backend; on Ray each worker uses "
            "'sliding' (drop --strategy, or use --backend local)"
        )
    if callbacks or (config or {}).get("callbacks"):
        raise ConfigError(
            "callbacks (and --trace) are not supported with backend='ray': they would run "
            "inside the workers, not here; run without them, or with the local backend"
        )
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
    if block_size is not None and (not isinstance(block_size, int) or block_size < 1):
        raise ConfigError(f"block_size must be an integer >= 1, got {block_size!r}")
    if blocks_per_worker < 1:
        raise ConfigError(f"blocks_per_worker must be >= 1, got {blocks_per_worker!r}")
    if max_block_retries < 0:
        raise ConfigError(f"max_block_retries must be >= 0, got {max_block_retries!r}")
    if worker_cpus is not None and worker_cpus < 0:
        raise ConfigError(f"worker_cpus must be >= 0, got {worker_cpus!r}")

    _import_ray()  # a missing extra is a usage error, before anything else
    runnable, transport = transport_for(chain)
    if isinstance(chain, ChainRecipe):
        name = name or chain.name
    ray = connect(ray_address)
    cpus = _cluster_cpus(ray)
    count = workers if workers is not None else max(1, int(cpus))
    if worker_cpus is None:
        worker_cpus = min(1.0, max(cpus, 0.01) / count)
    options: dict[str, Any] = {
        "max_concurrency": max_concurrency,
        "rpm": None,  # the limiter actor holds the buckets
        "tpm": None,
        "retries": retries,
        "timeout": timeout,
        "stream": stream,
        "config": config,
        "name": name,
        "grace": grace,
        "backoff_base": backoff_base,
        "backoff_max": backoff_max,
        "max_retry_after": max_retry_after,
    }
    return _RayBatch(
        runnable,
        inputs,
        ray=ray,
        transport=transport,
        workers=count,
        worker_cpus=worker_cpus,
        block_size=block_size,
        blocks_per_worker=blocks_per_worker,
        max_block_retries=max_block_retries,
        keep_workers=keep_workers,
        worker_options=options,
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
        callbacks=None,
        config=config,
        progress=progress,
        strategy="sliding",
        name=name,
        reorder_buffer=reorder_buffer,
        grace=grace,
        backoff_base=backoff_base,
        backoff_max=backoff_max,
        max_retry_after=max_retry_after,
    )


async def run_batch_ray(
    chain: Runnable[Any, Any] | ChainRecipe,
    inputs: Iterable[Any] | Any,
    *,
    ray_address: str | None = None,
    workers: int | None = None,
    block_size: int | None = None,
    blocks_per_worker: int = 2,
    worker_cpus: float | None = None,
    max_block_retries: int = 3,
    keep_workers: float = 60.0,
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
    strategy: str = "sliding",
    name: str | None = None,
    reorder_buffer: int | None = None,
    grace: float = 2.0,
    backoff_base: float = 0.5,
    backoff_max: float = 20.0,
    max_retry_after: float = 60.0,
) -> RayBatchReport:
    """:func:`~chainkit.runners.run_batch` on a Ray cluster (``run_batch(..., backend="ray")``).

    The same semantics and options as the local runner (one record per input,
    the same output file, resume, ordered output, progress, the report), plus:

    Args:
        chain: a Runnable (sent to the workers pickled; OpenAI models as their
            settings, keys left out) or a :class:`ChainRecipe` (each worker builds it).
        ray_address: the cluster to join ("auto", "ray://head:10001"); None starts
            a local Ray instance (or joins ``$RAY_ADDRESS``). Ignored when Ray is
            already initialized in this process.
        workers: worker actors (default: one per CPU of the cluster).
        block_size: items handed to a worker at a time (default
            ``4 * max_concurrency``, smaller for small batches so every worker gets some).
        blocks_per_worker: blocks queued per worker (2: the next one is there when
            one ends); the driver holds at most ``workers * blocks_per_worker`` blocks.
        worker_cpus: CPUs each worker reserves (default ``min(1, cluster CPUs / workers)``).
        max_block_retries: how many times the unfinished items of a block run again
            after their worker died, before they become ``WorkerLostError`` records.
        keep_workers: seconds the workers of a finished batch stay up for this
            process's next batch (0: end them at once).
        max_concurrency: items in flight *per worker*.
        rpm, tpm: requests / tokens per minute for the *whole* batch, all workers.

    Raises:
        ConfigError: Ray is missing or unreachable; an option that does not apply
            on Ray (``callbacks``, a strategy other than ``sliding``).
        ChainNotPortableError: ``chain`` cannot be pickled.
        ChainkitRunError: workers kept dying, or none could start (what finished
            is written: resume).
    """
    batch = ray_batch(
        chain,
        inputs,
        ray_address=ray_address,
        workers=workers,
        block_size=block_size,
        blocks_per_worker=blocks_per_worker,
        worker_cpus=worker_cpus,
        max_block_retries=max_block_retries,
        keep_workers=keep_workers,
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
    await batch.run()
    return batch.ray_report


def local_chain(
    chain: Runnable[Any, Any] | ChainRecipe,
    name: str | None,
    *,
    backend: str,
    ray_address: str | None,
    workers: int | None,
) -> tuple[Runnable[Any, Any], str | None]:
    """For the local backend: check the backend options; build a :class:`ChainRecipe`."""
    if backend != "local":
        raise ConfigError(f"unknown backend {backend!r}; use 'local' or 'ray'")
    if ray_address is not None or workers is not None:
        raise ConfigError("ray_address and workers apply only with backend='ray'")
    if isinstance(chain, ChainRecipe):
        return chain.build(), name or chain.name
    return chain, name
