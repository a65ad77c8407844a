"""Ctrl-C during `chainkit stream --async`: the stream is cancelled on its loop (the sync
bridge) and its connection closed; the command exits 130, without a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from chainkit.testing import local_model_server


def test_ctrl_c_stops_an_async_stream_and_closes_its_call() -> None:
    with local_model_server(ttft=60.0) as server:  # the answer never comes in time
        env = dict(os.environ, OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="x")
        command = [
            sys.executable,
            "-m",
            "chainkit",
            "stream",
            "story",
            "-i",
            "topic=x",
            "--async",
            "--model",
            "openai:gpt-4o-mini",
        ]
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 60
            while server.stats()["in_flight"] == 0:  # wait until the request is in the air
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the request never reached the model"
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        deadline = time.monotonic() + 10
        while server.stats()["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.stats()["in_flight"] == 0  # the cancelled call closed its connection
