"""Trace files written to hurt the reader: Rich markup, terminal escapes, 600-deep and looping
run trees, data nested 1,000 deep. Every `chainkit trace` command reads them as text."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from chainkit.cli import main
from chainkit.debug import diff_traces, render_html, trace_stats, tree_view
from chainkit.trace import Trace

# Anything that acts on a terminal: C0 controls but newline, DEL, C1 controls, bidi overrides
TERMINAL_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture(autouse=True)
def _restore_cli_logging() -> Iterator[None]:
    logger = logging.getLogger("chainkit")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def all_commands(path: Path, tmp_path: Path) -> list[list[str]]:
    return [
        ["trace", "show", str(path)],
        ["trace", "show", "--timeline", str(path)],
        ["trace", "show", "--events", str(path)],
        ["trace", "stats", str(path)],
        ["trace", "diff", str(path), str(path)],
        ["trace", "html", str(path), "-o", str(tmp_path / "view.html")],
    ]


# ---------------------------------------------------------------- markup and escapes


@pytest.fixture
def markup_file(tmp_path: Path) -> Path:
    t = Trace(tmp_path / "markup.jsonl")
    link = "[link=https://evil.invalid]click[/link] list[int] [bold red]x"
    t.run_started("m1", name="extract [/] step", kind="chain", t=1.0, inputs={"q": link})
    t.run_started("m2", name="list[int]", kind="llm", parent_run_id="m1", t=1.1)
    t.chunk("m2", 1.2, "[red]chunk[/red]")
    t.run_ended("m2", outputs="[/]", t=1.5)
    t.run_failed("m1", ValueError("[/] broke [link=x]y"), t=2.0)
    t.close()
    return t.path  # type: ignore[return-value]


def test_markup_in_a_trace_is_printed_as_text(
    markup_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args in all_commands(markup_file, tmp_path):
        code, out, err = run_cli(args, capsys)
        assert code == 0, (args, err)
        assert "Error" not in err
        if args[1] in ("show", "stats"):
            assert "extract [/] st" in out, args  # the name as written (maybe cut to fit)
            assert "list[int]" in out, args
    text = trace_stats(markup_file).text(200)
    assert "extract [/] step" in text
    assert "list[int]" in text
    # a [link=...] never becomes a live terminal link (OSC 8), even with colours on
    coloured = tree_view(markup_file)
    from chainkit.debug._terminal import render_text

    ansi = render_text(coloured, width=200, color=True)
    assert "\x1b]8;" not in ansi
    assert "[link=https://evil.invalid]" in render_text(coloured, width=200)


@pytest.fixture
def escapes_file(tmp_path: Path) -> Path:
    t = Trace(tmp_path / "escapes.jsonl")
    name = "title\x1b]0;PWNED\x07 \x1b[2J\x1b[Hcleared"
    t.run_started("e1", name=name, kind="chain", t=1.0, inputs={"q": "\x1b[31mred\rover\x08"})
    t.run_started("e2", name="m\x9b31m\u202ecba", kind="llm", parent_run_id="e1", t=1.1)
    t.chunk("e2", 1.2, "chunk\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\")
    t.run_ended("e2", outputs="\x1b[2J", t=1.5)
    t.run_failed("e1", RuntimeError("boom\x1b[2J\x07"), t=2.0)
    t.close()
    return t.path  # type: ignore[return-value]


def test_terminal_escapes_in_a_trace_never_reach_the_terminal(
    escapes_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args in all_commands(escapes_file, tmp_path):  # captured output: as when piped
        code, out, err = run_cli(args, capsys)
        assert code == 0, (args, err)
        assert not TERMINAL_CONTROL.search(out), (args, TERMINAL_CONTROL.findall(out))
        assert not TERMINAL_CONTROL.search(err), args
        if args[1] == "show":
            assert "\\x1b" in out  # shown, escaped: the reader sees that it was there
    for view in (tree_view(escapes_file), trace_stats(escapes_file)):
        html = view._repr_html_()  # notebooks too
        assert not TERMINAL_CONTROL.search(html)


# ---------------------------------------------------------------- deep and looping trees


def _deep_trace(path: Path, depth: int) -> Path:
    t = Trace(path)
    parent = None
    for i in range(depth):
        t.run_started(f"run-{i:05d}", name=f"step{i}", kind="chain", parent_run_id=parent, t=i)
        parent = f"run-{i:05d}"
    t.chunk(parent, depth + 0.5, "deepest text")  # type: ignore[arg-type]
    for i in reversed(range(depth)):
        t.run_ended(f"run-{i:05d}", outputs={"x": i}, t=float(2 * depth - i))
    t.close()
    return path


def test_a_tree_600_deep_works_in_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _deep_trace(tmp_path / "deep.jsonl", 600)
    trace = Trace.load(path)
    assert trace.roots[0].ttft == 600.5  # the deepest chunk, found without recursion
    assert len(list(trace.roots[0].walk())) == 600
    for args in all_commands(path, tmp_path):
        code, out, err = run_cli(args, capsys)
        assert code == 0, (args, err[-500:])
        assert "Recursion" not in out + err
    assert "step0" in run_cli(["trace", "show", str(path)], capsys)[1]
    assert diff_traces(path, path).same


@pytest.fixture
def looping_file(tmp_path: Path) -> Path:
    t = Trace(tmp_path / "loop.jsonl")
    t.run_started("aaaaaaaa-1", name="A", kind="chain", parent_run_id="bbbbbbbb-1", t=1.0)
    t.run_started("bbbbbbbb-1", name="B", kind="chain", parent_run_id="aaaaaaaa-1", t=2.0)
    t.run_started("dddddddd-1", name="D", kind="llm", parent_run_id="bbbbbbbb-1", t=2.5)
    t.run_started("cccccccc-1", name="C", kind="llm", parent_run_id="zzzzzzzz-gone", t=3.0)
    t.chunk("dddddddd-1", 3.5, "hi")
    for run_id in ("dddddddd-1", "aaaaaaaa-1", "bbbbbbbb-1", "cccccccc-1"):
        t.run_ended(run_id, outputs="x", t=4.0)
    t.close()
    return t.path  # type: ignore[return-value]


def test_looping_and_orphaned_runs_are_shown_and_reported_damaged(
    looping_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = Trace.load(looping_file)
    assert [run.name for run in trace.roots] == ["C", "A"]  # C's parent is gone; A enters the loop
    assert trace.roots[1].ttft == 2.5  # D's chunk, below the loop
    damage = trace.damage
    assert len(damage) == 2
    assert "run cccccccc ('C') names a parent 'zzzzzzzz' that is not in the trace" in damage
    assert "run aaaaaaaa ('A') is in a loop of parents" in damage[1]
    for args in all_commands(looping_file, tmp_path):
        code, _, err = run_cli(args, capsys)
        assert code == 0, (args, err)
        assert "is in a loop of parents" in err, args  # one warning line per problem
        files = 2 if args[1] == "diff" else 1
        assert len([line for line in err.splitlines() if "damaged" in line]) == 2 * files
    _, shown, _ = run_cli(["trace", "show", str(looping_file)], capsys)
    for name in ("A", "B", "C", "D"):
        assert re.search(rf"\b{name} (chain|llm)\b", shown), name
    assert "damaged: run aaaaaaaa ('A') is in a loop" in shown
    assert trace_stats(looping_file).summary.runs == 4


# ---------------------------------------------------------------- deep data


def test_data_nested_1000_deep_is_capped_in_the_viewer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t = Trace(tmp_path / "deepdata.jsonl")
    t.run_started("d1", name="deepdata", kind="chain", t=1.0, inputs={"x": 1})
    t.run_ended("d1", outputs="ok", t=2.0)
    t.close()
    nested = '{"v":1}'
    for _ in range(1000):
        nested = '{"n":' + nested + "}"
    lines = (tmp_path / "deepdata.jsonl").read_text().splitlines()
    lines[-1] = lines[-1].replace('"outputs":"ok"', f'"outputs":{nested}')
    assert nested in lines[-1]
    path = tmp_path / "deepdata.jsonl"
    path.write_text("\n".join(lines) + "\n")
    for args in all_commands(path, tmp_path):
        code, _, err = run_cli(args, capsys)
        assert code == 0, (args, err)
    page = render_html(path)
    payload = orjson.loads(page.split('id="ck-data" type="application/json">')[1].split("</")[0])
    depth, value = 0, payload["x"][0]["out"]
    while isinstance(value, dict) and "n" in value:
        depth, value = depth + 1, value["n"]
    assert depth < 20  # capped, with a placeholder where it was cut
    assert value == "<dict>"
