"""For LangChain's standard suites: the local model as a process, and offline sample files.

The suites run against ``python -m chainkit.models.local`` (what ``chainkit local serve``
runs), and download their sample PNG and PDF from the internet (``httpx.get``); tests may
only use loopback, so :func:`offline_get` stands in with small valid files made here.
"""

from __future__ import annotations

import re
import signal
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def local_model_server(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A local model server process on a free port (and ``args``); yields its ``base_url``
    and the process. On the way out: SIGTERM, and no traceback on its stderr."""
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "chainkit.models.local", "--port", "0", *args],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"OPENAI_BASE_URL=(\S+)", line)
        assert match, line
        yield match.group(1), proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        if proc.stderr is not None:
            rest = proc.stderr.read()
            proc.stderr.close()
            assert "Traceback" not in rest, rest


@contextmanager
def local_model_process() -> Iterator[str]:
    """A local model server process on a free port; yields its ``base_url``."""
    with local_model_server() as (base_url, _):
        yield base_url


def png() -> bytes:
    """A valid 2x2 RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PDF = (
    b"%PDF-1.1\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def offline_get(url: str, **_: Any) -> SimpleNamespace:
    """What the suites' ``httpx.get(url).content`` needs: a PDF for ``*.pdf``, else a PNG."""
    return SimpleNamespace(content=PDF if url.endswith(".pdf") else png())
