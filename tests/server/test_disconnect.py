"""A client that leaves mid-stream cancels the chain run and the model call."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chainkit.models.local import LocalModelServer
from chainkit.server import ServiceThread
from chainkit.testing import local_model_server
from tests.server.conftest import LogLines, chat_model, iter_sse, running


@pytest.fixture(scope="module")
def slow_model() -> Iterator[LocalModelServer]:
    """A story takes this model several seconds: 170 tokens, 20 ms apart."""
    with local_model_server(token_delay=0.02) as server:
        yield server


@pytest.fixture(scope="module")
def slow_service(slow_model: LocalModelServer) -> Iterator[ServiceThread]:
    with running(slow_model, model=chat_model(slow_model, max_tokens=None)) as svc:
        yield svc


def _wait_idle(server: LocalModelServer, timeout: float = 30.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        stats = server.stats()
        if stats["in_flight"] == 0 or time.monotonic() > deadline:
            return stats
        time.sleep(0.02)


def _samples(client: httpx.Client, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = client.get("/metrics").text
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


@pytest.mark.parametrize("endpoint", ["stream", "stream_log", "stream_events"])
def test_disconnect_cuts_the_model_stream(
    slow_service: ServiceThread, slow_model: LocalModelServer, logs: LogLines, endpoint: str
) -> None:
    slow_model.reset_stats()
    with httpx.Client(base_url=slow_service.url, timeout=30) as client:
        path = f"/chains/story/{endpoint}"
        with client.stream("POST", path, json={"input": {"topic": "a long voyage"}}) as r:
            assert r.status_code == 200
            rid = r.headers["x-request-id"]
            seen = 0
            for event in iter_sse(r):
                if event.event == "data":
                    seen += 1
                if seen >= 5:
                    break  # leave mid-stream: the connection is closed
        stats = _wait_idle(slow_model)
        assert stats["streams"] == {
            "started": 1,
            "completed": 0,
            "cut_client": 1,
            "cut_fault": 0,
        }
        # the cut came soon: the model wrote a few tokens of ~170, not the whole story
        log = slow_model.request_log()
        assert log[0]["outcome"] == "cut_client"
        assert log[0]["completion_tokens"] < 100

        line = logs.wait_for(f'"request_id":"{rid}"')
        assert '"disconnected":true' in line
        in_flight = _samples(client, "chainkit_streams_in_flight")
        assert all(v == 0 for v in in_flight.values())
        outcomes = _samples(client, "chainkit_streams_total")
        key = (("chain", "story"), ("endpoint", f"/chains/{{name}}/{endpoint}"))
        assert outcomes[(*key, ("outcome", "disconnected"))] == 1
        assert client.get("/health").json()["streams_in_flight"] == 0


def test_the_service_goes_on_after_a_disconnect(
    slow_service: ServiceThread, slow_model: LocalModelServer
) -> None:
    with httpx.Client(base_url=slow_service.url, timeout=30) as client:
        with client.stream("POST", "/chains/story/stream", json={"input": {"topic": "x"}}) as r:
            next(iter_sse(r))
        response = client.post("/chains/haiku/invoke", json={"input": {"topic": "after"}})
        assert response.status_code == 200
    assert _wait_idle(slow_model)["in_flight"] == 0
