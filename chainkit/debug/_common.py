"""Shared helpers of the trace readers: loading, picking runs, ordering, formatting."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from chainkit.debug._text import json_preview, printable
from chainkit.errors import TraceError, UnknownRunError, UserError
from chainkit.trace import Run, Trace

__all__ = [
    "TraceLike",
    "TreeRow",
    "as_trace",
    "fmt_ms",
    "fmt_tokens",
    "inputs_hint",
    "keep_errors",
    "keep_rows",
    "origin",
    "preview",
    "select_run",
    "tree_rows",
]

log = logging.getLogger("chainkit.debug")
_DAMAGE_SHOWN = 5

TraceLike = Trace | str | os.PathLike[str]
"""A :class:`~chainkit.trace.Trace`, or the path of a JSONL trace file."""


def as_trace(trace: TraceLike) -> Trace:
    """``trace`` itself, or the trace file it names loaded with :meth:`Trace.load`."""
    if isinstance(trace, Trace):
        return trace
    if isinstance(trace, (str, os.PathLike)):
        loaded = Trace.load(trace)
        if not loaded.headers and not loaded.runs and not loaded.events:
            raise TraceError(_not_a_trace(Path(trace)))
        damage = loaded.damage
        for problem in damage[:_DAMAGE_SHOWN]:
            log.warning("trace %s is damaged: %s", printable(str(trace)), printable(problem))
        if len(damage) > _DAMAGE_SHOWN:
            log.warning(
                "trace %s is damaged: %d more problems like these",
                printable(str(trace)),
                len(damage) - _DAMAGE_SHOWN,
            )
        return loaded
    raise UserError(
        f"expected a chainkit.trace.Trace or the path of a trace file, got {type(trace).__name__}"
    )


def _not_a_trace(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            first = fh.readline(4096)
    except OSError:  # pragma: no cover - Trace.load read it a moment ago
        first = b""
    if b"chainkit.results" in first:
        return (
            f"{path} is a result file of `chainkit batch` / run_batch, not a trace; record a "
            f"trace with `chainkit batch --trace FILE` or callbacks=[StreamCapture(path)]"
        )
    return (
        f"{path} holds no trace records (a chainkit trace starts with a "
        f'{{"type": "trace"}} line); write one with StreamCapture(path) or capture(path)'
    )


def origin(trace: Trace) -> float:
    """The time every offset is measured from: the earliest run start (or the header's clock)."""
    starts = [run.start for run in trace.runs if run.start is not None]
    if starts:
        return min(starts)
    if trace.headers:
        return trace.headers[0].clock_origin
    return 0.0


def _start_key(run: Run) -> float:
    return run.start if run.start is not None else float("inf")


@dataclass(frozen=True, slots=True)
class TreeRow:
    """A run in depth-first tree order, with its depth and its parent's row index (-1)."""

    run: Run
    depth: int
    parent: int


def tree_rows(trace: Trace, roots: Sequence[Run] | None = None) -> list[TreeRow]:
    """Every run below ``roots`` (default: the trace's roots), depth first, siblings by start."""
    rows: list[TreeRow] = []
    seen: set[str] = set()
    # pushed in reverse so that pops come in start order (ties in their given order)
    stack: list[tuple[Run, int, int]] = [
        (run, 0, -1) for run in sorted(roots or trace.roots, key=_start_key)[::-1]
    ]
    while stack:
        run, depth, parent = stack.pop()
        if run.run_id in seen:  # a malformed file could loop; show each run once
            continue
        seen.add(run.run_id)
        index = len(rows)
        rows.append(TreeRow(run, depth, parent))
        stack.extend(
            (child, depth + 1, index) for child in sorted(run.children, key=_start_key)[::-1]
        )
    return rows


def keep_rows(rows: list[TreeRow], keep: set[int]) -> list[TreeRow]:
    """The rows whose index is in ``keep``, parents renumbered (-1 when left out)."""
    remap: dict[int, int] = {}
    out: list[TreeRow] = []
    for index, row in enumerate(rows):
        if index in keep:
            remap[index] = len(out)
            out.append(TreeRow(row.run, row.depth, remap.get(row.parent, -1)))
    return out


def keep_errors(rows: list[TreeRow]) -> list[TreeRow]:
    """The rows of failed runs and of their ancestors (so each error keeps its context)."""
    keep: set[int] = set()
    for index, row in enumerate(rows):
        if row.run.error is not None:
            at = index
            while at >= 0 and at not in keep:
                keep.add(at)
                at = rows[at].parent
    return keep_rows(rows, keep)


SHORT_ID = 8


def short_id(run_id: str) -> str:
    """The part of a run id shown in views: its LAST characters.

    LangChain's run ids are UUIDv7: runs of one trace share their leading
    (time) characters, while the trailing ones are random and tell them apart.
    """
    return run_id[-SHORT_ID:]


def _runs_matching(trace: Trace, key: str) -> Iterator[Run]:
    for run in trace.runs:
        if run.run_id.startswith(key) or run.run_id.endswith(key):
            yield run


def select_run(trace: Trace, key: str) -> Run:
    """The run named by ``key``: a run id, a unique prefix or suffix of one (views show the
    last 8 characters), or a unique run name."""
    run = trace.get(key)
    if run is not None:
        return run
    by_prefix = list(_runs_matching(trace, key)) if len(key) >= 4 else []
    if len(by_prefix) == 1:
        return by_prefix[0]
    if len(by_prefix) > 1:
        raise UserError(f"run id part {key!r} matches {len(by_prefix)} runs; give more characters")
    by_name = [run for run in trace.runs if run.name == key]
    if len(by_name) == 1:
        return by_name[0]
    if len(by_name) > 1:
        ids = ", ".join(short_id(run.run_id) for run in by_name[:5])
        raise UserError(f"{len(by_name)} runs are named {key!r} ({ids}...); pass a run id instead")
    raise UnknownRunError(key, (run.name for run in trace.runs))


def inputs_hint(run: Run, limit: int = 40) -> str:
    """A short form of a top-level run's inputs, to tell the calls of a batch apart."""
    if run.parent_run_id is not None or run.inputs in (None, {}, ""):
        return ""
    if isinstance(run.inputs, dict):
        text = ", ".join(f"{k}={json_preview(v, limit)}" for k, v in run.inputs.items())
    else:
        text = json_preview(run.inputs, limit)
    return preview(text, limit)


def fmt_ms(seconds: float | None) -> str:
    """Seconds as ``"12 ms"`` or ``"1.23 s"``; ``"-"`` for None."""
    if seconds is None:
        return "-"
    if abs(seconds) < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def fmt_tokens(run: Run) -> str:
    total = run.total_usage.get("total_tokens")
    return "" if total is None else f"{total} tok"


def preview(text: str, limit: int = 60) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
