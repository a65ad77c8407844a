"""``diff_traces``: two traces of the same chain compared.

Runs are matched level by level: roots by name, kind and inputs (then by name
and kind), children by name and kind in start order, so concurrent siblings
that started in another order still pair up. For each pair the diff reports
structure changes (runs added or removed, a status or error that changed), the
event sequence of the run when it differs (stream events counted once), the
output text (a line diff, and a word diff for display), and the latency and
time-to-first-chunk changes.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter, defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import orjson
from rich.table import Table
from rich.text import Text

from chainkit.debug._common import TraceLike, as_trace, fmt_ms, inputs_hint, preview
from chainkit.debug._terminal import _View
from chainkit.trace import Run, Trace, TraceSummary, to_jsonable

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = ["EventChange", "RunChange", "RunTiming", "TextChange", "TraceDiff", "diff_traces"]

_WORDS = re.compile(r"\s+|[^\s]+")


@dataclass(frozen=True, slots=True)
class RunChange:
    """A structural difference: a run only in one trace, or one whose outcome changed."""

    path: str
    change: Literal["added", "removed", "changed"]
    detail: str = ""


@dataclass(frozen=True, slots=True)
class EventChange:
    """A run whose own event sequence differs (stream events are counted, not listed)."""

    path: str
    a: list[str]
    b: list[str]


@dataclass(frozen=True, slots=True)
class TextChange:
    """The output text of a run (a model run or a root) differs."""

    path: str
    a: str
    b: str

    @property
    def lines(self) -> list[str]:
        """A unified diff of the two texts, line by line."""
        return list(
            difflib.unified_diff(
                self.a.splitlines(), self.b.splitlines(), "a", "b", lineterm="", n=1
            )
        )

    def words(self) -> list[tuple[str, str]]:
        """The texts as ``(op, text)`` pieces, op one of ``=``, ``-``, ``+``."""
        a, b = _WORDS.findall(self.a), _WORDS.findall(self.b)
        out: list[tuple[str, str]] = []
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
            if op == "equal":
                out.append(("=", "".join(a[i1:i2])))
                continue
            if i2 > i1:
                out.append(("-", "".join(a[i1:i2])))
            if j2 > j1:
                out.append(("+", "".join(b[j1:j2])))
        return out


@dataclass(frozen=True, slots=True)
class RunTiming:
    """Latency and time to first chunk of a run matched in both traces (seconds)."""

    path: str
    kind: str
    latency_a: float | None
    latency_b: float | None
    ttft_a: float | None
    ttft_b: float | None

    @property
    def latency_delta(self) -> float | None:
        return _delta(self.latency_a, self.latency_b)

    @property
    def ttft_delta(self) -> float | None:
        return _delta(self.ttft_a, self.ttft_b)


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


@dataclass(repr=False)
class TraceDiff(_View):
    """What differs between trace ``a`` and trace ``b`` (print it, or read the fields)."""

    a_label: str
    b_label: str
    summary_a: TraceSummary
    summary_b: TraceSummary
    structure: list[RunChange] = field(default_factory=list)
    events: list[EventChange] = field(default_factory=list)
    texts: list[TextChange] = field(default_factory=list)
    timings: list[RunTiming] = field(default_factory=list)
    limit: int = 20

    @property
    def same(self) -> bool:
        """True when structure, events and texts match (timings always differ a little)."""
        return not (self.structure or self.events or self.texts)

    def to_dict(self) -> dict[str, Any]:
        """The diff as plain JSON values."""
        return {
            "a": self.a_label,
            "b": self.b_label,
            "same": self.same,
            "summary": {
                "a": _summary_dict(self.summary_a),
                "b": _summary_dict(self.summary_b),
            },
            "structure": [
                {"path": c.path, "change": c.change, "detail": c.detail} for c in self.structure
            ],
            "events": [{"path": c.path, "a": c.a, "b": c.b} for c in self.events],
            "texts": [{"path": c.path, "a": c.a, "b": c.b, "diff": c.lines} for c in self.texts],
            "timings": [
                {
                    "path": t.path,
                    "kind": t.kind,
                    "latency_a": t.latency_a,
                    "latency_b": t.latency_b,
                    "latency_delta": t.latency_delta,
                    "ttft_a": t.ttft_a,
                    "ttft_b": t.ttft_b,
                    "ttft_delta": t.ttft_delta,
                }
                for t in self.timings
            ],
        }

    # ------------------------------------------------------------- rendering

    def _render(self, width: int) -> Iterator[RenderableType]:
        head = Text("diff ", style="bold")
        head.append(self.a_label, style="red")
        head.append(" → ")
        head.append(self.b_label, style="green")
        if self.same:
            head.append("  same structure, events and texts", style="dim")
        yield head
        yield self._summary_table()
        yield from self._section_structure()
        yield from self._section_events()
        yield from self._section_texts()
        yield from self._section_timings()

    def _summary_table(self) -> Table:
        a, b = self.summary_a, self.summary_b
        table = Table(title="summary", title_justify="left", box=None, padding=(0, 2))
        for column in ("", "a", "b", "change"):
            table.add_column(column, justify="left" if not column else "right")
        for name, va, vb in (
            ("calls", a.calls, b.calls),
            ("runs", a.runs, b.runs),
            ("errors", a.errors, b.errors),
            ("failed runs", a.failed_runs, b.failed_runs),
            ("chunks", a.chunks, b.chunks),
            ("retries", a.retries, b.retries),
        ):
            change = "" if va == vb else f"{vb - va:+d}"
            table.add_row(name, str(va), str(vb), change)
        for name, pa, pb in (("latency p50", a.latency, b.latency), ("ttft p50", a.ttft, b.ttft)):
            table.add_row(name, fmt_ms(pa.p50), fmt_ms(pb.p50), _change(pa.p50, pb.p50))
        return table

    def _section_structure(self) -> Iterator[RenderableType]:
        if not self.structure:
            return
        yield Text(f"\nstructure ({len(self.structure)})", style="bold")
        marks = {"added": ("+", "green"), "removed": ("-", "red"), "changed": ("~", "yellow")}
        for change in self.structure[: self.limit]:
            mark, style = marks[change.change]
            line = Text(f"  {mark} {change.change:<8} ", style=style)
            line.append(change.path)
            if change.detail:
                line.append(f"  {change.detail}", style="dim")
            yield line
        yield from self._more(len(self.structure))

    def _section_events(self) -> Iterator[RenderableType]:
        if not self.events:
            return
        yield Text(f"\nevents ({len(self.events)} runs)", style="bold")
        for change in self.events[: self.limit]:
            yield Text(f"  ~ {change.path}", style="yellow")
            yield Text(f"      a: {', '.join(change.a)}", style="red")
            yield Text(f"      b: {', '.join(change.b)}", style="green")
        yield from self._more(len(self.events))

    def _section_texts(self) -> Iterator[RenderableType]:
        if not self.texts:
            return
        yield Text(f"\noutput text ({len(self.texts)})", style="bold")
        for change in self.texts[: self.limit]:
            yield Text(f"  ~ {change.path}", style="yellow")
            body = Text("    ")
            for op, piece in change.words():
                if op == "=":
                    body.append(piece)
                elif op == "-":
                    body.append(f"[-{piece}-]", style="red")
                else:
                    body.append(f"{{+{piece}+}}", style="green")
            yield body
        yield from self._more(len(self.texts))

    def _section_timings(self) -> Iterator[RenderableType]:
        shown = sorted(
            (t for t in self.timings if t.latency_delta is not None),
            key=lambda t: abs(t.latency_delta or 0.0),
            reverse=True,
        )[: min(self.limit, 10)]
        if not shown:
            return
        table = Table(
            title="\nlatency and time to first chunk (largest changes)",
            title_justify="left",
            box=None,
            padding=(0, 1),
        )
        table.add_column("run", overflow="ellipsis", no_wrap=True, max_width=28)
        for column in ("latency a", "b", "change", "ttft a", "b ", "change "):
            table.add_column(column, justify="right", no_wrap=True, min_width=6)
        for t in shown:
            table.add_row(
                Text(_short(t.path)),  # run names from the files: text, not markup
                fmt_ms(t.latency_a),
                fmt_ms(t.latency_b),
                _change(t.latency_a, t.latency_b),
                fmt_ms(t.ttft_a),
                fmt_ms(t.ttft_b),
                _change(t.ttft_a, t.ttft_b),
            )
        yield table

    def _more(self, total: int) -> Iterator[Text]:
        if total > self.limit:
            yield Text(f"  … {total - self.limit} more (see --json)", style="dim")


def _short(path: str, keep: int = 2) -> str:
    """The last ``keep`` steps of a run path (``…/outline/ChatOpenAI``)."""
    parts = path.split("/")
    return path if len(parts) <= keep + 1 else "…/" + "/".join(parts[-keep:])


def _change(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return ""
    delta = b - a
    if a > 0:
        return f"{'+' if delta >= 0 else '-'}{fmt_ms(abs(delta))} ({delta / a:+.0%})"
    return f"{'+' if delta >= 0 else '-'}{fmt_ms(abs(delta))}"


def _summary_dict(s: TraceSummary) -> dict[str, Any]:
    return {
        "calls": s.calls,
        "runs": s.runs,
        "errors": s.errors,
        "failed_runs": s.failed_runs,
        "chunks": s.chunks,
        "retries": s.retries,
        "latency_p50": s.latency.p50,
        "ttft_p50": s.ttft.p50,
        "tokens": s.usage.get("total_tokens"),
    }


# ---------------------------------------------------------------- matching


def _canon(value: Any) -> bytes:
    return orjson.dumps(  # to_jsonable caps nesting: a file's data may nest 1,000 deep
        to_jsonable(value), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str
    )


def _by_start(runs: list[Run]) -> list[Run]:
    return sorted(runs, key=lambda r: r.start if r.start is not None else float("inf"))


def _pair(
    a_runs: list[Run], b_runs: list[Run], *, roots: bool
) -> list[tuple[Run | None, Run | None]]:
    """Pair runs of two sibling lists: by name, kind (and inputs for roots), in start order."""

    def key(run: Run, *, inputs: bool) -> tuple[Any, ...]:
        return (run.name, run.kind, _canon(run.inputs)) if inputs else (run.name, run.kind)

    pairs: list[tuple[Run | None, Run | None]] = []
    left_a, left_b = _by_start(a_runs), _by_start(b_runs)
    for with_inputs in (True, False) if roots else (False,):
        queues: dict[tuple[Any, ...], deque[Run]] = defaultdict(deque)
        for run in left_b:
            queues[key(run, inputs=with_inputs)].append(run)
        rest: list[Run] = []
        for run in left_a:
            queue = queues.get(key(run, inputs=with_inputs))
            if queue:
                pairs.append((run, queue.popleft()))
            else:
                rest.append(run)
        matched = {id(b) for _, b in pairs}
        left_a, left_b = rest, [run for run in left_b if id(run) not in matched]
    pairs.extend((run, None) for run in left_a)
    pairs.extend((None, run) for run in left_b)
    return pairs


def _names(runs: list[Run], *, roots: bool = False) -> dict[int, str]:
    """Display names of siblings: ``name``, else ``name(inputs)`` for roots, else ``name[i]``."""
    counts = Counter(run.name for run in runs)
    hinted = Counter(f"{run.name}({inputs_hint(run)})" for run in runs) if roots else Counter()
    seen: Counter[str] = Counter()
    names: dict[int, str] = {}
    for run in _by_start(runs):
        if counts[run.name] == 1:
            names[id(run)] = run.name
            continue
        hint = inputs_hint(run) if roots else ""
        if hint and hinted[f"{run.name}({hint})"] == 1:
            names[id(run)] = f"{run.name}({hint})"
        else:
            names[id(run)] = f"{run.name}[{seen[run.name]}]"
            seen[run.name] += 1
    return names


def _output_text(run: Run) -> str:
    if run.text:
        return run.text
    if run.outputs is None:
        return ""
    if isinstance(run.outputs, str):
        return run.outputs
    return orjson.dumps(
        to_jsonable(run.outputs), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2, default=str
    ).decode()


def _event_shape(trace: Trace, run_id: str) -> list[str]:
    shape: list[str] = []
    for event in trace.events:
        if str(event.get("run_id", "")) != run_id:
            continue
        name = str(event.get("event", ""))
        if name.endswith("_stream") and shape and shape[-1] == name:
            continue  # a stream of chunks counts once: its length is the text's business
        shape.append(name)
    return shape


class _Differ:
    def __init__(self, a: Trace, b: Trace, result: TraceDiff) -> None:
        self.a, self.b, self.result = a, b, result
        self.events = bool(a.events) and bool(b.events)

    def level(self, a_runs: list[Run], b_runs: list[Run], prefix: str, *, roots: bool) -> None:
        """Compare two sibling lists and, level by level, everything below them.

        Iterative (a tree 600 deep is fine) and each run once (a damaged file whose
        parents loop still ends)."""
        seen: set[int] = set()
        pending: list[tuple[list[Run], list[Run], str, bool]] = [(a_runs, b_runs, prefix, roots)]
        while pending:
            a_level, b_level, at, top = pending.pop()
            names_a, names_b = _names(a_level, roots=top), _names(b_level, roots=top)
            below: list[tuple[list[Run], list[Run], str, bool]] = []
            for ra, rb in _pair(a_level, b_level, roots=top):
                name = names_a[id(ra)] if ra is not None else names_b[id(rb)]
                path = f"{at}/{name}" if at else name
                if ra is None and rb is not None:
                    self.result.structure.append(RunChange(path, "added", self._outcome(rb)))
                elif rb is None and ra is not None:
                    self.result.structure.append(RunChange(path, "removed", self._outcome(ra)))
                elif ra is not None and rb is not None and not {id(ra), id(rb)} & seen:
                    seen.add(id(ra))
                    seen.add(id(rb))
                    self.compare(ra, rb, path, root=top)
                    below.append((ra.children, rb.children, path, False))
            pending.extend(reversed(below))  # depth first, siblings in order, as before

    @staticmethod
    def _outcome(run: Run) -> str:
        return f"{run.kind}, {run.status}" + (f": {run.error}" if run.error else "")

    def compare(self, ra: Run, rb: Run, path: str, *, root: bool) -> None:
        result = self.result
        if ra.status != rb.status or str(ra.error) != str(rb.error):
            before = ra.status + (f" ({preview(str(ra.error), 60)})" if ra.error else "")
            after = rb.status + (f" ({preview(str(rb.error), 60)})" if rb.error else "")
            result.structure.append(RunChange(path, "changed", f"{before} → {after}"))
        if ra.retries != rb.retries:
            result.structure.append(
                RunChange(path, "changed", f"retries {ra.retries} → {rb.retries}")
            )
        if self.events:
            shape_a, shape_b = _event_shape(self.a, ra.run_id), _event_shape(self.b, rb.run_id)
            if shape_a != shape_b:
                result.events.append(EventChange(path, shape_a, shape_b))
        if root or ra.is_model:
            text_a, text_b = _output_text(ra), _output_text(rb)
            if text_a != text_b:
                result.texts.append(TextChange(path, text_a, text_b))
        if root or ra.is_model:
            result.timings.append(
                RunTiming(path, ra.kind, ra.latency, rb.latency, ra.ttft, rb.ttft)
            )


def diff_traces(
    a: TraceLike, b: TraceLike, *, a_label: str | None = None, b_label: str | None = None
) -> TraceDiff:
    """Compare two traces (Traces or trace files) of the same chain.

    >>> d = diff_traces("before.jsonl", "after.jsonl")
    >>> d.same, d.structure, d.texts[0].lines, d.timings[0].latency_delta
    >>> print(d)                    # or display(d) in a notebook
    """
    ta, tb = as_trace(a), as_trace(b)
    result = TraceDiff(
        a_label=a_label or _label(a, ta, "a"),
        b_label=b_label or _label(b, tb, "b"),
        summary_a=ta.summary(),
        summary_b=tb.summary(),
    )
    _Differ(ta, tb, result).level(ta.roots, tb.roots, "", roots=True)
    return result


def _label(source: TraceLike, trace: Trace, default: str) -> str:
    if not isinstance(source, Trace):
        return str(source)
    return str(trace.path) if trace.path is not None else default
