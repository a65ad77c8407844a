"""diff_traces and `chainkit trace diff`: structure, events, output text, latency and ttft."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chainkit.cli import main
from chainkit.debug import diff_traces
from chainkit.debug._sample import synthetic_trace
from chainkit.trace import Trace
from tests.debug.conftest import Recordings


def test_a_trace_matches_itself() -> None:
    trace = synthetic_trace(3, fail_every=2, events=True)
    result = diff_traces(trace, trace)
    assert result.same
    assert not result.structure
    assert not result.events
    assert not result.texts
    assert all(t.latency_delta == 0 for t in result.timings)
    assert "same structure, events and texts" in result.text(160)


def test_timing_changes_are_reported_not_structural() -> None:
    a = synthetic_trace(3, seed=1)
    b = synthetic_trace(3, seed=2)
    result = diff_traces(a, b, a_label="before", b_label="after")
    assert result.same
    paths = {t.path for t in result.timings}
    roots = {f"pipeline(topic=topic {i})" for i in range(3)}
    assert paths == roots | {f"{root}/ChatOpenAI" for root in roots}
    changed = [t for t in result.timings if t.kind == "chat_model"]
    assert len(changed) == 3
    assert any(t.ttft_delta for t in changed)
    text = result.text(160)
    assert "latency and time to first chunk" in text
    assert "before" in text


def test_roots_pair_by_inputs_whatever_their_order() -> None:
    a = synthetic_trace(4, concurrency=4)
    b = synthetic_trace(4, concurrency=1, seed=5)  # other start order and timings
    result = diff_traces(a, b)
    assert result.same


def test_added_removed_and_changed_runs() -> None:
    a = synthetic_trace(3)
    b = synthetic_trace(4, fail_every=2)
    result = diff_traces(a, b)
    assert not result.same
    changes = {(c.change, c.path) for c in result.structure}
    added = [c for c in result.structure if c.change == "added"]
    assert [c.path for c in added] == ["pipeline(topic=topic 3)"]  # a subtree is added as one
    assert "chain, error" in added[0].detail
    status = [c for c in result.structure if c.change == "changed" and "ok → error" in c.detail]
    assert {c.path for c in status} == {
        "pipeline(topic=topic 1)",
        "pipeline(topic=topic 1)/ChatOpenAI",
        "pipeline(topic=topic 1)/StrOutputParser",
    }
    assert ("changed", "pipeline(topic=topic 1)") in changes
    retries = [c for c in result.structure if "retries 0 → 1" in c.detail]
    assert [c.path for c in retries] == ["pipeline(topic=topic 1)"]
    texts = {t.path: t for t in result.texts}
    assert set(texts) == {"pipeline(topic=topic 1)", "pipeline(topic=topic 1)/ChatOpenAI"}
    model = texts["pipeline(topic=topic 1)/ChatOpenAI"]
    assert model.b
    assert model.a.startswith(model.b)
    ops = {op for op, _ in model.words()}
    assert ops == {"=", "-"}
    assert model.lines[0] == "--- a"
    rendered = result.text(200)
    assert "+ added" in rendered
    assert "[-" in rendered


def test_event_shape_changes() -> None:
    a = synthetic_trace(2, events=True)
    b = synthetic_trace(2, fail_every=2, events=True)
    result = diff_traces(a, b)
    shapes = {c.path: c for c in result.events}
    model = shapes["pipeline(topic=topic 1)/ChatOpenAI"]
    assert model.a == ["on_chat_model_start", "on_chat_model_stream", "on_chat_model_end"]
    assert model.b == ["on_chat_model_start", "on_chat_model_stream", "on_chat_model_error"]


def test_cli_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = synthetic_trace(2).save(tmp_path / "a.jsonl")
    b = synthetic_trace(2, fail_every=2).save(tmp_path / "b.jsonl")
    assert main(["trace", "diff", str(a), str(a), "--exit-code"]) == 0
    capsys.readouterr()
    assert main(["trace", "diff", str(a), str(b), "--exit-code"]) == 1
    assert "structure" in capsys.readouterr().out
    assert main(["trace", "diff", str(a), str(b), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["same"] is False
    assert data["a"] == str(a)
    assert {c["change"] for c in data["structure"]} == {"changed"}
    assert data["texts"][0]["diff"][0] == "--- a"


def test_real_recordings(recordings: Recordings) -> None:
    again = diff_traces(recordings.ok, recordings.ok_again)
    assert again.same, again.text(200)
    assert len(again.timings) == 1 + 3  # the chain and its three model runs
    broken = diff_traces(recordings.ok, recordings.failed)
    assert not broken.same
    assert any(
        c.change == "changed" and "OpenAIConnectionError" in c.detail for c in broken.structure
    )
    assert broken.summary_b.errors == 1


def test_roots_with_the_same_inputs_are_numbered() -> None:
    def twice(text: str) -> Trace:
        trace = Trace()
        for i in range(2):
            trace.run_started(f"r{i}", name="echo", kind="chain", inputs={"x": 1}, t=1.0 + i)
            trace.run_ended(f"r{i}", outputs=f"{text} {i}", t=1.5 + i)
        return trace

    result = diff_traces(twice("a"), twice("b"))
    assert [t.path for t in result.texts] == ["echo[0]", "echo[1]"]
