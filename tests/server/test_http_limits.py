"""The HTTP server's own limits, against a real `chainkit serve` process over raw sockets:
request-head size and header count (431), a slow head or body (408), a connection idle
before its first request and after a response (closed), connections at once (JSON 503)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from chainkit.cli import main
from tests.raw_http import (
    framed,
    read_until,
    read_until_closed,
    send_all,
    send_in_pieces,
    trickling,
)

HEAD_TIMEOUT = 3  # seconds; the limits below are small so each test is quick
BODY_TIMEOUT = 2
KEEP_ALIVE = 5  # above BODY_TIMEOUT: a connection reused after a body's deadline stays open
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
        "--body-timeout",
        str(BODY_TIMEOUT),
        "--keep-alive-timeout",
        str(KEEP_ALIVE),
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
        "--body-timeout",
        "--keep-alive-timeout",
        "--max-connections",
    ):
        assert option in out


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_a_bad_body_timeout_is_one_line(capsys: pytest.CaptureFixture[str], value: str) -> None:
    assert main(["serve", "--port", "0", "--body-timeout", value]) == 2
    err = capsys.readouterr().err
    assert "body_timeout" in err
    assert "Traceback" not in err


def test_a_huge_header_is_431_and_closed(served: tuple[str, int]) -> None:
    with connection(served) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        while sent < 8 * 1024 * 1024 and send_all(sock, b"a" * 65536):
            sent += 65536
        answer = read_until_closed(sock)
    assert sent < 8 * 1024 * 1024  # the server stopped reading long before 8 MiB
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"code":"head_too_large"' in answer
    assert health_ok(served)


def test_too_many_headers_is_431(served: tuple[str, int]) -> None:
    headers = b"".join(b"X-%d: 1\r\n" % i for i in range(50))
    with connection(served) as sock:
        send_all(sock, b"GET /health HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"code":"too_many_headers"' in answer


def test_twenty_headers_are_fine(served: tuple[str, int]) -> None:
    headers = b"".join(b"X-%d: 1\r\n" % i for i in range(18))
    with connection(served) as sock:
        sock.sendall(
            b"GET /health HTTP/1.1\r\nHost: x\r\n" + headers + b"Connection: close\r\n\r\n"
        )
        assert read_until_closed(sock).startswith(b"HTTP/1.1 200 ")


def test_slow_heads_and_idle_connections_are_closed(served: tuple[str, int]) -> None:
    """A head trickled byte by byte gets a 408; a silent connection and a keep-alive one
    left idle after a response are closed (each read would wait WAIT seconds otherwise)."""
    with connection(served) as slow, connection(served) as idle, connection(served) as kept:
        kept.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        slow.sendall(b"GET /health HTTP/1.1\r\n")
        with trickling(slow, b"X"):  # a header name, a byte at a time
            answer = read_until_closed(slow)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b'"code":"head_timeout"' in answer
        assert read_until_closed(idle) == b""
        kept_answer = read_until_closed(kept)
        assert kept_answer.startswith(b"HTTP/1.1 200 ")
        assert kept_answer.count(b"HTTP/1.1") == 1


def test_connections_beyond_the_limit_are_a_json_503(served: tuple[str, int]) -> None:
    held = [socket.create_connection(served, timeout=WAIT) for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in held:  # each has started a request it does not finish
            sock.sendall(b"GET /health HTTP/1.1\r\n")
        with connection(served) as extra:
            extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive asked
            head, _, body = read_until_closed(extra).partition(b"\r\n\r\n")  # ... and closed
        answers = [read_until_closed(sock) for sock in held]
    finally:
        for sock in held:
            sock.close()
    assert head.startswith(b"HTTP/1.1 503 "), head
    headers = head.lower().split(b"\r\n")
    assert b"content-type: application/json" in headers
    assert b"retry-after: 1" in headers
    error = orjson.loads(body)["error"]
    assert error["code"] == "too_many_connections"
    assert error["status"] == 503
    assert error["limit"] == MAX_CONNECTIONS
    assert "--max-connections" in error["message"]
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers)  # and then they were let go
    assert health_ok(served)


def _post_head(framing: str, length: int = 0, extra: bytes = b"") -> bytes:
    size = b"Transfer-Encoding: chunked" if framing == "chunked" else b"Content-Length: %d" % length
    return (
        b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + extra
        + size
        + b"\r\n\r\n"
    )


def _generate_ok(served: tuple[str, int]) -> bool:
    host, port = served
    response = httpx.post(f"http://{host}:{port}/generate", json={"prompt": "hi"}, timeout=WAIT)
    return response.status_code == 200 and bool(response.json()["generated_text"])


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_slow_body_is_408_and_closed_while_others_are_served(
    served: tuple[str, int], framing: str
) -> None:
    """A body trickled a byte at a time, for longer than --body-timeout: each byte comes
    well within the deadline, so only a deadline for the whole body ends it."""
    with connection(served) as slow:
        slow.sendall(_post_head(framing, 100_000) + framed(framing, b" "))
        with trickling(slow, framed(framing, b" ")):
            assert health_ok(served)  # others are served meanwhile
            assert _generate_ok(served)
            answer = read_until_closed(slow)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    error = orjson.loads(body)["error"]
    assert error["code"] == "body_timeout"
    assert "--body-timeout" in error["message"]
    assert f"x-request-id: {error['request_id']}".encode() in head.lower()  # the app answered
    assert health_ok(served)


def test_a_body_trickled_after_its_answer_is_cut(served: tuple[str, int]) -> None:
    """A body the app never reads (a GET's, answered at once) still arriving past the
    deadline: the server closes the connection (its keep-alive timer restarts with every
    byte, so nothing else would)."""
    with connection(served) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n ")
        with trickling(sock, b" "):
            answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert answer.count(b"HTTP/1.1 ") == 1


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_sent_in_pieces_within_the_deadline_is_served(
    served: tuple[str, int], framing: str
) -> None:
    """A slow-ish upload that ends before --body-timeout is answered; the deadline is the
    body's, so the connection then outlives it (kept alive) and serves another request."""
    body = orjson.dumps({"prompt": "tell me about tea"})
    with connection(served) as sock:
        sock.sendall(_post_head(framing, len(body)))
        send_in_pieces(sock, framing, body, 8)
        first = read_until(sock, b"generated_text")
        assert first.startswith(b"HTTP/1.1 200 "), first[:200]
        time.sleep(BODY_TIMEOUT + 1)  # past the body's deadline, within the keep-alive
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_until_closed(sock).startswith(b"HTTP/1.1 200 ")
