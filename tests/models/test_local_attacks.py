"""The local model's server under attack, as a real process (``python -m chainkit.models.local``).

Each test is one finding of issue 12 against the old hand-written HTTP server:
pipelining behind a slow request, huge or many headers, idle and half-sent
connections, ``Upgrade`` requests, garbage during a stream, requests whose
client leaves while they wait, and binding beyond loopback; and of issue 14: a
body trickled slowly (aiohttp's idle timeout does not close a connection whose
handler waits for its body).
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import openai
import orjson
import pytest

from chainkit.cli import main
from tests.models._served import ROOT, local_model_server
from tests.raw_http import framed, read_until, read_until_closed, send_in_pieces, trickling

CHAT = {"model": "m", "messages": [{"role": "user", "content": "write a poem about tea"}]}
BODY_TIMEOUT = 2  # seconds; small so the slow-body tests are quick


@dataclass
class Proc:
    url: str
    port: int
    proc: subprocess.Popen[str]


@contextlib.contextmanager
def serve(*args: str) -> Iterator[Proc]:
    with local_model_server(*args) as (base_url, proc):
        match = re.fullmatch(r"http://([^:]+):(\d+)/v1", base_url)
        assert match, base_url
        port = int(match.group(2))
        yield Proc(f"http://127.0.0.1:{port}", port, proc)


@pytest.fixture(scope="module")
def server() -> Iterator[Proc]:
    with serve("--idle-timeout", "1", "--request-log", "--body-timeout", str(BODY_TIMEOUT)) as proc:
        yield proc


def _post(body: dict[str, object], headers: str = "") -> bytes:
    data = orjson.dumps(body)
    head = f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n{headers}"
    return f"{head}content-length: {len(data)}\r\n\r\n".encode() + data


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _in_flight_drops_to_zero(server: Proc) -> bool:
    for _ in range(200):  # polls until the server has let go (bounded)
        if httpx.get(f"{server.url}/stats").json()["in_flight"] == 0:
            return True
        time.sleep(0.05)
    return False


def test_many_pipelined_requests_behind_a_slow_one(server: Proc) -> None:
    slow = _post(CHAT, "X-Chainkit-Faults: ttft=0.3\r\n")
    quick = b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(slow + quick * 300)
        data = b""
        while data.count(b'{"status":"ok"}') < 300:
            chunk = sock.recv(65536)
            assert chunk, "the server dropped the connection"
            data += chunk
    statuses = re.findall(rb"HTTP/1.1 (\d+)", data)
    assert statuses == [b"200"] * 301
    assert data.index(b"chat.completion") < data.index(b'{"status":"ok"}')


@pytest.mark.parametrize(
    "headers",
    [
        "x-big: " + "a" * 1_000_000 + "\r\n",
        "".join(f"x-h{i}: v\r\n" for i in range(500)),
    ],
    ids=["a 1 MB header", "500 headers"],
)
def test_oversized_headers_are_refused(server: Proc, headers: str) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(f"GET /health HTTP/1.1\r\nhost: x\r\n{headers}\r\n".encode())
        data = _read_all(sock)
    assert re.match(rb"HTTP/1\.[01] (400|431) ", data), data[:200]
    assert httpx.get(f"{server.url}/health").status_code == 200  # others are served


@pytest.mark.parametrize(
    "sent", [b"", b"GET /health HTTP/1.1\r\nhost: x\r\n"], ids=["idle", "half-sent"]
)
def test_idle_and_half_sent_connections_are_closed(server: Proc, sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(sent)
        assert sock.recv(1024) == b""  # the server closed it (--idle-timeout 1)


def test_upgrade_request_gets_one_plain_answer(server: Proc) -> None:
    upgrade = _post(CHAT, "Connection: Upgrade\r\nUpgrade: websocket\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as sock:
        sock.sendall(upgrade + b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        data = _read_all(sock)
    assert re.findall(rb"HTTP/1.1 (\d+)", data) == [b"200", b"200"]
    assert b"400" not in data.split(b"\r\n")[0]


def test_garbage_during_a_stream_does_not_corrupt_it(server: Proc) -> None:
    stream = _post({**CHAT, "stream": True}, "X-Chainkit-Faults: token_delay=0.005\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(stream)
        first = sock.recv(65536)
        sock.sendall(b"GARBAGE\r\n\r\n")
        data = first + _read_all(sock)
    body, _, after = data.partition(b"\r\n0\r\n\r\n")
    assert b"data: [DONE]" in body
    assert not re.search(rb"HTTP/1\.[01] 400", body)
    assert not after or re.match(rb"HTTP/1\.[01] 400 ", after)


@pytest.mark.parametrize(
    ("header", "stream"),
    [("ttft=600", False), ("ttft=600", True), ("hang_rate=1", False), ("latency=fixed:600", True)],
)
def test_a_client_that_leaves_frees_its_request(server: Proc, header: str, stream: bool) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(_post({**CHAT, "stream": stream}, f"X-Chainkit-Faults: {header}\r\n"))
        for _ in range(100):
            if httpx.get(f"{server.url}/stats").json()["in_flight"] == 1:
                break
            time.sleep(0.02)
    assert _in_flight_drops_to_zero(server)
    log = httpx.get(f"{server.url}/stats?log=1").json()["log"]
    assert log[-1]["status"] == 499


def _chat_head(framing: str, length: int) -> bytes:
    size = b"transfer-encoding: chunked" if framing == "chunked" else b"content-length: %d" % length
    head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    return head + size + b"\r\n\r\n"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_slow_body_is_408_and_closed_while_others_are_served(server: Proc, framing: str) -> None:
    """A body trickled a byte every 0.2 s, for longer than --body-timeout: the idle timeout
    (1 s here) never fires, as the handler is busy reading; the body's deadline does."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as slow:
        slow.sendall(_chat_head(framing, 100_000) + framed(framing, b" "))
        with trickling(slow, framed(framing, b" ")):
            assert httpx.get(f"{server.url}/health").status_code == 200  # others are served
            with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as client:
                reply = client.chat.completions.create(model="m", messages=CHAT["messages"])  # type: ignore[arg-type]
            assert reply.choices[0].message.content
            answer = read_until_closed(slow)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"connection: close" in head.lower()
    error = orjson.loads(body)["error"]
    assert error["code"] == "body_timeout"
    assert error["type"] == "invalid_request_error"
    assert "--body-timeout" in error["message"]
    assert _in_flight_drops_to_zero(server)


def test_a_body_trickled_after_its_answer_is_cut(server: Proc) -> None:
    """A body the handler never reads (a GET's, answered at once): aiohttp drains it for
    its lingering time (2 s here, 10 s by default), then closes the connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n ")
        with trickling(sock, b" "):
            answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert answer.count(b"HTTP/1.1 ") == 1


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_sent_in_pieces_within_the_deadline_is_answered(server: Proc, framing: str) -> None:
    body = orjson.dumps(CHAT)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(_chat_head(framing, len(body)))
        send_in_pieces(sock, framing, body, 16)
        answer = read_until(sock, b"chat.completion")
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


def test_the_body_timeout_is_checked_at_the_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [sys.executable, "-m", "chainkit.models.local", "--port", "0", "--body-timeout", "0"]
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        argv, capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "--body-timeout" in result.stderr
    assert "Traceback" not in result.stderr
    assert main(["local", "serve", "--port", "0", "--body-timeout", "-1"]) == 2
    assert "--body-timeout" in capsys.readouterr().err
    assert main(["local", "serve", "--help"]) == 0
    assert "--body-timeout" in capsys.readouterr().out


def test_delays_are_capped(server: Proc) -> None:
    with httpx.Client() as client:
        headers = {"X-Chainkit-Faults": "ttft=1e9"}
        response = client.post(f"{server.url}/v1/chat/completions", json=CHAT, headers=headers)
    assert response.status_code == 400
    assert "between 0 and 600 seconds" in response.json()["error"]["message"]


def test_non_loopback_host_needs_an_api_key() -> None:
    for argv in (
        [sys.executable, "-m", "chainkit.models.local", "--host", "0.0.0.0", "--port", "0"],  # noqa: S104
        [sys.executable, "-m", "chainkit", "local", "serve", "--host", "0.0.0.0", "--port", "0"],  # noqa: S104
    ):
        result = subprocess.run(  # noqa: S603 - our own interpreter and module
            argv, capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
        )
        assert result.returncode != 0
        assert "--api-key" in result.stderr
        assert "Traceback" not in result.stderr


def test_api_key_is_checked_as_a_bearer_token() -> None:
    with serve("--host", "0.0.0.0", "--api-key", "s3cret-key") as proc:  # noqa: S104
        base_url = f"{proc.url}/v1"
        with openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0) as client:
            with pytest.raises(openai.AuthenticationError) as info:
                client.chat.completions.create(model="m", messages=CHAT["messages"])  # type: ignore[arg-type]
            assert "s3cret-key" not in str(info.value)
        with openai.OpenAI(base_url=base_url, api_key="s3cret-key", max_retries=0) as client:
            reply = client.chat.completions.create(model="m", messages=CHAT["messages"])  # type: ignore[arg-type]
        assert reply.choices[0].message.content
        assert httpx.get(f"{proc.url}/health").status_code == 200
        assert httpx.get(f"{proc.url}/stats").status_code == 401


def test_insecure_binds_without_a_key() -> None:
    with serve("--host", "0.0.0.0", "--insecure") as proc:  # noqa: S104
        assert httpx.get(f"{proc.url}/health").status_code == 200


def _schema_request(schema: dict[str, object]) -> dict[str, object]:
    return {
        **CHAT,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }


@pytest.mark.parametrize(
    ("body", "param", "needle"),
    [
        (
            {"model": "m", "prompt": [f"p{i}" for i in range(5000)], "n": 128},
            "n",
            "640000 choices",
        ),
        ({**CHAT, "max_tokens": 10**9}, "max_tokens", "max_tokens is too large"),
        (
            _schema_request({"type": "array", "minItems": 300000}),
            "response_format.json_schema.schema",
            "'minItems' is 300000",
        ),
        (
            _schema_request({"type": "object", "properties": {"s": {"minLength": 20_000_000}}}),
            "response_format.json_schema.schema",
            "'minLength' is 20000000 (property 's')",
        ),
        (
            _schema_request({"type": "object", "minProperties": 10**6}),
            "response_format.json_schema.schema",
            "'minProperties' is 1000000",
        ),
        (
            _schema_request(
                {"type": "array", "minItems": 1000, "items": {"type": "string", "minLength": 99999}}
            ),
            "response_format.json_schema.schema",
            "would exceed",
        ),
        (
            _schema_request(
                {
                    "type": "object",
                    "properties": {
                        "v": {"type": "integer", "multipleOf": 1e-308, "minimum": 1e308}
                    },
                }
            ),
            "response_format.json_schema.schema",
            "no 64-bit integer",
        ),
        (
            {
                **CHAT,
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "parameters": {"type": "object", "minProperties": 5000},
                        },
                    }
                ],
            },
            "tools[0].function.parameters",
            "'minProperties' is 5000",
        ),
    ],
    ids=["n x prompts", "max_tokens", "minItems", "minLength", "minProperties", "total", "int",
         "tool"],
)  # fmt: skip
def test_work_per_request_is_limited(
    server: Proc, body: dict[str, object], param: str, needle: str
) -> None:
    path = "/v1/completions" if "prompt" in body else "/v1/chat/completions"
    response = httpx.post(f"{server.url}{path}", json=body, timeout=30)
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert error["param"] == param
    assert needle in error["message"]


def test_a_huge_multiple_of_a_tiny_step_is_answered(server: Proc) -> None:
    schema = {
        "type": "object",
        "properties": {"v": {"type": "number", "multipleOf": 1e-308, "minimum": 1e308}},
        "required": ["v"],
    }
    response = httpx.post(f"{server.url}/v1/chat/completions", json=_schema_request(schema))
    assert response.status_code == 200
    value = orjson.loads(response.json()["choices"][0]["message"]["content"])["v"]
    assert value >= 1e308
