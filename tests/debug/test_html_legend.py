"""The HTML viewer's legend (what the bar shading means) and its parallel-branch marks."""

from __future__ import annotations

from pathlib import Path

from chainkit.callbacks import capture
from chainkit.chains import get_chain
from chainkit.debug import render_html, viewer_payload
from chainkit.debug._html import mark_parallel


def test_siblings_that_overlap_are_marked_and_sequential_ones_are_not() -> None:
    runs = [
        {"p": -1, "a": 0.0, "b": 100.0},  # the root
        {"p": 0, "a": 0.0, "b": 10.0},  # then two in parallel
        {"p": 0, "a": 10.0, "b": 60.0},
        {"p": 0, "a": 12.0, "b": 50.0},
        {"p": 0, "a": 70.0, "b": 90.0},  # then one after them
        {"p": 2, "a": 11.0, "b": 20.0},  # a child of a parallel branch, alone in its parent
    ]
    mark_parallel(runs)
    assert [bool(r.get("x")) for r in runs] == [False, False, True, True, False, False]


async def test_outline_story_shows_its_two_branches_as_parallel_and_has_a_legend(
    tmp_path: Path,
) -> None:
    path = tmp_path / "trace.jsonl"
    # ainvoke: RunnableParallel gathers its branches on the event loop, so both have started
    # (each awaits its model call) before either ends, however loaded the machine is. A sync
    # invoke's thread pool may run them one after the other, and then they are not parallel.
    with capture(path):
        await get_chain("outline_story", model="local").ainvoke({"topic": "a lighthouse"})
    runs = viewer_payload(path)["runs"]
    parallel = {r["n"] for r in runs if r.get("x")}
    # the story and its title run side by side; the outline, before them, runs alone
    assert parallel == {"story", "title"}, [(r["n"], r["p"], r["a"], r["b"]) for r in runs]
    page = render_html(path)
    assert "waiting for the first chunk" in page
    assert "streaming / running" in page
    assert "parallel branch" in page
