"""`chainkit events --limit N` stops early without upstream noise on stderr."""

from __future__ import annotations

import subprocess
import sys


def test_events_limit_stops_cleanly() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "chainkit",
            "events",
            "song",
            "-i",
            "topic=goldfish",
            "--limit",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 3
    assert "Traceback" not in result.stderr
    assert "asynchronous generator" not in result.stderr
