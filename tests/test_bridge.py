"""chainkit._bridge: coroutines on a private loop in a thread, cancellation and Ctrl-C once."""

from __future__ import annotations

import _thread
import asyncio
import concurrent.futures
import contextvars
import inspect
import threading

import pytest

from chainkit._bridge import LoopThread, run_sync

_where: contextvars.ContextVar[str] = contextvars.ContextVar("_where", default="unset")


async def _answer() -> tuple[int, str, bool]:
    return 42, threading.current_thread().name, asyncio.get_running_loop().is_running()


def test_run_sync_returns_the_value_from_another_thread() -> None:
    value, thread_name, running = run_sync(_answer(), name="bridge-test")
    assert value == 42
    assert running
    assert thread_name == "bridge-test"
    assert not any(t.name == "bridge-test" for t in threading.enumerate())  # joined


def test_run_sync_works_inside_a_running_loop() -> None:
    async def outer() -> int:
        return run_sync(asyncio.sleep(0, result=7))  # a Jupyter cell does this

    assert asyncio.run(outer()) == 7


def test_run_sync_raises_the_coroutines_error() -> None:
    async def boom() -> None:
        raise ValueError("from the loop")

    with pytest.raises(ValueError, match="from the loop"):
        run_sync(boom())


def test_the_callers_context_travels_with_the_coroutine() -> None:
    async def read() -> str:
        return _where.get()

    token = _where.set("caller")
    try:
        assert run_sync(read()) == "caller"
    finally:
        _where.reset(token)


def test_tick_runs_while_waiting() -> None:
    ticks: list[int] = []
    box: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Event]] = {}

    async def until_ticked() -> str:
        box["it"] = (asyncio.get_running_loop(), asyncio.Event())
        await box["it"][1].wait()
        return "done"

    def tick() -> None:
        ticks.append(1)
        if len(ticks) >= 3 and "it" in box:
            loop, event = box["it"]
            loop.call_soon_threadsafe(event.set)

    assert run_sync(until_ticked(), tick=tick, interval=0.001) == "done"
    assert len(ticks) >= 3


def test_a_failing_tick_cancels_the_coroutine_and_lets_it_unwind() -> None:
    unwound = threading.Event()
    started = threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            unwound.set()

    def tick() -> None:
        if started.is_set():
            raise RuntimeError("display broke")

    with pytest.raises(RuntimeError, match="display broke"):
        run_sync(forever(), tick=tick, interval=0.001)
    assert unwound.is_set()  # its finally ran before the caller saw the error


def test_ctrl_c_cancels_the_coroutine_and_re_raises_keyboard_interrupt() -> None:
    unwound = threading.Event()

    async def forever() -> None:
        # the main thread waits in run(); interrupt it as Ctrl-C would
        asyncio.get_running_loop().call_later(0.01, _thread.interrupt_main)
        try:
            await asyncio.Event().wait()
        finally:
            unwound.set()

    with pytest.raises(KeyboardInterrupt):
        run_sync(forever())
    assert unwound.is_set()


def test_loop_thread_serves_many_calls_then_stops_what_is_left() -> None:
    cancelled = threading.Event()

    async def lingering() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with LoopThread("bridge-server") as thread:
        was_running = thread.running
        assert [thread.run(asyncio.sleep(0, result=i)) for i in range(3)] == [0, 1, 2]
        future = thread.submit(lingering())
        seen = threading.Event()
        thread.call(seen.set)
        assert seen.wait(5)
    assert was_running
    assert not thread.running
    assert cancelled.is_set()  # stop() cancelled the task still running
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(5)
    with pytest.raises(RuntimeError, match="not running"):
        _ = thread.loop


def test_loop_thread_uses_the_given_loop_factory() -> None:
    made: list[asyncio.AbstractEventLoop] = []

    def factory() -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        made.append(loop)
        return loop

    async def current() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    assert run_sync(current(), loop_factory=factory) is made[0]
    assert made[0].is_closed()


def test_a_loop_factory_that_fails_is_reported_by_start() -> None:
    def broken() -> asyncio.AbstractEventLoop:
        raise OSError("no loop for you")

    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="no loop for you"):
        run_sync(coro, loop_factory=broken)
    # closed, so no "never awaited" warning
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
