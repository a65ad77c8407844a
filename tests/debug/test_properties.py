"""Property-based: any trace file is either refused with a TraceError (one line naming the
file and line) or shown by every reader, whatever its runs, parents, names and data."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from chainkit.debug import (
    diff_traces,
    events_view,
    render_html,
    timeline_view,
    trace_stats,
    tree_view,
)
from chainkit.errors import TraceError
from chainkit.trace import Trace

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)
TERMINAL_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

TEXT = st.text(
    st.characters(codec="utf-8") | st.sampled_from("\x1b[/]\x07\u202e\ud800"), max_size=10
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
IDS = st.sampled_from(["a", "b", "c", "d"])
TIME = st.floats(0, 100) | st.integers(0, 100)
RECORD = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.just("run_start"),
            "t": TIME,
            "run_id": IDS,
            "parent_run_id": st.none() | IDS | st.just("gone"),
            "name": TEXT,
            "kind": st.sampled_from(["chain", "llm", "chat_model", "prompt"]) | TEXT,
            "tags": st.lists(TEXT, max_size=2),
            "metadata": st.dictionaries(TEXT, JSON, max_size=2),
            "inputs": JSON,
        }
    ),
    st.fixed_dictionaries({"type": st.just("chunk"), "t": TIME, "run_id": IDS, "text": TEXT}),
    st.fixed_dictionaries(
        {"type": st.just("run_end"), "t": TIME, "run_id": IDS, "outputs": JSON},
        optional={"usage": st.none() | st.dictionaries(TEXT, st.integers(), max_size=2)},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("run_error"),
            "t": TIME,
            "run_id": IDS,
            "error": st.fixed_dictionaries({"type": TEXT, "message": TEXT}),
        }
    ),
    st.dictionaries(TEXT, JSON, max_size=3),
)
LINE = st.one_of(RECORD.map(lambda r: json.dumps(r).encode()), st.binary(max_size=30))
HEADER = (
    b'{"type":"trace","schema_version":1,"created":"2026-01-01T00:00:00+00:00",'
    b'"clock_origin":0.0,"wall_origin":0.0,"chainkit_version":"0"}'
)


def _read_everything(path: Path) -> list[str]:
    trace = Trace.load(path)
    shown = [
        tree_view(trace).text(120),
        timeline_view(trace).text(120),
        events_view(trace).text(120),
        trace_stats(trace).text(120),
        diff_traces(trace, trace).text(120),
    ]
    render_html(trace)
    orjson.dumps(trace_stats(trace).to_dict(), default=str)
    return shown


@SETTINGS
@given(lines=st.lists(LINE, max_size=8))
def test_any_trace_file_is_shown_or_refused_clearly(lines: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.jsonl"
        path.write_bytes(
            HEADER + b"\n" + b"".join(line.replace(b"\n", b" ") + b"\n" for line in lines)
        )
        try:
            shown: list[str] | TraceError = _read_everything(path)
        except TraceError as exc:
            shown = exc
    if isinstance(shown, TraceError):
        assert str(path) in str(shown)
        assert "\n" not in str(shown)
        return
    for text in shown:
        assert not TERMINAL_CONTROL.search(text)
