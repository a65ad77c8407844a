"""The local model's HTTP surface: bad requests, stats, and the HTTP server itself."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterator

import httpx
import openai
import orjson
import pytest

from chainkit.models.local import LocalModelServer
from chainkit.testing import local_model_server

CHAT = "/v1/chat/completions"
GOOD = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
def http(server: LocalModelServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as client:
        yield client


def _error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str)
    return dict(body["error"])


@pytest.mark.parametrize(
    ("body", "param", "needle"),
    [
        ({"model": "m"}, "messages", "Missing required parameter: 'messages'"),
        ({"messages": GOOD["messages"]}, "model", "Missing required parameter: 'model'"),
        ({**GOOD, "messages": "hi"}, "messages", "expected an array"),
        ({**GOOD, "messages": []}, "messages", "empty array"),
        ({**GOOD, "messages": ["hi"]}, "messages[0]", "expected an object"),
        ({**GOOD, "messages": [{"content": "x"}]}, "messages[0].role", "Missing required"),
        ({**GOOD, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "robot"),
        ({**GOOD, "messages": [{"role": "user", "content": 5}]}, "messages[0].content", "type"),
        ({**GOOD, "max_tokens": "many"}, "max_tokens", "expected an integer, but got a string"),
        ({**GOOD, "max_tokens": 0}, "max_tokens", "below minimum"),
        ({**GOOD, "n": 1000}, "n", "above maximum"),
        ({**GOOD, "temperature": 3}, "temperature", "above maximum"),
        ({**GOOD, "temperature": "hot"}, "temperature", "expected a decimal"),
        ({**GOOD, "stream": "yes"}, "stream", "expected a boolean"),
        ({**GOOD, "stop": 5}, "stop", "a string or an array of strings"),
        ({**GOOD, "stop": ["a", "b", "c", "d", "e"]}, "stop", "maximum length 4"),
        ({**GOOD, "stream_options": {"include_usage": True}}, "stream_options", "only allowed"),
        ({**GOOD, "response_format": {"type": "yaml"}}, "response_format.type", "yaml"),
        ({**GOOD, "tools": "calc"}, "tools", "expected an array"),
        ({**GOOD, "tools": [{"type": "function"}]}, "tools[0].function", "Missing"),
        ({**GOOD, "model": 5}, "model", "expected a string"),
    ],
)
def test_bad_chat_requests_are_400(
    http: httpx.Client, body: dict[str, object], param: str, needle: str
) -> None:
    error = _error(http.post(CHAT, json=body), 400)
    assert error["param"] == param
    assert needle in str(error["message"])
    assert error["type"] == "invalid_request_error"


def test_unknown_argument_is_400_like_openai(http: httpx.Client) -> None:
    error = _error(http.post(CHAT, json={**GOOD, "temprature": 0}), 400)
    assert error["message"] == "Unrecognized request argument supplied: temprature"
    error = _error(http.post("/v1/completions", json={"model": "m", "prompt": "x", "foo": 1}), 400)
    assert error["message"] == "Unrecognized request argument supplied: foo"


@pytest.mark.parametrize(
    "content", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"], ids=repr
)
def test_malformed_json_is_400(http: httpx.Client, content: bytes) -> None:
    error = _error(http.post(CHAT, content=content), 400)
    assert "JSON" in str(error["message"]) or "expected an object" in str(error["message"])


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"model": "m"}, "Missing required parameter: 'prompt'"),
        ({"model": "m", "prompt": 5}, "Invalid type for 'prompt'"),
        ({"model": "m", "prompt": "x", "max_tokens": -1}, "below minimum"),
        ({"model": "m", "prompt": "x", "echo": "yes"}, "expected a boolean"),
    ],
)
def test_bad_completion_requests_are_400(
    http: httpx.Client, body: dict[str, object], needle: str
) -> None:
    assert needle in str(_error(http.post("/v1/completions", json=body), 400)["message"])


def test_unknown_endpoint_is_404_and_wrong_method_405(http: httpx.Client) -> None:
    error = _error(http.post("/v1/no-such-endpoint", json={}), 404)
    assert error["message"] == "Invalid URL (POST /v1/no-such-endpoint)"
    response = http.get(CHAT)
    _error(response, 405)
    assert response.headers["allow"] == "POST"
    _error(http.post("/health"), 405)


def test_oversized_body_is_413() -> None:
    with local_model_server(max_body_bytes=2048) as server, httpx.Client() as client:
        big = {**GOOD, "messages": [{"role": "user", "content": "x" * 5000}]}
        error = _error(client.post(f"{server.base_url}/chat/completions", json=big), 413)
        assert "2048" in str(error["message"])

        def chunks() -> Iterator[bytes]:  # no content-length: chunked upload
            yield orjson.dumps(big)

        response = client.post(f"{server.base_url}/chat/completions", content=chunks())
        _error(response, 413)
        ok = client.post(f"{server.base_url}/chat/completions", json=GOOD)
        assert ok.status_code == 200


def test_a_request_may_lower_the_body_limit_but_not_raise_it() -> None:
    with local_model_server(max_body_bytes=4096) as server, httpx.Client() as client:
        big = {**GOOD, "messages": [{"role": "user", "content": "x" * 3000}]}
        url = f"{server.base_url}/chat/completions"
        lowered = client.post(url, json=big, headers={"X-Chainkit-Faults": "max_body_bytes=2048"})
        assert "2048" in str(_error(lowered, 413)["message"])
        raised = {"X-Chainkit-Faults": "max_body_bytes=1000000000"}
        huge = {**GOOD, "messages": [{"role": "user", "content": "x" * 10000}]}
        error = _error(client.post(url, json=huge, headers=raised), 400)
        assert "above this server's limit (4096)" in str(error["message"])
        assert error["code"] == "invalid_header"
        assert client.post(url, json=big).status_code == 200  # within the server's own limit


def test_chunked_upload_is_read(server: LocalModelServer) -> None:
    def chunks() -> Iterator[bytes]:
        body = orjson.dumps(GOOD)
        yield body[:10]
        yield body[10:]

    response = httpx.post(f"{server.base_url}/chat/completions", content=chunks())
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"]


def test_malformed_http_gets_400_and_close(server: LocalModelServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert re.match(rb"HTTP/1\.[01] 400 ", data), data[:100]


def test_pipelined_requests_are_answered_in_order(server: LocalModelServer) -> None:
    def request(path: str) -> bytes:
        return f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode()

    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request("/health") + request("/v1/models") + request("/nope"))
        data = b""
        while data.count(b"HTTP/1.1 ") < 3 or not data.endswith(b"}}"):
            data += sock.recv(65536)
    assert re.findall(rb"HTTP/1.1 (\d+)", data) == [b"200", b"200", b"404"]


def test_stats_count_requests_tokens_connections() -> None:
    with local_model_server(request_log=True) as server:
        with openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client:
            for _ in range(3):
                client.chat.completions.create(model="m", messages=GOOD["messages"])  # type: ignore[arg-type]
            assert server.stats()["connections"] == 1  # one keep-alive connection
            stream = client.completions.create(model="m", prompt="hello", stream=True)
            list(stream)
            with pytest.raises(openai.BadRequestError):
                client.chat.completions.create(model="m", messages=[])
        stats = server.stats()
        assert stats == httpx.get(f"{server.url}/stats").json() | {"since": stats["since"]}
        assert stats["requests"] == {
            "/v1/chat/completions": {"200": 3, "400": 1},
            "/v1/completions": {"200": 1},
        }
        assert stats["requests_total"] == 5
        assert stats["streams"] == {"started": 1, "completed": 1, "cut_client": 0, "cut_fault": 0}
        assert stats["connections"] in (1, 2)  # the client may drop a finished stream's
        assert stats["in_flight"] == 0
        assert stats["max_in_flight"] == 1
        assert stats["tokens"]["completion"] > 0
        assert stats["tokens"]["total"] == stats["tokens"]["prompt"] + stats["tokens"]["completion"]

        log = httpx.get(f"{server.url}/stats?log=1").json()["log"]
        assert [e["status"] for e in log] == [200, 200, 200, 200, 400]
        first = log[0]
        assert first["endpoint"] == "/v1/chat/completions"
        assert first["prompt"] == "hello"
        assert len(first["prompt_digest"]) == 16
        assert first["t_start"] <= first["t_end"]
        assert log[0]["prompt_digest"] == log[1]["prompt_digest"]
        assert log[3]["stream"] is True
        assert log[3]["outcome"] == "completed"

        reset = httpx.post(f"{server.url}/stats/reset").json()
        assert reset["requests_total"] == 0
        server.reset_stats()
        assert server.stats()["log_size"] == 0


def test_max_in_flight_counts_concurrency() -> None:
    async def burst(server: LocalModelServer) -> None:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="x") as client:
            await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model="m", messages=[{"role": "user", "content": f"hi {i}"}]
                    )
                    for i in range(10)
                )
            )

    with local_model_server(ttft=0.05) as server:
        asyncio.run(burst(server))
        stats = server.stats()
    assert stats["max_in_flight"] > 1
    assert stats["connections"] > 1


class _Connection:
    """Stands in for a transport: weakly referable, gone when dropped."""


def test_request_log_is_bounded() -> None:
    from chainkit.models.local._stats import Stats

    stats = Stats(log_size=3)
    for i in range(5):
        stats.begin(_Connection())
        stats.end(t_start=0.0, endpoint="/x", status=200, outcome="ok", prompt=f"p{i}" * 300)
    log = stats.snapshot(log=True)["log"]
    assert [e["prompt"][:2] for e in log] == ["p2", "p3", "p4"]
    assert all(len(e["prompt"]) == 200 for e in log)


def test_connections_are_counted_not_remembered() -> None:
    """1,000 clients that came and went leave a count, not 1,000 addresses."""
    from chainkit.models.local._stats import Stats

    stats = Stats(log_size=0)
    kept = _Connection()
    for i in range(1000):
        for connection in (_Connection(), kept):  # a new client, and one that stays
            stats.begin(connection)
            stats.end(t_start=0.0, endpoint="/x", status=200, outcome="ok", client=("h", i))
    snapshot = stats.snapshot(log=True)
    assert snapshot["connections"] == 1001
    assert snapshot["requests_total"] == 2000
    assert snapshot["log"] == []  # log_size=0 keeps none
    assert len(stats._live) == 1  # only the connection still open is held


def test_closed_connections_are_not_held() -> None:
    """Real connections, each closed after one request: counted, none held."""
    with local_model_server() as server:
        for _ in range(30):
            with httpx.Client(base_url=server.base_url) as client:
                client.post("/chat/completions", json=GOOD).raise_for_status()
        assert server.stats()["connections"] == 30
        held = server.model.stats._live
        tries = 50
        while len(held) > 1 and tries:  # the server sees each close on its own loop
            tries -= 1
            httpx.get(f"{server.url}/health")
        assert len(held) <= 1


def test_request_log_is_off_unless_asked_for(server: LocalModelServer) -> None:
    httpx.post(f"{server.base_url}/chat/completions", json=GOOD)
    error = _error(httpx.get(f"{server.url}/stats?log=1"), 403)
    assert "--request-log" in str(error["message"])
    assert "log" not in httpx.get(f"{server.url}/stats").json()
    assert server.request_log()  # the process that owns the server still reads it


@pytest.mark.parametrize("path", [CHAT, "/v1/completions"])
def test_answers_alike_with_and_without_a_faults_header(
    server: LocalModelServer, path: str
) -> None:
    body = (
        {**GOOD, "n": 2, "stop": ["zzz"]}
        if path == CHAT
        else {"model": "m", "prompt": ["a fact about 7", "a poem"], "max_tokens": 30}
    )
    with httpx.Client(base_url=server.url) as client:
        fast = client.post(path, json=body).json()
        slow = client.post(path, json=body, headers={"X-Chainkit-Faults": "seed=0"}).json()
        bad_fast = client.post(path, json={**body, "n": 0})
        bad_slow = client.post(path, json={**body, "n": 0}, headers={"X-Chainkit-Faults": "seed=0"})
    for key in ("id", "created"):
        fast.pop(key)
        slow.pop(key)
    assert fast == slow
    assert bad_fast.status_code == bad_slow.status_code == 400
    assert bad_fast.json() == bad_slow.json()


@pytest.mark.parametrize(("args", "kept"), [((), 0), (("--request-log",), 3)])
def test_standalone_server_keeps_a_log_only_when_it_serves_it(
    args: tuple[str, ...], kept: int
) -> None:
    """`chainkit local serve` keeps no request log unless --request-log serves it."""
    from tests.models._served import local_model_server as local_model_process

    with local_model_process(*args) as (base_url, _):
        for _ in range(3):
            httpx.post(f"{base_url}/chat/completions", json=GOOD).raise_for_status()
        stats = httpx.get(f"{base_url.removesuffix('/v1')}/stats").json()
    assert stats["requests_total"] == 3
    assert stats["log_size"] == kept
