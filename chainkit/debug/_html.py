"""The self-contained HTML trace viewer: one file, inline JS and CSS, no network.

The page shows a waterfall of runs on a time axis (only the rows in view are in
the DOM, so 10,000 runs scroll smoothly), filters by name, kind and status, and,
for the run clicked, its events, inputs, outputs and its text chunk by chunk
with the gap before each chunk. A Content-Security-Policy forbids every fetch.
"""

from __future__ import annotations

import html
import os
from collections import defaultdict
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from chainkit.debug._common import TraceLike, as_trace, inputs_hint, origin, tree_rows
from chainkit.debug._text import event_preview
from chainkit.errors import TraceError
from chainkit.trace import CustomEvent, Retry, Run, Trace, to_jsonable

__all__ = ["Viewer", "render_html", "viewer_payload", "write_html"]

PAYLOAD_VERSION = 1
EVENT_PREVIEW = 300
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="chainkit {version}">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
<div id="app">
<header id="bar">
<div class="title"><b>{title}</b> <span id="source"></span></div>
<div id="summary"></div>
</header>
<div id="tools">
<input id="f-name" type="search" placeholder="filter by name, input or run id" \
aria-label="filter by name">
<select id="f-kind" aria-label="filter by kind"><option value="">all kinds</option></select>
<select id="f-status" aria-label="filter by status"><option value="">any status</option>\
<option value="ok">ok</option><option value="error">error</option>\
<option value="running">running</option></select>
<button id="collapse-all" type="button">collapse all</button>
<button id="expand-all" type="button">expand all</button>
<button id="zoom-reset" type="button" disabled>reset zoom</button>
<span id="count"></span>
<span id="legend" aria-label="legend">
<span class="lg"><i class="sw sw-wait"></i>waiting for the first chunk</span>
<span class="lg"><i class="sw sw-run"></i>streaming / running</span>
<span class="lg"><i class="sw sw-err"></i>failed</span>
<span class="lg"><b class="par">&#8741;</b> parallel branch (overlaps a sibling)</span>
</span>
</div>
<main>
<section id="waterfall">
<div id="scroller" tabindex="0">
<div id="axis"><div>run</div><div>took</div><div id="ticks"></div></div>
<div id="empty">no runs match</div>
<div id="spacer"><div id="rows"></div></div>
</div>
</section>
<aside id="detail"><p class="hint">Click a run for its events, inputs, outputs and its text
chunk by chunk. Double-click a run to zoom the time axis to it (Esc or "reset zoom" to undo;
Ctrl+wheel zooms). Arrow keys move the selection; a caret folds a subtree.</p></aside>
</main>
</div>
<script id="ck-data" type="application/json">{data}</script>
<script>
{js}
</script>
</body>
</html>
"""


def _asset(name: str) -> str:
    return resources.files("chainkit.debug").joinpath("assets", name).read_text("utf-8")


def _ms(value: float | None, t0: float) -> float | None:
    return None if value is None else round((value - t0) * 1000, 3)


def _dur(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


def _run_entry(run: Run, depth: int, parent: int, t0: float) -> dict[str, Any]:
    ttft = run.ttft
    entry: dict[str, Any] = {
        "id": run.run_id,
        "p": parent,
        "d": depth,
        "n": run.name,
        "k": run.kind,
        "s": run.status,
        "a": _ms(run.start, t0),
        "b": _ms(run.end, t0) if run.start is not None else None,
        "f": _dur(ttft),
        "c": len(run.chunks),
        "e": str(run.error) if run.error is not None else "",
        "r": run.retries,
    }
    if depth == 0 and (hint := inputs_hint(run, 60)):
        entry["h"] = hint  # tells the calls of a batch apart
    return entry


def mark_parallel(runs: list[dict[str, Any]]) -> None:
    """Set ``x`` on every run whose time overlaps a sibling's: a parallel branch."""
    siblings: dict[int, list[dict[str, Any]]] = {}
    for entry in runs:
        if entry["a"] is not None:
            siblings.setdefault(entry["p"], []).append(entry)
    for group in siblings.values():
        group.sort(key=lambda e: e["a"])
        latest: dict[str, Any] | None = None  # the sibling that ends last so far
        for entry in group:
            end = entry["b"] if entry["b"] is not None else float("inf")
            if latest is not None and entry["a"] < _end(latest):
                entry["x"] = latest["x"] = 1
            if latest is None or end > _end(latest):
                latest = entry


def _end(entry: dict[str, Any]) -> float:
    end = entry["b"]
    return float(end) if end is not None else float("inf")


def _run_detail(run: Run, events: list[list[Any]]) -> dict[str, Any]:
    start = run.start if run.start is not None else (run.chunks[0][0] if run.chunks else 0.0)
    detail: dict[str, Any] = {  # to_jsonable caps nesting: a file's data may nest 1,000 deep
        "in": to_jsonable(run.inputs),
        "out": to_jsonable(run.outputs),
        "tags": to_jsonable(run.tags),
        "meta": to_jsonable(run.metadata),
        "usage": to_jsonable(run.usage),
        "ch": [[round((t - start) * 1000, 3), text] for t, text in run.chunks],
        "ev": events,
    }
    if not run.chunks and run.final_text:
        detail["text"] = run.final_text
    if run.chunks:
        detail["cps"] = run.chunks_per_s
        detail["g50"] = _dur(run.gap_p50)
        detail["g95"] = _dur(run.gap_p95)
    return detail


def _events_by_run(trace: Trace, t0: float) -> dict[str, list[list[Any]]]:
    by_run: dict[str, list[list[Any]]] = defaultdict(list)
    for event in trace.events:
        by_run[str(event.get("run_id", ""))].append(
            [
                round((float(event.get("t") or t0) - t0) * 1000, 3),
                str(event.get("event", "")),
                str(event.get("name", "")),
                event_preview(event, EVENT_PREVIEW),
            ]
        )
    for record in trace.records:  # retries and custom events are records of their own
        if isinstance(record, Retry):
            what = f"attempt {record.attempt}" if record.attempt is not None else "retry"
            if record.error_type:
                what += f" after {record.error_type}: {record.message or ''}".rstrip(": ")
            by_run[record.run_id].append([_ms(record.t, t0), "retry", "", what])
        elif isinstance(record, CustomEvent):
            data = orjson.dumps(to_jsonable(record.data), default=str).decode()[:EVENT_PREVIEW]
            by_run[record.run_id].append([_ms(record.t, t0), "custom", record.name, data])
    for events in by_run.values():
        events.sort(key=lambda e: e[0] if e[0] is not None else 0.0)
    return by_run


def viewer_payload(trace: TraceLike, *, title: str | None = None) -> dict[str, Any]:
    """The data the viewer page shows: runs in tree order and the details of each."""
    path = Path(trace) if isinstance(trace, (str, os.PathLike)) else None
    trace = as_trace(trace)
    path = trace.path if trace.path is not None else path
    t0 = origin(trace)
    rows = tree_rows(trace)
    events = _events_by_run(trace, t0)
    runs = [_run_entry(row.run, row.depth, row.parent, t0) for row in rows]
    mark_parallel(runs)
    details = [_run_detail(row.run, events.get(row.run.run_id, [])) for row in rows]
    ends = [r["b"] for r in runs if r["b"] is not None] + [r["a"] for r in runs if r["a"]]
    # running runs are drawn to the last thing that happened
    chunk_ends = [
        _ms(row.run.chunks[-1][0], t0) for row in rows if row.run.end is None and row.run.chunks
    ]
    span = max([e for e in ends + chunk_ends if e is not None], default=0.0)
    summary = trace.summary()
    return {
        "v": PAYLOAD_VERSION,
        "title": title or (f"chainkit trace · {path.name}" if path else "chainkit trace"),
        "source": str(path) if path is not None else "",
        "created": trace.headers[0].created if trace.headers else "",
        "span": span,
        "kinds": sorted({run["k"] for run in runs}),
        "summary": {
            "calls": summary.calls,
            "runs": summary.runs,
            "chunks": summary.chunks,
            "errors": summary.errors,
            "failed_runs": summary.failed_runs,
            "retries": summary.retries,
            "events": summary.events,
            "tokens": summary.usage.get("total_tokens"),
            "latency": str(summary.latency),
            "ttft": str(summary.ttft),
        },
        "runs": runs,
        "x": details,
    }


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element: no ``<``, so no ``</script>`` and no ``<!--``."""
    text = orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_html(trace: TraceLike, *, title: str | None = None) -> str:
    """The whole viewer page for ``trace`` (a Trace or a trace file), as one string."""
    from chainkit import __version__

    payload = viewer_payload(trace, title=title)
    return _TEMPLATE.format(
        csp=CSP,
        version=__version__,
        title=html.escape(payload["title"]),
        css=_asset("viewer.css"),
        js=_asset("viewer.js"),
        data=_script_json(payload),
    )


def write_html(trace: TraceLike, path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Write the viewer page for ``trace`` to ``path``; returns the path."""
    target = Path(path)
    page = render_html(trace, title=title)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"cannot write {target}: {exc.strerror}; check the -o path") from exc
    return target


class Viewer:
    """The interactive viewer inside a notebook cell (an ``<iframe srcdoc>``).

    >>> Viewer(trace)            # the last expression of a cell shows it
    >>> Viewer(trace).save("trace.html")
    """

    def __init__(self, trace: TraceLike, *, title: str | None = None, height: int = 520) -> None:
        self.trace = as_trace(trace)
        self.title = title
        self.height = height

    def html(self) -> str:
        """The whole page, as :func:`render_html` makes it."""
        return render_html(self.trace, title=self.title)

    def save(self, path: str | os.PathLike[str]) -> Path:
        return write_html(self.trace, path, title=self.title)

    def _repr_html_(self) -> str:
        page = html.escape(self.html(), quote=True)
        return (
            f'<iframe srcdoc="{page}" style="width:100%;height:{self.height}px;'
            f'border:1px solid #ddd;border-radius:4px" sandbox="allow-scripts"></iframe>'
        )

    def __repr__(self) -> str:
        return f"<Viewer {len(self.trace.runs)} runs>"
