"""The Ray side of the Ray backend's driver: worker actors, warm workers, joining Ray.

- :class:`Pool`: the workers of one batch (a queue of free slots; a dead worker is
  replaced in the background; the shared :class:`~chainkit.runners._ray_worker.Limiter`
  actor when ``rpm``/``tpm`` are set);
- warm workers: a batch that ends normally parks its workers for ``keep_workers``
  seconds, and the next batch of this process takes them (:func:`release_ray_workers`
  ends them at once);
- :func:`connect`: join a cluster or start a local Ray instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chainkit.errors import ChainkitError, ChainkitRunError, ConfigError
from chainkit.runners._options import BatchOptions
from chainkit.runners._ray_transport import Transport
from chainkit.runners._ray_worker import Limiter, Worker

__all__ = [
    "NAMESPACE",
    "Pool",
    "RaySettings",
    "WorkerRef",
    "cluster_cpus",
    "connect",
    "failure_error",
    "first_line",
    "import_ray",
    "is_lost",
    "kill",
    "release_ray_workers",
    "worker_error",
]

log = logging.getLogger(__name__)

NAMESPACE = "chainkit"
WORKER_START_TIMEOUT = 300.0  # seconds a new worker may take to be placed and ready


# ---------------------------------------------------------------------- warm workers


@dataclass
class WorkerRef:
    handle: Any
    name: str
    alive: bool = True


class _Parked:
    """Idle workers of this process, kept for the next batch until ``keep`` seconds pass."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[str, float] | None = None
        self._workers: list[WorkerRef] = []
        self._timer: threading.Timer | None = None

    def take(self, ray: Any, key: tuple[str, float], count: int) -> list[WorkerRef]:
        """Up to ``count`` idle workers made with ``key`` (the others stay parked); idle
        workers made otherwise (another Ray session, other CPU reservations) are ended."""
        with self._lock:
            if self._key == key:
                taken, self._workers = self._workers[:count], self._workers[count:]
                stale: list[WorkerRef] = []
            else:
                taken, stale, self._workers = [], self._workers, []
            if not self._workers:
                self._key = None
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
        for worker in stale:
            kill(ray, worker.handle)
        return [WorkerRef(w.handle, w.name) for w in taken]

    def put(self, ray: Any, key: tuple[str, float], workers: list[WorkerRef], keep: float) -> None:
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
            kill(ray, worker.handle)

    def release(self, ray: Any = None) -> int:
        with self._lock:
            workers, self._workers, self._key = self._workers, [], None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if workers:
            ray = ray or import_ray()
            for worker in workers:
                kill(ray, worker.handle)
        return len(workers)


_parked = _Parked()


def release_ray_workers() -> int:
    """End the idle Ray workers kept for the next batch (freeing their CPUs); how many."""
    return _parked.release()


# ---------------------------------------------------------------------- worker pool


class Pool:
    """The workers of one batch: a queue of free slots, replacements for dead workers."""

    def __init__(
        self,
        ray: Any,
        *,
        size: int,
        slots: int,
        transport: Transport,
        options: BatchOptions,
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
            limit = options.max_concurrency
            self.limiter = (
                remote_class(ray, Limiter)
                .options(
                    name=f"chainkit-limiter-{uuid.uuid4().hex[:8]}",
                    namespace=NAMESPACE,
                    num_cpus=0,
                    max_concurrency=max(1000, 4 * size * limit),
                )
                .remote(rpm, tpm)
            )
        self.free: asyncio.Queue[WorkerRef] = asyncio.Queue()
        self.workers: list[WorkerRef] = []
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

    def _new_worker(self) -> WorkerRef:
        name = f"chainkit-worker-{uuid.uuid4().hex[:8]}"
        handle = (
            remote_class(self.ray, Worker)
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
        return WorkerRef(handle, name)

    async def _spawn(self, warm: WorkerRef | None = None) -> None:
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
                kill(self.ray, handle)
                raise ChainkitRunError(
                    f"a Ray worker was not ready within {WORKER_START_TIMEOUT:.0f} s: the "
                    f"cluster may lack room for it (each worker reserves {self.cpus:g} CPU); "
                    "use fewer --workers, or check `ray status`"
                ) from None
            except Exception as exc:  # noqa: BLE001 - Ray's errors: sorted just below
                worker.alive = False
                kill(self.ray, handle)
                if not is_lost(self.ray, exc):
                    raise worker_error(self.ray, exc) from None
                if warm is None:
                    self._count_restart(exc)
                warm = None  # a parked worker that died meanwhile: start a new one
                continue
            if "failure" in ready:
                worker.alive = False
                kill(self.ray, handle)
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
                f"Ray workers died {self.restarts} times (last: {first_line(exc)}); the "
                "records that finished are written: fix the cluster and resume the batch"
            )

    async def acquire(self) -> WorkerRef:
        while True:
            worker = await self.free.get()
            if worker.alive:
                return worker

    def release(self, worker: WorkerRef) -> None:
        if worker.alive:
            self.free.put_nowait(worker)

    def lost(self, worker: WorkerRef, exc: BaseException) -> None:
        """``worker`` died or cannot be reached: make sure it is gone, start another (in the
        background: the other workers take the lost items meanwhile)."""
        if not worker.alive or self.closed:
            return  # another block saw it first and replaced it, or the batch is ending
        worker.alive = False
        log.warning("Ray worker %s lost (%s); starting another", worker.name, first_line(exc))
        kill(self.ray, worker.handle)
        self._count_restart(exc)
        task = asyncio.create_task(self._spawn(), name="chainkit-replace-worker")
        self._replacing.add(task)
        task.add_done_callback(self._replaced)

    def _replaced(self, task: asyncio.Task[None]) -> None:
        self._replacing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.on_error(task.exception() or ChainkitRunError("a Ray worker did not start"))

    def cool_down(self, pause: float, source: WorkerRef) -> None:
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
                kill(self.ray, worker.handle)
        if self.limiter is not None:
            kill(self.ray, self.limiter)


@dataclass(frozen=True, kw_only=True)
class RaySettings:
    """How a batch spreads over Ray (the options of :func:`run_batch_ray` beyond BatchOptions)."""

    block_size: int | None = None
    blocks_per_worker: int = 2
    worker_cpus: float | None = None
    max_block_retries: int = 3
    keep_workers: float = 60.0

    def __post_init__(self) -> None:
        size = self.block_size
        if size is not None and (not isinstance(size, int) or size < 1):
            raise ConfigError(f"block_size must be an integer >= 1, got {size!r}")
        if self.blocks_per_worker < 1:
            raise ConfigError(f"blocks_per_worker must be >= 1, got {self.blocks_per_worker!r}")
        if self.max_block_retries < 0:
            raise ConfigError(f"max_block_retries must be >= 0, got {self.max_block_retries!r}")
        if self.worker_cpus is not None and self.worker_cpus < 0:
            raise ConfigError(f"worker_cpus must be >= 0, got {self.worker_cpus!r}")


@functools.cache
def remote_class(ray: Any, cls: type[Any]) -> Any:
    """``ray.remote(cls)``, once per process (each call would export the class again)."""
    return ray.remote(cls)


def kill(ray: Any, handle: Any) -> None:
    with contextlib.suppress(Exception):
        ray.kill(handle, no_restart=True)


def is_lost(ray: Any, exc: BaseException) -> bool:
    """A worker died or cannot be reached (as opposed to an error raised by our code)."""
    errors = ray.exceptions
    if isinstance(exc, errors.RayTaskError):
        return False
    return isinstance(exc, errors.RayError)


def first_line(exc: BaseException) -> str:
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


def worker_error(ray: Any, exc: BaseException) -> BaseException:
    """An error Ray raised for a worker call that is not a lost worker (one line)."""
    cause = getattr(exc, "cause", None) if isinstance(exc, ray.exceptions.RayTaskError) else None
    return ChainkitRunError(f"a Ray worker failed: {first_line(cause or exc)}")


# ---------------------------------------------------------------------- Ray itself


def import_ray() -> Any:
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
    ray = import_ray()
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
            f"cannot start or join Ray at {where}: {first_line(exc)}; check --ray-address "
            "(auto, ray://head:10001 or head:6379) and that the cluster is up (`ray status`)"
        ) from None
    return ray


def cluster_cpus(ray: Any) -> float:
    try:
        return float(ray.cluster_resources().get("CPU", 1.0))
    except Exception:  # noqa: BLE001 - a Ray Client connection may not say
        return 1.0
