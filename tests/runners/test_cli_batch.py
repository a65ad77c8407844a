"""``chainkit batch``: exit codes, bad lines, resume, reports, traces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from chainkit.cli import main
from tests.conftest import assert_no_canary


def write_inputs(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def records(path: Path) -> list[dict[str, Any]]:
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return [line for line in lines if "header" not in line]


def test_all_succeeded_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_inputs(tmp_path / "in.jsonl", [json.dumps({"n": i}) for i in range(6)])
    out = tmp_path / "out.jsonl"
    code = main(["batch", "fact", "-i", str(source), "-o", str(out), "-c", "3", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out == ""  # progress and summary go to stderr
    assert "6 succeeded, 0 failed" in captured.err
    found = records(out)
    assert sorted(r["index"] for r in found) == list(range(6))
    assert all(isinstance(r["output"], str) and r["output"] for r in found)
    assert_no_canary(out)


def test_bad_lines_become_error_records_and_exit_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_inputs(
        tmp_path / "in.jsonl",
        ['{"n": 1}', "{oops", '"just a string"', '{"topic": "no n"}', '{"n": 5, "id": "five"}'],
    )
    out = tmp_path / "out.jsonl"
    code = main(["batch", "fact", "-i", str(source), "-o", str(out), "--no-progress", "--ordered"])
    err = capsys.readouterr().err
    assert code == 1
    found = records(out)
    assert [r["line"] for r in found] == [1, 2, 3, 4, 5]  # --ordered: input order
    assert found[0]["error"] is None
    assert found[4]["error"] is None
    assert found[4]["id"] == "five"
    assert [found[i]["error"]["type"] for i in (1, 2, 3)] == [
        "InputError",
        "InputError",
        "MissingVariableError",
    ]
    # the summary says which items failed and why
    assert "line 2: InputError" in err
    assert "line 3: InputError" in err
    assert "line 4: MissingVariableError" in err
    assert "3 of 5 items failed" in err


def test_resume_and_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_inputs(tmp_path / "in.jsonl", [json.dumps({"n": i}) for i in range(4)])
    out = tmp_path / "out.jsonl"
    args = ["batch", "fact", "-i", str(source), "-o", str(out), "--no-progress"]
    assert main(args) == 0
    capsys.readouterr()

    assert main(args) == 2  # the output exists: resume or overwrite, say which
    assert "--resume" in capsys.readouterr().err

    write_inputs(source, [json.dumps({"n": i}) for i in range(6)])
    assert main([*args, "--resume", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["skipped"], report["succeeded"], report["failed"]) == (4, 2, 0)
    assert sorted(r["index"] for r in records(out)) == list(range(6))


def test_resuming_with_another_chain_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_inputs(tmp_path / "in.jsonl", ['{"n": 1, "topic": "x"}'])
    out = tmp_path / "out.jsonl"
    assert main(["batch", "fact", "-i", str(source), "-o", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    code = main(["batch", "haiku", "-i", str(source), "-o", str(out), "--resume", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "was written by chain 'fact'" in err
    assert err.count("\n") == 1  # one line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-c", "0"], "0"),
        (["--strategy", "fast"], "fast"),
        (["--retry-failed"], "--retry-failed needs --resume"),  # the CLI names its flags
    ],
)
def test_usage_errors_exit_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    source = write_inputs(tmp_path / "in.jsonl", ['{"n": 1}'])
    out = tmp_path / "out.jsonl"
    code = main(["batch", "fact", "-i", str(source), "-o", str(out), "--no-progress", *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_unknown_chain_and_missing_input_exit_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    source = write_inputs(tmp_path / "in.jsonl", ['{"n": 1}'])
    assert main(["batch", "facts", "-i", str(source), "-o", str(out)]) == 2
    assert "unknown chain 'facts'" in capsys.readouterr().err
    assert main(["batch", "fact", "-i", str(tmp_path / "nope.jsonl"), "-o", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()


def test_stream_with_a_trace_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_inputs(tmp_path / "in.jsonl", [json.dumps({"n": i}) for i in range(3)])
    out = tmp_path / "out.jsonl"
    trace = tmp_path / "trace.jsonl"
    code = main(
        [
            "batch",
            "fact",
            "-i",
            str(source),
            "-o",
            str(out),
            "--stream",
            "--trace",
            str(trace),
            "--no-progress",
        ]
    )
    assert code == 0
    assert all(r["ttft"] is not None for r in records(out))
    from chainkit.trace import Trace

    loaded = Trace.load(trace)
    assert len(loaded.roots) == 3
    assert_no_canary(out, trace)


def test_help_lists_the_options(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["batch", "--help"]) == 0
    text = capsys.readouterr().out
    for option in (
        "--input",
        "--output",
        "--max-concurrency",
        "--rpm",
        "--tpm",
        "--retries",
        "--timeout",
        "--resume",
        "--retry-failed",
        "--ordered",
        "--stream",
        "--trace",
        "--model",
        "--chains-dir",
        "--strategy",
        "--json",
    ):
        assert option in text
