"""The public names of chainkit.debug and chainkit.notebook."""

from __future__ import annotations

import chainkit.debug
import chainkit.notebook


def test_debug_exports_a_deliberate_sorted_api() -> None:
    names = chainkit.debug.__all__
    assert names == sorted(names)
    assert all(hasattr(chainkit.debug, name) for name in names)
    public = {n for n in dir(chainkit.debug) if not n.startswith("_")} - {"annotations"}
    assert public == set(names)
    for name in ("ReplayChatModel", "diff_traces", "trace_stats", "tree_view", "write_html"):
        assert name in names


def test_notebook_exports() -> None:
    assert chainkit.notebook.__all__ == ["alive_stream", "in_notebook", "live_stream"]
