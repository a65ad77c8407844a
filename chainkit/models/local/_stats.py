"""Counters and a bounded request log of the local model server (``GET /stats``).

Nothing here grows with the traffic beyond a bound: the log keeps the last
``log_size`` requests (about 400 bytes each), and connections are counted, not
remembered (only the live ones are held, weakly).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from typing import Any

__all__ = ["LOG_SIZE", "OWNER_LOG_SIZE", "Stats"]

LOG_SIZE = 100_000  # a served log (--request-log): about 40 MB when full
OWNER_LOG_SIZE = 10_000  # an in-process server's, for its owner's request_log()
_LOG_FIELDS = (
    "t_start",
    "t_end",
    "endpoint",
    "status",
    "outcome",
    "stream",
    "prompt_digest",
    "prompt",
    "prompt_tokens",
    "completion_tokens",
    "client",
)


class Stats:
    """What the server did since start (or the last :meth:`reset`).

    Mutated only from the server's event loop; a lock makes snapshots taken
    from other threads consistent.
    """

    def __init__(self, log_size: int = LOG_SIZE) -> None:
        self._lock = threading.Lock()
        self._log_size = log_size
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.since = time.time()
            self.requests: dict[str, dict[int, int]] = {}
            self.streams = {"started": 0, "completed": 0, "cut_client": 0, "cut_fault": 0}
            self.faults = {"error": 0, "disconnect": 0, "hang": 0}
            self.prompt_tokens = 0
            self.completion_tokens = 0
            self.connections = 0  # distinct connections that sent a request
            self._live: weakref.WeakSet[object] = weakref.WeakSet()
            self.in_flight = 0
            self.max_in_flight = 0
            self.log: deque[tuple[Any, ...]] = deque(maxlen=self._log_size)

    def begin(self, connection: object | None) -> None:
        """Count one request in flight; ``connection``: what carries it (its transport),
        counted once however many requests it carries."""
        with self._lock:
            if connection is not None and connection not in self._live:
                self._live.add(connection)
                self.connections += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end(
        self,
        *,
        t_start: float,
        endpoint: str,
        status: int,
        outcome: str,
        stream: bool = False,
        digest: str = "",
        prompt: str = "",
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        client: tuple[str, int] | None = None,
    ) -> None:
        """Record one finished request (also ends its in-flight count)."""
        with self._lock:
            self.in_flight -= 1
            by_status = self.requests.get(endpoint)
            if by_status is None:
                by_status = self.requests[endpoint] = {}
            by_status[status] = by_status.get(status, 0) + 1
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            if outcome in self.faults:
                self.faults[outcome] += 1
            if stream:
                self.streams["started"] += 1
                if outcome in ("completed", "cut_client", "cut_fault"):
                    self.streams[outcome] += 1
            if outcome == "cut_fault":
                self.faults["disconnect"] += 1
            if not self._log_size:
                return
            self.log.append(
                (
                    t_start,
                    time.time(),
                    endpoint,
                    status,
                    outcome,
                    stream,
                    digest,
                    prompt[:200],
                    prompt_tokens,
                    completion_tokens,
                    f"{client[0]}:{client[1]}" if client else None,
                )
            )

    def discard(self) -> None:
        """End an in-flight request that is not to be recorded."""
        with self._lock:
            self.in_flight -= 1

    def snapshot(self, *, log: bool = False) -> dict[str, Any]:
        with self._lock:
            requests = {
                endpoint: {str(status): n for status, n in sorted(by_status.items())}
                for endpoint, by_status in sorted(self.requests.items())
            }
            data: dict[str, Any] = {
                "since": self.since,
                "requests_total": sum(sum(v.values()) for v in self.requests.values()),
                "requests": requests,
                "streams": dict(self.streams),
                "faults": dict(self.faults),
                "tokens": {
                    "prompt": self.prompt_tokens,
                    "completion": self.completion_tokens,
                    "total": self.prompt_tokens + self.completion_tokens,
                },
                "connections": self.connections,
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "log_size": len(self.log),
            }
            if log:
                data["log"] = [dict(zip(_LOG_FIELDS, row, strict=True)) for row in self.log]
        return data
