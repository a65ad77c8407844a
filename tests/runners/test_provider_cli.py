"""``chainkit batch --backend openai-batch`` against a ``chainkit local serve`` process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from chainkit.cli import main as cli_run
from chainkit.runners._batch_journal import journal_path

MODEL = "openai:gpt-4o-mini"


class Served:
    """A ``chainkit local serve`` process on a free loopback port."""

    def __init__(self, *options: str) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "chainkit", "local", "serve", "--port", "0", *options],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        line = self.process.stderr.readline()
        found = re.search(r"OPENAI_BASE_URL=(\S+)", line)
        if not found:
            self.stop()
            raise AssertionError(f"the local model did not start: {line!r}")
        self.base_url = found.group(1)

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ, OPENAI_BASE_URL=self.base_url, OPENAI_API_KEY="chainkit-local")
        env.pop("CHAINKIT_MODEL", None)
        env.update(extra)
        return env

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key="chainkit-local")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a wedged server
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


@pytest.fixture
def served() -> Iterator[Served]:
    server = Served()
    yield server
    server.stop()


def _inputs(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def batch(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[[list[str], dict[str, str]], Done]:
    """``chainkit batch ARGS`` in this process (the CLI's own entry point), with ``env``."""

    def run(args: list[str], env: dict[str, str]) -> Done:
        with monkeypatch.context() as patch:
            for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "CHAINKIT_MODEL"):
                patch.delenv(name, raising=False)
            for name, value in env.items():
                if name in ("OPENAI_BASE_URL", "OPENAI_API_KEY") and value:
                    patch.setenv(name, value)
            capsys.readouterr()
            code = cli_run(["batch", *args, "--no-progress"])
            out, err = capsys.readouterr()
        return Done(code, out, err)

    return run


def _records(path: Path) -> dict[int, dict[str, Any]]:
    """Records by index; fails if an index has two."""
    found: dict[int, dict[str, Any]] = {}
    for raw in path.read_bytes().splitlines():
        data = orjson.loads(raw)
        if "header" in data:
            continue
        assert data["index"] not in found, f"two records for input {data['index']}"
        found[data["index"]] = data
    return found


def _sent_indexes(server: Served) -> list[int]:
    """The input index of every request in every batch the server holds."""
    sent: list[int] = []
    with server.client() as client:
        for batch in client.batches.list(limit=100):
            data = client.files.content(batch.input_file_id).read()
            sent += [
                int(orjson.loads(line)["custom_id"].split("-")[0]) for line in data.splitlines()
            ]
    return sent


def test_a_thousand_inputs_in_three_files_equal_the_local_backend(
    served: Served, tmp_path: Path, batch: Callable[[list[str], dict[str, str]], Done]
) -> None:
    facts = _inputs(tmp_path / "facts.jsonl", [{"n": i} for i in range(1000)])
    batch_out, local_out = tmp_path / "batch.jsonl", tmp_path / "local.jsonl"
    common = ["-m", MODEL, "-i", str(facts)]
    done = batch(
        ["fact", *common, "-o", str(batch_out), "--backend", "openai-batch",
         "--batch-max-requests", "400", "--poll-interval", "0.05"],
        served.env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "openai-batch: 3 batches (3 completed)" in done.stderr
    assert "cost" in done.stderr
    local = batch(["fact", *common, "-o", str(local_out), "-c", "16"], served.env())
    assert local.returncode == 0, local.stderr
    via_batch, via_local = _records(batch_out), _records(local_out)
    assert sorted(via_batch) == list(range(1000))
    assert {i: r["output"] for i, r in via_batch.items()} == {
        i: r["output"] for i, r in via_local.items()
    }
    with served.client() as client:
        totals = sorted(b.request_counts.total for b in client.batches.list() if b.request_counts)
    assert totals == [200, 400, 400]


def test_structured_output_equals_the_local_backend(
    served: Served, tmp_path: Path, batch: Callable[[list[str], dict[str, str]], Done]
) -> None:
    texts = _inputs(tmp_path / "texts.jsonl", [{"text": f"Day {i} by the sea."} for i in range(20)])
    outs = {}
    for backend in ("openai-batch", "local"):
        out = tmp_path / f"{backend}.jsonl"
        done = batch(
            ["extract", "-m", MODEL, "-i", str(texts), "-o", str(out), "--backend", backend,
             "--poll-interval", "0.05"] if backend != "local"
            else ["extract", "-m", MODEL, "-i", str(texts), "-o", str(out)],
            served.env(),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        outs[backend] = {i: r["output"] for i, r in _records(out).items()}
    assert outs["openai-batch"] == outs["local"]
    assert set(outs["local"][0]) == {"title", "keywords", "sentiment"}


def test_sigkill_while_waiting_then_resume_sends_nothing_twice(
    tmp_path: Path, batch: Callable[[list[str], dict[str, str]], Done]
) -> None:
    server = Served("--batch-delay", "2")
    try:
        facts = _inputs(tmp_path / "facts.jsonl", [{"n": i} for i in range(300)])
        out = tmp_path / "out.jsonl"
        args = ["fact", "-m", MODEL, "-i", str(facts), "-o", str(out), "--backend",
                "openai-batch", "--batch-max-requests", "100",
                "--poll-interval", "0.1"]  # fmt: skip
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "chainkit", "batch", *args, "--no-progress"],
            env=server.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        journal = journal_path(out)
        deadline = time.monotonic() + 60
        while (journal.read_bytes() if journal.exists() else b"").count(b'"created"') < 3:
            assert child.poll() is None, "the batch ended before it was killed"
            assert time.monotonic() < deadline, "no batches were created"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
        assert _records(out) == {}  # killed while waiting: nothing recorded yet
        resumed = batch([*args, "--resume"], server.env())
        assert resumed.returncode == 0, resumed.stderr
        assert "3 re-attached" in resumed.stderr
        sent = _sent_indexes(server)
    finally:
        server.stop()
    assert sorted(sent) == list(range(300))  # every input submitted exactly once
    records = _records(out)
    assert sorted(records) == list(range(300))
    assert all(r["error"] is None for r in records.values())


def test_ctrl_c_leaves_batches_running_status_and_cancel_see_them(
    tmp_path: Path, batch: Callable[[list[str], dict[str, str]], Done]
) -> None:
    server = Served("--batch-delay", "30")
    try:
        facts = _inputs(tmp_path / "facts.jsonl", [{"n": i} for i in range(4)])
        out = tmp_path / "out.jsonl"
        args = ["fact", "-m", MODEL, "-i", str(facts), "-o", str(out), "--backend",
                "openai-batch", "--poll-interval", "0.1"]  # fmt: skip
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "chainkit", "batch", *args, "--no-progress"],
            env=server.env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        journal = journal_path(out)
        while b'"created"' not in (journal.read_bytes() if journal.exists() else b""):
            assert child.poll() is None
            time.sleep(0.02)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
        assert child.returncode == 130
        assert "Traceback" not in stderr
        last = stderr.strip().splitlines()[-1]  # after the recorder's "interrupted" warning
        assert "1 batches keep running" in last
        assert "--resume" in last
        assert f"chainkit batch cancel --output {out}" in last
        status = batch(["status", "-o", str(out)], server.env())
        assert status.returncode == 0, status.stderr
        assert re.search(r"batch_\w+\s+(validating|in_progress)\s+\d/4 done", status.stdout)
        cancel = batch(["cancel", "-o", str(out)], server.env())
        assert cancel.returncode == 0, cancel.stderr
        assert re.search(r"(cancelling|cancelled)", cancel.stdout)
        resumed = batch([*args, "--resume"], server.env())
    finally:
        server.stop()
    assert resumed.returncode == 1
    assert "Traceback" not in resumed.stderr
    records = _records(out)
    assert sorted(records) == [0, 1, 2, 3]
    errors = [r["error"] for r in records.values() if r["error"] is not None]
    assert errors  # what ran before the cancel has its output; the rest says why not
    assert all("cancelled" in error["message"] for error in errors)


def test_an_expired_batch_is_error_records_and_exit_1(
    tmp_path: Path, batch: Callable[[list[str], dict[str, str]], Done]
) -> None:
    server = Served("--batch-window", "0")
    try:
        facts = _inputs(tmp_path / "facts.jsonl", [{"n": i} for i in range(3)])
        out = tmp_path / "out.jsonl"
        done = batch(
            ["fact", "-m", MODEL, "-i", str(facts), "-o", str(out), "--backend",
             "openai-batch", "--poll-interval", "0.05", "--retries", "1"],
            server.env(),
        )  # fmt: skip
    finally:
        server.stop()
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "batch_expired" in done.stderr
    records = _records(out)
    assert sorted(records) == [0, 1, 2]
    assert all(r["error"]["attempts"] == 2 for r in records.values())


BAD = {
    "unbatchable": ("outline_story", {}, "provider batch backend (step 'RunnableAssign<outline>')"),
    "missing key": ("fact", {"OPENAI_API_KEY": ""}, "openai needs an API key: OPENAI_API_KEY"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_nothing_uploaded(
    served: Served, tmp_path: Path, batch: Callable[[list[str], dict[str, str]], Done], case: str
) -> None:
    chain, env_change, expected = BAD[case]
    facts = _inputs(tmp_path / "in.jsonl", [{"n": 1, "topic": "tea"}])
    out = tmp_path / "out.jsonl"
    done = batch(
        [chain, "-m", MODEL, "-i", str(facts), "-o", str(out), "--backend", "openai-batch"],
        served.env(**env_change),
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert expected in lines[0]
    with served.client() as client:
        assert list(client.files.list()) == []
        assert list(client.batches.list()) == []
