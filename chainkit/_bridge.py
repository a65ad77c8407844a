"""The one sync bridge: coroutines run on a private event loop in a thread.

Every synchronous entry point that needs async work goes through here
(``run_batch_sync``, ``chainkit.notebook.live_stream``, the local model's
background server, the service's ``ServiceThread``), so starting a loop,
handing it work, cancelling it and handling Ctrl-C are written once.

- :func:`run_sync` runs one coroutine to its end and returns its value. It works
  with or without a running loop in the caller's thread (a Jupyter cell has one).
- :class:`LoopThread` keeps a loop running in a daemon thread for work that
  lives on (a server): :meth:`LoopThread.run` waits for a coroutine,
  :meth:`LoopThread.submit` does not, :meth:`LoopThread.stop` cancels what is
  left, closes async generators and the loop, and joins the thread.

Ctrl-C (``KeyboardInterrupt`` in the waiting thread), or any exception raised
by the ``tick`` callback, cancels the coroutine on its loop, waits up to
``grace`` seconds for it to unwind (its ``finally`` blocks run, files are
closed), then re-raises in the caller. A coroutine cancelled otherwise (the
loop stopped under it) surfaces as ``asyncio.CancelledError``.

This module sits at the bottom of the package: it imports nothing from
chainkit, so every layer (``models`` included) may use it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["LoopThread", "run_sync"]

T = TypeVar("T")

_START_TIMEOUT = 15.0
"""Seconds a new loop thread gets to start its loop."""
GRACE = 10.0
"""Seconds a cancelled coroutine gets to unwind before the caller re-raises."""


class LoopThread:
    """An event loop running in a daemon thread of its own.

    >>> with LoopThread("chainkit-example") as thread:
    ...     thread.run(asyncio.sleep(0, result=42))
    42

    ``loop_factory`` makes the loop (e.g. ``uvloop.new_event_loop``); the default
    is asyncio's.
    """

    def __init__(
        self,
        name: str,
        *,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    ) -> None:
        self.name = name
        self._loop_factory = loop_factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (after :meth:`start`)."""
        if self._loop is None:
            raise RuntimeError(f"loop thread {self.name!r} is not running")
        return self._loop

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._loop is not None

    def start(self) -> LoopThread:
        """Start the thread; returns once its loop runs. Starting twice is a no-op."""
        with self._lock:
            if self._thread is not None:
                return self
            ready = threading.Event()
            self._thread = threading.Thread(
                target=self._main, args=(ready,), name=self.name, daemon=True
            )
            self._thread.start()
            if not ready.wait(_START_TIMEOUT) or self._loop is None:
                error = self._error
                self._thread = None
                raise RuntimeError(
                    f"loop thread {self.name!r} did not start: {error or 'timed out'}"
                ) from error
            return self

    def _main(self, ready: threading.Event) -> None:
        async def until_stopped() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            ready.set()
            await self._stopping.wait()

        try:
            # asyncio.Runner cancels every task still running when it closes, then
            # closes async generators and the default executor: one shutdown path.
            with asyncio.Runner(loop_factory=self._loop_factory) as runner:
                runner.run(until_stopped())
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc
        finally:
            self._loop = None
            ready.set()

    def call(self, callback: Callable[..., object], *args: Any) -> None:
        """Call ``callback(*args)`` on the loop (from any thread); a no-op once it stopped."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(callback, *args)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; its future (cancelling it cancels the task)."""
        try:
            return asyncio.run_coroutine_threadsafe(coro, self.loop)
        except BaseException:
            coro.close()
            raise

    def run(
        self,
        coro: Coroutine[Any, Any, T],
        *,
        tick: Callable[[], object] | None = None,
        interval: float = 0.1,
        grace: float = GRACE,
    ) -> T:
        """Run ``coro`` on the loop and wait for its value, in the caller's context.

        ``tick`` (if given) is called in the waiting thread every ``interval``
        seconds until the coroutine ends (e.g. to refresh a display). Ctrl-C, or an
        exception from ``tick``, cancels the coroutine (see the module's docstring).
        """
        loop = self.loop
        context = contextvars.copy_context()
        result: concurrent.futures.Future[T] = concurrent.futures.Future()
        tasks: list[asyncio.Task[T]] = []

        def create() -> None:
            task = loop.create_task(coro, context=context)
            tasks.append(task)
            task.add_done_callback(_copy_outcome(result))

        def cancel() -> None:
            for task in tasks:
                task.cancel()

        try:
            loop.call_soon_threadsafe(create)
        except BaseException:
            coro.close()
            raise
        try:
            while True:
                try:
                    # a bounded wait: a pending Ctrl-C is seen at least every ``interval``
                    return result.result(timeout=interval)
                except concurrent.futures.TimeoutError:
                    if tick is not None:
                        tick()
        except BaseException:
            if result.done():  # the coroutine's own outcome: nothing to cancel
                raise
            # Ctrl-C or a failed tick: cancel on the loop (after create(): same FIFO queue)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(cancel)
            with contextlib.suppress(BaseException):
                result.result(timeout=grace)
            raise

    def stop(self, timeout: float = GRACE) -> None:
        """Cancel what still runs on the loop, close it and join the thread."""
        with self._lock:
            thread, stopping = self._thread, self._stopping
            if thread is None:
                return
            if stopping is not None:
                self.call(stopping.set)
            thread.join(timeout)
            self._thread = None
            self._stopping = None

    def __enter__(self) -> LoopThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _copy_outcome(
    result: concurrent.futures.Future[T],
) -> Callable[[asyncio.Task[T]], None]:
    def copy(task: asyncio.Task[T]) -> None:
        if task.cancelled():  # by run()'s Ctrl-C path (which re-raises), or by stop()
            result.set_exception(asyncio.CancelledError())
            return
        error = task.exception()
        if error is not None:
            result.set_exception(error)
        else:
            result.set_result(task.result())

    return copy


def run_sync(
    coro: Coroutine[Any, Any, T],
    *,
    tick: Callable[[], object] | None = None,
    interval: float = 0.1,
    name: str = "chainkit-sync",
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> T:
    """Run ``coro`` to its end on a private loop in a new thread; its value.

    Works whether or not the caller's thread runs a loop. ``tick``/``interval``
    and Ctrl-C behave as in :meth:`LoopThread.run`. The loop and the thread end
    with the call.
    """
    thread = LoopThread(name, loop_factory=loop_factory)
    try:
        thread.start()
    except BaseException:
        coro.close()
        raise
    try:
        return thread.run(coro, tick=tick, interval=interval)
    finally:
        thread.stop()
