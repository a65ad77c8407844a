"""A run as readers see it: the records of one run_id folded into one object."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from chainkit.trace._values import ErrorInfo

__all__ = ["ErrorInfo", "Percentiles", "Run", "percentile"]

MODEL_KINDS = frozenset({"llm", "chat_model"})


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (0..100) of ``values`` by linear interpolation; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class Percentiles:
    """p50 / p95 / max of a set of durations in seconds (None when there are none)."""

    n: int
    p50: float | None
    p95: float | None
    max: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Percentiles:
        return cls(
            len(values), percentile(values, 50), percentile(values, 95), max(values, default=None)
        )

    def __str__(self) -> str:
        if not self.n:
            return "-"
        return f"p50 {_ms(self.p50)} p95 {_ms(self.p95)} max {_ms(self.max)}"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}ms"


@dataclass(slots=True, eq=False)
class Run:
    """One run of a chain, prompt, model, parser, tool, retriever or lambda.

    ``chunks`` are ``(time, text)`` pairs on the :func:`time.perf_counter` clock,
    every chunk the model produced in order (the empty first and last chunks of
    OpenAI-style streams included), so ``[text for _, text in run.chunks]`` is
    what a caller iterating the model saw. ``inputs`` and ``outputs`` are plain
    JSON, truncated and redacted as in the trace file.
    """

    run_id: str
    name: str
    kind: str
    parent_run_id: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    inputs: Any = None
    outputs: Any = None
    start: float | None = None
    end: float | None = None
    chunks: list[tuple[float, str]] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    error: ErrorInfo | None = None
    retries: int = 0
    final_text: str | None = None
    children: list[Run] = field(default_factory=list)

    # -- state ---------------------------------------------------------------

    @property
    def status(self) -> Literal["running", "ok", "error"]:
        if self.error is not None:
            return "error"
        return "running" if self.end is None else "ok"

    @property
    def is_model(self) -> bool:
        return self.kind in MODEL_KINDS

    @property
    def text(self) -> str:
        """The streamed text; for a run that streamed nothing, its final text."""
        if self.chunks:
            return "".join(text for _, text in self.chunks)
        return self.final_text or ""

    @property
    def text_chunks(self) -> list[tuple[float, str]]:
        """The chunks that carry text (the empty ones left out)."""
        return [c for c in self.chunks if c[1]]

    # -- timings -------------------------------------------------------------

    @property
    def latency(self) -> float | None:
        """Seconds from start to end (or to the error)."""
        if self.start is None or self.end is None:
            return None
        return self.end - self.start

    @property
    def first_chunk_time(self) -> float | None:
        """When the first chunk with text arrived, in this run or any run below it."""
        first: float | None = None
        stack, seen = [self], {id(self)}
        while stack:  # iterative: a tree of any depth (or a damaged, looping one) is safe
            run = stack.pop()
            own = next((t for t, text in run.chunks if text), None)
            if own is not None:  # a run's own chunks speak for it; its children are not asked
                first = own if first is None or own < first else first
                continue
            for child in run.children:
                if id(child) not in seen:
                    seen.add(id(child))
                    stack.append(child)
        return first

    @property
    def ttft(self) -> float | None:
        """Time to first chunk: seconds from start to the first chunk with text.

        For a chain, the first chunk of any model run inside it.
        """
        first = self.first_chunk_time
        if first is None or self.start is None:
            return None
        return first - self.start

    @property
    def gaps(self) -> list[float]:
        """Seconds between consecutive chunks with text."""
        times = [t for t, text in self.chunks if text]
        return [b - a for a, b in itertools.pairwise(times)]

    @property
    def chunks_per_s(self) -> float | None:
        """Chunks with text per second, from the first to the last of them."""
        times = [t for t, text in self.chunks if text]
        if len(times) < 2 or times[-1] <= times[0]:
            return None
        return (len(times) - 1) / (times[-1] - times[0])

    @property
    def gap_p50(self) -> float | None:
        return percentile(self.gaps, 50)

    @property
    def gap_p95(self) -> float | None:
        return percentile(self.gaps, 95)

    # -- tree ----------------------------------------------------------------

    def walk(self) -> Iterator[tuple[int, Run]]:
        """This run and every run below it, depth first, with their depth; each once, so a
        damaged file whose parents loop still ends."""
        stack: list[tuple[int, Run]] = [(0, self)]
        seen = {id(self)}
        while stack:
            depth, run = stack.pop()
            yield depth, run
            for child in reversed(run.children):
                if id(child) not in seen:
                    seen.add(id(child))
                    stack.append((depth + 1, child))

    @property
    def total_usage(self) -> dict[str, int]:
        """Token usage of this run, or summed over the model runs below it."""
        total: dict[str, int] = {}
        for _, run in self.walk():
            for key in ("input_tokens", "output_tokens", "total_tokens"):
                value = (run.usage or {}).get(key)
                if isinstance(value, int):
                    total[key] = total.get(key, 0) + value
        return total

    def to_dict(self) -> dict[str, Any]:
        """A plain summary of the run (no chunks, no children)."""
        return {
            "run_id": self.run_id,
            "parent_run_id": self.parent_run_id,
            "name": self.name,
            "kind": self.kind,
            "tags": self.tags,
            "status": self.status,
            "text": self.text,
            "chunks": len(self.chunks),
            "ttft": self.ttft,
            "latency": self.latency,
            "chunks_per_s": self.chunks_per_s,
            "gap_p50": self.gap_p50,
            "gap_p95": self.gap_p95,
            "usage": self.usage,
            "retries": self.retries,
            "error": str(self.error) if self.error else None,
        }

    def __repr__(self) -> str:
        parts = [f"{self.kind} {self.name!r}", self.status, f"{len(self.chunks)} chunks"]
        if self.ttft is not None:
            parts.append(f"ttft {_ms(self.ttft)}")
        if self.latency is not None:
            parts.append(f"latency {_ms(self.latency)}")
        if self.error:
            parts.append(str(self.error))
        return f"<Run {self.run_id[:8]} {', '.join(parts)}>"


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """Counts and percentiles over a trace; ``str()`` gives one line."""

    runs: int
    calls: int
    by_kind: dict[str, int]
    chunks: int
    errors: int
    failed_runs: int
    retries: int
    events: int
    latency: Percentiles
    ttft: Percentiles
    model_ttft: Percentiles
    usage: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        tokens = self.usage.get("total_tokens")
        return (
            f"{self.calls} calls, {self.runs} runs, {self.chunks} chunks, "
            f"{self.errors} errors, {self.retries} retries, "
            f"{tokens if tokens is not None else '-'} tokens; "
            f"latency {self.latency}; ttft {self.ttft}"
        )
