"""The README is a walk that works: every block runs in order, as written, in one fresh folder.

The folder holds what a checkout gives a reader (``examples/``, and ``.venv`` as
``make`` leaves it, first on PATH as after ``. .venv/bin/activate``). Then, top to
bottom:

- ```python blocks run in a fresh interpreter;
- ```bash blocks run line by line in bash; a server they start (``chainkit local
  serve``, ``chainkit serve``) runs in the background until the walk ends (on a free
  loopback port: later blocks get its address in place of 8000 / 8080);
- ```text blocks that show ``$ command`` and its output are checked: the command's
  output (from the run above, or run now) matches the lines shown, with numbers,
  ids and ``...`` as wildcards.

What cannot run offline is listed in :func:`why_not` with the reason (a real
provider's key, a Ray cluster, a public address, the set-up itself).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import assert_no_canary

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README.read_text(), flags=re.S)
BASH = shutil.which("bash") or "/bin/bash"
PORTS = ("8000", "8080")  # the servers the README starts and later blocks call


def why_not(command: str) -> str | None:
    """Why a README shell command does not run in the walk (None: it runs)."""
    reasons = {
        "make ": "the set-up itself (`make test` runs this walk)",
        "pip install": "installs from the package index (`make` did)",
        "OPENAI_API_KEY=sk-": "needs a provider's API key",
        "openai:": "needs a provider's API key (the local model runs the same commands)",
        "OPENAI_BASE_URL=http://localhost:11434": "needs a server of your own",
        "--host 0.0.0.0": "binds a public address",
        "ray start": "needs a Ray cluster",
        "--backend ray": "starts Ray (tests/runners/test_ray.py runs it)",
        "uvicorn --factory": "the app `chainkit serve` runs, under a uvicorn of your own",
        "chainkit batch status": "asks the provider about the batches of the line above",
        "chainkit batch cancel": "asks the provider about the batches of the line above",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "needs an OpenTelemetry collector",
        "--otlp": "needs an OpenTelemetry collector",
    }
    if command.startswith("chainkit trace export") and "-o " not in command:
        return "needs an OpenTelemetry collector (the line writing a file runs)"
    return next((why for key, why in reasons.items() if key in command), None)


def _commands(block: str) -> Iterator[str]:
    """The commands of a bash block: continuation lines joined, comments and blanks dropped."""
    for command in block.replace("\\\n", " ").splitlines():
        if command.strip() and not command.lstrip().startswith("#"):
            yield command.strip()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Walk:
    folder: Path
    env: dict[str, str]
    ports: dict[str, str] = field(default_factory=dict)  # README port -> the real one
    outputs: dict[str, str] = field(default_factory=dict)  # command -> what it printed
    servers: list[subprocess.Popen[str]] = field(default_factory=list)

    def localise(self, text: str) -> str:
        for shown, real in self.ports.items():
            text = text.replace(f"127.0.0.1:{shown}", f"127.0.0.1:{real}")
            text = text.replace(f"localhost:{shown}", f"localhost:{real}")
        return text

    def run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        print("walk:", argv[-1][:100], flush=True)  # shown in a failure report
        return subprocess.run(  # noqa: S603 - the README's own commands
            argv,
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def python(self, index: int, code: str) -> None:
        script = self.folder / f"readme_block_{index}.py"
        script.write_text(self.localise(code))
        result = self.run([sys.executable, str(script)])
        assert result.returncode == 0, f"README block {index}:\n{code}\n{result.stderr[-3000:]}"
        assert result.stdout.strip(), f"README block {index} printed nothing"

    def shell(self, command: str) -> None:
        if command.startswith(("chainkit serve", "chainkit local serve")):
            self.serve(command)
            return
        if command.startswith("export "):  # for the commands after it, as in one shell
            for assignment in shlex.split(command, comments=True)[1:]:
                name, _, value = assignment.partition("=")
                self.env[name] = value
            return
        result = self.run([BASH, "-c", self.localise(command)])
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"README command failed: {command}\n{output[-3000:]}"
        self.outputs[command] = output

    def serve(self, command: str) -> None:
        shown = re.search(r"--port (\d+)", command)
        port = str(_free_port())
        if shown is not None:  # later blocks call it: keep it running, on a free port
            self.ports[shown.group(1)] = port
            command = command.replace(shown.group(0), f"--port {port}")
        else:
            command = f"{command} --port {port}"
        server = subprocess.Popen(  # noqa: S603 - the README's own command
            [BASH, "-c", f"exec {command}"],
            cwd=self.folder,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.servers.append(server)
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", int(port))):
                break
            assert server.poll() is None, f"{command} exited: {server.communicate()[1]}"
            assert time.monotonic() < deadline, f"{command} never listened"
            time.sleep(0.1)
        if shown is None:  # a variant shown for its options: it starts; stop it
            self.stop(server)

    def stop(self, server: subprocess.Popen[str]) -> None:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.communicate()
        self.servers.remove(server)

    def check_shown(self, block: str) -> None:
        """A ```text block of ``$ command`` lines, each followed by what it prints."""
        for part in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, shown = part.partition("\n")
            if why_not(command) is not None:
                continue
            if command not in self.outputs:
                result = self.run([BASH, "-c", self.localise(command)])
                self.outputs[command] = result.stdout + result.stderr
            expect_lines(command, shown, self.outputs[command])


def _pattern(line: str) -> re.Pattern[str]:
    """A shown output line as a pattern: numbers, run ids and ``...`` / ``…`` match anything."""
    text = re.escape(line.rstrip())
    text = re.sub(r"\\\.\\\.\\\.|…", "__ANY__", text)
    text = re.sub(r"\b[0-9a-f]{8}\b", "__ID__", text)
    text = re.sub(r"\d+(?:\\\.\d+)?", "__NUM__", text)
    text = text.replace("__ANY__", ".*").replace("__ID__", "[0-9a-f]{8}")
    return re.compile(text.replace("__NUM__", r"[0-9.]+"))


def expect_lines(command: str, shown: str, output: str) -> None:
    want = [line for line in shown.splitlines() if line.strip()]
    got = [line.rstrip() for line in output.splitlines() if line.strip()]
    assert len(got) == len(want), f"$ {command}\nshown:\n{shown}\nprinted:\n{output}"
    for wanted, line in zip(want, got, strict=True):
        assert _pattern(wanted).fullmatch(line), f"$ {command}\nshown:  {wanted}\nprinted: {line}"


def test_the_readme_has_every_kind_of_block() -> None:
    kinds = {kind for kind, _ in BLOCKS}
    assert {"python", "bash", "text"} <= kinds
    assert sum(kind == "python" for kind, _ in BLOCKS) >= 4


def test_the_pattern_of_a_shown_line() -> None:
    pattern = _pattern("✓ haiku chain 41c50f83  56 ms · ttft 44 ms … tail")
    assert pattern.fullmatch("✓ haiku chain 0b801d05  7 ms · ttft 1.5 ms and the rest tail")
    assert not pattern.fullmatch("✗ haiku chain 0b801d05  7 ms · ttft 1.5 ms tail")


@pytest.mark.timeout(600)  # some 40 commands and scripts, one after another
def test_the_readme_walk(tmp_path: Path) -> None:
    folder = tmp_path / "walk"
    folder.mkdir()
    shutil.copytree(ROOT / "examples", folder / "examples")
    venv = folder / ".venv"
    venv.symlink_to(Path(sys.executable).parent.parent)  # what `make` leaves
    path = os.pathsep.join((str(venv / "bin"), os.environ.get("PATH", "")))
    env = dict(os.environ, PATH=path, COLUMNS="80", CHAINKIT_MODEL="local")
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "CHAINKIT_API_TOKEN", "CHAINKIT_CHAINS_DIR"):
        env.pop(name, None)
    walk = Walk(folder, env)
    ran = 0
    try:
        for index, (kind, block) in enumerate(BLOCKS):
            if kind == "python":
                walk.python(index, block)
                ran += 1
            elif kind == "bash":
                for command in _commands(block):
                    if why_not(command) is None:
                        walk.shell(command)
                        ran += 1
            elif kind == "text" and block.startswith("$ "):
                walk.check_shown(block)
    finally:
        for server in list(walk.servers):
            walk.stop(server)
    assert ran >= 30
    assert set(walk.ports) == set(PORTS)  # both servers ran, for the blocks that call them
    assert_no_canary(folder / "examples", *folder.glob("*.jsonl"))
