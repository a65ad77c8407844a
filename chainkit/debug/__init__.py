"""Reading traces: terminal views, the HTML viewer, diff, replay and stats.

Traces (the JSONL files the capture handlers and the runner write, or a
:class:`~chainkit.trace.Trace` in memory) are the one input: nothing here re-runs
a chain to show it. Every function takes a Trace or a path.

>>> from chainkit.debug import tree_view, timeline_view, write_html, diff_traces
>>> print(tree_view("run.jsonl"))                 # the run tree (Rich; HTML in Jupyter)
>>> write_html("run.jsonl", "trace.html")         # one self-contained viewer page
>>> diff_traces("before.jsonl", "after.jsonl")    # structure, text, latency changes
>>> model = ReplayChatModel.from_trace("failure.jsonl", timing=True)   # offline replay

The CLI mirrors it: ``chainkit trace show|html|diff|stats``.
"""

from __future__ import annotations

from chainkit.debug._diff import (
    EventChange,
    RunChange,
    RunTiming,
    TextChange,
    TraceDiff,
    diff_traces,
)
from chainkit.debug._html import Viewer, render_html, viewer_payload, write_html
from chainkit.debug._replay import Recording, ReplayChatModel, rebuild_error
from chainkit.debug._stats import NameStats, TraceStats, trace_stats
from chainkit.debug._terminal import (
    EventsView,
    TimelineView,
    TreeView,
    events_view,
    timeline_view,
    tree_view,
)

__all__ = [
    "EventChange",
    "EventsView",
    "NameStats",
    "Recording",
    "ReplayChatModel",
    "RunChange",
    "RunTiming",
    "TextChange",
    "TimelineView",
    "TraceDiff",
    "TraceStats",
    "TreeView",
    "Viewer",
    "diff_traces",
    "events_view",
    "rebuild_error",
    "render_html",
    "timeline_view",
    "trace_stats",
    "tree_view",
    "viewer_payload",
    "write_html",
]
