"""The CLI's rough edges (issue 15): help text, one exit-code rule, one-line errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chainkit.cli import main
from chainkit.runners import BatchReport
from chainkit.testing import local_model_server


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main([*argv, "--help"]) == 0
    return capsys.readouterr().out


def test_batch_help_keeps_the_extra_and_shows_flags_without_a_value(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    text = _help(capsys, "batch")
    assert "pip install 'chainkit[ray]'" in text  # Rich markup no longer eats [ray]
    assert "<bool>" not in text  # --json, --resume ... take no value
    assert "--json" in text


def test_the_exit_code_rule_is_in_the_help(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    text = " ".join(_help(capsys).split())
    assert "Exit codes: 0 done; 1 the work failed" in text
    assert "2 misuse" in text
    assert "a port in use" in text


def test_a_directory_as_batch_input_or_output_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"n": 1}\n')
    assert main(["batch", "fact", "-i", str(tmp_path), "-o", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"input file {tmp_path} is a directory" in err
    assert err.count("\n") == 1
    assert main(["batch", "fact", "-i", str(inputs), "-o", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"output {tmp_path} is a directory" in err
    assert "IsADirectoryError" not in err
    assert err.count("\n") == 1


def test_an_existing_output_is_phrased_with_the_cli_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"n": 1}\n')
    out = tmp_path / "o.jsonl"
    argv = ["batch", "fact", "-i", str(inputs), "-o", str(out), "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "add --resume to continue it, --overwrite to start over" in err
    assert "resume=True" not in err  # no Python forms at the command line


@pytest.mark.parametrize("command", [["serve"], ["local", "serve"]])
def test_a_port_in_use_is_a_misuse_for_both_servers(command: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "chainkit", *command, "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert result.stderr.count("\n") == 1


def test_ctrl_c_in_a_batch_prints_one_line_saying_how_to_resume(tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(f'{{"n": {i}}}\n' for i in range(4)))
    out = tmp_path / "out.jsonl"
    with local_model_server(ttft=60.0) as server:  # no answer comes in time
        env = dict(os.environ, OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="x")
        command = [sys.executable, "-m", "chainkit", "batch", "fact", "-i", str(inputs)]
        command += ["-o", str(out), "--model", "openai:gpt-4o-mini", "--no-progress"]
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 60
            while server.stats()["in_flight"] == 0:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the request never reached the model"
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 130, err
    line = f"chainkit: interrupted; finished items are in {out}: run the same command with "
    assert err.splitlines() == [line + "--resume to do the rest"]


def test_the_report_gives_wall_time_waited_and_no_false_concurrency_drop() -> None:
    report = BatchReport(chain="fact", max_concurrency=16, min_concurrency=16)
    report.rate_limit_wait = 1.5
    text = report.summary()
    assert "1.50 s waited" in text
    assert "went down" not in text  # it stayed at 16
    report.rate_limited, report.min_concurrency = 3, 4
    assert "3 x 429; 1.50 s waited; concurrency went down from 16 to 4" in report.summary()


@pytest.fixture(scope="module")
def two_calls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    trace = tmp_path_factory.mktemp("trace") / "trace.jsonl"
    for topic in ("cats", "dogs"):
        argv = ["stream", "story", "-i", f"topic={topic}", "--model", "local"]
        assert main([*argv, "--trace", str(trace)]) == 0
    return trace


def test_trace_show_ids_tell_runs_apart_and_are_accepted_by_run(
    two_calls: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chainkit.trace import Trace

    monkeypatch.setenv("COLUMNS", "200")
    capsys.readouterr()
    assert main(["trace", "show", str(two_calls)]) == 0
    shown = capsys.readouterr().out
    runs = Trace.load(two_calls).runs
    ids = [run.run_id[-8:] for run in runs]
    assert len(set(ids)) == len(runs) == 8  # UUIDv7 share their leading (time) characters
    for part in ids:
        assert f" {part}" in shown
    model_run = next(run for run in runs if run.kind == "chat_model")
    assert main(["trace", "show", str(two_calls), "--run", model_run.run_id[-8:]]) == 0
    only = capsys.readouterr().out
    assert model_run.run_id[-8:] in only
    assert "StrOutputParser" not in only  # just that run


def test_trace_stats_counts_the_events_trace_show_lists(
    two_calls: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    capsys.readouterr()
    assert main(["trace", "show", str(two_calls), "--events", "--limit", "100000"]) == 0
    listed = len(capsys.readouterr().out.splitlines()) - 1  # the header line
    assert main(["trace", "stats", str(two_calls), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["events"] == listed > 0
    assert stats["recorded_events"] == 0  # run records stand in for astream_events


def test_chains_show_indents_every_line_of_a_multi_line_template(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["chains", "show", "outline_story"]) == 0
    out = capsys.readouterr().out
    template = out.split("template:\n", 1)[1].split("graph:\n", 1)[0]
    lines = [line for line in template.splitlines() if line]
    steps = [line for line in lines if line.startswith("  ") and not line.startswith("   ")]
    assert [s.split(":", 1)[0].strip() for s in steps] == ["outline", "title", "story"]
    assert all(line.startswith("    ") for line in lines if line not in steps)
    assert "    {outline}" in lines


def test_local_exec_runs_the_command_with_this_environment_first_on_path(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no activated environment
    probe = (
        "import os, sys, langchain_openai; sys.exit(0 if 'OPENAI_BASE_URL' in os.environ else 3)"
    )
    assert main(["local", "exec", "--", "python", "-c", probe]) == 0
    assert main(["local", "exec", "--help"]) == 0
    assert "first on PATH" in " ".join(capsys.readouterr().out.split())


def test_retry_failed_without_resume_is_phrased_for_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"n": 1}\n')
    argv = ["batch", "fact", "-i", str(inputs), "-o", str(tmp_path / "o.jsonl"), "--retry-failed"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--retry-failed needs --resume" in err
    assert "=True" not in err


def test_waits_that_overlap_count_once() -> None:
    import asyncio

    from chainkit.runners._limits import RateLimits

    async def eight_at_once() -> RateLimits:
        limits = RateLimits.create(rpm=1200, tpm=None)  # one request every 50 ms
        await asyncio.gather(*(limits.acquire(1.0) for _ in range(8)))
        return limits

    limits = asyncio.run(eight_at_once())
    # each waits for those before it: the waits add up to about 28 slots, the wall to 7
    assert 0 < limits.clock.total < limits.waited
