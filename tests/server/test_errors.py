"""Errors as JSON: upstream failures 502, timeouts 504, bugs 500; no traceback, no secret."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.runnables import Runnable, RunnableLambda

from chainkit.chains import register_chain, unregister_chain
from chainkit.models.local import LocalModelServer
from chainkit.server import ServerSettings, ServiceThread
from chainkit.testing import local_model_server
from tests.conftest import CANARY_KEY
from tests.server.conftest import TOKEN, LogLines, chat_model, running, stream_events


@pytest.fixture(scope="module")
def failing_model() -> Iterator[LocalModelServer]:
    """Every request to this model is answered 500."""
    with local_model_server(error_rate=1.0, error_statuses=(500,)) as server:
        yield server


@pytest.fixture(scope="module")
def failing(failing_model: LocalModelServer) -> Iterator[ServiceThread]:
    with running(failing_model, ServerSettings(api_token=TOKEN, batch_retries=0)) as svc:
        yield svc


@pytest.fixture
def client(failing: ServiceThread) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=failing.url, timeout=30, headers=headers) as c:
        yield c


def _no_leak(text: str) -> None:
    assert CANARY_KEY not in text
    assert TOKEN not in text
    assert "Traceback" not in text
    assert "<traceback>" not in text


def test_upstream_failure_is_502_with_its_type(client: httpx.Client, logs: LogLines) -> None:
    for path, body in (
        ("/chains/song/invoke", {"input": {"topic": "x"}}),
        ("/generate", {"prompt": "hello"}),
    ):
        response = client.post(path, json=body)
        assert response.status_code == 502, path
        error = response.json()["error"]
        assert error["code"] == "upstream_error"
        assert error["upstream_type"] == "InternalServerError"
        assert error["upstream_status"] == 500
        assert "500" in error["message"]
        _no_leak(response.text)
    logs.wait_for("answered 502 upstream_error")
    _no_leak(logs.text())


def test_upstream_failure_in_a_stream_is_an_error_event(
    client: httpx.Client, logs: LogLines
) -> None:
    for path in ("/chains/song/stream", "/chains/song/stream_events"):
        response, events = stream_events(client, path, {"input": {"topic": "x"}})
        assert response.status_code == 200  # the stream had started
        last = events[-1]
        assert last.event == "error", path
        assert last.data["code"] == "upstream_error"
        assert last.data["upstream_type"] == "InternalServerError"
        assert last.data["request_id"] == response.headers["x-request-id"]
        assert last.data["status_code"] == last.data["status"] == 502  # as LangServe sends it
        assert "end" not in [e.event for e in events]
        _no_leak(str(events))
    logs.wait_for("stream of chain 'song' failed")
    _no_leak(logs.text())


def test_upstream_failure_in_a_batch_is_per_item(client: httpx.Client) -> None:
    body = {"inputs": [{"topic": "a"}, {}], "return_exceptions": True}
    response = client.post("/chains/song/batch", json=body)
    assert response.status_code == 200
    assert response.json()["output"] == [None, None]
    results = response.json()["metadata"]["responses"]
    assert results[0]["error"]["type"] in ("InternalServerError", "OpenAIAPIError")
    assert results[0]["error"]["status"] == 500
    assert results[1]["error"]["type"] == "MissingVariableError"
    _no_leak(response.text)


def test_upstream_failure_in_a_batch_fails_it_without_return_exceptions(
    client: httpx.Client,
) -> None:
    response = client.post("/chains/song/batch", json={"inputs": [{"topic": "a"}]})
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_error"
    assert error["request_id"] == response.headers["x-request-id"]
    _no_leak(response.text)


def test_cut_upstream_stream_is_an_error_event() -> None:
    with (
        local_model_server(disconnect_rate=1.0) as model_server,
        running(model_server) as svc,
        httpx.Client(base_url=svc.url, timeout=30) as c,
    ):
        response, events = stream_events(c, "/chains/story/stream", {"input": {"topic": "x"}})
    assert response.status_code == 200
    assert events[-1].event == "error"
    assert events[-1].data["status"] == 502
    assert events[-1].data["upstream_type"] == "APIConnectionError"


def test_timeout_is_504() -> None:
    with local_model_server(hang_rate=1.0) as model_server:
        settings = ServerSettings(api_token=None, request_timeout=0.3)
        with running(model_server, settings) as svc, httpx.Client(base_url=svc.url) as c:
            response = c.post("/chains/song/invoke", json={"input": {"topic": "x"}})
            assert response.status_code == 504
            assert response.json()["error"]["code"] == "upstream_timeout"


def _broken(model: Any = None) -> Runnable[Any, Any]:
    def fail(data: dict[str, Any]) -> str:
        raise RuntimeError(f"bug with api_key={CANARY_KEY} inside")

    return RunnableLambda(fail, name="broken")


@pytest.fixture
def broken_chain() -> Iterator[str]:
    register_chain("broken_for_test", _broken, description="Always fails.")
    try:
        yield "broken_for_test"
    finally:
        unregister_chain("broken_for_test")


def test_a_bug_is_a_json_500_without_traceback_or_secret(
    model_server: LocalModelServer, broken_chain: str, logs: LogLines
) -> None:
    with (
        running(model_server, model=chat_model(model_server)) as svc,
        httpx.Client(base_url=svc.url, timeout=30) as c,
    ):
        response = c.post(f"/chains/{broken_chain}/invoke", json={"input": {}})
        assert response.status_code == 500
        error = response.json()["error"]
        assert error["code"] == "internal_error"
        assert error["request_id"] == response.headers["x-request-id"]
        _no_leak(response.text)
        assert "bug with" not in response.text

        response, events = stream_events(c, f"/chains/{broken_chain}/stream", {"input": {}})
        assert events[-1].event == "error"
        assert events[-1].data["code"] == "internal_error"
        _no_leak(str(events[-1].data))
    line = logs.wait_for("RuntimeError")
    assert "***" in line  # the secret is masked in the log line, and no traceback follows
    _no_leak(logs.text())


def test_a_model_that_cannot_load_is_503(monkeypatch: pytest.MonkeyPatch, logs: LogLines) -> None:
    """The service stays up (health) and says why its chains cannot run."""
    from chainkit.server import ServiceThread, create_app

    monkeypatch.delenv("OPENAI_API_KEY")
    app = create_app(model="openai:gpt-4o-mini", settings=ServerSettings(api_token=None))
    with ServiceThread(app) as svc, httpx.Client(base_url=svc.url, timeout=30) as c:
        assert c.get("/health").status_code == 200
        response = c.post("/chains/song/invoke", json={"input": {"topic": "x"}})
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "model_not_configured"
        assert "OPENAI_API_KEY" in error["message"]
    logs.wait_for("the service's model did not load: MissingAPIKeyError")


BAD_SPEC = 'name = "bad"\ntemplate = "x {y}"\nunknown_field = 1\n'


def test_an_invalid_spec_file_is_503(model_server: LocalModelServer, tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(BAD_SPEC)
    with running(model_server, chains_dir=tmp_path) as svc, httpx.Client(base_url=svc.url) as c:
        response = c.post("/chains/song/invoke", json={"input": {"topic": "x"}})
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "bad_chain_spec"
        assert "bad.toml" in error["message"]
        assert c.get("/chains").status_code == 503


@pytest.mark.usefixtures("cli_logging")
def test_serve_refuses_an_invalid_spec_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from chainkit.cli import main

    (tmp_path / "bad.toml").write_text(BAD_SPEC)
    assert main(["serve", "--port", "0", "--chains-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err
    assert len(err.strip().splitlines()) == 1
