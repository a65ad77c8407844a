"""GET /chains and POST /chains/{name}/invoke: outputs, usage, config, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chainkit.models.local import LocalModelServer
from chainkit.server import ServiceThread
from tests.server.conftest import running, stream_events

BUILTINS = {"song", "story", "fact", "explain", "haiku", "summarize", "extract", "outline_story"}

LIMERICK = """\
name = "limerick"
description = "A limerick about {topic}."
template = "Write a limerick about {topic} in a {mood} mood."
parser = "str"

[defaults]
mood = "cheerful"
"""


@pytest.fixture(scope="module")
def spec_service(
    model_server: LocalModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceThread]:
    folder: Path = tmp_path_factory.mktemp("chains")
    (folder / "limerick.toml").write_text(LIMERICK)
    with running(model_server, chains_dir=folder) as svc:
        yield svc


def test_list_chains(client: httpx.Client) -> None:
    response = client.get("/chains")
    assert response.status_code == 200
    chains = {c["name"]: c for c in response.json()["chains"]}
    assert set(chains) >= BUILTINS
    song = chains["song"]
    assert song["description"]
    assert song["variables"] == ["topic"]
    assert song["output"] == "str"
    schema = song["input_schema"]
    assert schema["type"] == "object"
    assert schema["required"] == ["topic"]
    assert schema["properties"]["topic"]["type"] == "string"
    assert chains["extract"]["output"] == "pydantic:Extraction"
    assert chains["outline_story"]["output"] == "dict"


def test_list_includes_spec_files(spec_service: ServiceThread) -> None:
    with httpx.Client(base_url=spec_service.url, timeout=30) as c:
        chains = {x["name"]: x for x in c.get("/chains").json()["chains"]}
        limerick = chains["limerick"]
        assert limerick["variables"] == ["topic"]
        assert limerick["input_schema"]["properties"]["mood"]["default"] == "cheerful"
        response = c.post("/chains/limerick/invoke", json={"input": {"topic": "a cat"}})
        assert response.status_code == 200, response.text
        assert isinstance(response.json()["output"], str)


def test_invoke_text_chain(client: httpx.Client) -> None:
    response = client.post("/chains/song/invoke", json={"input": {"topic": "sparkling water"}})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"output", "metadata"}  # LangServe's response
    assert isinstance(body["output"], str)
    assert body["output"].strip()
    meta = body["metadata"]
    assert set(meta) == {"run_id", "feedback_tokens", "usage", "latency_ms", "request_id"}
    assert meta["request_id"] == response.headers["x-request-id"]
    assert meta["usage"]["input_tokens"] > 0
    assert meta["usage"]["output_tokens"] > 0
    assert meta["usage"]["total_tokens"] == (
        meta["usage"]["input_tokens"] + meta["usage"]["output_tokens"]
    )
    assert meta["latency_ms"] > 0


def test_invoke_is_deterministic(client: httpx.Client) -> None:
    body = {"input": {"topic": "the moon"}}
    first = client.post("/chains/haiku/invoke", json=body).json()["output"]
    second = client.post("/chains/haiku/invoke", json=body).json()["output"]
    assert first == second


def test_invoke_structured_and_dict_outputs(client: httpx.Client) -> None:
    response = client.post(
        "/chains/extract/invoke", json={"input": {"text": "I love sunny days at the beach."}}
    )
    assert response.status_code == 200, response.text
    output = response.json()["output"]
    assert set(output) == {"title", "keywords", "sentiment"}
    assert output["sentiment"] in ("positive", "neutral", "negative")

    response = client.post("/chains/outline_story/invoke", json={"input": {"topic": "a fox"}})
    assert response.status_code == 200, response.text
    output = response.json()["output"]
    assert {"topic", "outline", "title", "story", "word_count"} <= set(output)
    assert output["word_count"] == len(output["story"].split())


def test_invoke_passes_tags_and_metadata(client: httpx.Client) -> None:
    """The request's config reaches the run (seen in its event stream), with the request id."""
    body = {
        "input": {"topic": "rain"},
        "config": {"tags": ["from-test"], "metadata": {"user": "ada"}},
        "include_types": ["chat_model"],
    }
    response, events = stream_events(
        client, "/chains/haiku/stream_events", body, headers={"X-Request-ID": "req-42"}
    )
    assert response.status_code == 200
    start = next(e.data for e in events if e.event == "data")
    assert "from-test" in start["tags"]
    assert start["metadata"]["user"] == "ada"
    assert start["metadata"]["request_id"] == "req-42"


def test_unknown_chain_is_404_with_suggestions(client: httpx.Client) -> None:
    for path in ("/chains/sonng/invoke", "/chains/sonng/stream", "/chains/sonng/batch"):
        body = {"inputs": [{}]} if path.endswith("batch") else {"input": {"topic": "x"}}
        response = client.post(path, json=body)
        assert response.status_code == 404, path
        error = response.json()["error"]
        assert error["code"] == "unknown_chain"
        assert error["suggestions"] == ["song"]
        assert "sonng" in error["message"]
        assert error["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize("endpoint", ["invoke", "stream", "stream_events"])
def test_missing_variable_is_422_naming_it(client: httpx.Client, endpoint: str) -> None:
    response = client.post(f"/chains/song/{endpoint}", json={"input": {"topc": "x"}})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "missing_variable"
    assert error["missing"] == ["topic"]
    assert "'topic'" in error["message"]
    assert "song" in error["message"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"input": "a string"},
        {"input": ["a", "list"]},
        {"input": {"topic": "x"}, "config": {"callbacks": []}},
        {"input": {"topic": "x"}, "config": {"tags": "not-a-list"}},
        {"input": {"topic": "x"}, "extra": 1},
    ],
)
def test_invalid_bodies_are_422(client: httpx.Client, body: dict[str, object]) -> None:
    response = client.post("/chains/song/invoke", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"]
    assert all(set(d) == {"loc", "msg", "type"} for d in error["details"])  # no input echoed


def test_unknown_routes_and_methods_are_json(client: httpx.Client) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    response = client.get("/chains/song/invoke")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
