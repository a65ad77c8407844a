"""/metrics (Prometheus), the access log, request ids, /health, and the OpenAPI document."""

from __future__ import annotations

import re

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chainkit.models.local import LocalModelServer
from chainkit.server import ServerSettings, create_app
from tests.conftest import CANARY_KEY
from tests.server.conftest import LogLines, running, stream_events


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def _value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(v for n, lab, v in samples if n == name and labels.items() <= lab.items())


def test_metrics(model_server: LocalModelServer) -> None:
    with running(model_server) as svc, httpx.Client(base_url=svc.url, timeout=30) as c:
        assert c.post("/chains/song/invoke", json={"input": {"topic": "x"}}).status_code == 200
        assert c.post("/chains/song/invoke", json={"input": {}}).status_code == 422
        assert c.post("/chains/nope/invoke", json={"input": {}}).status_code == 404
        stream_events(c, "/chains/haiku/stream", {"input": {"topic": "y"}})
        stream_events(c, "/chains/haiku/stream_events", {"input": {"topic": "y"}})
        response = c.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    invoke = "/chains/{name}/invoke"
    assert _value(samples, "chainkit_http_requests_total", endpoint=invoke, chain="song") == 2
    assert _value(samples, "chainkit_http_requests_total", endpoint=invoke, status="200") == 1
    assert _value(samples, "chainkit_http_requests_total", endpoint=invoke, status="404") == 1
    # an unknown name is not a label value (no cardinality from typos)
    assert not [s for s in samples if s[1].get("chain") == "nope"]
    count = "chainkit_http_request_duration_seconds_count"
    assert _value(samples, count, endpoint=invoke, chain="song") == 2
    assert _value(samples, count, endpoint="/chains/{name}/stream", chain="haiku") == 1
    assert _value(samples, "chainkit_tokens_total", chain="song", kind="output") > 0
    assert _value(samples, "chainkit_tokens_total", chain="haiku", kind="input") > 0
    assert _value(samples, "chainkit_streams_in_flight") == 0
    assert _value(samples, "chainkit_streams_total", chain="haiku", outcome="completed") == 2
    assert _value(samples, "chainkit_stream_ttft_seconds_count", chain="haiku") == 2
    assert _value(samples, "chainkit_errors_total", type="MissingVariableError") == 1
    assert _value(samples, "chainkit_errors_total", type="UnknownChainError") == 1


def test_each_app_has_its_own_registry() -> None:
    one = create_app(model="local", settings=ServerSettings(api_token=None))
    two = create_app(model="local", settings=ServerSettings(api_token=None))
    assert one.state.chainkit.metrics.registry is not two.state.chainkit.metrics.registry


def test_access_log_and_request_ids(client: httpx.Client, logs: LogLines) -> None:
    secret_input = {"input": {"topic": f"my key is {CANARY_KEY}"}}
    response = client.post(
        "/chains/haiku/invoke", json=secret_input, headers={"X-Request-ID": "abc-123"}
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "abc-123"
    line = logs.wait_for('"request_id":"abc-123"')
    record = next(a for a in logs.access() if a["request_id"] == "abc-123")
    assert record == {
        "event": "access",
        "method": "POST",
        "path": "/chains/haiku/invoke",
        "route": "/chains/{name}/invoke",
        "status": 200,
        "latency_ms": record["latency_ms"],
        "chain": "haiku",
        "request_id": "abc-123",
        "client": "127.0.0.1",
    }
    assert record["latency_ms"] > 0
    assert "my key is" not in line  # no bodies by default
    assert CANARY_KEY not in logs.text()

    # a missing or unusable id is replaced by a new one
    for headers in ({}, {"X-Request-ID": "has spaces in it"}, {"X-Request-ID": "x" * 200}):
        response = client.get("/health", headers=headers)
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])

    response = client.post("/chains/nope/invoke", json={"input": {}})
    rid = response.headers["x-request-id"]
    logs.wait_for(rid)
    record = next(a for a in logs.access() if a["request_id"] == rid)
    assert (record["status"], record["error"], record["chain"]) == (404, "UnknownChainError", None)


def test_access_log_with_bodies(model_server: LocalModelServer, logs: LogLines) -> None:
    settings = ServerSettings(api_token=None, log_bodies=True)
    with running(model_server, settings) as svc, httpx.Client(base_url=svc.url) as c:
        body = {"input": {"topic": f"lanterns, key {CANARY_KEY}"}}
        rid = c.post("/chains/haiku/invoke", json=body).headers["x-request-id"]
    line = logs.wait_for(rid)
    assert "lanterns" in line
    assert CANARY_KEY not in line


def test_health(client: httpx.Client) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["streams_in_flight"] == 0
    assert body["uptime_s"] >= 0
    assert body["version"]


def test_openapi_documents_every_endpoint(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    operations = {
        (method.upper(), path): op
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }
    assert set(operations) == {
        ("POST", "/generate"),
        ("GET", "/chains"),
        ("POST", "/chains/{name}/invoke"),
        ("POST", "/chains/{name}/batch"),
        ("POST", "/chains/{name}/stream"),
        ("POST", "/chains/{name}/stream_log"),
        ("POST", "/chains/{name}/stream_events"),
        ("GET", "/chains/{name}/input_schema"),
        ("GET", "/chains/{name}/output_schema"),
        ("GET", "/chains/{name}/config_schema"),
        ("GET", "/health"),
        ("GET", "/metrics"),
    }
    schemas = doc["components"]["schemas"]
    for (method, path), op in operations.items():
        ok = op["responses"]["200"]["content"]
        assert ok, (method, path)
        for media in ok.values():
            assert media.get("schema"), (method, path)
            for ref in re.findall(r'"\$ref": "#/components/schemas/(\w+)"', str(media)):
                assert ref in schemas
        if method == "POST":
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[1] in schemas
        for status, response in op["responses"].items():
            if status != "200":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}
    stream = operations[("POST", "/chains/{name}/stream")]["responses"]["200"]["content"]
    refs = {r["$ref"].rsplit("/", 1)[1] for r in stream["text/event-stream"]["schema"]["oneOf"]}
    assert refs == {"StreamMetadataEvent", "StreamErrorEvent"}
    assert {"StreamMetadataEvent", "StreamErrorEvent"} <= set(schemas)
    seed = operations[("POST", "/generate")]
    assert seed["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GenerationResponse"
    }
    assert set(schemas["GenerationRequest"]["properties"]) == {"prompt"}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages(client: httpx.Client, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert "openapi.json" in response.text
