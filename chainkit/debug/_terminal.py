"""Terminal views of a trace (Rich): the run tree, a timeline, the events by depth.

Each view is a Rich renderable (``console.print(view)``), prints as plain text
(``str(view)``) and renders as HTML in Jupyter (``_repr_html_``: the same
picture as in the terminal, with its colours).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from chainkit.debug._common import (
    TraceLike,
    TreeRow,
    as_trace,
    fmt_ms,
    fmt_tokens,
    inputs_hint,
    keep_errors,
    keep_rows,
    origin,
    preview,
    select_run,
    short_id,
    tree_rows,
)
from chainkit.debug._text import event_phase, event_preview, printable_segments
from chainkit.trace import Chunk, CustomEvent, Retry, Run, RunEnded, RunFailed, RunStarted, Trace

if TYPE_CHECKING:
    from rich.console import ConsoleOptions, RenderableType, RenderResult

__all__ = [
    "EventsView",
    "TimelineView",
    "TreeView",
    "events_view",
    "render_text",
    "timeline_view",
    "tree_view",
]

KIND_STYLES = {
    "chain": "cyan",
    "prompt": "magenta",
    "chat_model": "green",
    "llm": "green",
    "parser": "yellow",
    "lambda": "blue",
    "tool": "bright_blue",
    "retriever": "bright_magenta",
}
STATUS_GLYPHS = {"ok": ("✓", "green"), "error": ("✗", "bold red"), "running": ("…", "yellow")}
HTML_WIDTH = 120
_HTML_FORMAT = (
    '<pre class="ck-view" style="font-family:ui-monospace,Menlo,Consolas,monospace;'
    'font-size:12px;line-height:1.3;white-space:pre;overflow-x:auto">{code}</pre>'
)


def render_text(renderable: Any, *, width: int = 100, color: bool = False) -> str:
    """``renderable`` rendered as text ``width`` columns wide (ANSI colours if ``color``)."""
    console = Console(
        file=io.StringIO(),
        width=width,
        record=True,
        color_system="truecolor" if color else None,
        force_terminal=color,
        force_jupyter=False,  # in a notebook Rich would display instead of writing
        legacy_windows=False,
    )
    console.print(renderable)
    return console.export_text(styles=color)


def render_html(renderable: Any, *, width: int = HTML_WIDTH) -> str:
    """``renderable`` as an HTML ``<pre>`` fragment with inline colours (for notebooks)."""
    console = Console(
        file=io.StringIO(),
        width=width,
        record=True,
        color_system="truecolor",
        force_terminal=True,
        force_jupyter=False,
    )
    console.print(renderable)
    return console.export_html(inline_styles=True, code_format=_HTML_FORMAT)


class _View:
    """Common behaviour: a Rich renderable, plain text, and HTML in Jupyter."""

    def _render(self, width: int) -> Iterator[RenderableType]:
        raise NotImplementedError

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        # Trace data may hold terminal escapes: the rendered text is made printable
        # here, once, for every view (terminal, text, notebook HTML).
        for renderable in self._render(options.max_width):
            yield from printable_segments(console.render(renderable, options))

    def text(self, width: int = 100) -> str:
        """The view as plain text, ``width`` columns wide."""
        return render_text(self, width=width)

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:  # the REPL and a notebook's text/plain show the view itself
        return self.text()

    def _repr_html_(self) -> str:
        return render_html(self)


def _kind_style(kind: str) -> str:
    return KIND_STYLES.get(kind, "white")


def _status(run: Run) -> Text:
    glyph, style = STATUS_GLYPHS[run.status]
    return Text(glyph, style=style)


def _run_label(run: Run, *, ids: bool = True) -> Text:
    label = Text()
    label.append_text(_status(run))
    label.append(" ")
    label.append(run.name, style="bold red" if run.error else "bold")
    if hint := inputs_hint(run):
        label.append(f" ({hint})", style="italic")
    label.append(f" {run.kind}", style=_kind_style(run.kind))
    if ids:
        label.append(f" {short_id(run.run_id)}", style="dim")
    bits = []
    if run.latency is not None:
        bits.append(fmt_ms(run.latency))
    if run.ttft is not None:
        bits.append(f"ttft {fmt_ms(run.ttft)}")
    if run.chunks:
        bits.append(f"{len(run.text_chunks)} chunks")
    tokens = fmt_tokens(run)
    if tokens:
        bits.append(tokens)
    if run.retries:
        bits.append(f"{run.retries} retries")
    if bits:
        label.append("  " + " · ".join(bits), style="dim" if not run.error else "")
    if run.error is not None:
        label.append(f"  {preview(str(run.error), 100)}", style="red")
    elif run.is_model and run.text:
        label.append(f"  {preview(run.text, 50)!r}", style="dim italic")
    return label


def _header(trace: Trace) -> Text:
    summary = trace.summary()
    header = Text("trace", style="bold", no_wrap=True, overflow="ellipsis")
    if trace.path is not None:
        header.append(f" {trace.path}", style="dim")
    header.append(f"  {summary}", style="dim")
    damage = trace.damage
    for problem in damage[:5]:
        header.append(f"\ndamaged: {problem}", style="red")
    if len(damage) > 5:
        header.append(f"\ndamaged: {len(damage) - 5} more problems like these", style="red")
    return header


def _rows(trace: Trace, run: str | None, errors: bool, depth: int | None) -> list[TreeRow]:
    roots = [select_run(trace, run)] if run is not None else None
    rows = tree_rows(trace, roots)
    if errors:
        rows = keep_errors(rows)
    if depth is not None:
        rows = keep_rows(rows, {i for i, row in enumerate(rows) if row.depth <= depth})
    return rows


@dataclass(repr=False)
class TreeView(_View):
    """The run tree: name, kind, status, latency, time to first chunk, chunks, tokens, errors."""

    trace: Trace
    run: str | None = None
    errors: bool = False
    depth: int | None = None
    limit: int = 500

    def _render(self, width: int) -> Iterator[RenderableType]:
        rows = _rows(self.trace, self.run, self.errors, self.depth)
        yield _header(self.trace)
        if not rows:
            yield Text("no failed runs" if self.errors else "no runs", style="dim")
            return
        tree = Tree("", hide_root=True, guide_style="dim")
        nodes: list[Tree] = []
        for index, row in enumerate(rows[: self.limit]):
            parent = nodes[row.parent] if 0 <= row.parent < index else tree
            nodes.append(parent.add(_run_label(row.run)))
        yield tree
        if len(rows) > self.limit:
            yield Text(
                f"… {len(rows) - self.limit} more runs (use --run ID, --depth or --limit)",
                style="dim",
            )


def _bar(run: Run, t0: float, span: float, width: int, end: float) -> Text:
    """``run`` as a bar on a ``width``-cell axis of ``span`` seconds from ``t0``."""
    bar = Text(no_wrap=True, overflow="crop")
    if run.start is None or width <= 0:
        return bar
    scale = width / span if span > 0 else 0.0
    first = min(width - 1, int((run.start - t0) * scale))
    stop = run.end if run.end is not None else end
    last = max(first + 1, min(width, round((stop - t0) * scale)))
    first_chunk = run.first_chunk_time
    streaming_from = (
        last if first_chunk is None else max(first, min(last, round((first_chunk - t0) * scale)))
    )
    style = "red" if run.error else _kind_style(run.kind)
    bar.append(" " * first)
    if run.status == "running":
        bar.append("▒" * (last - first), style="yellow")
    else:
        bar.append("░" * (streaming_from - first), style=style)
        bar.append("█" * (last - streaming_from), style=style)
    bar.append(" " * (width - last))
    return bar


@dataclass(repr=False)
class TimelineView(_View):
    """Runs on one time axis: what ran in parallel and where the time went.

    ``░`` is a run waiting for its first chunk, ``█`` a run streaming (or a run
    without chunks), red a failed run, ``▒`` one still running.
    """

    trace: Trace
    run: str | None = None
    errors: bool = False
    depth: int | None = None
    limit: int = 200
    name_width: int = 36

    def _render(self, width: int) -> Iterator[RenderableType]:
        rows = _rows(self.trace, self.run, self.errors, self.depth)
        yield _header(self.trace)
        if not rows:
            yield Text("no runs", style="dim")
            return
        runs = [row.run for row in rows]
        starts = [r.start for r in runs if r.start is not None]
        ends = [r.end for r in runs if r.end is not None] + starts
        t0 = min(starts) if starts else origin(self.trace)
        t_end = max(ends) if ends else t0
        span = t_end - t0
        name_width = min(self.name_width, max(8, width // 3))
        bar_width = max(10, width - name_width - 2 * 9 - 6)
        half = bar_width // 2
        axis = f"{'0':<{half}}{'+' + fmt_ms(span):>{bar_width - half}}"
        table = Table(box=None, pad_edge=False, padding=(0, 1), show_edge=False, expand=False)
        table.add_column("run", width=name_width, no_wrap=True, overflow="ellipsis")
        table.add_column("start", justify="right", width=9, no_wrap=True)
        table.add_column("took", justify="right", width=9, no_wrap=True)
        table.add_column(axis, width=bar_width, no_wrap=True, overflow="crop")
        for row in rows[: self.limit]:
            run = row.run
            name = Text("  " * row.depth)
            name.append_text(_status(run))
            name.append(" ")
            name.append(run.name, style="bold red" if run.error else "")
            if row.depth == 0 and (hint := inputs_hint(run, 24)):
                name.append(f" {hint}", style="dim italic")
            start = "" if run.start is None else f"+{fmt_ms(run.start - t0)}"
            table.add_row(name, start, fmt_ms(run.latency), _bar(run, t0, span, bar_width, t_end))
        yield table
        if len(rows) > self.limit:
            yield Text(
                f"… {len(rows) - self.limit} more runs (use --run ID, --depth or --limit)",
                style="dim",
            )


@dataclass
class _Line:
    t: float
    depth: int
    kind: str
    name: str
    detail: str
    style: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _depths(trace: Trace) -> dict[str, int]:
    return {row.run.run_id: row.depth for row in tree_rows(trace)}


def _event_lines(trace: Trace, only: set[str] | None) -> Iterator[_Line]:
    depths = _depths(trace)
    for event in trace.events:
        run_id = str(event.get("run_id", ""))
        if only is not None and run_id not in only:
            continue
        name = str(event.get("event", ""))
        parents = event.get("parent_ids") or []
        depth = depths.get(run_id, len(parents))
        phase = event_phase(name)
        style = {"start": "cyan", "end": "green", "error": "bold red", "stream": ""}.get(phase, "")
        yield _Line(
            float(event.get("t") or 0.0),
            depth,
            name,
            str(event.get("name", "")),
            event_preview(event),
            style,
        )


def _record_lines(trace: Trace, only: set[str] | None) -> Iterator[_Line]:
    """The run records as an event stream, for traces recorded without events."""
    depths = _depths(trace)
    for record in trace.records:
        run_id = getattr(record, "run_id", None)
        if run_id is None or (only is not None and run_id not in only):
            continue
        run = trace.get(run_id)
        name = run.name if run is not None else ""
        depth = depths.get(run_id, 0)
        if isinstance(record, RunStarted):
            yield _Line(record.t, depth, f"{record.kind}_start", record.name, "", "cyan")
        elif isinstance(record, Chunk):
            yield _Line(record.t, depth, "chunk", name, repr(record.text))
        elif isinstance(record, RunEnded):
            kind = f"{run.kind}_end" if run is not None else "end"
            yield _Line(record.t, depth, kind, name, fmt_ms(run.latency if run else None), "green")
        elif isinstance(record, RunFailed):
            detail = f"{record.error_type}: {preview(record.message, 80)}"
            kind = f"{run.kind}_error" if run is not None else "error"
            yield _Line(record.t, depth, kind, name, detail, "bold red")
        elif isinstance(record, Retry):
            detail = f"attempt {record.attempt} after {record.error_type or 'an error'}"
            yield _Line(record.t, depth, "retry", name, detail, "yellow")
        elif isinstance(record, CustomEvent):
            yield _Line(record.t, depth, "custom", record.name, preview(str(record.data), 80))


def listed_events(trace: Trace) -> int:
    """How many lines ``chainkit trace show --events`` lists: the recorded
    ``astream_events`` events, or else the run records standing in for them."""
    source = _event_lines if trace.events else _record_lines
    return sum(1 for _ in source(trace, None))


def _lines_text(lines: Iterable[_Line], t0: float) -> Iterator[Text]:
    for line in lines:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{'+' + fmt_ms(line.t - t0):>10} ", style="dim")
        text.append("  " * line.depth)
        text.append(line.kind, style=line.style)
        text.append(f" {line.name}", style="bold" if line.style else "")
        if line.detail:
            text.append(f"  {line.detail}", style="red" if "red" in line.style else "dim")
        yield text


@dataclass(repr=False)
class EventsView(_View):
    """The events, indented by depth, with their time from the first run's start.

    The recorded ``astream_events`` events when the trace has them (EventCapture,
    record_events); otherwise the run records (starts, chunks, ends, errors).
    """

    trace: Trace
    run: str | None = None
    errors: bool = False
    limit: int = 1000

    def _render(self, width: int) -> Iterator[RenderableType]:
        yield _header(self.trace)
        only: set[str] | None = None
        if self.run is not None or self.errors:
            only = {row.run.run_id for row in _rows(self.trace, self.run, self.errors, None)}
        source = _event_lines if self.trace.events else _record_lines
        lines = list(source(self.trace, only))
        if not lines:
            yield Text("no events", style="dim")
            return
        yield Group(*_lines_text(lines[: self.limit], origin(self.trace)))
        if len(lines) > self.limit:
            yield Text(f"… {len(lines) - self.limit} more events (use --limit)", style="dim")


def tree_view(
    trace: TraceLike,
    *,
    run: str | None = None,
    errors: bool = False,
    depth: int | None = None,
    limit: int = 500,
) -> TreeView:
    """The run tree of ``trace`` (a Trace or a trace file).

    ``run``: only the subtree of this run (an id, an id prefix or a unique name);
    ``errors``: only failed runs and their ancestors; ``depth``: levels shown.
    """
    return TreeView(as_trace(trace), run=run, errors=errors, depth=depth, limit=limit)


def timeline_view(
    trace: TraceLike,
    *,
    run: str | None = None,
    errors: bool = False,
    depth: int | None = None,
    limit: int = 200,
) -> TimelineView:
    """The runs of ``trace`` on one time axis (options as :func:`tree_view`)."""
    return TimelineView(as_trace(trace), run=run, errors=errors, depth=depth, limit=limit)


def events_view(
    trace: TraceLike, *, run: str | None = None, errors: bool = False, limit: int = 1000
) -> EventsView:
    """The events of ``trace`` indented by depth (options as :func:`tree_view`)."""
    return EventsView(as_trace(trace), run=run, errors=errors, limit=limit)
