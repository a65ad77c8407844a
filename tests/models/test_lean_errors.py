"""Same errors on both paths, the SDK's retries, and a cancelled stream cut on the wire.

Faults come from the local model (``X-Chainkit-Faults`` per request); each
error is raised through the real ``ChatOpenAI`` on the lean path and on the
SDK's path and compared: class, status, headers (``Retry-After``), body, message.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from langchain_openai import ChatOpenAI

from chainkit.models import HttpPool, use_http_pool
from chainkit.models.local import FAULTS_HEADER, LocalModelServer

FACT = "Tell me a fact about number 3"


@pytest.fixture
async def pool() -> AsyncIterator[HttpPool]:
    pool = HttpPool(max_connections=8)
    yield pool
    await pool.aclose()


def _pair(pool: HttpPool, base_url: str, faults: str | None = None, **kwargs: Any) -> list[Any]:
    """[lean model, SDK-path model] with the same settings."""
    settings: dict[str, Any] = {
        "base_url": base_url,
        "api_key": "x",
        "model": "chainkit-local",
        "temperature": 0,
        "max_tokens": 16,
        "max_retries": 0,
        **kwargs,
    }
    if faults is not None:
        settings["default_headers"] = {FAULTS_HEADER: faults}
    return [
        use_http_pool(ChatOpenAI(**settings), pool),
        ChatOpenAI(**settings, http_async_client=pool.httpx_client),
    ]


async def _error(call: Any) -> dict[str, Any]:
    with pytest.raises(openai.APIError) as info:
        await call
    error = info.value
    seen: dict[str, Any] = {"class": type(error), "message": str(error), "body": error.body}
    if isinstance(error, openai.APIStatusError):
        seen["status"] = error.status_code
        seen["retry-after"] = error.response.headers.get("retry-after")
        seen["content-type"] = error.response.headers.get("content-type")
    return seen


@pytest.mark.parametrize(
    "fault",
    [
        ("error_rate=1,error_statuses=429,retry_after=0.25", openai.RateLimitError, 429),
        ("error_rate=1,error_statuses=500", openai.InternalServerError, 500),
        ("error_rate=1,error_statuses=503", openai.InternalServerError, 503),
        ("error_rate=nonsense", openai.BadRequestError, 400),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_status_errors_are_the_sdks(
    server: LocalModelServer, pool: HttpPool, fault: tuple[str, type[Exception], int], stream: bool
) -> None:
    faults, kind, status = fault

    async def call(model: Any) -> Any:
        if stream:
            return [c async for c in model.astream(FACT)]
        return await model.ainvoke(FACT)

    lean, stock = [await _error(call(m)) for m in _pair(pool, server.base_url, faults)]
    assert issubclass(lean["class"], kind)
    assert lean["status"] == status
    if status == 429:
        assert lean["retry-after"] == "0.25"
    assert lean == stock


async def test_a_bad_request_names_the_parameter_on_both_paths(
    server: LocalModelServer, pool: HttpPool
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]

    def bad(model: Any) -> Any:
        choice = {"type": "function", "function": {"name": "nope"}}
        return model.ainvoke(FACT, tools=tools, tool_choice=choice)

    lean, stock = [await _error(bad(m)) for m in _pair(pool, server.base_url)]
    assert lean["status"] == 400
    assert "tool_choice" in lean["message"]
    assert lean == stock


async def test_a_closed_port_is_a_connection_error(pool: HttpPool) -> None:
    with socket.socket() as probe:  # a free port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/v1"
    lean, stock = [await _error(m.ainvoke(FACT)) for m in _pair(pool, base_url)]
    assert issubclass(lean["class"], openai.APIConnectionError)
    assert lean == stock


async def test_a_hanging_server_is_a_timeout(server: LocalModelServer, pool: HttpPool) -> None:
    models = _pair(pool, server.base_url, "hang_rate=1", timeout=0.3)
    lean, stock = [await _error(m.ainvoke(FACT)) for m in models]
    assert issubclass(lean["class"], openai.APITimeoutError)
    assert lean == stock


async def test_a_stream_cut_by_the_server_is_the_same_error(
    server: LocalModelServer, pool: HttpPool
) -> None:
    models = _pair(pool, server.base_url, "disconnect_rate=1", max_tokens=64)
    lean, stock = [await _error(_drain(m)) for m in models]
    assert issubclass(lean["class"], openai.APIConnectionError)
    assert lean == stock


async def _drain(model: Any) -> list[Any]:
    return [chunk async for chunk in model.astream(FACT)]


async def test_retries_follow_the_sdks_policy(server: LocalModelServer, pool: HttpPool) -> None:
    faults = "error_rate=1,error_statuses=429,retry_after=0.01"
    counts = []
    for model in _pair(pool, server.base_url, faults, max_retries=2):
        before = server.stats()["requests"].get("/v1/chat/completions", {}).get("429", 0)
        with pytest.raises(openai.RateLimitError):
            await model.ainvoke(FACT)
        after = server.stats()["requests"]["/v1/chat/completions"]["429"]
        counts.append(after - before)
    assert counts == [3, 3]  # one call and two retries, on both paths


async def test_leaving_a_stream_early_cuts_its_connection(
    server: LocalModelServer, pool: HttpPool
) -> None:
    lean, _ = _pair(pool, server.base_url, "token_delay=0.05", max_tokens=200)
    before = server.stats()["streams"]["cut_client"]
    stream = lean.astream("Write a long story about a lighthouse.")
    async for _chunk in stream:
        break
    await stream.aclose()
    for _ in range(100):  # the server notices the cut at its next write
        if server.stats()["streams"]["cut_client"] > before:
            break
        await asyncio.sleep(0.02)
    assert server.stats()["streams"]["cut_client"] == before + 1


async def test_cancelling_a_streaming_task_cuts_its_connection(
    server: LocalModelServer, pool: HttpPool
) -> None:
    lean, _ = _pair(pool, server.base_url, "token_delay=0.05", max_tokens=200)
    before = server.stats()["streams"]["cut_client"]
    started = asyncio.Event()

    async def consume() -> None:
        async for _chunk in lean.astream("Write a long story about a lighthouse."):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if server.stats()["streams"]["cut_client"] > before:
            break
        await asyncio.sleep(0.02)
    assert server.stats()["streams"]["cut_client"] == before + 1


async def test_the_stream_chunk_timeout_bounds_each_read_on_the_lean_path(
    server: LocalModelServer, pool: HttpPool
) -> None:
    lean, _ = _pair(pool, server.base_url, "ttft=1", stream_chunk_timeout=0.3)
    assert lean.stream_chunk_timeout is None  # no asyncio.wait_for per chunk
    seen = await _error(_drain(lean))
    assert issubclass(seen["class"], openai.APITimeoutError)
