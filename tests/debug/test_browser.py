"""The HTML viewer in real headless Chromium (Debian's chromium, driven by Playwright).

No browser is downloaded: Playwright launches ``/usr/bin/chromium`` (or
``$CHAINKIT_CHROMIUM``). Without it the tests skip, saying why, unless
``CHAINKIT_REQUIRE_BROWSER=1`` (set by ``.ci/run``), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chainkit.debug import write_html
from chainkit.debug._sample import synthetic_trace
from chainkit.trace import Trace

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str | None:
    path = os.environ.get("CHAINKIT_CHROMIUM") or "/usr/bin/chromium"
    if Path(path).exists():
        return path
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _unavailable(reason: str) -> None:
    if os.environ.get("CHAINKIT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"CHAINKIT_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    executable = _chromium()
    if executable is None:
        _unavailable(
            "Chromium is not installed (apt-get install chromium); the viewer's browser "
            "tests need a real browser"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Page:
    """A viewer page, with the console errors and requests it produced."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("html[data-ready='1']", timeout=30_000)

    def rows(self) -> int:
        return int(self.page.locator(".row:visible").count())

    def shown(self) -> int:
        return int(self.page.get_attribute("#count", "data-visible") or -1)

    def close(self) -> None:
        self.page.close()


@pytest.fixture
def viewer(browser: Any, tmp_path: Path) -> Iterator[tuple[Page, Trace]]:
    trace = synthetic_trace(6, fail_every=3, events=True)  # 24 runs, 2 failed calls
    page = Page(browser, write_html(trace, tmp_path / "trace.html"))
    yield page, trace
    page.close()


def test_trace_loads_with_every_run_in_the_waterfall(viewer: tuple[Page, Trace]) -> None:
    page, trace = viewer
    assert page.shown() == len(trace.runs) == 24
    assert page.rows() == 24
    assert page.page.locator(".row.err:visible").count() == 6  # errors stand out
    assert page.page.locator("#ticks .tick").count() >= 2
    assert page.errors == []
    assert page.requests == [page.page.url]  # nothing fetched but the page itself


def test_clicking_a_run_shows_its_chunks(viewer: tuple[Page, Trace]) -> None:
    page, trace = viewer
    model = next(run for run in trace.runs if run.is_model and run.error is None)
    page.page.click(f'.row[data-id="{model.run_id}"] .name')
    detail = page.page.locator("#detail")
    assert detail.get_attribute("data-id") == model.run_id
    assert "ChatOpenAI" in detail.locator("h2").inner_text()
    chunk_rows = detail.locator("tr.chunk")
    assert chunk_rows.count() == len(model.chunks)
    texts = [chunk_rows.nth(i).locator("td.x").inner_text() for i in range(len(model.chunks))]
    assert texts[1:] == [text for _, text in model.chunks][1:]
    assert texts[0] == "(empty)"
    assert "gap before" in detail.inner_text()
    assert detail.locator("tr.event").count() >= len(model.chunks)  # its events
    assert "Write about" in detail.locator("#inputs").inner_text()
    assert page.page.locator(".row.sel").get_attribute("data-id") == model.run_id
    assert page.errors == []


def test_a_failed_run_shows_its_error(viewer: tuple[Page, Trace]) -> None:
    page, trace = viewer
    failed = next(run for run in trace.runs if run.is_model and run.error is not None)
    page.page.click(f'.row[data-id="{failed.run_id}"] .name')
    assert "InternalServerError" in page.page.locator("#detail #error").inner_text()
    assert page.page.locator("#detail tr.e-error").count() == 1
    assert page.errors == []


def test_filters_hide_what_they_should(viewer: tuple[Page, Trace]) -> None:
    page, _ = viewer
    page.page.select_option("#f-kind", "chat_model")
    assert page.shown() == page.rows() == 6
    page.page.select_option("#f-status", "error")
    assert page.shown() == page.rows() == 2
    page.page.select_option("#f-kind", "")
    assert page.shown() == page.rows() == 6  # a failed call: chain, model and parser
    page.page.select_option("#f-status", "")
    page.page.fill("#f-name", "parser")
    assert page.shown() == page.rows() == 6
    names = page.page.locator(".row:visible .name").all_inner_texts()
    assert set(names) == {"StrOutputParser"}
    page.page.fill("#f-name", "topic 4")  # a root's inputs tell the calls apart
    assert page.shown() == page.rows() == 1
    assert "topic=topic 4" in page.page.locator(".row:visible .hint").inner_text()
    page.page.fill("#f-name", "")
    assert page.shown() == 24
    page.page.click("#collapse-all")
    assert page.shown() == page.rows() == 6  # the roots
    page.page.click("#expand-all")
    assert page.shown() == 24
    assert page.errors == []


def test_ten_thousand_runs_render_only_what_is_in_view(browser: Any, tmp_path: Path) -> None:
    trace = synthetic_trace(2500, chunks=3, fail_every=97)
    page = Page(browser, write_html(trace, tmp_path / "big.html"))
    try:
        assert page.shown() == 10_000
        in_dom = page.page.locator(".row").count()
        assert 0 < in_dom < 120  # windowed: a screenful of rows, not 10,000
        last = trace.roots[-1]
        page.page.evaluate("document.getElementById('scroller').scrollTop = 1e9")
        page.page.wait_for_selector(f'.row[data-id="{last.children[-1].run_id}"]')
        page.page.select_option("#f-status", "error")
        failed = sum(1 for run in trace.runs if run.error is not None)
        assert page.shown() == failed
        assert page.errors == []
    finally:
        page.close()


def test_an_empty_trace_loads_without_errors(browser: Any, tmp_path: Path) -> None:
    page = Page(browser, write_html(Trace(), tmp_path / "empty.html"))
    try:
        assert page.shown() == 0
        assert page.page.locator("#empty").inner_text() == "no runs in this trace"
        assert page.errors == []
    finally:
        page.close()
