"""Terminal views (tree, timeline, events) and `chainkit trace show|stats`: structural checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chainkit.cli import main
from chainkit.debug import events_view, timeline_view, trace_stats, tree_view
from chainkit.debug._sample import synthetic_trace
from chainkit.errors import UserError
from chainkit.trace import Trace
from tests.debug.conftest import Recordings

WIDTH = 200


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_tree_lists_every_run_under_its_parent(small_trace: Trace) -> None:
    lines = _lines(tree_view(small_trace).text(WIDTH))
    assert lines[0].startswith("trace")
    body = lines[1:]
    assert len(body) == len(small_trace.runs) == 12
    roots = [line for line in body if line.startswith(("✓", "✗"))]
    assert len(roots) == 3
    # each root is followed by its three children, drawn one level deeper
    for index, line in enumerate(body):
        if line in roots:
            children = body[index + 1 : index + 4]
            assert [c[:4] for c in children] == ["├── ", "├── ", "└── "]
    assert [line.split()[1] for line in roots] == ["pipeline"] * 3


def test_tree_shows_status_latency_ttft_tokens_and_errors(small_trace: Trace) -> None:
    text = tree_view(small_trace).text(WIDTH)
    model_lines = [line for line in text.splitlines() if "ChatOpenAI chat_model" in line]
    assert len(model_lines) == 3
    ok = next(line for line in model_lines if "✓" in line)
    assert "ttft" in ok
    assert " ms" in ok
    assert "tok" in ok
    failed = next(line for line in model_lines if "✗" in line)
    assert "InternalServerError: Error code: 500" in failed
    assert "1 retries" in text


def test_tree_errors_keeps_failed_runs_and_their_ancestors(small_trace: Trace) -> None:
    body = _lines(tree_view(small_trace, errors=True).text(WIDTH))[1:]
    assert [line.split()[-1] if "✗" not in line else "✗" for line in body] == ["✗"] * 3
    assert "ChatPromptTemplate" not in "\n".join(body)  # it succeeded


def test_tree_run_selects_a_subtree_by_id_prefix_or_name(small_trace: Trace) -> None:
    body = _lines(tree_view(small_trace, run="00001-call").text(WIDTH))[1:]
    assert len(body) == 4
    assert "✗ pipeline" in body[0]
    assert len(_lines(tree_view(small_trace, run="00001-mo").text(WIDTH))) == 2
    with pytest.raises(UserError, match="3 runs are named 'pipeline'"):
        tree_view(small_trace, run="pipeline").text()
    with pytest.raises(UserError, match="did you mean ChatOpenAI"):
        tree_view(small_trace, run="ChatOpenAl").text()


def test_tree_depth_and_limit(small_trace: Trace) -> None:
    assert len(_lines(tree_view(small_trace, depth=0).text(WIDTH))) == 1 + 3
    limited = _lines(tree_view(small_trace, limit=5).text(WIDTH))
    assert len(limited) == 1 + 5 + 1
    assert "7 more runs" in limited[-1]


def _bars(text: str) -> list[str]:
    """The bar column of each timeline row (it starts under the axis' "0")."""
    lines = _lines(text)
    header = lines[1]
    at = header.index(" 0 ") + 1
    return [line[at:].rstrip() for line in lines[2:]]


def test_timeline_puts_runs_on_one_axis(small_trace: Trace) -> None:
    text = timeline_view(small_trace).text(WIDTH)
    header = _lines(text)[1]
    assert header.split()[:4] == ["run", "start", "took", "0"]
    assert header.rstrip().endswith(" ms")
    bars = _bars(text)
    assert len(bars) == 12
    assert all(set(bar) <= set(" ░█") and bar.strip() for bar in bars)
    longest = max(len(bar) for bar in bars)
    assert longest >= WIDTH // 2  # the last run to end reaches the end of the axis
    rows = _lines(text)[2:]
    assert sum("✗" in row for row in rows) == 3


def test_timeline_bars_follow_start_times() -> None:
    trace = synthetic_trace(4, concurrency=1)  # one call after another
    bars = _bars(timeline_view(trace, depth=0).text(120))
    firsts = [len(bar) - len(bar.lstrip()) for bar in bars]
    assert firsts == sorted(firsts)
    assert firsts[0] == 0
    assert firsts[-1] > firsts[1] > 0
    # a call waits for its first chunk (░) before it streams (█)
    assert all(bar.strip().startswith("░") and bar.endswith("█") for bar in bars)


def test_events_view_indents_events_by_depth(small_trace: Trace) -> None:
    lines = _lines(events_view(small_trace).text(WIDTH))[1:]
    assert len(lines) == len(small_trace.events)
    starts = [line for line in lines if "on_chain_start pipeline" in line]
    models = [line for line in lines if "on_chat_model_start ChatOpenAI" in line]
    assert len(starts) == len(models) == 3
    indent = [line.index("on_") for line in (starts[0], models[0])]
    assert indent[1] == indent[0] + 2
    assert any("'Gold'" in line for line in lines)
    assert any("on_chat_model_error" in line and "InternalServerError" in line for line in lines)


def test_events_view_without_events_uses_the_run_records() -> None:
    trace = synthetic_trace(1, chunks=4)
    lines = _lines(events_view(trace).text(WIDTH))[1:]
    kinds = [line.split()[2] for line in lines]
    assert kinds.count("chunk") == 4
    assert kinds[0] == "chain_start"
    assert kinds[-1] == "chain_end"


def test_views_render_html_for_notebooks(small_trace: Trace) -> None:
    for view in (tree_view(small_trace), timeline_view(small_trace), events_view(small_trace)):
        page = view._repr_html_()
        assert page.startswith("<pre")
        assert "pipeline" in page
        assert "<script" not in page


def test_stats_per_name(small_trace: Trace) -> None:
    stats = trace_stats(small_trace)
    data = stats.to_dict()
    assert data["calls"] == 3
    assert data["runs"] == 12
    assert data["errors"] == 1
    assert data["retries"] == 1
    assert data["error_types"] == {"InternalServerError": 3}
    names = {(n["name"], n["kind"]): n for n in data["by_name"]}
    assert names["ChatOpenAI", "chat_model"]["runs"] == 3
    assert names["ChatOpenAI", "chat_model"]["errors"] == 1
    assert names["pipeline", "chain"]["latency"]["n"] == 3
    text = stats.text(WIDTH)
    assert "errors by type" in text
    assert "InternalServerError" in text


# ------------------------------------------------------------------ CLI


def test_cli_show_views(small_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "show", str(small_file)]) == 0
    tree = capsys.readouterr().out
    assert tree.count("pipeline") >= 3
    assert main(["trace", "show", str(small_file), "--timeline"]) == 0
    assert "start" in capsys.readouterr().out
    assert main(["trace", "show", str(small_file), "--events", "--errors"]) == 0
    events = capsys.readouterr().out
    assert "on_chat_model_error" in events
    assert "topic 0" not in events  # only the failed call's events


def test_cli_show_misuse(small_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "show", str(small_file), "--tree", "--events"]) == 2
    assert "choose one of" in capsys.readouterr().err
    assert main(["trace", "show", str(small_file), "--run", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no run 'nope'" in err
    assert err.rstrip().endswith("`chainkit trace show FILE` lists the runs")  # the CLI's advice
    assert main(["trace", "show", str(small_file.with_name("missing.jsonl"))]) == 2
    assert "missing.jsonl does not exist" in capsys.readouterr().err


def test_cli_stats_json(small_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "stats", str(small_file), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["runs"] == 12
    assert data["source"] == str(small_file)
    assert main(["trace", "stats", str(small_file)]) == 0
    assert "by run name" in capsys.readouterr().out


def test_real_recording_views(recordings: Recordings) -> None:
    ok = Trace.load(recordings.ok)
    tree = tree_view(ok).text(WIDTH)
    for name in ("outline_story", "outline", "title", "story", "word_count", "ChatOpenAI"):
        assert name in tree
    failed = tree_view(recordings.failed, errors=True).text(WIDTH)
    assert "OpenAIConnectionError" in failed
    events = events_view(ok).text(WIDTH)
    assert "on_chat_model_stream" in events


def test_cli_refuses_files_that_are_not_traces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results.jsonl"
    results.write_text('{"header": {"format": "chainkit.results/1"}}\n')
    assert main(["trace", "stats", str(results)]) == 1
    assert "is a result file of `chainkit batch`" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["trace", "show", str(empty)]) == 1
    assert "holds no trace records" in capsys.readouterr().err
