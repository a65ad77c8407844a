"""``chainkit stream`` and ``chainkit events`` on the local model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chainkit.chains import get_chain
from chainkit.cli import main
from chainkit.trace import Trace
from tests.conftest import assert_no_canary

SUMMARY = re.compile(r"^ttft \d+\.\d{3}s · \d+ chunks · \d+\+\d+=\d+ tokens · \d+\.\d+s$")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_stream_sync_prints_chunks_then_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "stream", "song", "-i", "topic=sparkling water", "--sep", "|")
    assert code == 0
    chunks = list(get_chain("song").stream({"topic": "sparkling water"}))
    assert out == "|".join(chunks) + "|\n"
    assert SUMMARY.match(err.strip()), err


def test_stream_async_with_a_trace(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    code, out, err = run(
        capsys, "stream", "haiku", "-i", "topic=tea", "--async", "--trace", str(path)
    )
    assert code == 0
    assert SUMMARY.match(err.strip()), err
    trace = Trace.load(path)
    (root,) = trace.roots
    assert root.name == "haiku"
    (model,) = [r for r in trace.runs if r.is_model]
    assert out == model.text + "\n"
    assert f"{len(model.text_chunks)} chunks" in err
    assert_no_canary(tmp_path)


def test_stream_of_a_multi_step_chain_labels_its_parts(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "stream", "outline_story", "-i", "topic=a lighthouse")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "[topic] a lighthouse"
    assert {line.split("]")[0] + "]" for line in lines} == {
        "[topic]", "[outline]", "[story]", "[title]", "[word_count]",
    }  # fmt: skip
    assert all(line.startswith("[") for line in lines)


@pytest.mark.parametrize("command", ["stream", "events"])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sng", "-i", "topic=x"], "unknown chain 'sng'; did you mean song?"),
        (["song"], "chain 'song' needs input variable 'topic'"),
        (["song", "-i", "topic"], "-i 'topic' is not NAME=VALUE"),
        (["fact", "-i", "topic=x"], "chain 'fact' needs input variable 'n'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    command: str, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, command, *args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert message in err


def test_broken_spec_file_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHAINKIT_CHAINS_DIR", raising=False)
    (tmp_path / "bad.toml").write_text('name = "bad"\ntemplate = 3\n')
    code, _, err = run(capsys, "stream", "bad", "-i", "x=1", "--chains-dir", str(tmp_path))
    assert code == 2
    assert err.count("\n") == 1
    assert "bad.toml" in err


def test_events_readable(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "events", "song", "-i", "topic=owls")
    assert code == 0
    lines = out.splitlines()
    assert re.match(r"^\s+0\.000s on_chain_start\s+song$", lines[0])
    assert re.search(r"^\s+\d+\.\d{3}s   on_prompt_start\s+ChatPromptTemplate$", lines[1])
    streams = [line for line in lines if "on_chat_model_stream" in line]
    assert streams
    assert all(re.search(r"ChatOpenAI  '.*'$", line) for line in streams)
    assert re.match(r"^\s+\d+\.\d{3}s on_chain_end\s+song  -> '", lines[-1])
    offsets = [float(line.split("s", 1)[0]) for line in lines]
    assert offsets == sorted(offsets)


def test_events_json_limit_and_trace(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    code, out, _ = run(
        capsys, "events", "song", "-i", "topic=owls", "--json", "--limit", "6", "--trace", str(path)
    )
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert len(events) == 6
    assert events[0]["event"] == "on_chain_start"
    assert set(events[0]) >= {"event", "name", "run_id", "parent_ids", "tags", "metadata", "data"}
    assert [e["event"] for e in Trace.load(path).events] == [e["event"] for e in events]
    assert_no_canary(tmp_path)


def test_events_filters_and_v1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "events", "song", "-i", "topic=owls", "--include-types", "chat_model,prompt"
    )
    assert code == 0
    kinds = {line.split()[1] for line in out.splitlines()}
    assert kinds <= {
        "on_chat_model_start", "on_chat_model_stream", "on_chat_model_end",
        "on_prompt_start", "on_prompt_end",
    }  # fmt: skip
    code, out, err = run(
        capsys, "events", "song", "-i", "topic=owls", "--version", "v1", "--exclude-names", "song"
    )
    assert code == 0
    assert "deprecated" not in err
    assert "on_chat_model_stream" in out
    assert " song" not in out


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("stream", "events"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0
        assert "--input" in out
        assert "--trace" in out
