"""SSE: /stream and /stream_events, parsed incrementally, over a real uvicorn."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from chainkit.models.local import LocalModelServer
from chainkit.server import ServiceThread
from chainkit.testing import local_model_server
from tests.server.conftest import iter_sse, running, stream_events


@pytest.fixture(scope="module")
def slow_model() -> Iterator[LocalModelServer]:
    """A local model that writes a token every 20 ms."""
    with local_model_server(token_delay=0.02) as server:
        yield server


@pytest.fixture(scope="module")
def slow_service(slow_model: LocalModelServer) -> Iterator[ServiceThread]:
    with running(slow_model) as svc:
        yield svc


def test_chunks_arrive_before_the_model_finishes(slow_service: ServiceThread) -> None:
    with (
        httpx.Client(base_url=slow_service.url, timeout=30) as c,
        c.stream("POST", "/chains/song/stream", json={"input": {"topic": "goldfish"}}) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        sent = time.perf_counter()
        events = list(iter_sse(r))
    chunks = [e for e in events if e.event == "data" and e.data]
    end = events[-1]
    assert end.event == "end"
    assert len(chunks) >= 20
    total = end.at - sent
    # the first chunk comes in the first half of the stream (the model writes a token
    # every 20 ms), and the chunks arrive over time, not in one piece at the end
    assert chunks[0].at - sent < 0.5 * total
    assert len({round(c.at, 3) for c in chunks}) > len(chunks) // 4


def test_stream_chunks_add_up_to_the_invoke_output(client: httpx.Client) -> None:
    """LangServe's stream: `metadata` (run id), `data` per chunk, `metadata` (usage,
    timings), `end` (no data)."""
    body = {"input": {"topic": "sparkling water"}}
    response, events = stream_events(client, "/chains/song/stream", body)
    assert response.status_code == 200
    kinds = [e.event for e in events]
    assert kinds[0] == "metadata"
    assert kinds[-2:] == ["metadata", "end"]
    assert set(kinds[1:-2]) == {"data"}
    assert events[-1].data is None
    chunks = [e.data for e in events[1:-2]]
    assert all(isinstance(c, str) for c in chunks)
    text = "".join(chunks)
    invoked = client.post("/chains/song/invoke", json=body).json()["output"]
    assert text == invoked
    first, summary = events[0].data, events[-2].data
    assert first["run_id"] == summary["run_id"]
    assert summary["request_id"] == first["request_id"] == response.headers["x-request-id"]
    assert summary["usage"]["output_tokens"] > 0
    assert summary["timings"]["chunks"] == len(chunks)
    assert 0 < summary["timings"]["ttft_ms"] <= summary["timings"]["total_ms"]


def test_stream_of_a_dict_chain(client: httpx.Client) -> None:
    response, events = stream_events(
        client, "/chains/outline_story/stream", {"input": {"topic": "a lighthouse"}}
    )
    assert response.status_code == 200
    assert events[-1].event == "end"
    chunks = [e.data for e in events if e.event == "data"]
    assert all(isinstance(c, dict) for c in chunks)
    merged: dict[str, Any] = {}
    for chunk in chunks:  # pieces of one dict, as RemoteRunnable adds them up
        merged |= chunk
    assert {"topic", "outline", "title", "story", "word_count"} <= set(merged)


def test_stream_events_are_plain_json(client: httpx.Client) -> None:
    response, events = stream_events(
        client, "/chains/haiku/stream_events", {"input": {"topic": "snow"}}
    )
    assert response.status_code == 200
    assert events[-1].event == "end"
    data = [e.data for e in events if e.event == "data"]
    assert [e.event for e in events] == ["data"] * len(data) + ["end"]
    names = [d["event"] for d in data]
    assert names[0] == "on_chain_start"
    assert names[-1] == "on_chain_end"
    assert "on_chat_model_stream" in names
    assert "on_prompt_end" in names
    for d in data:
        assert {"event", "name", "run_id", "parent_ids", "tags", "metadata", "data"} <= set(d)
    # messages, chunks and prompt values are serialized as JSON objects, not reprs
    chunk = next(d for d in data if d["event"] == "on_chat_model_stream")["data"]["chunk"]
    assert chunk["type"] == "AIMessageChunk"
    assert isinstance(chunk["content"], str)
    model_end = next(d for d in data if d["event"] == "on_chat_model_end")["data"]
    assert model_end["output"]["type"] in ("ai", "AIMessageChunk")
    root_end = data[-1]["data"]["output"]
    assert isinstance(root_end, str)
    streamed = "".join(
        d["data"]["chunk"]["content"] for d in data if d["event"] == "on_chat_model_stream"
    )
    assert streamed == root_end


def test_stream_events_filters(client: httpx.Client) -> None:
    path = "/chains/haiku/stream_events"
    _, events = stream_events(
        client, path, {"input": {"topic": "snow"}, "include_types": ["chat_model"]}
    )
    names = {e.data["event"] for e in events if e.event == "data"}
    assert names == {"on_chat_model_start", "on_chat_model_stream", "on_chat_model_end"}

    _, events = stream_events(
        client,
        path,
        {"input": {"topic": "snow"}, "exclude_types": ["chat_model"], "exclude_names": ["haiku"]},
    )
    data = [e.data for e in events if e.event == "data"]
    assert data
    assert not any(d["event"].startswith("on_chat_model") for d in data)
    assert not any(d["name"] == "haiku" for d in data)

    _, events = stream_events(
        client,
        path,
        {"input": {"topic": "snow"}, "config": {"tags": ["mine"]}, "include_tags": ["mine"]},
    )
    assert {e.data["name"] for e in events if e.event == "data"} >= {"haiku"}


def test_stream_events_of_a_nested_chain(client: httpx.Client) -> None:
    _, events = stream_events(
        client,
        "/chains/outline_story/stream_events",
        {"input": {"topic": "a fox"}, "include_names": ["outline", "title", "story"]},
    )
    data = [e.data for e in events if e.event == "data"]
    assert {d["name"] for d in data} == {"outline", "title", "story"}
    assert all(d["parent_ids"] for d in data)  # nested under the root run


async def test_fifty_concurrent_streams_complete_and_stay_separate(
    slow_service: ServiceThread, slow_model: LocalModelServer
) -> None:
    topics = [f"topic number {i}" for i in range(50)]
    slow_model.reset_stats()

    async def one(client: httpx.AsyncClient, topic: str) -> tuple[str, str]:
        texts: list[str] = []
        end: dict[str, Any] = {}
        async with client.stream(
            "POST", "/chains/haiku/stream", json={"input": {"topic": topic}}
        ) as r:
            assert r.status_code == 200
            event = ""
            async for line in r.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data = orjson.loads(line[5:]) if line[5:].strip() else None
                    if event == "data":
                        texts.append(data)
                    elif event == "metadata":
                        end = data
                    elif event != "end":
                        raise AssertionError(f"{topic}: {event} {data}")
        assert end["usage"]["output_tokens"] > 0, topic  # the last metadata event
        return topic, "".join(texts)

    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=slow_service.url, timeout=60, limits=limits) as c:
        results = await asyncio.gather(*(one(c, t) for t in topics))
    assert len(results) == 50
    for topic, streamed in results:
        # every stream got its own text: the local model writes the topic into the haiku
        assert re.search(rf"\b{topic}\b", streamed, re.IGNORECASE), (topic, streamed)
    stats = slow_model.stats()
    assert stats["streams"]["completed"] == 50
    assert stats["streams"]["cut_client"] == 0
    assert stats["max_in_flight"] > 10  # the streams overlapped


def test_stream_events_serialize_pydantic_outputs(client: httpx.Client) -> None:
    _, events = stream_events(
        client, "/chains/extract/stream_events", {"input": {"text": "A sunny day at the beach."}}
    )
    assert events[-1].event == "end"
    data = [e.data for e in events if e.event == "data"]
    output = data[-1]["data"]["output"]  # the root run's end: an Extraction, as an object
    assert data[-1]["event"] == "on_chain_end"
    assert set(output) >= {"title", "keywords", "sentiment"}
    model_end = next(d for d in data if d["event"] == "on_chat_model_end")
    tool_calls = model_end["data"]["output"]["tool_calls"]
    assert tool_calls[0]["name"] == "Extraction"
    assert isinstance(tool_calls[0]["args"], dict)
