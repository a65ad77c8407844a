"""Limits shared by every in-flight call of one batch: rate buckets and adaptive concurrency.

Rate limits (``rpm``, ``tpm``) are smooth token buckets with no burst: a
bucket holds at most one unit, refills continuously at ``budget / 60`` per
second, admits a call when it is not in debt and charges the call's whole
cost (which may leave it in debt). So requests are spaced ``60 / rpm`` s
apart, and in any window of ``W`` seconds at most ``rpm * W / 60`` requests
start (``tpm * W / 60`` tokens, plus at most the cost of the one call that
opened the window). Waiters are served first come, first served.

Token costs are *estimates* before the call (prompt characters / 4 plus the
``max_tokens`` the model may write) and are corrected with the real usage
after it: a call that used fewer tokens gives the difference back, one that
used more leaves the bucket in debt. Every attempt, retried or not, pays.

Concurrency is adaptive (AIMD): ``max_concurrency`` is the ceiling; a 429
halves the effective limit (at most once a second, or once per cool-down when
that is longer: a burst of 429s is one signal) and pauses every new
attempt of the batch until the cool-down ends (the server's ``Retry-After``
when it sent one, else a backoff); each success adds ``1 / limit``, so the
limit grows back by one per round of successful calls.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["AdaptiveConcurrency", "RateBucket", "RateLimits"]


class RateBucket:
    """A smooth token bucket: ``per_minute`` units a minute, no burst beyond one unit."""

    def __init__(self, per_minute: float, *, capacity: float = 1.0) -> None:
        if per_minute <= 0:
            raise ValueError(f"a rate limit must be > 0 per minute, got {per_minute}")
        self.per_minute = float(per_minute)
        self.rate = self.per_minute / 60.0
        self.capacity = float(capacity)
        self._level = self.capacity
        self._stamp = time.monotonic()
        self._lock: asyncio.Lock | None = None

    def _refill(self) -> None:
        now = time.monotonic()
        self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
        self._stamp = now

    @property
    def level(self) -> float:
        self._refill()
        return self._level

    async def acquire(self, cost: float = 1.0) -> float:
        """Wait until the bucket admits a call of ``cost`` units; return the seconds waited."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        start = time.monotonic()
        async with self._lock:  # FIFO: the oldest waiter goes first
            while True:
                self._refill()
                threshold = min(max(cost, 0.0), self.capacity)
                if self._level >= threshold:
                    self._level -= max(cost, 0.0)
                    return time.monotonic() - start
                await asyncio.sleep((threshold - self._level) / self.rate)

    def adjust(self, delta: float) -> None:
        """Charge ``delta`` more units (negative: give some back) after the real cost is known."""
        self._refill()
        self._level = min(self.capacity, self._level - delta)


class WaitClock:
    """Wall time during which at least one call of a batch was held back.

    Overlapping waits count once, so sixteen items that sit out the same
    second add one second, not sixteen (``BatchReport.rate_limit_wait``).
    """

    def __init__(self) -> None:
        self.total = 0.0
        self._waiting = 0
        self._since = 0.0

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        if self._waiting == 0:
            self._since = time.monotonic()
        self._waiting += 1
        try:
            yield
        finally:
            self._waiting -= 1
            if self._waiting == 0:
                self.total += time.monotonic() - self._since


@dataclass
class RateLimits:
    """The ``rpm`` and ``tpm`` buckets of one batch (either may be absent).

    ``waited`` sums every call's wait; ``clock`` counts the wall time waited.
    """

    requests: RateBucket | None = None
    tokens: RateBucket | None = None
    waited: float = 0.0
    clock: WaitClock = field(default_factory=WaitClock)

    @classmethod
    def create(cls, rpm: float | None, tpm: float | None) -> RateLimits:
        return cls(
            requests=RateBucket(rpm) if rpm else None,
            tokens=RateBucket(tpm) if tpm else None,
        )

    @property
    def active(self) -> bool:
        return self.requests is not None or self.tokens is not None

    async def acquire(self, tokens: float) -> float:
        """Take one request and ``tokens`` tokens; return the seconds waited."""
        waited = 0.0
        with self.clock.waiting():
            if self.requests is not None:
                waited += await self.requests.acquire(1.0)
            if self.tokens is not None:
                waited += await self.tokens.acquire(tokens)
        self.waited += waited
        return waited

    def adjust_tokens(self, delta: float) -> None:
        if self.tokens is not None and delta:
            self.tokens.adjust(delta)


class AdaptiveConcurrency:
    """A semaphore whose size follows AIMD, plus a batch-wide cool-down after a 429.

    ``limit=None`` means unbounded (the ``gather`` strategy); the cool-down
    still applies.
    """

    def __init__(
        self,
        limit: int | None,
        *,
        min_cooldown: float = 0.05,
        decrease_interval: float = 1.0,
        clock: WaitClock | None = None,
    ) -> None:
        self.clock = clock if clock is not None else WaitClock()
        self.ceiling = limit
        self.limit = float(limit) if limit is not None else math.inf
        self.in_flight = 0
        self.max_in_flight = 0
        self.min_limit = self.limit
        self.cooldown_until = 0.0
        self.cooldown_waited = 0.0
        self.rate_limited = 0
        self.decreases = 0
        self._no_decrease_until = 0.0
        self._min_cooldown = min_cooldown
        self.decrease_interval = decrease_interval
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def effective_limit(self) -> int | None:
        return None if math.isinf(self.limit) else max(1, int(self.limit))

    def _has_room(self) -> bool:
        return math.isinf(self.limit) or self.in_flight < max(1, int(self.limit))

    def _take(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    async def acquire(self) -> float:
        """Take a slot, then sit out any cool-down; return the seconds spent cooling down."""
        if self._has_room() and not self._waiters:
            self._take()
        else:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(future)
            try:
                await future  # the releaser hands its slot over (in_flight already counted)
            except BaseException:
                if future.done() and not future.cancelled():
                    self.release()
                else:
                    future.cancel()
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(future)
                raise
        waited = 0.0
        try:
            while (delay := self.cooldown_until - time.monotonic()) > 0:
                with self.clock.waiting():
                    await asyncio.sleep(delay)
                waited += delay
        except BaseException:
            self.release()
            raise
        self.cooldown_waited += waited
        return waited

    def release(self) -> None:
        self.in_flight -= 1
        self._dispatch()

    def _dispatch(self) -> None:
        while self._waiters and self._has_room():
            future = self._waiters.popleft()
            if future.done():
                continue
            self._take()
            future.set_result(None)

    def on_rate_limited(self, pause: float) -> None:
        """A 429: cool the whole batch down for ``pause`` s; halve the limit (once per interval)."""
        self.rate_limited += 1
        self.back_off(max(pause, self._min_cooldown))

    def back_off(self, pause: float) -> None:
        """Cool down for ``pause`` s and halve the limit (at most once per interval)."""
        now = time.monotonic()
        self.cooldown_until = max(self.cooldown_until, now + pause)
        if now >= self._no_decrease_until and not math.isinf(self.limit):
            self.limit = max(1.0, self.limit / 2.0)
            self.min_limit = min(self.min_limit, self.limit)
            self.decreases += 1
            self._no_decrease_until = now + max(pause, self.decrease_interval)

    def on_success(self) -> None:
        """Additive increase: one more slot per round of successful calls."""
        if self.ceiling is not None and self.limit < self.ceiling:
            self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)
            self._dispatch()
