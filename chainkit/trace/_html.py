"""HTML for a :class:`~chainkit.trace.Trace` in Jupyter: a summary, the run tree, a timeline."""

from __future__ import annotations

from html import escape
from pathlib import Path

from chainkit.trace._run import Percentiles, Run, TraceSummary

__all__ = ["trace_html"]

MAX_RUNS = 300
PREVIEW = 120

_STYLE = (
    "<style>.ck-trace{font-family:ui-monospace,monospace;font-size:12px}"
    ".ck-trace table{border-collapse:collapse;margin-bottom:6px}"
    ".ck-trace td,.ck-trace th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
    ".ck-trace ul{list-style:none;padding-left:16px;margin:0}"
    ".ck-trace .err{color:#b00}.ck-trace .dim{color:#777}"
    ".ck-trace .tl{position:relative;display:inline-block;width:160px;height:8px;"
    "background:#f0f0f0;margin-right:6px;vertical-align:middle}"
    ".ck-trace .tl i{position:absolute;top:0;height:8px;min-width:1px;background:#4a7bd0}"
    ".ck-trace .tl i.err{background:#c33}</style>"
)


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value * 1000:.0f} ms"


def _pct(p: Percentiles) -> str:
    return escape(str(p))


def _run_line(run: Run) -> str:
    bits = [f"<b>{escape(run.name)}</b> <span class='dim'>{escape(run.kind)}</span>"]
    if run.latency is not None:
        bits.append(_ms(run.latency))
    if run.ttft is not None:
        bits.append(f"ttft {_ms(run.ttft)}")
    if run.chunks:
        bits.append(f"{len(run.chunks)} chunks")
    if run.usage and run.usage.get("total_tokens") is not None:
        bits.append(f"{run.usage['total_tokens']} tokens")
    if run.retries:
        bits.append(f"{run.retries} retries")
    if run.error is not None:
        bits.append(f"<span class='err'>{escape(str(run.error))}</span>")
    elif run.end is None:
        bits.append("<span class='dim'>running</span>")
    text = run.text if run.is_model else ""
    if text:
        preview = text if len(text) <= PREVIEW else text[:PREVIEW] + "…"
        bits.append(f"<span class='dim'>{escape(preview)!r}</span>")
    return " · ".join(bits)


def _bar(run: Run, span: tuple[float, float] | None) -> str:
    """The run's place on the trace's time axis: what ran when, what ran in parallel."""
    if span is None or run.start is None:
        return ""
    t0, t1 = span
    width = max(t1 - t0, 1e-9)
    end = run.end if run.end is not None else t1
    left = (run.start - t0) / width * 100
    size = max((end - run.start) / width * 100, 0.0)
    cls = " class='err'" if run.error is not None else ""
    return f"<span class='tl'><i{cls} style='left:{left:.2f}%;width:{size:.2f}%'></i></span>"


def _tree(run: Run, budget: list[int], span: tuple[float, float] | None) -> str:
    if budget[0] <= 0:
        return ""
    budget[0] -= 1
    children = "".join(_tree(child, budget, span) for child in run.children)
    inner = f"<ul>{children}</ul>" if children else ""
    return f"<li>{_bar(run, span)}{_run_line(run)}{inner}</li>"


def _span(runs: list[Run]) -> tuple[float, float] | None:
    starts = [run.start for run in runs if run.start is not None]
    ends = [t for run in runs for t in (run.end, run.start) if t is not None]
    return (min(starts), max(ends)) if starts else None


def trace_html(summary: TraceSummary, runs: list[Run], roots: list[Run], path: Path | None) -> str:
    """A readable summary table and the run tree of a trace (its summary, runs, roots, file)."""
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(summary.by_kind.items())) or "none"
    tokens = summary.usage.get("total_tokens")
    rows = [
        ("calls", str(summary.calls)),
        ("runs", f"{summary.runs} ({kinds})"),
        ("chunks", str(summary.chunks)),
        ("errors", f"{summary.errors} calls, {summary.failed_runs} runs"),
        ("retries", str(summary.retries)),
        ("tokens", "-" if tokens is None else str(tokens)),
        ("latency", _pct(summary.latency)),
        ("time to first chunk", _pct(summary.ttft)),
        ("events", str(summary.events)),
    ]
    table = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    budget = [MAX_RUNS]
    span = _span(runs)
    tree = "".join(_tree(root, budget, span) for root in roots)
    more = "" if budget[0] > 0 else f"<p class='dim'>(first {MAX_RUNS} runs shown)</p>"
    where = f"<p class='dim'>{escape(str(path))}</p>" if path else ""
    return (
        f"{_STYLE}<div class='ck-trace'><b>Trace</b>{where}<table>{table}</table>"
        f"<ul>{tree}</ul>{more}</div>"
    )
