"""The HTML viewer page: valid, self-contained (no URL, no fetch), carrying the right data."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from chainkit.cli import main
from chainkit.debug import Viewer, render_html, viewer_payload, write_html
from chainkit.debug._sample import synthetic_trace
from chainkit.trace import Trace
from tests.conftest import assert_no_canary
from tests.debug.conftest import Recordings

VOID = {"meta", "link", "input", "br", "img", "hr", "col", "area", "base", "source", "wbr"}


class _Checker(HTMLParser):
    """Tags balanced, attributes that could load something recorded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.loads: list[tuple[str, str, str]] = []
        self.scripts: list[dict[str, str | None]] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "action", "poster", "srcset") and value is not None:
                self.loads.append((tag, name, value))
            if name == "id" and value:
                self.ids.append(value)
        if tag == "script":
            self.scripts.append(dict(attrs))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
            return
        self.stack.pop()


def _check(page: str) -> _Checker:
    checker = _Checker()
    checker.feed(page)
    checker.close()
    return checker


def _data(page: str) -> dict[str, Any]:
    found = re.search(r'<script id="ck-data" type="application/json">(.*?)</script>', page, re.S)
    assert found is not None
    data = json.loads(found.group(1))
    assert isinstance(data, dict)
    return data


def test_page_is_valid_and_self_contained(small_trace: Trace) -> None:
    page = render_html(small_trace)
    assert page.startswith("<!DOCTYPE html>")
    checker = _check(page)
    assert checker.errors == []
    assert checker.stack == []
    assert len(checker.ids) == len(set(checker.ids))
    # nothing to load: one data: icon, no src on any script, no URL anywhere
    assert checker.loads == [("link", "href", "data:,")]
    assert [s.get("src") for s in checker.scripts] == [None, None]
    assert not re.search(r"(?i)\b(https?:|ftp:|wss?:)//", page)
    assert "@import" not in page
    assert "url(" not in page
    assert "fetch(" not in page
    assert "XMLHttpRequest" not in page
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp is not None
    assert "default-src 'none'" in csp.group(1)


def test_payload_has_runs_in_tree_order_with_details(small_trace: Trace) -> None:
    data = viewer_payload(small_trace)
    runs = data["runs"]
    assert len(runs) == 12
    assert [r["d"] for r in runs[:4]] == [0, 1, 1, 1]
    assert [r["n"] for r in runs[:4]] == [
        "pipeline",
        "ChatPromptTemplate",
        "ChatOpenAI",
        "StrOutputParser",
    ]
    assert all(runs[r["p"]]["d"] == r["d"] - 1 for r in runs if r["p"] >= 0)
    failed = [r for r in runs if r["s"] == "error"]
    assert len(failed) == 3
    assert all("InternalServerError" in r["e"] for r in failed)
    assert data["kinds"] == ["chain", "chat_model", "parser", "prompt"]
    model = next(i for i, r in enumerate(runs) if r["k"] == "chat_model")
    run = small_trace[runs[model]["id"]]
    chunks = data["x"][model]["ch"]
    assert [text for _, text in chunks] == [text for _, text in run.chunks]
    assert run.start is not None
    assert chunks[0][0] == pytest.approx((run.chunks[0][0] - run.start) * 1000, abs=0.01)
    assert run.ttft is not None
    assert runs[model]["f"] == pytest.approx(run.ttft * 1000, abs=0.01)
    events = data["x"][model]["ev"]
    assert [e[1] for e in events][:2] == ["on_chat_model_start", "on_chat_model_stream"]
    retry_root = next(i for i, r in enumerate(runs) if r["r"])
    assert any(e[1] == "retry" for e in data["x"][retry_root]["ev"])


def test_hostile_text_stays_data() -> None:
    trace = Trace()
    evil = "</script><script>alert(1)</script><!--"
    trace.run_started("r", name=evil, kind="chain", inputs={"x": evil}, t=1.0)
    trace.run_ended("r", outputs=evil, t=2.0)
    page = render_html(trace, title=evil)
    assert "<script>alert(1)" not in page
    assert page.count("</script>") == 2
    assert _data(page)["runs"][0]["n"] == evil
    assert html.escape(evil) in page  # the title, escaped


def test_write_html_and_cli(
    small_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "trace.html"
    assert main(["trace", "html", str(small_file), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    page = out.read_text()
    data = _data(page)
    assert data["source"] == str(small_file)
    assert len(data["runs"]) == 12
    assert write_html(small_file, tmp_path / "again.html").read_text() == page
    assert_no_canary(tmp_path)


def test_viewer_in_a_notebook(small_trace: Trace) -> None:
    frame = Viewer(small_trace, height=300)._repr_html_()
    assert frame.startswith("<iframe srcdoc=")
    assert 'sandbox="allow-scripts"' in frame
    assert "<script" not in frame  # the page is an escaped attribute
    assert "height:300px" in frame


def test_large_trace_payload_is_compact() -> None:
    trace = synthetic_trace(250, chunks=4)
    page = render_html(trace)
    assert len(_data(page)["runs"]) == 1000
    assert len(page) < 1000 * 1200  # about a kilobyte a run, chunks and details included


def test_real_recording_page(recordings: Recordings) -> None:
    page = render_html(recordings.failed)
    assert _check(page).errors == []
    data = _data(page)
    runs = data["runs"]
    assert any(r["s"] == "error" and "OpenAIConnectionError" in r["e"] for r in runs)
    assert not re.search(r"(?i)\bhttps?://", page.replace("http://127.0.0.1", ""))
