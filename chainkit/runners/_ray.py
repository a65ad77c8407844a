"""The runner on Ray: the same batch, spread over the actors of a Ray cluster.

>>> report = await run_batch(chain, "inputs.jsonl", output="out.jsonl", backend="ray")

How it works:

- **The driver** (this process) reads the inputs lazily, exactly as the local
  runner does (resume skips, bad lines, missing variables are settled here),
  and hands *blocks* of items to Ray async actors. It never holds more than
  ``workers * blocks_per_worker`` blocks in flight, so memory stays bounded
  whatever the number of inputs. It alone writes the output file: same
  format, resume, ordered output, progress and report as the local runner.
- **Each worker actor** runs the local runner on its blocks (the ``sliding``
  strategy, one retry layer, per-item timeouts and errors), with its own
  ``max_concurrency``: blocks of one actor share one concurrency limit. Records
  stream back to the driver as they finish (a Ray streaming generator, a few
  records per message).
- **Rate limits are global**: one limiter actor holds the ``rpm``/``tpm``
  buckets every attempt of every worker draws from, and the 429 cool-down: a
  worker that gets a 429 tells the limiter, which pauses every worker (each
  also halves its own concurrency, as the local runner does).
- **Chains travel** as a :class:`ChainRecipe` (a chain name, a model spec and
  the folder of spec files: each worker builds it with ``get_chain``), or
  pickled (cloudpickle) when given as a Runnable. OpenAI models travel as their
  settings and are rebuilt with fresh HTTP clients; API keys never travel
  (workers read theirs from their environment; only the local model's dummy
  key is sent). A chain that does not pickle is refused up front with
  :class:`~chainkit.errors.ChainNotPortableError` naming the part at fault.
- **Faults**: when a worker dies mid-block, the items of the block it had not
  returned are run again on a fresh worker; the driver keeps exactly one
  record per input (a record for an index already delivered is dropped). A
  block whose workers died ``max_block_retries + 1`` times gets error records
  for its remaining items instead of looping forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import math
import os
import time
import uuid
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import BaseModel, SecretStr

from chainkit.errors import (
    ChainkitError,
    ChainkitRunError,
    ChainNotPortableError,
    ConfigError,
    MissingAPIKeyError,
)
from chainkit.runners._inputs import InputItem, known_total
from chainkit.runners._limits import AdaptiveConcurrency, RateLimits
from chainkit.runners._progress import ProgressSink
from chainkit.runners._records import ErrorInfo, ResultRecord
from chainkit.runners._report import BatchReport
from chainkit.runners._runner import _Batch

__all__ = ["ChainRecipe", "RayBatchReport", "run_batch_ray"]

log = logging.getLogger(__name__)

NAMESPACE = "chainkit"
FLUSH_INTERVAL = 0.05  # seconds a worker collects finished records before sending them
FLUSH_RECORDS = 256  # ... or this many, whichever comes first
MAX_BLOCK_SIZE = 1024
_WATCH_TIMEOUT = 5.0  # seconds a worker's cool-down long-poll waits before asking again


# ---------------------------------------------------------------------- chains


@dataclass(frozen=True)
class ChainRecipe:
    """A chain that Ray workers build themselves: ``get_chain(name, model=..., chains_dir=...)``.

    ``model`` is a model spec (``"openai:gpt-4o-mini"``, ``"local"``; default: a
    spec file's own model, else ``$CHAINKIT_MODEL``, else ``local``), resolved
    once on the driver so that every worker uses the same one. ``base_url``
    overrides the OpenAI-compatible endpoint (default: ``$OPENAI_BASE_URL`` as
    the driver sees it). ``local`` is the driver's embedded model, reached over
    its loopback URL: fine for a local Ray instance; on a cluster, serve a
    model the workers can reach (``chainkit local serve --host 0.0.0.0``) and
    give its URL. API keys are not part of a recipe: workers read theirs from
    their environment. Spec files must be readable at ``chains_dir`` on every
    worker (a shared folder, or Ray's ``runtime_env={"working_dir": ...}``).
    """

    name: str
    model: str | None = None
    chains_dir: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)  # set only for the local dummy key

    def resolved(self) -> ChainRecipe:
        """The same recipe with the model spec and the endpoint fixed, as the driver sees them."""
        from chainkit.models import DEFAULT_LOCAL_MODEL, default_spec, parse_spec

        spec = self.model
        if spec is None:
            spec = self._spec_file_model() or default_spec()
        provider, name = parse_spec(spec)
        base_url, api_key = self.base_url, self.api_key
        if provider == "local":
            from chainkit.models.local import DUMMY_API_KEY, ensure_server

            spec = f"openai:{name or DEFAULT_LOCAL_MODEL}"
            base_url = base_url or ensure_server().base_url
            api_key = DUMMY_API_KEY
        elif provider == "openai":
            base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        chains_dir = self.chains_dir
        if chains_dir is None and os.environ.get("CHAINKIT_CHAINS_DIR"):
            chains_dir = os.environ["CHAINKIT_CHAINS_DIR"]
        if chains_dir is not None:
            chains_dir = str(Path(chains_dir).resolve())
        return ChainRecipe(self.name, spec, chains_dir, base_url, api_key)

    def _spec_file_model(self) -> str | None:
        from chainkit.chains import load_specs

        found = load_specs(self.chains_dir).get(self.name)
        return found[0].model if found is not None else None

    def build(self) -> Runnable[Any, Any]:
        """The chain itself (on the driver to identify it, on each worker to run it)."""
        from chainkit.chains import get_chain
        from chainkit.models import load_model, parse_spec

        kwargs: dict[str, Any] = {}
        if self.base_url:
            kwargs["base_url"] = self.base_url
        if self.api_key:
            kwargs["api_key"] = self.api_key
        model: Any = self.model
        if kwargs:
            if parse_spec(self.model)[0] != "openai":
                raise ConfigError(
                    f"ChainRecipe({self.name!r}): base_url works only with 'openai:<model>' or "
                    f"'local' specs, not {self.model!r}"
                )
            model = load_model(self.model, **kwargs)
        return get_chain(self.name, model=model, chains_dir=self.chains_dir)


_CLIENT_FIELDS = frozenset(
    {
        "client",
        "async_client",
        "root_client",
        "root_async_client",
        "http_client",
        "http_async_client",
    }
)


def _rebuild_openai_model(cls: type[Any], settings: dict[str, Any], api_key: str | None) -> Any:
    """Unpickle an OpenAI model: the same settings, fresh clients, the worker's own key."""
    if api_key is not None:
        settings = {**settings, "openai_api_key": SecretStr(api_key)}
    return cls(**settings)


def _openai_reduction(obj: Any) -> Any:
    try:
        from langchain_openai.chat_models.base import BaseChatOpenAI
        from langchain_openai.llms.base import BaseOpenAI
    except ImportError:  # pragma: no cover - langchain-openai is a dependency
        return NotImplemented
    if not isinstance(obj, BaseChatOpenAI | BaseOpenAI):
        return NotImplemented
    from chainkit.models.local import DUMMY_API_KEY

    fields = type(obj).model_fields
    settings: dict[str, Any] = {}
    api_key: str | None = None
    for name in obj.model_fields_set:
        if name not in fields or name in _CLIENT_FIELDS:
            continue
        value = getattr(obj, name)
        if isinstance(value, SecretStr):
            if value.get_secret_value() == DUMMY_API_KEY and name == "openai_api_key":
                api_key = DUMMY_API_KEY  # the local model's key is no secret
            continue  # real keys stay here: the worker reads its own from its environment
        settings[name] = value
    return (_rebuild_openai_model, (type(obj), settings, api_key))


@functools.cache
def _pickler_class() -> type[Any]:
    from ray import cloudpickle

    base: Any = cloudpickle.Pickler

    class ChainPickler(base):  # type: ignore[misc]
        def reducer_override(self, obj: Any) -> Any:
            reduced = _openai_reduction(obj)
            if reduced is not NotImplemented:
                return reduced
            return super().reducer_override(obj)

    return ChainPickler


def pickle_chain(chain: Runnable[Any, Any]) -> bytes:
    """``chain`` as bytes for the workers; :class:`ChainNotPortableError` when it cannot be."""
    pickler = _pickler_class()
    try:
        return _dumps(pickler, chain)
    except Exception as exc:  # noqa: BLE001 - any pickling failure is reported the same way
        where = _unpicklable_part(pickler, chain, "chain", 0)
        name = _chain_name(chain)
        reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        raise ChainNotPortableError(
            f"chain {name!r} cannot be sent to the Ray workers: {where} does not pickle "
            f"({reason[:200]}); pass ChainRecipe('<chain name>', model='<spec>') so each "
            "worker builds it by name, or build the part that fails inside the workers"
        ) from None


def _dumps(pickler: type[Any], value: Any) -> bytes:
    buffer = io.BytesIO()
    pickler(buffer, protocol=5).dump(value)
    return buffer.getvalue()


def _unpicklable_part(pickler: type[Any], value: Any, path: str, depth: int) -> str:
    """The deepest attribute path under ``value`` that fails to pickle (best effort)."""
    children: list[tuple[str, Any]] = []
    if isinstance(value, BaseModel):
        children = [(f"{path}.{k}", getattr(value, k, None)) for k in type(value).model_fields]
    elif isinstance(value, list | tuple):
        children = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    elif isinstance(value, dict):
        children = [(f"{path}[{k!r}]", v) for k, v in value.items()]
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        children = [(f"{path}.{k}", v) for k, v in vars(value).items()]
    if depth < 12:
        for child_path, child in children:
            try:
                _dumps(pickler, child)
            except Exception:  # noqa: BLE001 - looking for the part that fails
                return _unpicklable_part(pickler, child, child_path, depth + 1)
    return f"{path} ({type(value).__name__})"


def _chain_name(chain: Runnable[Any, Any]) -> str:
    try:
        return chain.get_name()
    except Exception:  # noqa: BLE001 - a custom runnable may fail here
        return type(chain).__name__


def _load_chain(transport: tuple[str, Any]) -> Runnable[Any, Any]:
    kind, payload = transport
    if kind == "recipe":
        recipe: ChainRecipe = payload
        return recipe.build()
    from ray import cloudpickle

    chain: Runnable[Any, Any] = cloudpickle.loads(payload)
    return chain


# ---------------------------------------------------------------------- shared limits


class _Limiter:
    """The Ray actor holding the batch's rate buckets and its 429 cool-down."""

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        self.limits = RateLimits.create(rpm, tpm)
        self.cooldown_until = 0.0
        self.version = 0
        self._changed = asyncio.Event()

    async def acquire(self, tokens: float) -> float:
        """Sit out the cool-down, then take one request and ``tokens`` tokens; seconds waited."""
        start = time.monotonic()
        while True:
            delay = self.cooldown_until - time.monotonic()
            if delay <= 0:
                break
            await asyncio.sleep(delay)
        await self.limits.acquire(tokens)
        return time.monotonic() - start

    def adjust(self, delta: float) -> None:
        self.limits.adjust_tokens(delta)

    def cool_down(self, pause: float) -> None:
        """A worker got a 429: pause every worker for ``pause`` seconds."""
        until = time.monotonic() + pause
        if until > self.cooldown_until:
            self.cooldown_until = until
            self.version += 1
            self._changed.set()
            self._changed = asyncio.Event()

    async def watch(self, version: int) -> tuple[int, float]:
        """Wait (a while) for a cool-down newer than ``version``; its number and seconds left."""
        if self.version == version:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), _WATCH_TIMEOUT)
        return self.version, max(0.0, self.cooldown_until - time.monotonic())

    def waited(self) -> float:
        return self.limits.waited


class _RemoteLimits(RateLimits):
    """A worker's view of the limiter actor, in place of the local runner's buckets."""

    def __init__(self, limiter: Any, *, requests: bool, tokens: bool) -> None:
        super().__init__()
        self._limiter = limiter
        self._requests, self._tokens = requests, tokens

    @property
    def active(self) -> bool:
        return self._requests or self._tokens

    async def acquire(self, tokens: float) -> float:
        waited = float(await self._limiter.acquire.remote(tokens))
        self.waited += waited
        return waited

    def adjust_tokens(self, delta: float) -> None:
        if self._tokens and delta:
            self._limiter.adjust.remote(delta)


class _SharedConcurrency(AdaptiveConcurrency):
    """One worker's AIMD concurrency; its 429 cool-downs are announced to every worker."""

    def __init__(self, limit: int, limiter: Any) -> None:
        super().__init__(limit)
        self._limiter = limiter

    def on_rate_limited(self, pause: float) -> None:
        super().on_rate_limited(pause)
        self._limiter.cool_down.remote(max(pause, 0.05))

    def cool_down_from_elsewhere(self, remaining: float) -> None:
        """Another worker hit a 429: pause too, and back off like after one's own 429."""
        now = time.monotonic()
        self.cooldown_until = max(self.cooldown_until, now + remaining)
        if now >= self._no_decrease_until and not math.isinf(self.limit):
            self.limit = max(1.0, self.limit / 2.0)
            self.min_limit = min(self.min_limit, self.limit)
            self.decreases += 1
            self._no_decrease_until = now + max(remaining, self.decrease_interval)


# ---------------------------------------------------------------------- workers


class _BlockBatch(_Batch):
    """The local runner on one block of items, inside a worker (no file, no progress)."""

    def __init__(
        self,
        chain: Runnable[Any, Any],
        items: list[InputItem],
        options: dict[str, Any],
        state: _WorkerState,
    ) -> None:
        super().__init__(
            chain,
            items,
            **options,
            output=None,
            resume=False,
            retry_failed=False,
            overwrite=False,
            ordered=False,
            callbacks=None,
            progress=False,
            strategy="sliding",
            reorder_buffer=None,
        )
        self.keep_results = False
        self.limits = state.limits
        self.concurrency = state.concurrency
        self._running = state.running  # blocks of one worker share its max_concurrency

    async def _items(self) -> AsyncGenerator[InputItem, None]:
        for item in self.inputs:
            yield item


@dataclass
class _WorkerState:
    limits: _RemoteLimits
    concurrency: _SharedConcurrency
    running: asyncio.Semaphore


class _Worker:
    """A Ray actor that runs blocks of a batch with the local runner and streams records back."""

    def __init__(
        self,
        transport: tuple[str, Any],
        options: dict[str, Any],
        limiter: Any,
        limited: tuple[bool, bool],
    ) -> None:
        self._transport = transport
        self._options = options
        self._limiter = limiter
        self._limited = limited
        self._chain: Runnable[Any, Any] | None = None
        self._state: _WorkerState | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._items = 0

    async def setup(self) -> dict[str, Any] | None:
        """Build the chain and start following cool-downs; a failure is returned, not raised
        (chainkit's errors do not all survive Ray's exception pickling)."""
        try:
            chain = _load_chain(self._transport)
            max_concurrency = int(self._options["max_concurrency"])
            state = _WorkerState(
                limits=_RemoteLimits(
                    self._limiter, requests=self._limited[0], tokens=self._limited[1]
                ),
                concurrency=_SharedConcurrency(max_concurrency, self._limiter),
                running=asyncio.Semaphore(max_concurrency),
            )
            _BlockBatch(chain, [], self._options, state)  # checks the chain once, up front
        except Exception as exc:  # noqa: BLE001 - handed to the driver, raised there
            return _failure(exc)
        self._chain, self._state = chain, state
        self._watcher = asyncio.create_task(self._watch())
        return None

    async def _watch(self) -> None:
        version = 0
        while True:
            try:
                newer, remaining = await self._limiter.watch.remote(version)
            except Exception:  # noqa: BLE001 - the limiter is gone: the batch is ending
                return
            if newer != version and remaining > 0 and self._state is not None:
                self._state.concurrency.cool_down_from_elsewhere(remaining)
            version = newer

    def stats(self) -> dict[str, Any]:
        if self._state is None:
            return {}
        concurrency = self._state.concurrency
        return {
            "pid": os.getpid(),
            "items": self._items,
            "max_in_flight": concurrency.max_in_flight,
            "rate_limited": concurrency.rate_limited,
            "cooldown_waited": concurrency.cooldown_waited,
            "min_limit": concurrency.min_limit,
            "rate_limit_wait": self._state.limits.waited,
        }

    async def run_block(
        self, rows: list[tuple[int, Any, Any, int | None]]
    ) -> AsyncGenerator[tuple[list[ResultRecord], dict[str, Any] | None], None]:
        """Yield ``(records, None)`` as items finish, then ``([], stats)``; ``stats`` holds a
        ``failure`` when the block broke down (a bug, not an item's error)."""
        if self._chain is None or self._state is None:
            raise ChainkitRunError("a chainkit Ray worker ran a block before setup()")
        items = [InputItem(index=i, value=v, id=k, line=line) for i, v, k, line in rows]
        batch = _BlockBatch(self._chain, items, self._options, self._state)
        finished: asyncio.Queue[ResultRecord] = asyncio.Queue()
        task = asyncio.create_task(batch.run(sink=finished.put), name="chainkit-block")
        try:
            while True:
                if finished.empty() and not task.done():
                    await asyncio.wait([task], timeout=FLUSH_INTERVAL)
                records: list[ResultRecord] = []
                while not finished.empty() and len(records) < FLUSH_RECORDS:
                    records.append(finished.get_nowait())
                if records:
                    self._items += len(records)
                    yield records, None
                elif task.done():
                    break
            try:
                await task
            except Exception as exc:  # noqa: BLE001 - handed to the driver, raised there
                yield [], {"failure": _failure(exc)}
                return
            yield [], self.stats()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


# ---------------------------------------------------------------------- driver


@dataclass
class RayBatchReport(BatchReport):
    """:class:`BatchReport` of a batch run on Ray, plus how the work was spread."""

    backend: str = "ray"
    workers: int = 0
    block_size: int = 0
    blocks: int = 0
    startup: float = 0.0
    worker_restarts: int = 0
    rerun_items: int = 0
    duplicates_dropped: int = 0
    items_per_worker: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["ray"] = {
            "workers": self.workers,
            "startup": round(self.startup, 3),
            "block_size": self.block_size,
            "blocks": self.blocks,
            "worker_restarts": self.worker_restarts,
            "rerun_items": self.rerun_items,
            "duplicates_dropped": self.duplicates_dropped,
            "items_per_worker": dict(self.items_per_worker),
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


@dataclass
class _WorkerRef:
    handle: Any
    name: str
    alive: bool = True


class _Pool:
    """The worker actors of one batch: a queue of free slots, replacements for dead ones."""

    def __init__(
        self,
        ray: Any,
        *,
        size: int,
        slots: int,
        transport: tuple[str, Any],
        options: dict[str, Any],
        limited: tuple[bool, bool],
        rpm: float | None,
        tpm: float | None,
        cpus: float,
        max_restarts: int,
    ) -> None:
        self.ray = ray
        self.size, self.slots = size, slots
        self.transport, self.options, self.limited = transport, options, limited
        self.cpus = cpus
        self.max_restarts = max_restarts
        self.restarts = 0
        self.run_id = uuid.uuid4().hex[:8]
        self.limiter = (
            _remote(ray, _Limiter)
            .options(
                name=f"chainkit-{self.run_id}-limiter",
                namespace=NAMESPACE,
                num_cpus=0,
                max_concurrency=max(1000, 4 * size * int(options["max_concurrency"])),
            )
            .remote(rpm, tpm)
        )
        self.free: asyncio.Queue[_WorkerRef] = asyncio.Queue()
        self.workers: list[_WorkerRef] = []
        self.stats: dict[str, dict[str, Any]] = {}
        self.closed = False
        self._spawned = 0

    async def start(self) -> None:
        tasks = [asyncio.create_task(self._spawn()) for _ in range(self.size)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def _spawn(self) -> None:
        while True:
            name = f"chainkit-{self.run_id}-worker-{self._spawned}"
            self._spawned += 1
            handle = (
                _remote(self.ray, _Worker)
                .options(
                    name=name,
                    namespace=NAMESPACE,
                    num_cpus=self.cpus,
                    max_concurrency=self.slots + 2,
                    max_restarts=0,
                    max_task_retries=0,
                    scheduling_strategy="SPREAD",
                )
                .remote(self.transport, self.options, self.limiter, self.limited)
            )
            worker = _WorkerRef(handle, name)
            self.workers.append(worker)
            try:
                failure = await handle.setup.remote()
            except Exception as exc:  # noqa: BLE001 - Ray's errors: sorted just below
                worker.alive = False
                _kill(self.ray, handle)
                if not _is_lost(self.ray, exc):
                    raise _worker_error(self.ray, exc) from None
                self._count_restart(exc)
                continue
            if failure is not None:
                worker.alive = False
                _kill(self.ray, handle)
                raise _failure_error(failure)
            if self.closed:
                worker.alive = False
                _kill(self.ray, handle)
                return
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

    async def lost(self, worker: _WorkerRef, exc: BaseException) -> None:
        """``worker`` died (or cannot be reached): make sure it is gone, start another."""
        if not worker.alive or self.closed:
            return  # another block saw it first and replaced it, or the batch is ending
        worker.alive = False
        log.warning("Ray worker %s lost (%s); starting another", worker.name, _first_line(exc))
        _kill(self.ray, worker.handle)
        self._count_restart(exc)
        await self._spawn()

    def shutdown(self) -> None:
        self.closed = True
        for worker in self.workers:
            _kill(self.ray, worker.handle)
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


def _failure(exc: BaseException) -> dict[str, Any]:
    """An exception raised in a worker, as plain data the driver turns back into an error."""
    return {
        "type": type(exc).__name__,
        "chainkit": isinstance(exc, ChainkitError),
        "message": str(exc),
        "env_var": getattr(exc, "env_var", None) if isinstance(exc, MissingAPIKeyError) else None,
    }


def _failure_error(failure: dict[str, Any]) -> BaseException:
    """The driver's exception for a worker's ``failure``: the same chainkit class when it was
    one (built without its constructor: the message is already made), else a run error."""
    if failure.get("env_var"):
        env_var = failure["env_var"]
        return ConfigError(
            f"the Ray workers have no {env_var}: API keys are not sent to workers; set "
            f"{env_var} in their environment (the cluster's, or "
            "ray.init(runtime_env={'env_vars': ...}))"
        )
    message = str(failure.get("message", "")).strip()
    if failure.get("chainkit"):
        from chainkit import errors

        cls = getattr(errors, str(failure.get("type")), None)
        if isinstance(cls, type) and issubclass(cls, ChainkitError):
            error = cls.__new__(cls)
            ChainkitError.__init__(error, message)
            return error
    first = message.splitlines()[0] if message else ""
    return ChainkitRunError(f"a Ray worker failed: {failure.get('type')}: {first}")


def _worker_error(ray: Any, exc: BaseException) -> BaseException:
    """An error Ray raised for a worker call that is not a lost worker (one line)."""
    cause = getattr(exc, "cause", None) if isinstance(exc, ray.exceptions.RayTaskError) else None
    return ChainkitRunError(f"a Ray worker failed: {_first_line(cause or exc)}")


class _RayBatch(_Batch):
    """The driver: reads inputs, dispatches blocks to workers, writes what comes back."""

    def __init__(
        self,
        chain: Runnable[Any, Any],
        inputs: Any,
        *,
        ray: Any,
        transport: tuple[str, Any],
        workers: int,
        worker_cpus: float,
        block_size: int | None,
        blocks_per_worker: int,
        max_block_retries: int,
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
        self.worker_options = worker_options
        total = known_total(inputs)
        if block_size is None:
            block_size = min(MAX_BLOCK_SIZE, 4 * self.max_concurrency)
            if total:
                block_size = min(block_size, math.ceil(total / (workers * blocks_per_worker)))
        self.block_size = max(1, block_size)
        self.max_blocks = workers * blocks_per_worker
        in_flight = self.max_blocks * self.block_size
        # every read item holds a slot until written: blocks in flight + the reorder buffer
        self._open = asyncio.Semaphore(in_flight + self.reorder_buffer + self.block_size)
        base = self.report
        self.ray_report = RayBatchReport(
            chain=base.chain,
            strategy="sliding",
            max_concurrency=self.max_concurrency,
            output=base.output,
            notes=list(base.notes),
            workers=workers,
            block_size=self.block_size,
        )
        self.report = self.ray_report
        self._fatal: BaseException | None = None
        self._pool: _Pool | None = None

    def _settings(self) -> dict[str, Any]:
        return {
            **super()._settings(),
            "backend": "ray",
            "workers": self.workers,
            "block_size": self.block_size,
        }

    async def _run_sliding(self) -> None:
        limited = (self.rpm is not None, self.tpm is not None)
        pool = _Pool(
            self.ray,
            size=self.workers,
            slots=self.blocks_per_worker,
            transport=self.transport,
            options=self.worker_options,
            limited=limited,
            rpm=self.rpm,
            tpm=self.tpm,
            cpus=self.worker_cpus,
            max_restarts=max(4, 2 * self.workers),
        )
        self._pool = pool  # shut down in _finish, after in-flight blocks had their grace
        started = time.monotonic()
        await pool.start()
        self.ray_report.startup = time.monotonic() - started
        log.info("%d Ray workers ready in %.1f s", self.workers, self.ray_report.startup)
        await self._dispatch(pool)

    def _finish(self, finished: bool) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._collect(self._pool)
        super()._finish(finished)

    def _failed(self) -> bool:
        return self._fatal is not None

    def _fail(self, exc: BaseException) -> None:
        """A block cannot go on (a worker raised, workers keep dying): stop the batch."""
        if self._fatal is None:
            self._fatal = exc
        self._open.release()  # wake the reader if it waits for room in the writer

    async def _dispatch(self, pool: _Pool) -> None:
        room = asyncio.Semaphore(self.max_blocks)  # back-pressure: blocks in flight
        items = self._items()
        try:
            while not self._failed():
                await room.acquire()
                if self._failed():
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
        while self._tasks and self._fatal is None:
            await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
        if self._fatal is not None:
            raise self._fatal

    async def _read_block(
        self, items: AsyncGenerator[InputItem, None]
    ) -> tuple[list[tuple[int, InputItem]], bool]:
        """Up to ``block_size`` items (with their output sequence numbers); False when done."""
        block: list[tuple[int, InputItem]] = []
        while len(block) < self.block_size and self._fatal is None:
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
        """Run one block to the end: on a worker, and again elsewhere for what a dead one lost."""
        pending = {item.index: (seq, item) for seq, item in block}
        deaths = 0
        try:
            while pending and not pool.closed:
                worker = await pool.acquire()
                try:
                    await self._run_on(worker, pending)
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
                    await pool.lost(worker, exc)
                else:
                    pool.release(worker)
                    if pending:  # finished without them: never expected; run them again
                        log.warning("a Ray worker skipped %d items; rerunning them", len(pending))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the dispatcher, raised there
            self._fail(exc)

    async def _run_on(self, worker: _WorkerRef, pending: dict[int, tuple[int, InputItem]]) -> None:
        rows = [(item.index, item.value, item.id, item.line) for _, item in pending.values()]
        self._active += len(rows)
        sent = len(rows)
        try:
            stream = worker.handle.run_block.remote(rows)
            async for ref in stream:
                records, stats = await ref
                if stats is not None and "failure" in stats:
                    raise _failure_error(stats["failure"])
                for record in records:
                    entry = pending.pop(record.index, None)
                    if entry is None:
                        self.ray_report.duplicates_dropped += 1
                        continue
                    sent -= 1
                    self._active -= 1
                    await self._deliver(entry[0], record)
                if stats is not None:
                    self.ray_report.items_per_worker[worker.name] = stats["items"]
                    if self._pool is not None:
                        self._pool.stats[worker.name] = stats
        finally:
            self._active -= sent

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
        """Fold the workers' counters into the report (through the parent's fields)."""
        self.ray_report.worker_restarts = pool.restarts
        stats = list(pool.stats.values())
        if not stats:
            return
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
    """Join the Ray cluster at ``ray_address`` ("auto", "ray://host:10001", "host:6379"),
    or start a local Ray instance when it is None (``$RAY_ADDRESS`` is joined when set).
    Does nothing when Ray is already initialized in this process."""
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
            "(auto, ray://host:10001 or host:6379) and that the cluster is up (ray status)"
        ) from None
    return ray


def _cluster_cpus(ray: Any) -> float:
    try:
        return float(ray.cluster_resources().get("CPU", 1.0))
    except Exception:  # noqa: BLE001 - a Ray Client connection may not say
        return 1.0


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

    Same semantics and options as the local runner (one record per input, the
    same output file, resume, ordered output, progress, the report), plus:

    Args:
        chain: a Runnable (sent to the workers pickled; OpenAI models as their
            settings) or a :class:`ChainRecipe` (each worker builds it by name).
        ray_address: the cluster to join ("auto", "ray://head:10001"); None starts
            a local Ray instance (or joins ``$RAY_ADDRESS``). Ignored when Ray is
            already initialized in this process.
        workers: worker actors (default: one per CPU of the cluster).
        block_size: items handed to a worker at a time (default
            ``4 * max_concurrency``, capped so that every worker gets work).
        blocks_per_worker: blocks queued per worker (2: one running while the
            next is on its way); the driver holds at most ``workers * blocks_per_worker``.
        worker_cpus: CPUs each worker reserves (default ``min(1, cpus / workers)``).
        max_block_retries: how many times a block's unfinished items are run
            again after their worker died, before they become error records.
        max_concurrency: items in flight *per worker*.
        rpm, tpm: requests / tokens per minute for the *whole* batch, all workers.

    Raises:
        ConfigError: Ray is not installed or cannot be reached; an option that does
            not apply on Ray (``callbacks``, a strategy other than ``sliding``).
        ChainNotPortableError: ``chain`` cannot be pickled.
        ChainkitRunError: workers kept dying (what finished is written: resume).
    """
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

    transport: tuple[str, Any]
    if isinstance(chain, ChainRecipe):
        recipe = chain.resolved()
        runnable = recipe.build()
        transport = ("recipe", recipe)
        name = name or recipe.name
    elif isinstance(chain, Runnable):
        runnable = chain
        transport = ("pickle", pickle_chain(chain))
    else:
        raise ConfigError(
            "run_batch(backend='ray') needs a Runnable or a ChainRecipe, "
            f"got {type(chain).__name__}"
        )

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
    batch = _RayBatch(
        runnable,
        inputs,
        ray=ray,
        transport=transport,
        workers=count,
        worker_cpus=worker_cpus,
        block_size=block_size,
        blocks_per_worker=blocks_per_worker,
        max_block_retries=max_block_retries,
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
    await batch.run()
    return batch.ray_report
