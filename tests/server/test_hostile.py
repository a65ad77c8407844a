"""Hostile requests against a real uvicorn: label cardinality, lone surrogates, raw HTTP abuse."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chainkit.models.local import LocalModelServer
from chainkit.server import ServerSettings, ServiceThread
from tests.server.conftest import TOKEN, running

ROUTES = {
    "/generate",
    "/chains",
    "/chains/{name}/invoke",
    "/chains/{name}/batch",
    "/chains/{name}/stream",
    "/chains/{name}/stream_events",
    "/health",
    "/metrics",
    "/docs",
    "/openapi.json",
    "other",
}


def _endpoints(text: str) -> set[str]:
    return {
        s.labels["endpoint"]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if "endpoint" in s.labels
    }


@pytest.fixture(scope="module")
def guarded(model_server: LocalModelServer) -> Iterator[ServiceThread]:
    with running(model_server, ServerSettings(api_token=TOKEN)) as svc:
        yield svc


def test_unknown_paths_do_not_become_metric_labels(guarded: ServiceThread) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=guarded.url, timeout=30) as c:
        for i in range(40):  # without a token: 401 before any route ran
            assert c.get(f"/x{i}").status_code == 401
            assert c.post(f"/chains/c{i}/invoke", json={}).status_code == 401
        for i in range(10):  # with it: 404, 405
            assert c.get(f"/y{i}", headers=auth).status_code == 404
            assert c.get(f"/chains/d{i}/invoke", headers=auth).status_code == 405
        c.get("/metrics", headers=auth)  # its own series exist from now on
        before = len(c.get("/metrics", headers=auth).content)
        for i in range(40, 80):
            assert c.get(f"/x{i}/{'z' * 50}").status_code == 401
        text = c.get("/metrics", headers=auth).text
    endpoints = _endpoints(text)
    assert endpoints <= ROUTES, endpoints - ROUTES
    assert {"other", "/chains/{name}/invoke"} <= endpoints
    assert len(text) <= before + 100  # 40 more unknown paths grew nothing but counts
    samples = {
        (s.name, s.labels.get("endpoint"), s.labels.get("status")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples["chainkit_http_requests_total", "other", "401"] == 80
    assert samples["chainkit_http_requests_total", "/chains/{name}/invoke", "401"] == 40
    assert samples["chainkit_http_requests_total", "other", "404"] == 10
    assert samples["chainkit_http_requests_total", "/chains/{name}/invoke", "405"] == 10


# ---------------------------------------------------------------- lone surrogates

LONE = '"\\ud800"'  # JSON's spelling of half a UTF-16 pair


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/chains/song/invoke", f'{{"input": {{"topic": {LONE}}}}}', "input.topic"),
        ("/chains/song/stream", f'{{"input": {{"topic": {LONE}}}}}', "input.topic"),
        ("/chains/song/stream_events", f'{{"input": {{"topic": {LONE}}}}}', "input.topic"),
        (
            "/chains/song/batch",
            f'{{"inputs": [{{"topic": "a"}}, {{"topic": {LONE}}}]}}',
            "inputs[1].topic",
        ),
        ("/generate", f'{{"prompt": {LONE}}}', "prompt"),
        (
            "/chains/song/invoke",
            f'{{"input": {{"topic": "x"}}, "config": {{"tags": [{LONE}]}}}}',
            "config.tags[0]",
        ),
        ("/chains/song/invoke", f'{{"input": {{{LONE}: "x"}}}}', "input.<key"),
    ],
)
def test_a_lone_surrogate_is_422_naming_the_field(
    service: ServiceThread, path: str, body: str, field: str
) -> None:
    with httpx.Client(base_url=service.url, timeout=30) as c:
        response = c.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert field in error["message"]
    assert "lone surrogate" in error["message"]
