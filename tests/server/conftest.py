"""Fixtures for the service tests: a real uvicorn on loopback, in a thread, over a local model.

Streaming cannot be tested through httpx's in-process ASGI transport (it buffers
the whole body), so every test talks HTTP to a real server, as httpx's own
test suite does.
"""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import orjson
import pytest
from langchain_openai import ChatOpenAI

from chainkit.models.local import LocalModelServer
from chainkit.server import ServerSettings, ServiceThread, create_app
from chainkit.testing import local_model_server

TOKEN = "test-token-0123456789abcdef"


@contextlib.contextmanager
def serve_process(
    *args: str, env: dict[str, str], stop: signal.Signals = signal.SIGTERM
) -> Iterator[tuple[str, list[str]]]:
    """`chainkit serve --port 0 --model local ARGS` in a subprocess: its URL and stderr lines.

    Stopped with ``stop`` (SIGINT is Ctrl-C, which runs the service's lifespan end).
    """
    command = [sys.executable, "-c", "from chainkit.cli import console_main; console_main()"]
    command += ["serve", "--port", "0", "--model", "local", *args]
    process = subprocess.Popen(  # noqa: S603 - our own CLI
        command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    lines: list[str] = []
    ready = threading.Event()
    url: list[str] = []

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line.rstrip("\n"))
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                url.append(found.group(1))
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(60), lines
        assert url, lines
        yield url[0], lines
    finally:
        process.send_signal(stop)
        process.wait(15)
        reader.join(5)
        if process.stderr is not None:
            process.stderr.close()


def chat_model(server: LocalModelServer, **kwargs: Any) -> ChatOpenAI:
    """The real ChatOpenAI on ``server``, with an HTTP client of its own (one per app).

    Answers are cut at 64 tokens: long enough to stream, short enough to be quick.
    """
    settings: dict[str, Any] = {
        "base_url": server.base_url,
        "model": "chainkit-local",
        "temperature": 0,
        "max_tokens": 64,
        "max_retries": 0,
        "stream_usage": True,
        "http_async_client": openai.DefaultAsyncHttpxClient(),
    }
    settings.update(kwargs)
    return ChatOpenAI(**settings)  # the key is the suite's canary OPENAI_API_KEY


@contextlib.contextmanager
def running(
    server: LocalModelServer,
    settings: ServerSettings | None = None,
    **options: Any,
) -> Iterator[ServiceThread]:
    """The service on ``server``'s model, on a free loopback port, for one block."""
    model = options.pop("model", None) or chat_model(server)
    app = create_app(model=model, settings=settings or ServerSettings(api_token=None), **options)
    client = getattr(model, "http_async_client", None)
    with ServiceThread(app, on_exit=client.aclose if client is not None else None) as service:
        yield service


@pytest.fixture(scope="module")
def model_server() -> Iterator[LocalModelServer]:
    """A calm local model for one test module."""
    with local_model_server() as server:
        yield server


@pytest.fixture(scope="module")
def service(model_server: LocalModelServer) -> Iterator[ServiceThread]:
    """The service without auth, default limits, on the module's local model."""
    with running(model_server) as svc:
        yield svc


@pytest.fixture
def client(service: ServiceThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=30) as c:
        yield c


# ---------------------------------------------------------------- SSE


@dataclass
class SseEvent:
    event: str
    data: Any
    at: float
    """time.perf_counter() when the event's last line arrived."""


def iter_sse(response: httpx.Response) -> Iterator[SseEvent]:
    """Parse an SSE body incrementally, line by line, as it arrives."""
    event, data = "message", []
    for line in response.iter_lines():
        if not line:
            if data:  # `end` has one empty data line: its data is None
                text = "\n".join(data)
                yield SseEvent(event, orjson.loads(text) if text else None, time.perf_counter())
            event, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def stream_events(
    client: httpx.Client, path: str, body: dict[str, Any], **kwargs: Any
) -> tuple[httpx.Response, list[SseEvent]]:
    with client.stream("POST", path, json=body, **kwargs) as response:
        if response.status_code != 200:
            response.read()
            return response, []
        return response, list(iter_sse(response))


# ---------------------------------------------------------------- logs


class LogLines(logging.Handler):
    """Every record of ``chainkit.server`` (all threads), formatted, with its record."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        if record.exc_info or record.stack_info:
            line += "\n<traceback>"
        with self._lock2:
            self.records.append(record)
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock2:
                for line in self.lines:
                    if text in line:
                        return line
            time.sleep(0.01)
        raise AssertionError(f"no log line with {text!r}; lines: {self.lines[-10:]}")

    def access(self) -> list[dict[str, Any]]:
        with self._lock2:
            return [dict(r.access) for r in self.records if hasattr(r, "access")]

    def text(self) -> str:
        with self._lock2:
            return "\n".join(self.lines)


@pytest.fixture
def logs() -> Iterator[LogLines]:
    handler = LogLines()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("chainkit.server")
    saved = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)


@pytest.fixture
def cli_logging() -> Iterator[None]:
    """Put the ``chainkit`` logger back as it was after a test runs the CLI.

    ``chainkit.cli.main`` configures that logger (a handler on the stderr of the
    moment, no propagation); left so, later tests would log into a closed capture.
    """
    logger = logging.getLogger("chainkit")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    try:
        yield
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]
