"""Suite-wide guards: no test reaches the internet, and a canary key never leaks.

- Every socket connect to a non-loopback address fails the test at once.
- ``OPENAI_API_KEY`` is set to a canary; tests that write files check that it
  never appears in them (see ``assert_no_canary``).
"""

from __future__ import annotations

import base64
import gc
import ipaddress
import os
import signal
import socket
import threading
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

CANARY_KEY = "sk-chainkit-canary-7f3a9c2e1b5d4f60"


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C is Ctrl-C in every test, whoever started pytest.

    A process started with SIGINT ignored (pytest-xdist's workers, ``nohup``, a
    background job of a non-interactive shell) passes that on to every process
    it starts, and Python then installs no KeyboardInterrupt handler: the tests
    that press Ctrl-C (``_thread.interrupt_main``, or SIGINT to a ``chainkit``
    subprocess) would see nothing happen. Restore Python's own handler here, so
    the test and its subprocesses start as from a terminal.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_finish(session: pytest.Session) -> None:
    """``CHAINKIT_TRACEMALLOC=N`` (set by CI) traces allocations N frames deep.

    With it on, a ``ResourceWarning`` for an unclosed socket, transport or file
    (an error here: ``filterwarnings = error``) names where the object was
    allocated, not only where the garbage collector found it. Tracing starts
    once the tests are collected: the sockets and files are opened by the tests,
    and tracing the collection's imports (every test module and its libraries,
    assertion rewriting included) made collection over ten times slower.
    """
    frames = int(os.environ.get("CHAINKIT_TRACEMALLOC") or 0)
    if frames > 0 and not tracemalloc.is_tracing():
        tracemalloc.start(frames)


@pytest.fixture(autouse=True, scope="module")
def _collect_leaks_per_module() -> Iterator[None]:
    """Collect garbage after each test module, so a leaked socket is reported there.

    Without it, an unclosed socket is found whenever the collector next runs,
    which can be the set-up of an unrelated test in another module (as Python
    3.13 did with ``tests/cli/test_demo.py``).
    """
    yield
    gc.collect()


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(address: Any) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if not _is_loopback(address):
        raise OSError(f"test tried to reach {address!r}: tests may only use loopback")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if not _is_loopback(address):
        raise OSError(f"test tried to reach {address!r}: tests may only use loopback")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def _no_internet() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


@pytest.fixture(autouse=True, scope="session")
def _canary_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CHAINKIT_MODEL")}
    os.environ["OPENAI_API_KEY"] = CANARY_KEY
    os.environ.pop("OPENAI_BASE_URL", None)
    os.environ.pop("CHAINKIT_MODEL", None)
    os.environ.setdefault("LANGSMITH_TRACING", "false")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def assert_no_canary(*paths: Path) -> None:
    """Fail if the canary API key appears in any file under ``paths``."""
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for file in files:
            assert CANARY_KEY not in file.read_text(errors="replace"), f"secret leaked into {file}"


@pytest.fixture(scope="session")
def local_server() -> Iterator[Any]:
    """One calm local model server (chainkit.models.local) shared by the whole session."""
    from chainkit.testing import local_model_server

    with local_model_server() as server:
        yield server


# ------------------------------------------------------------ an OTLP/HTTP receiver


@dataclass
class Received:
    """What the OTLP/HTTP receiver got: raw bodies by path, and the spans decoded."""

    bodies: list[bytes] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    spans: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    """An OTLP/HTTP receiver on loopback (``POST /v1/traces``, ``/v1/metrics``).

    It decodes trace exports with the official ``opentelemetry-proto`` messages,
    as a collector does; yields its base URL and what it received.
    """
    with otlp_receiver() as (url, got):
        yield url, got


@contextmanager
def otlp_receiver(port: int = 0) -> Iterator[tuple[str, Received]]:
    """The ``receiver`` fixture's server, on ``port`` (0: a free one)."""
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    got = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            got.bodies.append(body)
            got.paths.append(self.path)
            if self.path == "/v1/traces":
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                data = MessageToDict(request)
                for rs in data.get("resourceSpans", []):
                    got.resources.append(otlp_attrs(rs.get("resource", {}).get("attributes", [])))
                    for ss in rs.get("scopeSpans", []):
                        got.spans.extend(ss.get("spans", []))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", got
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _otlp_value(v: dict[str, Any]) -> Any:
    if "arrayValue" in v:
        return [_otlp_value(x) for x in v["arrayValue"].get("values", [])]
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    return int(v["intValue"]) if "intValue" in v else None


def otlp_attrs(items: list[dict[str, Any]]) -> dict[str, Any]:
    """OTLP attributes (as ``MessageToDict`` gives them) as a plain dict."""
    return {i["key"]: _otlp_value(i["value"]) for i in items}


def otlp_hex(b64: str) -> str:
    """A span or trace id as ``MessageToDict`` gives it (base64), in hex."""
    return base64.b64decode(b64).hex()
