"""Trace viewer: render a 10,000-run trace to HTML, and load it in headless Chromium.

    .venv/bin/python benchmarks/trace_render.py [--calls 2500] [--chunks 8] [--repeat 3]

Figures are reported with a baseline measured in the same run:
- rendering (Python) against ``Trace.load`` of the same file (ratio render / load);
- loading in Chromium against a page that embeds the same JSON and only parses it
  (ratio viewer ready / parse-only ready), plus the time to redraw one screenful
  while scrolling and to apply a name filter over every run.
Chromium is Debian's ``/usr/bin/chromium`` (``$CHAINKIT_CHROMIUM``), driven by Playwright.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from chainkit.debug import render_html
from chainkit.debug._sample import synthetic_trace
from chainkit.trace import Trace

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _best(times: list[float]) -> float:
    return min(times)


def bench_render(path: Path, repeat: int) -> tuple[float, float, str]:
    loads, renders = [], []
    page = ""
    for _ in range(repeat):
        started = time.perf_counter()
        trace = Trace.load(path)
        loads.append(time.perf_counter() - started)
        started = time.perf_counter()
        page = render_html(trace)
        renders.append(time.perf_counter() - started)
    return _best(loads), _best(renders), page


def _baseline_page(page: str) -> str:
    data = re.search(r'<script id="ck-data" type="application/json">.*?</script>', page, re.S)
    assert data is not None
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
        f"{data.group(0)}<script>JSON.parse(document.getElementById('ck-data').textContent);"
        "window.ckViewer={readyAt: performance.now()};"
        "document.documentElement.setAttribute('data-ready','1');</script></body></html>"
    )


def bench_browser(viewer: Path, baseline: Path, repeat: int, expected: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("CHAINKIT_CHROMIUM", "/usr/bin/chromium")
    out: dict[str, list[float]] = {
        "viewer": [],
        "baseline": [],
        "scroll": [],
        "jump": [],
        "filter": [],
    }
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
        try:
            for _ in range(repeat):
                for name, path in (("baseline", baseline), ("viewer", viewer)):
                    page = browser.new_page(viewport={"width": 1400, "height": 900})
                    errors: list[str] = []
                    page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                    page.goto(path.as_uri())
                    page.wait_for_selector("html[data-ready='1']", timeout=120_000)
                    assert not errors, errors
                    out[name].append(page.evaluate("window.ckViewer.readyAt") / 1000)
                    if name == "viewer":
                        shown = int(page.get_attribute("#count", "data-visible") or 0)
                        assert shown == expected, (shown, expected)
                        step, jump = page.evaluate(
                            """() => {
                              const s = document.getElementById('scroller');
                              const frame = (y) => {
                                s.scrollTop = y;
                                window.ckViewer.render();
                                return document.body.offsetHeight;  // style and layout too
                              };
                              const n = 200;
                              let t = performance.now();
                              for (let i = 0; i < n; i++) frame(i * 66);  // 3 rows a frame
                              const step = (performance.now() - t) / n;
                              t = performance.now();
                              for (let i = 0; i < n; i++) frame((i / n) * s.scrollHeight);
                              const jump = (performance.now() - t) / n;
                              return [step, jump];
                            }"""
                        )
                        out["scroll"].append(step / 1000)
                        out["jump"].append(jump / 1000)
                        out["filter"].append(
                            page.evaluate(
                                """() => {
                                  const f = document.getElementById('f-name');
                                  const t = performance.now();
                                  f.value = 'parser';
                                  window.ckViewer.applyFilter();
                                  f.value = '';
                                  window.ckViewer.applyFilter();
                                  return (performance.now() - t) / 2;
                                }"""
                            )
                            / 1000
                        )
                    page.close()
        finally:
            browser.close()
    return {key: statistics.median(values) for key, values in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2500, help="pipeline calls (4 runs each)")
    parser.add_argument("--chunks", type=int, default=8, help="chunks per model run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        trace = synthetic_trace(args.calls, chunks=args.chunks, fail_every=50, events=False)
        runs = len(trace.runs)
        path = trace.save(folder / "trace.jsonl")
        load, render, page = bench_render(path, args.repeat)
        viewer = folder / "trace.html"
        viewer.write_text(page, encoding="utf-8")
        baseline = folder / "baseline.html"
        baseline.write_text(_baseline_page(page), encoding="utf-8")
        size = path.stat().st_size / 1e6
        print(f"trace: {runs} runs, {args.chunks} chunks per model run, JSONL {size:.1f} MB")
        print(
            f"render to HTML: {render:.2f} s ({len(page) / 1e6:.1f} MB page); "
            f"Trace.load of the same file: {load:.2f} s; render/load = {render / load:.2f}"
        )
        if args.no_browser:
            return
        figures = bench_browser(viewer, baseline, args.repeat, runs)
        print(
            f"Chromium: viewer ready {figures['viewer']:.2f} s after navigation; "
            f"parse-only baseline {figures['baseline']:.2f} s; "
            f"viewer/baseline = {figures['viewer'] / figures['baseline']:.2f}"
        )
        print(
            f"scrolling: {figures['scroll'] * 1000:.2f} ms a frame scrolling 3 rows, "
            f"{figures['jump'] * 1000:.2f} ms a jump to a new screenful, with style and layout "
            f"(a 60 Hz frame is 16.7 ms); name filter over {runs} runs: "
            f"{figures['filter'] * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()
