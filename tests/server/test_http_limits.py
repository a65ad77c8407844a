"""The HTTP server's own limits, against a real `chainkit serve` process over raw sockets:
request-head size and header count (431), a slow head (408), a connection idle before its
first request and after a response (closed), connections at once (503)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx
import pytest

from chainkit.cli import main

HEAD_TIMEOUT = 3  # seconds; the limits below are small so each test is quick
MAX_CONNECTIONS = 12
WAIT = 30  # a socket read that outlives every limit: only a server that never closes hits it


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, int]]:
    """`chainkit serve` with small HTTP limits, in a subprocess; its host and port."""
    env = dict(os.environ)
    env.pop("CHAINKIT_API_TOKEN", None)
    command = [
        sys.executable,
        "-c",
        "from chainkit.cli import console_main; console_main()",
        "serve",
        "--port",
        "0",
        "--model",
        "local",
        "--max-header-bytes",
        "4096",
        "--max-headers",
        "20",
        "--header-timeout",
        str(HEAD_TIMEOUT),
        "--keep-alive-timeout",
        "2",
        "--max-connections",
        str(MAX_CONNECTIONS),
    ]
    process = subprocess.Popen(  # noqa: S603 - our own CLI
        command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line.rstrip("\n"))
            if "listening on" in line:
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(60), lines
        found = re.search(r"listening on http://([\d.]+):(\d+)", "\n".join(lines))
        assert found, lines
        yield found.group(1), int(found.group(2))
    finally:
        process.terminate()
        process.wait(15)
        reader.join(5)
        if process.stderr is not None:
            process.stderr.close()


@contextlib.contextmanager
def connection(served: tuple[str, int]) -> Iterator[socket.socket]:
    sock = socket.create_connection(served, timeout=WAIT)
    try:
        yield sock
    finally:
        sock.close()


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def send_all(sock: socket.socket, data: bytes) -> bool:
    """Send ``data``; False when the server closed the connection first."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def health_ok(served: tuple[str, int]) -> bool:
    host, port = served
    return httpx.get(f"http://{host}:{port}/health", timeout=WAIT).status_code == 200


def test_help_documents_the_limits(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for option in (
        "--max-header-bytes",
        "--max-headers",
        "--header-timeout",
        "--keep-alive-timeout",
        "--max-connections",
    ):
        assert option in out


def test_a_huge_header_is_431_and_closed(served: tuple[str, int]) -> None:
    with connection(served) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        while sent < 8 * 1024 * 1024 and send_all(sock, b"a" * 65536):
            sent += 65536
        answer = read_all(sock)
    assert sent < 8 * 1024 * 1024  # the server stopped reading long before 8 MiB
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"code":"head_too_large"' in answer
    assert health_ok(served)


def test_too_many_headers_is_431(served: tuple[str, int]) -> None:
    headers = b"".join(b"X-%d: 1\r\n" % i for i in range(50))
    with connection(served) as sock:
        send_all(sock, b"GET /health HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"code":"too_many_headers"' in answer


def test_twenty_headers_are_fine(served: tuple[str, int]) -> None:
    headers = b"".join(b"X-%d: 1\r\n" % i for i in range(18))
    with connection(served) as sock:
        sock.sendall(
            b"GET /health HTTP/1.1\r\nHost: x\r\n" + headers + b"Connection: close\r\n\r\n"
        )
        assert read_all(sock).startswith(b"HTTP/1.1 200 ")


def test_slow_heads_and_idle_connections_are_closed(served: tuple[str, int]) -> None:
    """A head trickled byte by byte gets a 408; a silent connection and a keep-alive one
    left idle after a response are closed (each read would wait WAIT seconds otherwise)."""
    with connection(served) as slow, connection(served) as idle, connection(served) as kept:
        kept.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        slow.sendall(b"GET /health HTTP/1.1\r\n")
        done = threading.Event()

        def trickle() -> None:
            while not done.wait(0.2) and send_all(slow, b"X-Slow: 1\r\n"[:1]):
                pass

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        try:
            answer = read_all(slow)
        finally:
            done.set()
            thread.join(5)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b'"code":"head_timeout"' in answer
        assert read_all(idle) == b""
        kept_answer = read_all(kept)
        assert kept_answer.startswith(b"HTTP/1.1 200 ")
        assert kept_answer.count(b"HTTP/1.1") == 1


def test_connections_beyond_the_limit_are_503(served: tuple[str, int]) -> None:
    held = [socket.create_connection(served, timeout=WAIT) for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in held:  # each has started a request it does not finish
            sock.sendall(b"GET /health HTTP/1.1\r\n")
        with connection(served) as extra:
            extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert read_all(extra).startswith(b"HTTP/1.1 503 ")
        answers = [read_all(sock) for sock in held]
    finally:
        for sock in held:
            sock.close()
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers)  # and then they were let go
    assert health_ok(served)
