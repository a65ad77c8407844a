"""Seeded faults and delays of the local model, seen through the real clients."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from chainkit.errors import ConfigError
from chainkit.models.local import LocalModelServer, LocalModelSettings
from chainkit.testing import local_model_server

STORY = "Write a short story about a lighthouse"
HEADER = "X-Chainkit-Faults"


def _messages(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _wait_for(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def calm() -> Iterator[LocalModelServer]:
    with local_model_server(retry_after=0.01) as server:
        yield server


_http = httpx.Client(timeout=30)  # one client: creating one per request is slow


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    yield
    _http.close()


def _post(server: LocalModelServer, header: str | None = None, **body: object) -> httpx.Response:
    payload = {"model": "m", "messages": _messages("hello"), **body}
    headers = {HEADER: header} if header is not None else {}
    return _http.post(f"{server.base_url}/chat/completions", json=payload, headers=headers)


def test_429_carries_retry_after_and_openai_error(calm: LocalModelServer) -> None:
    response = _post(calm, "error_rate=1,error_statuses=429,retry_after=0.25")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "0.25"
    assert response.headers["retry-after-ms"] == "250"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors(calm: LocalModelServer, status: int) -> None:
    response = _post(calm, f'{{"error_rate": 1, "error_statuses": [{status}]}}')
    assert response.status_code == status
    assert response.json()["error"]["type"] == "server_error"


def test_header_lists_several_statuses(calm: LocalModelServer) -> None:
    statuses = {
        _post(calm, "error_rate=1,error_statuses=500,503", seed=i).status_code for i in range(12)
    }
    assert statuses == {500, 503}


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        ("error_rate=2", "error_rate must be in [0, 1]"),
        ("nonsense=1", "unknown setting 'nonsense'"),
        ("{not json", "not valid JSON"),
        ("ttft=-1", "ttft must be between 0 and 600 seconds"),
        ("ttft=1e9", "ttft must be between 0 and 600 seconds"),
        ("latency=gamma:k=1", "unknown distribution"),
    ],
)
def test_bad_header_is_400(calm: LocalModelServer, header: str, needle: str) -> None:
    response = _post(calm, header)
    assert response.status_code == 400
    assert needle in response.json()["error"]["message"]


def test_client_with_retries_recovers_from_429() -> None:
    with (
        local_model_server(error_rate=0.6, error_statuses=(429,), retry_after=0.01, seed=3) as srv,
        openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=8) as client,
    ):
        texts = [
            client.chat.completions.create(
                model="m", messages=_messages(f"Tell me a fact about the number {i}"), temperature=0
            )
            .choices[0]
            .message.content
            for i in range(6)
        ]
        stats = srv.stats()
    assert all(t and "number" in t for t in texts)
    by_status = stats["requests"]["/v1/chat/completions"]
    assert by_status["200"] == 6
    assert by_status["429"] >= 1
    assert stats["faults"]["error"] == by_status["429"]


def test_faults_never_change_the_text(calm: LocalModelServer) -> None:
    with local_model_server(error_rate=0.5, error_statuses=(503,), retry_after=0.01) as faulty:
        with openai.OpenAI(base_url=faulty.base_url, api_key="x", max_retries=10) as client:
            faulty_text = client.chat.completions.create(
                model="m", messages=_messages(STORY), temperature=0
            )
        with openai.OpenAI(base_url=calm.base_url, api_key="x") as client:
            calm_text = client.chat.completions.create(
                model="m", messages=_messages(STORY), temperature=0
            )
    assert faulty_text.choices[0].message.content == calm_text.choices[0].message.content


def test_faults_are_reproducible_per_seed() -> None:
    def statuses(seed: int) -> list[int]:
        with local_model_server(error_rate=0.5, seed=seed) as server:
            # each body twice: how often a body was seen is part of the hash
            return [_post(server, seed=i).status_code for i in range(10) for _ in range(2)]

    first = statuses(7)
    assert first == statuses(7)
    assert first != statuses(8)
    assert 200 in first
    assert any(code != 200 for code in first)


def test_mid_stream_disconnect_breaks_the_client_stream() -> None:
    with (
        local_model_server(disconnect_rate=1.0) as server,
        openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client,
    ):
        stream = client.chat.completions.create(model="m", messages=_messages(STORY), stream=True)
        with pytest.raises(openai.APIConnectionError):
            list(stream)
        stats = server.stats()
    assert stats["streams"]["cut_fault"] == 1
    assert stats["streams"]["completed"] == 0
    assert stats["faults"]["disconnect"] == 1
    log = server.request_log()
    assert log[-1]["outcome"] == "cut_fault"
    assert 0 < log[-1]["completion_tokens"] < 150


def test_disconnect_with_token_delay() -> None:
    with (
        local_model_server(disconnect_rate=1.0, token_delay=0.001) as server,
        openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client,
    ):
        stream = client.completions.create(model="m", prompt=STORY, max_tokens=300, stream=True)
        first = next(iter(stream))
        assert first.choices[0].text
        with pytest.raises(openai.APIConnectionError):
            list(stream)
        assert server.stats()["streams"]["cut_fault"] == 1


def test_hang_times_out_on_the_client() -> None:
    with (
        local_model_server(hang_rate=1.0) as server,
        openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=0.3) as client,
    ):
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="m", messages=_messages("hi"))
        _wait_for(lambda: server.stats()["in_flight"] == 0)
        stats = server.stats()
    assert stats["requests"]["/v1/chat/completions"] == {"499": 1}
    assert stats["faults"]["hang"] == 1


def test_hang_does_not_block_other_requests_or_shutdown() -> None:
    errors: list[BaseException] = []
    with local_model_server() as server:

        def hang() -> None:
            try:
                _post(server, "hang_rate=1")
            except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
                errors.append(exc)

        thread = threading.Thread(target=hang)
        thread.start()
        _wait_for(lambda: server.stats()["in_flight"] == 1)
        assert _post(server).status_code == 200
    thread.join(5)
    assert not thread.is_alive()
    assert not errors  # the hanging request was answered 503 at shutdown


def test_token_delay_paces_the_stream_without_changing_it(calm: LocalModelServer) -> None:
    with openai.OpenAI(base_url=calm.base_url, api_key="x") as client:
        expected = client.completions.create(model="m", prompt=STORY, max_tokens=40).choices[0].text
    with (
        local_model_server(ttft=0.02, token_delay=0.002, jitter=0.5) as slow,
        openai.OpenAI(base_url=slow.base_url, api_key="x") as client,
    ):
        arrivals: list[float] = []
        text = ""
        for chunk in client.completions.create(model="m", prompt=STORY, max_tokens=40, stream=True):
            arrivals.append(time.monotonic())
            text += "".join(c.text for c in chunk.choices)
    assert text == expected
    assert len(arrivals) > 40
    assert arrivals[-1] - arrivals[0] > 0  # events came in over time, not in one piece


def test_client_disconnect_is_counted_as_cut_by_client() -> None:
    with local_model_server(token_delay=0.02) as server:
        with (
            openai.OpenAI(base_url=server.base_url, api_key="x") as client,
            client.chat.completions.create(
                model="m", messages=_messages(STORY), stream=True
            ) as stream,
        ):
            for i, _chunk in enumerate(stream):
                if i == 3:
                    break
        _wait_for(lambda: server.stats()["streams"]["cut_client"] == 1)
        log = server.request_log()
    assert log[-1]["outcome"] == "cut_client"
    assert log[-1]["completion_tokens"] < 20


def test_latency_distribution_is_accepted_and_seeded() -> None:
    settings = LocalModelSettings(latency="lognormal:median=0.01,p99=0.03", seed=1)
    dist = settings.latency_distribution
    assert dist is not None
    import random

    samples = [dist.sample(random.Random(i)) for i in range(200)]
    assert samples == [dist.sample(random.Random(i)) for i in range(200)]
    assert 0.005 < sorted(samples)[100] < 0.02
    with local_model_server(latency="fixed:0.01") as server:
        assert _post(server).status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"error_rate": 1.5}, "LocalModelSettings.error_rate must be in [0, 1]"),
        ({"hang_rate": -0.1}, "LocalModelSettings.hang_rate must be in [0, 1]"),
        ({"ttft": -1}, "LocalModelSettings.ttft must be between 0 and 600 seconds"),
        ({"token_delay": "fast"}, "LocalModelSettings.token_delay must be a number"),
        ({"error_statuses": (200,)}, "LocalModelSettings.error_statuses must be 4xx/5xx"),
        ({"latency": "lognormal:median=2"}, "needs exactly median, p99"),
        ({"max_body_bytes": 10}, "max_body_bytes must be >= 1024"),
        ({"seed": 1.5}, "LocalModelSettings.seed must be an integer"),
    ],
)
def test_settings_are_validated(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        LocalModelSettings(**kwargs)  # type: ignore[arg-type]
    assert needle in str(info.value)
    assert "\n" not in str(info.value)
