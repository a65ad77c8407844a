"""run_batch, run_batch_sync and iter_results: one chain over many inputs.

Each call composes a batch from two parts (see :mod:`chainkit.runners._executor`):
a :class:`~chainkit.runners._recorder.Recorder` (inputs, resume, ordering, the
results file, progress, the report) and an executor for ``options.backend``:
:class:`~chainkit.runners._local.LocalExecutor` (this process; the strategies
are described there) or :class:`~chainkit.runners._ray.RayExecutor` (a Ray
cluster). Every item yields exactly one :class:`ResultRecord`; an item that
fails (after its retries, or at once for a non-transient error) is an error
record, and the batch goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any, Unpack

from langchain_core.runnables import Runnable

from chainkit._bridge import run_sync
from chainkit.runners._local import LocalExecutor
from chainkit.runners._options import STRATEGIES, BatchKwargs, BatchOptions, resolve_options
from chainkit.runners._prepare import prepare_chain
from chainkit.runners._ray_transport import ChainRecipe
from chainkit.runners._recorder import Recorder
from chainkit.runners._records import ResultRecord
from chainkit.runners._report import BatchReport

__all__ = [
    "STRATEGIES",
    "ResultStream",
    "iter_results",
    "local_chain",
    "make_batch",
    "run_batch",
    "run_batch_sync",
]

Chain = Runnable[Any, Any] | ChainRecipe


def local_chain(chain: Chain, name: str | None) -> tuple[Runnable[Any, Any], str | None]:
    """The runnable to run in this process (a :class:`ChainRecipe` is built here), its name."""
    if isinstance(chain, ChainRecipe):
        return chain.build(), name or chain.name
    return chain, name


def make_batch(
    chain: Chain, inputs: Any, options: BatchOptions, *, keep_results: bool = True
) -> Recorder:
    """The batch for ``options.backend``, not started: a recorder composed with an executor."""
    if options.backend == "ray":
        from chainkit.runners._ray import ray_executor

        prepared, executor = ray_executor(chain, inputs, options)
        return Recorder(prepared, inputs, options, executor, keep_results=keep_results)
    if options.backend == "openai-batch":
        from chainkit.runners._provider_backend import provider_batch_executor

        prepared, batches = provider_batch_executor(chain, options)
        return Recorder(prepared, inputs, options, batches, keep_results=keep_results)
    runnable, name = local_chain(chain, options.name)
    prepared = prepare_chain(runnable, name=name, pool_size=options.max_concurrency)
    local = LocalExecutor(prepared, options)
    return Recorder(prepared, inputs, options, local, keep_results=keep_results)


async def run_batch(
    chain: Chain,
    inputs: Iterable[Any] | Any,
    *,
    options: BatchOptions | None = None,
    **kwargs: Unpack[BatchKwargs],
) -> BatchReport:
    """Run ``chain`` over ``inputs`` concurrently, within limits, with one record per input.

    >>> report = await run_batch(chain, "inputs.jsonl", output="out.jsonl", max_concurrency=8)
    >>> report = await run_batch(chain, inputs, options=BatchOptions(output="out.jsonl"))

    Args:
        chain: any LangChain ``Runnable`` (``make_chain(...)``, ``prompt | model``, ...),
            or a :class:`ChainRecipe` (built where the items run).
        inputs: a list, any iterable, an async iterable, or the path of a JSONL file
            (one JSON object of template variables per line). Read lazily.
        options: a :class:`BatchOptions` (every option, validated once).
        **kwargs: the same options as keywords (:class:`BatchKwargs`), applied over
            ``options``: ``max_concurrency``, ``rpm``, ``tpm``, ``retries``, ``timeout``,
            ``output``, ``resume``, ``retry_failed``, ``overwrite``, ``ordered``,
            ``stream``, ``callbacks``, ``config``, ``progress``, ``strategy``, ``name``,
            ``reorder_buffer``, ``grace``, ``backoff_base``, ``backoff_max``,
            ``max_retry_after``, ``backend``, ``ray_address``, ``workers``
            (each is described on :class:`BatchOptions`).

    Returns:
        A :class:`BatchReport`.

    Raises:
        ConfigError: bad options, or ``output`` exists and neither resume nor overwrite.
        ResumeMismatchError: ``output`` was written by another chain, or the inputs changed.
        asyncio.CancelledError: after flushing what finished (never swallowed).
    """
    batch = make_batch(chain, inputs, resolve_options(options, kwargs))
    return await batch.run()


def run_batch_sync(
    chain: Chain,
    inputs: Iterable[Any] | Any,
    *,
    options: BatchOptions | None = None,
    **kwargs: Unpack[BatchKwargs],
) -> BatchReport:
    """:func:`run_batch` for synchronous code; also works inside a running event loop.

    The batch runs on a private loop in a thread (:func:`chainkit._bridge.run_sync`,
    the one sync bridge), so a Jupyter cell or an async framework is no
    obstacle; Ctrl-C (or "interrupt kernel") cancels the batch (what finished
    is written) and raises ``KeyboardInterrupt``.
    """
    resolved = resolve_options(options, kwargs)
    return run_sync(run_batch(chain, inputs, options=resolved), name="chainkit-batch")


class ResultStream:
    """The async iterator returned by :func:`iter_results`; ``report`` is set when it ends.

    Leaving the ``async for`` early (``break``, an exception, a cancellation)
    stops the batch like a cancellation: in-flight items get the grace
    period, and what finished is written. ``await stream.aclose()`` does the
    same explicitly.
    """

    def __init__(self, batch: Recorder) -> None:
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
    chain: Chain,
    inputs: Iterable[Any] | Any,
    *,
    options: BatchOptions | None = None,
    **kwargs: Unpack[BatchKwargs],
) -> ResultStream:
    """Like :func:`run_batch`, but yield each :class:`ResultRecord` as it is written.

    >>> async for record in iter_results(chain, inputs, progress=False):
    ...     print(record.index, record.output or record.error)

    A slow consumer slows the batch down (no unbounded queue). The report is
    in ``stream.report`` once the iteration ends.
    """
    resolved = resolve_options(options, kwargs)
    return ResultStream(make_batch(chain, inputs, resolved, keep_results=False))
