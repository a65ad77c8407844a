"""HTTP/1.1 by hand over a socket, for the tests that attack a server below any client
(slow and trickled bodies, framing): ``tests/server/test_http_limits.py`` and
``tests/models/test_local_attacks.py``."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection; a server that never
    does fails the test (the socket's timeout raises)."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    """What the server sends until ``marker`` has come (the connection must stay open)."""
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


def send_all(sock: socket.socket, data: bytes) -> bool:
    """Send ``data``; False when the server closed the connection first."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def framed(framing: str, piece: bytes) -> bytes:
    """``piece`` as a chunk when ``framing`` is "chunked", else as it is."""
    return b"%x\r\n%s\r\n" % (len(piece), piece) if framing == "chunked" else piece


def send_in_pieces(sock: socket.socket, framing: str, body: bytes, size: int) -> None:
    """``body`` in pieces of ``size`` bytes 0.05 s apart, then the last chunk if chunked."""
    for start in range(0, len(body), size):
        sock.sendall(framed(framing, body[start : start + size]))
        time.sleep(0.05)
    if framing == "chunked":
        sock.sendall(b"0\r\n\r\n")


@contextlib.contextmanager
def trickling(sock: socket.socket, piece: bytes) -> Iterator[None]:
    """``piece`` sent every 0.2 s from a thread, while the block runs or until the server
    closes the connection."""
    done = threading.Event()

    def trickle() -> None:
        while not done.wait(0.2) and send_all(sock, piece):
            pass

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(5)
