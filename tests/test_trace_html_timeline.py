"""Jupyter views: Trace, StreamCapture, EventCapture show a summary, run tree and timeline."""

from __future__ import annotations

import re

from chainkit.callbacks import EventCapture, StreamCapture
from chainkit.chains import get_chain


def _bars(html: str) -> list[tuple[float, float]]:
    return [
        (float(left), float(width))
        for left, width in re.findall(r"left:([\d.]+)%;width:([\d.]+)%", html)
    ]


def test_stream_capture_html_has_a_timeline_bar_per_run() -> None:
    cap = StreamCapture()
    chain = get_chain("haiku")
    chain.batch([{"topic": "tea"}, {"topic": "rain"}], config={"callbacks": [cap]})
    html = cap._repr_html_()
    bars = _bars(html)
    assert len(bars) == len(cap.runs) == 8  # 2 calls x (chain, prompt, model, parser)
    assert all(0 <= left <= 100 and 0 <= width <= 100.01 for left, width in bars)
    assert any(left == 0 for left, _ in bars)  # the first run starts the axis
    assert "<b>haiku</b>" in html


def test_event_capture_renders_as_html() -> None:
    cap = EventCapture()
    get_chain("haiku").invoke({"topic": "tea"}, config={"callbacks": [cap]})
    html = cap._repr_html_()
    assert "<table>" in html
    assert str(len(cap.events)) in html
