"""The results file under accident and attack: it is the input file, a second writer comes,
the disk fills up, a forged record names an index far beyond the inputs."""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from chainkit.cli import main
from chainkit.errors import ChainkitRunError, ConfigError
from chainkit.runners import _output as output_module
from chainkit.runners import run_batch, run_batch_sync
from tests.runners.conftest import echo_chain

FAST: dict[str, Any] = {"progress": False, "backoff_base": 0.001, "backoff_max": 0.01}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _restore_cli_logging() -> Any:
    logger = logging.getLogger("chainkit")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def records_of(path: Path) -> list[dict[str, Any]]:
    lines = [orjson.loads(raw) for raw in path.read_bytes().splitlines() if raw.strip()]
    return [line for line in lines if "header" not in line]


def inputs_file(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(n)))
    return path


# ---------------------------------------------------------------- output == input


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link", "relative path"])
@pytest.mark.parametrize("mode", ["--overwrite", "--resume"])
def test_the_input_file_is_never_the_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str, mode: str
) -> None:
    source = inputs_file(tmp_path / "x.jsonl", 3)
    before = source.read_bytes()
    output = source
    if how == "symlink":
        output = tmp_path / "link.jsonl"
        output.symlink_to(source)
    elif how == "hard link":
        output = tmp_path / "hard.jsonl"
        os.link(source, output)
    elif how == "relative path":
        output = tmp_path / "sub" / ".." / "x.jsonl"
        (tmp_path / "sub").mkdir()
    code = main(["batch", "fact", "-i", str(source), "-o", str(output), mode, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith(f"chainkit: error: output file {output} is the input file {source}")
    assert source.read_bytes() == before  # the inputs are intact


# ---------------------------------------------------------------- one writer


def _child_batch(output: Path, n: int, delay: float) -> subprocess.Popen[str]:
    """A real second process writing ``output`` through run_batch, slowly."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from chainkit.runners import run_batch_sync\n"
        "from tests.runners.conftest import echo_chain\n"
        "run_batch_sync(echo_chain(delay=float(sys.argv[4])), "
        "[{'n': i} for i in range(int(sys.argv[3]))], output=sys.argv[2], resume=True, "
        "max_concurrency=1, progress=False)\n"
    )
    return subprocess.Popen(  # noqa: S603 - our own code
        [sys.executable, "-c", code, str(ROOT), str(output), str(n), str(delay)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_records(path: Path, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.exists() and len(records_of_complete(path)) >= count:
            return
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.05)
    raise AssertionError(f"the child wrote no {count} records to {path}")


def records_of_complete(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1]
    lines = [orjson.loads(line) for line in complete.splitlines() if line.strip()]
    return [line for line in lines if "header" not in line]


def test_a_second_writer_is_refused_and_a_killed_writers_lock_is_taken_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    n = 30
    child = _child_batch(out, n, delay=0.05)
    try:
        _wait_for_records(out, 3, child)
        size = out.stat().st_size
        # a second writer in this process: refused at once, nothing written
        with pytest.raises(ConfigError, match="is being written by another run"):
            run_batch_sync(echo_chain(), [{"n": i} for i in range(n)], output=out, resume=True)
        # and through the CLI: one line, exit 2
        source = inputs_file(tmp_path / "in.jsonl", n)
        code = main(["batch", "fact", "-i", str(source), "-o", str(out), "--resume"])
        err = capsys.readouterr().err
        assert code == 2
        assert err.count("\n") == 1
        assert "is being written by another run" in err
        assert out.stat().st_size >= size  # only the first writer wrote
    finally:
        child.kill()  # SIGKILL: its lock is left behind, as by a crash
        child.wait(15)
        if child.stderr is not None:
            child.stderr.close()
    written = len(records_of_complete(out))
    assert 3 <= written < n
    calls: dict[int, int] = {}
    report = run_batch_sync(
        echo_chain(calls=calls), [{"n": i} for i in range(n)], output=out, resume=True, **FAST
    )
    assert report.skipped == written
    records = records_of(out)
    assert sorted(r["index"] for r in records) == list(range(n))  # one record per input
    assert set(calls) == set(range(written, n))


# ---------------------------------------------------------------- a full disk


class _FullDisk:
    """``os`` for the results writer, whose writes fail with ENOSPC once ``room`` is used."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.full = False

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        if len(data) > self.room:
            os.write(fd, bytes(data[: self.room]))  # a torn line, as a real disk leaves
            self.room = 0
            self.full = True
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return os.write(fd, data)


async def test_a_full_disk_is_one_clear_error_and_resume_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jsonl"
    inputs = [{"n": i} for i in range(40)]
    disk = _FullDisk(room=3000)
    monkeypatch.setattr(output_module, "os", disk)
    with pytest.raises(ChainkitRunError) as info:
        await run_batch(echo_chain(), inputs, output=out, max_concurrency=4, **FAST)
    assert disk.full
    message = str(info.value)
    assert f"cannot write to the results file {out}: no space left" in message
    assert "--resume" in message
    kept = records_of_complete(out)
    assert kept  # every record written before the disk filled is there
    assert not out.read_bytes().endswith(b"\n")  # the torn last line a real disk leaves
    monkeypatch.setattr(output_module, "os", os)  # space freed
    calls: dict[int, int] = {}
    report = await run_batch(echo_chain(calls=calls), inputs, output=out, resume=True, **FAST)
    assert report.skipped == len(kept)
    assert sorted(r["index"] for r in records_of(out)) == list(range(40))
    assert not set(calls) & {r["index"] for r in kept}  # nothing recorded ran again


def test_a_full_disk_at_the_cli_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = inputs_file(tmp_path / "in.jsonl", 12)
    out = tmp_path / "out.jsonl"
    monkeypatch.setattr(output_module, "os", _FullDisk(room=1500))
    code = main(["batch", "fact", "-i", str(source), "-o", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    error_lines = [line for line in err.splitlines() if line.startswith("chainkit: error:")]
    expected = (
        f"chainkit: error: cannot write to the results file {out}: no space left on the "
        f"device; every record written before is kept: free some space (or move the file) "
        f"and run again with --resume"
    )
    assert error_lines == [expected]
    assert "Traceback" not in err
    assert "CancelledError" not in err


# ---------------------------------------------------------------- forged records


@pytest.mark.parametrize("index", [4611686018427387904, 1_000_000_000, 10])
async def test_a_record_index_beyond_the_inputs_is_a_corrupt_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, index: int
) -> None:
    out = tmp_path / "out.jsonl"
    inputs = [{"n": i} for i in range(10)]
    await run_batch(echo_chain(), inputs[:4], output=out, **FAST)
    forged = {"index": index, "input": {"n": 1}, "output": "forged", "error": None}
    with out.open("ab") as handle:
        handle.write(orjson.dumps(forged) + b"\n")
    with caplog.at_level(logging.WARNING, logger="chainkit"):
        report = await run_batch(echo_chain(), inputs, output=out, resume=True, **FAST)
    assert f"record index {index} is beyond the 10 inputs; ignoring it" in caplog.text
    assert report.skipped == 4
    assert report.succeeded == 6
    indexes = sorted(r["index"] for r in records_of(out) if r.get("output") != "forged")
    assert indexes == list(range(10))


def test_a_forged_index_with_inputs_of_unknown_length_is_bounded(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(
        b'{"index": 0, "output": "a", "error": null}\n'
        b'{"index": 4611686018427387904, "output": "b", "error": null}\n'
    )
    state = output_module.scan_results(out)  # total unknown (an async iterable of inputs)
    assert (state.records, state.corrupt) == (1, 1)
    assert len(state.statuses) == 1
    assert state.status(0) == output_module.SUCCEEDED
