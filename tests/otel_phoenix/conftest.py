"""Arize Phoenix, a real third-party OTLP receiver, started on loopback for these tests.

Phoenix (the server) is some 850 MB of pinned dependencies of its own, so it lives
in its own virtualenv, ``.venv-phoenix``, built by ``make pytest-phoenix`` (part of
``make test``) from ``tests/otel_phoenix/requirements.txt``. The tests run in the
project's ``.venv`` and start its ``phoenix serve`` as a subprocess: the executable
named by ``CHAINKIT_PHOENIX``, by default the checkout's ``.venv-phoenix/bin/phoenix``.
They read the spans back through Phoenix's own client (``arize-phoenix-client``, in
the ``dev`` extra), as stored in Phoenix's database.

The plain suite does not collect this folder (``norecursedirs`` in
``pyproject.toml``): ``make pytest-phoenix`` runs it. Run by hand with no Phoenix
built, every test fails saying how to run it.

Phoenix runs with a fresh working directory (its SQLite database and its log),
free ports for HTTP and gRPC on 127.0.0.1, telemetry and external resources off,
none of the test's environment (no ``OPENAI_API_KEY`` canary to store), and
proxy variables pointing at a closed loopback port, so a request for the internet
that slipped through would fail here instead of leaving the machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

_DEFAULT_EXECUTABLE = Path(__file__).parents[2] / ".venv-phoenix" / "bin" / "phoenix"
_STARTUP_SECONDS = 180.0  # a fresh database is migrated first (~20 s on an idle machine)
_INGEST_SECONDS = 60.0  # Phoenix queues received spans and inserts them in batches


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _log_tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Phoenix:
    """A running Phoenix: its base URL (OTLP/HTTP is at ``/v1/traces``) and what it stores."""

    url: str
    working_dir: Path
    client: Any  # phoenix.client.Client
    process: subprocess.Popen[bytes]
    log: Path

    def spans(self, trace_ids: Sequence[str], expected: int) -> list[dict[str, Any]]:
        """The spans Phoenix stored for ``trace_ids``, once it holds ``expected`` of them."""
        deadline = time.monotonic() + _INGEST_SECONDS
        got: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            got = self.client.spans.get_spans(
                project_identifier="default", trace_ids=list(trace_ids), limit=10 * expected
            )
            if len(got) >= expected or self.process.poll() is not None:
                break
            time.sleep(0.2)
        assert len(got) == expected, (
            f"Phoenix stored {len(got)} of {expected} spans; its log ends:\n{_log_tail(self.log)}"
        )
        return got


def _phoenix_env(working_dir: Path, http_port: int, grpc_port: int) -> dict[str, str]:
    closed = f"http://127.0.0.1:{_free_port()}"  # nobody listens there
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
    env.update(
        PHOENIX_HOST="127.0.0.1",
        PHOENIX_PORT=str(http_port),
        PHOENIX_GRPC_PORT=str(grpc_port),
        PHOENIX_WORKING_DIR=str(working_dir),
        PHOENIX_TELEMETRY_ENABLED="false",
        PHOENIX_ALLOW_EXTERNAL_RESOURCES="false",
        PHOENIX_DISABLE_AGENT_ASSISTANT="true",
        PHOENIX_LOG_MIGRATIONS="false",
        HTTP_PROXY=closed,
        HTTPS_PROXY=closed,
        http_proxy=closed,
        https_proxy=closed,
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _STARTUP_SECONDS
    with httpx.Client(timeout=2) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"phoenix serve exited with {process.returncode}:\n{_log_tail(log)}")
            try:
                if http.get(f"{url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
    pytest.fail(f"phoenix serve not ready after {_STARTUP_SECONDS:.0f} s:\n{_log_tail(log)}")


def _stop(process: subprocess.Popen[bytes], log_file: IO[bytes]) -> None:
    try:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        log_file.close()


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    """One Phoenix server per test session (per worker under pytest-xdist)."""
    executable = os.environ.get("CHAINKIT_PHOENIX") or str(_DEFAULT_EXECUTABLE)
    if not Path(executable).is_file():
        pytest.fail(
            f"no Phoenix at {executable} (CHAINKIT_PHOENIX, default .venv-phoenix/bin/phoenix): "
            "run `make pytest-phoenix`, which builds .venv-phoenix and runs these tests",
            pytrace=False,
        )
    from phoenix.client import Client

    working_dir = tmp_path_factory.mktemp("phoenix")
    http_port, grpc_port = _free_port(), _free_port()
    url = f"http://127.0.0.1:{http_port}"
    log = working_dir / "phoenix.log"
    log_file = log.open("wb")
    process = subprocess.Popen(  # noqa: S603 - our own executable, fixed arguments
        [executable, "serve"],
        cwd=working_dir,
        env=_phoenix_env(working_dir, http_port, grpc_port),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(url, process, log)
        with httpx.Client(base_url=url, timeout=30) as http:
            yield Phoenix(url, working_dir, Client(http_client=http), process, log)
    finally:
        _stop(process, log_file)
