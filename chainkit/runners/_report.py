"""BatchReport: what a batch did, as numbers, text, a Rich table and HTML for notebooks."""

from __future__ import annotations

import html
import math
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chainkit.runners._records import ResultRecord
from chainkit.trace import Usage

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = ["BatchReport", "percentile"]

MAX_FAILURE_EXAMPLES = 20


def percentile(values: array[float] | list[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) by linear interpolation; None when empty."""
    if not values:
        return None
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    rank = (len(data) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


@dataclass
class BatchReport:
    """Counts, timings, tokens, retries and errors of one :func:`run_batch` call.

    ``results`` holds every record only when the batch ran without an output
    file; with one, read the records back with :func:`read_results`.
    """

    chain: str = ""
    strategy: str = "sliding"
    max_concurrency: int | None = None
    output: str | None = None
    total: int | None = None
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: bool = False
    elapsed: float = 0.0
    attempts: int = 0
    retries: int = 0
    rate_limited: int = 0
    rate_limit_wait: float = 0.0
    min_concurrency: int | None = None
    max_in_flight: int = 0
    usage: Usage = field(default_factory=Usage)
    errors_by_type: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    results: list[ResultRecord] = field(default_factory=list)
    latencies: array[float] = field(default_factory=lambda: array("d"), repr=False)
    ttfts: array[float] = field(default_factory=lambda: array("d"), repr=False)

    # ------------------------------------------------------------ derived
    @property
    def done(self) -> int:
        """Items finished in this run (succeeded or failed), not counting skipped ones."""
        return self.succeeded + self.failed

    @property
    def ok(self) -> bool:
        """True when nothing failed and the batch was not cancelled."""
        return self.failed == 0 and not self.cancelled

    @property
    def throughput(self) -> float:
        """Items finished per second of wall time."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def latency_p50(self) -> float | None:
        return percentile(self.latencies, 50)

    @property
    def latency_p95(self) -> float | None:
        return percentile(self.latencies, 95)

    @property
    def latency_p99(self) -> float | None:
        return percentile(self.latencies, 99)

    @property
    def ttft_p50(self) -> float | None:
        return percentile(self.ttfts, 50)

    # ------------------------------------------------------------ recording
    def add(self, record: ResultRecord, *, keep: bool) -> None:
        self.attempts += record.attempts
        self.retries += max(0, record.attempts - 1)
        if record.error is None:
            self.succeeded += 1
            if record.latency is not None:
                self.latencies.append(record.latency)
            if record.ttft is not None:
                self.ttfts.append(record.ttft)
            if record.usage is not None:
                self.usage = self.usage + record.usage
        else:
            self.failed += 1
            self.errors_by_type[record.error.type] += 1
            if len(self.failures) < MAX_FAILURE_EXAMPLES:
                self.failures.append(
                    {
                        "index": record.index,
                        "id": record.id,
                        "line": record.line,
                        "type": record.error.type,
                        "status": record.error.status,
                        "message": record.error.message,
                    }
                )
        if keep:
            self.results.append(record)

    # ------------------------------------------------------------ views
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (what ``chainkit batch --json`` prints)."""
        return {
            "chain": self.chain,
            "strategy": self.strategy,
            "max_concurrency": self.max_concurrency,
            "output": self.output,
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
            "cancelled": self.cancelled,
            "ok": self.ok,
            "elapsed": round(self.elapsed, 4),
            "throughput": round(self.throughput, 3),
            "latency": {
                "p50": _round(self.latency_p50),
                "p95": _round(self.latency_p95),
                "p99": _round(self.latency_p99),
            },
            "ttft_p50": _round(self.ttft_p50),
            "tokens": self.usage.model_dump(),
            "attempts": self.attempts,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "rate_limit_wait": round(self.rate_limit_wait, 3),
            "min_concurrency": self.min_concurrency,
            "max_in_flight": self.max_in_flight,
            "errors_by_type": dict(self.errors_by_type),
            "failures": self.failures,
            "notes": self.notes,
        }

    def _rows(self) -> list[tuple[str, str]]:
        rows = [
            ("items", self._counts()),
            ("elapsed", f"{self.elapsed:.2f} s ({self.throughput:.1f} items/s)"),
            ("latency", self._latency_text()),
        ]
        if self.ttfts:
            rows.append(("first token p50", _fmt_s(self.ttft_p50)))
        rows.append(
            (
                "tokens",
                (
                    f"{self.usage.total_tokens} ({self.usage.input_tokens} in, "
                    f"{self.usage.output_tokens} out)"
                ),
            )
        )
        rows.append(("attempts", f"{self.attempts} ({self.retries} retries)"))
        if self.rate_limited or self.rate_limit_wait:
            rows.append(("rate limits", self._rate_limit_text()))
        if self.errors_by_type:
            rows.append(
                ("errors", ", ".join(f"{k}: {v}" for k, v in self.errors_by_type.most_common()))
            )
        if self.output:
            rows.append(("output", self.output))
        return rows

    def _rate_limit_text(self) -> str:
        """429s, wall time held back, and how far concurrency went down (only when it did)."""
        parts = [f"{self.rate_limited} x 429"] if self.rate_limited else []
        parts.append(f"{self.rate_limit_wait:.2f} s waited")
        lowest, ceiling = self.min_concurrency, self.max_concurrency
        if lowest is not None and ceiling is not None and lowest < ceiling:
            parts.append(f"concurrency went down from {ceiling} to {lowest}")
        return "; ".join(parts)

    def _counts(self) -> str:
        total = f" of {self.total}" if self.total is not None else ""
        parts = [f"{self.succeeded} succeeded", f"{self.failed} failed"]
        if self.skipped:
            parts.append(f"{self.skipped} already done (resumed)")
        text = f"{self.done}{total} done: " + ", ".join(parts)
        if self.cancelled:
            text += " (cancelled)"
        return text

    def _latency_text(self) -> str:
        if not self.latencies:
            return "-"
        return (
            f"p50 {_fmt_s(self.latency_p50)}, p95 {_fmt_s(self.latency_p95)}, "
            f"p99 {_fmt_s(self.latency_p99)}"
        )

    def failure_lines(self, limit: int = 10) -> list[str]:
        """One line per failed item (which and why), the first ``limit`` of them."""
        lines = []
        for failure in self.failures[:limit]:
            where = f"line {failure['line']}" if failure.get("line") else f"#{failure['index']}"
            if failure.get("id") not in (None, failure["index"]):
                where += f" (id {failure['id']})"
            status = f" [{failure['status']}]" if failure.get("status") else ""
            lines.append(f"{where}: {failure['type']}{status}: {failure['message']}")
        if self.failed > limit:
            lines.append(f"... and {self.failed - limit} more (see the error records)")
        return lines

    def summary(self) -> str:
        """A few lines of text: what :func:`print` shows."""
        head = f"batch {self.chain or ''} ({self.strategy}, max_concurrency={self.max_concurrency})"
        lines = [head.replace("  ", " ")]
        lines += [f"  {name:<16}{value}" for name, value in self._rows()]
        failures = self.failure_lines()
        if failures:
            lines.append("  failed items:")
            lines += [f"    {line}" for line in failures]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __rich__(self) -> RenderableType:
        from rich.table import Table

        table = Table(title=f"batch {self.chain}", show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        for name, value in self._rows():
            table.add_row(name, value)
        for line in self.failure_lines(5):
            table.add_row("[red]failed[/red]", line)
        return table

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(name)}</th>"
            f"<td style='text-align:left'>{html.escape(value)}</td></tr>"
            for name, value in self._rows()
        )
        failures = "".join(
            f"<li><code>{html.escape(line)}</code></li>" for line in self.failure_lines(10)
        )
        failures_html = f"<p>Failed items:</p><ul>{failures}</ul>" if failures else ""
        return (
            f"<div class='chainkit-batch-report'><b>batch {html.escape(self.chain)}</b> "
            f"<small>({html.escape(self.strategy)}, max_concurrency={self.max_concurrency})"
            f"</small><table>{rows}</table>{failures_html}</div>"
        )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _fmt_s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
