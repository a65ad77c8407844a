"""The second seed's endpoint: POST /generate, and its background log line."""

from __future__ import annotations

import httpx

from chainkit.models.local import LocalModelServer
from tests.conftest import CANARY_KEY
from tests.server.conftest import LogLines


def test_generate_exchange_is_the_seeds(client: httpx.Client, logs: LogLines) -> None:
    prompt = "Write a haiku about artificial intelligence."
    response = client.post("/generate", json={"prompt": prompt})
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["generated_text"]
    assert isinstance(body["generated_text"], str)
    assert body["generated_text"].strip()
    # the background task logs after the response was sent: lengths, not content
    line = logs.wait_for("generated text: prompt length")
    assert f"prompt length {len(prompt)}," in line
    assert f"generated text length {len(body['generated_text'])}" in line
    assert response.headers["x-request-id"] in line
    assert prompt not in logs.text()


def test_generate_uses_the_models_text(
    client: httpx.Client, model_server: LocalModelServer
) -> None:
    model_server.reset_stats()
    prompt = "Explain quantum computing in simple terms."
    response = client.post("/generate", json={"prompt": prompt})
    assert response.status_code == 200
    log = model_server.request_log()
    assert [entry["endpoint"] for entry in log] == ["/v1/chat/completions"]
    assert "quantum computing" in log[0]["prompt"]


def test_generate_bad_requests_are_422(client: httpx.Client) -> None:
    for body in ({}, {"prompt": 3}, {"text": "x"}):
        response = client.post("/generate", json=body)
        assert response.status_code == 422, body
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert "prompt" in error["message"]
    response = client.post(
        "/generate", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert CANARY_KEY not in response.text
