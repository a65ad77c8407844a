"""Limits: body size (413), batch size (413), batch concurrency (capped), streams (429)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from chainkit.models.local import LocalModelServer
from chainkit.server import ServerSettings, ServiceThread
from chainkit.testing import local_model_server
from tests.server.conftest import chat_model, iter_sse, running

LIMITS = ServerSettings(
    api_token=None,
    max_body_bytes=4096,
    max_batch_items=5,
    max_batch_concurrency=2,
    max_streams=2,
)


@pytest.fixture(scope="module")
def slow_model() -> Iterator[LocalModelServer]:
    with local_model_server(token_delay=0.01) as server:
        yield server


@pytest.fixture(scope="module")
def limited(slow_model: LocalModelServer) -> Iterator[ServiceThread]:
    # whole answers (a story takes seconds): the streams held open must outlast the test
    with running(slow_model, LIMITS, model=chat_model(slow_model, max_tokens=None)) as svc:
        yield svc


@pytest.fixture
def client(limited: ServiceThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=limited.url, timeout=30) as c:
        yield c


def _is_json_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error: dict[str, object] = response.json()["error"]
    assert error["code"] == code
    assert error["status"] == status
    return error


def test_body_over_the_limit_is_413(client: httpx.Client) -> None:
    big = {"input": {"topic": "x" * 5000}}
    error = _is_json_error(client.post("/chains/song/invoke", json=big), 413, "body_too_large")
    assert error["limit"] == 4096
    assert "4096" in str(error["message"])
    # a body just under the limit is fine
    ok = client.post("/chains/haiku/invoke", json={"input": {"topic": "x" * 3000}})
    assert ok.status_code == 200


def test_chunked_body_over_the_limit_is_413(client: httpx.Client) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"input": {"topic": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}}'

    response = client.post(
        "/chains/song/invoke", content=body(), headers={"content-type": "application/json"}
    )
    _is_json_error(response, 413, "body_too_large")


def test_body_limit_without_reading_the_body(limited: ServiceThread) -> None:
    """A huge Content-Length is refused at once, before the body is sent."""
    with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as sock:
        sock.sendall(
            b"POST /chains/song/invoke HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):  # the service closes the connection after it
            answer += chunk
    answer_text = answer.decode()
    assert answer_text.startswith("HTTP/1.1 413")
    assert "body_too_large" in answer_text


def test_batch_over_the_item_limit_is_413(client: httpx.Client) -> None:
    inputs = [{"topic": str(i)} for i in range(6)]
    response = client.post("/chains/haiku/batch", json={"inputs": inputs})
    error = _is_json_error(response, 413, "batch_too_large")
    assert error["limit"] == 5


def test_batch_concurrency_is_capped(client: httpx.Client, slow_model: LocalModelServer) -> None:
    slow_model.reset_stats()
    inputs = [{"topic": f"t{i}"} for i in range(5)]
    response = client.post("/chains/haiku/batch", json={"inputs": inputs, "max_concurrency": 50})
    assert response.status_code == 200
    meta = response.json()["metadata"]
    assert meta["max_concurrency"] == 2
    assert meta["succeeded"] == 5
    assert slow_model.stats()["max_in_flight"] <= 2


def test_batch_results_in_input_order_with_errors(client: httpx.Client) -> None:
    inputs = [{"topic": "a"}, {"nope": 1}, {"topic": "c"}, {"topic": "d"}]
    body = {"inputs": inputs, "max_concurrency": 2, "return_exceptions": True}
    response = client.post("/chains/haiku/batch", json=body)
    assert response.status_code == 200
    output, meta = response.json()["output"], response.json()["metadata"]
    results = meta["responses"]
    assert len(output) == len(results) == len(meta["run_ids"]) == 4
    assert (meta["succeeded"], meta["failed"]) == (3, 1)
    assert output[1] is None
    assert results[1]["error"]["type"] == "MissingVariableError"
    assert "topic" in results[1]["error"]["message"]
    for i in (0, 2, 3):
        assert results[i]["error"] is None
        assert isinstance(output[i], str)
        assert results[i]["usage"]["output_tokens"] > 0
        assert results[i]["run_id"] == meta["run_ids"][i]
    assert len({meta["run_ids"][i] for i in (0, 2, 3)}) == 3
    single = client.post("/chains/haiku/invoke", json={"input": {"topic": "c"}}).json()
    assert output[2] == single["output"]
    assert meta["usage"]["output_tokens"] == sum(
        results[i]["usage"]["output_tokens"] for i in (0, 2, 3)
    )


def test_a_failed_batch_item_fails_the_batch_without_return_exceptions(
    client: httpx.Client,
) -> None:
    inputs = [{"topic": "a"}, {"nope": 1}]
    response = client.post("/chains/haiku/batch", json={"inputs": inputs})
    error = _is_json_error(response, 422, "missing_variable")
    assert error["missing"] == ["topic"]


def test_empty_batch(client: httpx.Client) -> None:
    response = client.post("/chains/haiku/batch", json={"inputs": []})
    assert response.status_code == 200
    assert response.json()["output"] == []


def test_streams_over_the_limit_are_429() -> None:
    body = {"input": {"topic": "a long voyage"}}
    # a model slow enough that the two streams held open outlast the test by far
    with (
        local_model_server(token_delay=0.2) as crawling,
        running(crawling, LIMITS, model=chat_model(crawling, max_tokens=None)) as svc,
        httpx.Client(base_url=svc.url, timeout=30) as c1,
        httpx.Client(base_url=svc.url, timeout=30) as c2,
        httpx.Client(base_url=svc.url, timeout=30) as c3,
    ):
        with (
            c1.stream("POST", "/chains/story/stream", json=body) as r1,
            c2.stream("POST", "/chains/story/stream_events", json=body) as r2,
        ):
            # keep the event iterators: a discarded one is finalized at once, and
            # httpx then closes the connection, which the service rightly sees as a
            # disconnect and frees that stream's slot (a race with the checks below)
            events1, events2 = iter_sse(r1), iter_sse(r2)
            assert next(events1).event == "metadata"  # the run id, sent at once
            assert next(events2).event == "data"
            third = c3.post("/chains/story/stream", json=body)
            error = _is_json_error(third, 429, "too_many_streams")
            assert error["limit"] == 2
            assert third.headers["retry-after"] == "1"
            assert c3.get("/health").json()["streams_in_flight"] == 2
            # other endpoints are not limited by open streams
            assert c3.get("/chains").status_code == 200
            # and both streams were still running all along
            assert next(events1).event == "data"
            assert next(events2).event == "data"
        # both closed: the slots are free again as soon as the service sees it
        deadline = time.monotonic() + 10
        while c3.get("/health").json()["streams_in_flight"] and time.monotonic() < deadline:
            time.sleep(0.01)
        with c3.stream("POST", "/chains/story/stream", json=body) as r3:
            assert r3.status_code == 200
            assert next(iter_sse(r3)).event == "metadata"
