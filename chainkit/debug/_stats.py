"""``trace_stats``: the summary of a trace, per run name, as a table or JSON."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from chainkit.debug._common import TraceLike, as_trace, fmt_ms
from chainkit.debug._terminal import _View, listed_events
from chainkit.trace import Percentiles, TraceSummary

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = ["NameStats", "TraceStats", "trace_stats"]


def _pct(p: Percentiles) -> dict[str, Any]:
    return {"n": p.n, "p50": p.p50, "p95": p.p95, "max": p.max}


@dataclass(frozen=True, slots=True)
class NameStats:
    """Counts and timings of the runs that share a name and kind."""

    name: str
    kind: str
    runs: int
    errors: int
    retries: int
    chunks: int
    tokens: int | None
    latency: Percentiles
    ttft: Percentiles

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "runs": self.runs,
            "errors": self.errors,
            "retries": self.retries,
            "chunks": self.chunks,
            "tokens": self.tokens,
            "latency": _pct(self.latency),
            "ttft": _pct(self.ttft),
        }


@dataclass(repr=False)
class TraceStats(_View):
    """A trace's summary, its error types, and statistics per run name."""

    summary: TraceSummary
    span: float | None
    by_name: list[NameStats] = field(default_factory=list)
    error_types: Counter[str] = field(default_factory=Counter)
    source: str = ""
    events: int = 0  # as many as `chainkit trace show --events` lists

    def to_dict(self) -> dict[str, Any]:
        """The statistics as plain JSON values (seconds for times)."""
        s = self.summary
        return {
            "source": self.source,
            "calls": s.calls,
            "runs": s.runs,
            "by_kind": dict(sorted(s.by_kind.items())),
            "chunks": s.chunks,
            "errors": s.errors,
            "failed_runs": s.failed_runs,
            "retries": s.retries,
            "events": self.events,
            "recorded_events": s.events,
            "usage": s.usage,
            "span": self.span,
            "latency": _pct(s.latency),
            "ttft": _pct(s.ttft),
            "model_ttft": _pct(s.model_ttft),
            "error_types": dict(self.error_types.most_common()),
            "by_name": [n.to_dict() for n in self.by_name],
        }

    def _render(self, width: int) -> Iterator[RenderableType]:
        s = self.summary
        head = Text("trace stats", style="bold")
        if self.source:
            head.append(f" {self.source}", style="dim")
        yield head
        table = Table(box=None, show_header=False, padding=(0, 2))
        table.add_column(style="dim")
        table.add_column()
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(s.by_kind.items())) or "none"
        tokens = s.usage.get("total_tokens")
        for label, value in (
            ("calls", str(s.calls)),
            ("runs", f"{s.runs} ({kinds})"),
            ("chunks", str(s.chunks)),
            ("errors", f"{s.errors} calls, {s.failed_runs} runs"),
            ("retries", str(s.retries)),
            ("events", self._events_text()),
            ("tokens", "-" if tokens is None else f"{tokens} ({_usage(s.usage)})"),
            ("span", fmt_ms(self.span)),
            ("latency", str(s.latency)),
            ("time to first chunk", str(s.ttft)),
            ("model time to first chunk", str(s.model_ttft)),
        ):
            table.add_row(label, Text(value))  # kinds come from the file: text, not markup
        yield table
        if self.error_types:
            errors = Table(title="errors by type", title_justify="left", box=None, padding=(0, 2))
            errors.add_column("type", style="red")
            errors.add_column("runs", justify="right")
            for name, count in self.error_types.most_common():
                errors.add_row(Text(name), str(count))  # Text: trace data is never markup
            yield errors
        yield self._name_table()

    def _events_text(self) -> str:
        if self.summary.events or not self.events:
            return str(self.events)
        return f"{self.events} run records (no astream_events recorded)"

    def _name_table(self) -> Table:
        table = Table(title="by run name", title_justify="left", padding=(0, 1))
        table.add_column("name", overflow="ellipsis", no_wrap=True, max_width=40)
        table.add_column("kind")
        for column in ("runs", "errors", "chunks", "tokens", "latency p50", "p95", "ttft p50"):
            table.add_column(column, justify="right", no_wrap=True)
        for n in self.by_name:
            table.add_row(
                Text(n.name),  # Text: a name like "extract [/] step" is not markup
                Text(n.kind),
                str(n.runs),
                Text(str(n.errors), style="red" if n.errors else ""),
                str(n.chunks),
                "-" if n.tokens is None else str(n.tokens),
                fmt_ms(n.latency.p50),
                fmt_ms(n.latency.p95),
                fmt_ms(n.ttft.p50),
            )
        return table


def _usage(usage: dict[str, int]) -> str:
    return f"in {usage.get('input_tokens', '-')}, out {usage.get('output_tokens', '-')}"


def trace_stats(trace: TraceLike) -> TraceStats:
    """Statistics of ``trace`` (a Trace or a trace file): the summary, per name, errors."""
    source = "" if not isinstance(trace, str) and not hasattr(trace, "__fspath__") else str(trace)
    loaded = as_trace(trace)
    runs = loaded.runs
    groups: dict[tuple[str, str], list[Any]] = {}
    for run in runs:
        groups.setdefault((run.name, run.kind), []).append(run)
    by_name: list[NameStats] = []
    for (name, kind), members in groups.items():
        tokens = [
            v for r in members if r.usage and isinstance(v := r.usage.get("total_tokens"), int)
        ]
        by_name.append(
            NameStats(
                name=name,
                kind=kind,
                runs=len(members),
                errors=sum(1 for r in members if r.error is not None),
                retries=sum(r.retries for r in members),
                chunks=sum(len(r.text_chunks) for r in members),
                tokens=sum(tokens) if tokens else None,
                latency=Percentiles.of([x for r in members if (x := r.latency) is not None]),
                ttft=Percentiles.of([x for r in members if (x := r.ttft) is not None]),
            )
        )
    by_name.sort(key=lambda n: (-(n.latency.p50 or 0.0) * n.runs, n.name))
    starts = [r.start for r in runs if r.start is not None]
    ends = [r.end for r in runs if r.end is not None]
    span = max(ends) - min(starts) if starts and ends else None
    errors = Counter(r.error.type for r in runs if r.error is not None)
    if source == "" and loaded.path is not None:
        source = str(loaded.path)
    return TraceStats(
        summary=loaded.summary(),
        span=span,
        by_name=by_name,
        error_types=errors,
        source=source,
        events=listed_events(loaded),
    )
