"""Starting and stopping the local model: shared, owned, in a subprocess, standalone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import openai
import pytest

from chainkit.models.local import (
    DUMMY_API_KEY,
    LocalModelServer,
    ensure_server,
    use_local_model,
)
from chainkit.testing import local_model_server

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        check=False,
    )


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as any server would
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_import_and_serve_without_langchain() -> None:
    result = _run(
        """
        import sys, urllib.request, json
        import chainkit.models.local as local
        with local.LocalModelServer() as server:
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            req = urllib.request.Request(
                server.base_url + "/chat/completions",
                data=json.dumps(body).encode(),
                headers={"content-type": "application/json"},
            )
            body = json.loads(urllib.request.urlopen(req).read())
            assert body["choices"][0]["message"]["content"], body
        loaded = sorted(m for m in sys.modules if m.startswith("langchain"))
        assert not loaded, loaded
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_ensure_server_is_shared() -> None:
    first = ensure_server()
    second = ensure_server()
    assert first is second
    assert first.running
    assert first.base_url == f"http://127.0.0.1:{first.port}/v1"


def test_ensure_server_is_thread_safe() -> None:
    seen: list[LocalModelServer] = []
    threads = [threading.Thread(target=lambda: seen.append(ensure_server())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(s) for s in seen}) == 1


def test_stop_frees_port_and_thread() -> None:
    server = LocalModelServer().start()
    port = server.port
    assert not _port_is_free(port)
    with openai.OpenAI(base_url=server.base_url, api_key="x") as client:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    server.stop()
    assert not server.running
    assert _port_is_free(port)
    assert not [t for t in threading.enumerate() if t.name == f"chainkit-local-model:{port}"]
    server.stop()  # stopping twice is harmless


def test_context_manager_and_fixed_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with local_model_server(port=port) as server:
        assert server.port == port
        assert server.url == f"http://127.0.0.1:{port}"
    assert _port_is_free(port)


def test_port_in_use_is_a_clear_error() -> None:
    from chainkit.errors import ConfigError

    with local_model_server() as server, pytest.raises(ConfigError, match="cannot listen"):
        LocalModelServer(port=server.port).start()


def test_auto_started_server_exits_cleanly_in_a_subprocess() -> None:
    result = _run(
        """
        import atexit, threading, socket
        ports = []
        def check():
            # atexit runs hooks last-in first-out: this one runs after chainkit's
            names = [t.name for t in threading.enumerate() if t.name.startswith("chainkit-local")]
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", ports[0]))
            s.close()
            print("CLEAN", names)
        atexit.register(check)
        from chainkit.models import load_model
        model = load_model()
        print(model.invoke("Tell me a fact about the number 42").content)
        from chainkit.models.local import ensure_server
        ports.append(ensure_server().port)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "42" in result.stdout
    assert "CLEAN []" in result.stdout
    assert "Traceback" not in result.stderr


def test_use_local_model_runs_the_seed_code_unchanged() -> None:
    result = _run(
        """
        from chainkit.models.local import use_local_model
        use_local_model()
        from langchain_openai import OpenAI
        from openai import AsyncOpenAI
        import asyncio
        llm = OpenAI(model="gpt-3.5-turbo-instruct", temperature=0, max_tokens=512)
        chunks = list(llm.stream("Write me a 1 verse song about sparkling water."))
        print("|".join(chunks))
        async def main():
            client = AsyncOpenAI()
            r = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
            print(r.choices[0].message.content)
            await client.close()
        asyncio.run(main())
        """
    )
    assert result.returncode == 0, result.stderr
    assert "sparkling| water" in result.stdout.lower()
    assert result.stdout.count("|") > 20


def test_use_local_model_sets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    server = use_local_model()
    assert os.environ["OPENAI_BASE_URL"] == server.base_url
    assert os.environ["OPENAI_API_KEY"] == DUMMY_API_KEY


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "chainkit.models.local", "--port", "0", "--error-statuses", "429,503"],
        ["-c", "from chainkit.cli import console_main; console_main()", "local", "serve",
         "--port", "0", "--token-delay", "0.001", "--seed", "3"],
    ],
    ids=["python -m", "chainkit local serve"],
)  # fmt: skip
def test_standalone_server_says_where_it_listens(argv: list[str]) -> None:
    import re
    import signal

    # the Popen context closes the pipe and waits, so a failed check leaks no process
    with subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, *argv], stderr=subprocess.PIPE, text=True, cwd=ROOT
    ) as proc:
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()
            match = re.search(r"OPENAI_BASE_URL=(\S+) OPENAI_API_KEY=(\S+)", line)
            assert match, line
            with openai.OpenAI(base_url=match.group(1), api_key=match.group(2)) as client:
                chunks = list(
                    client.completions.create(model="m", prompt="hi", max_tokens=5, stream=True)
                )
            assert len(chunks) == 6
        finally:
            proc.send_signal(signal.SIGTERM if "-m" in argv else signal.SIGINT)
            try:
                code = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
        assert code in (0, 130)
        assert proc.stderr is not None
        assert "Traceback" not in proc.stderr.read()


def test_public_names_are_sorted_and_importable() -> None:
    from chainkit import testing
    from chainkit.models import local

    for module in (local, testing):
        assert module.__all__ == sorted(module.__all__)
        assert all(hasattr(module, name) for name in module.__all__)


def test_blank_ids_gives_stable_placeholders() -> None:
    from chainkit.testing import blank_ids

    events = [
        {"event": "on_chain_start", "run_id": "a1", "parent_ids": []},
        {"event": "on_chat_model_start", "run_id": "b2", "parent_ids": ["a1"]},
        {"event": "on_chat_model_end", "run_id": "b2", "parent_ids": ["a1"]},
        {"event": "on_chain_end", "run_id": "a1", "parent_ids": [], "data": {"x": 1}},
    ]
    other = [
        {**e, "run_id": e["run_id"].upper(), "parent_ids": [p.upper() for p in e["parent_ids"]]}
        for e in events
    ]
    assert blank_ids(events) == blank_ids(other)
    assert [e["run_id"] for e in blank_ids(events)] == ["run-0", "run-1", "run-1", "run-0"]
    assert blank_ids(events)[1]["parent_ids"] == ["run-0"]
    assert events[0]["run_id"] == "a1"  # the input is not changed
