"""Locust users for benchmarks/load.py (run by Locust, in its own virtualenv).

TARGET=chainkit: `chainkit serve` (invoke, stream, stream_events, batch);
TARGET=local: `chainkit local serve` (chat completions plain and streamed, a streamed
Responses call, embeddings). 5% of streams are dropped by the client after the first event
(counted per kind and written to $DROPS_FILE as JSON when Locust quits).
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

from locust import HttpUser, between, events, task

DISCONNECT_RATE = float(os.environ.get("DISCONNECT_RATE", "0.05"))
# OpenAI stores every response by default (store=true) for later retrieval; STORE=0 asks not to
STORE = os.environ.get("STORE", "1") != "0"
DROPPED: dict[str, int] = {}  # streams this process dropped, per kind
TOPICS = ["the sea", "a lighthouse", "goldfish", "winter", "a library", "trains", "tea"]


def _topic() -> str:
    return random.choice(TOPICS)


def _read_stream(user: HttpUser, path: str, body: dict[str, Any], name: str) -> None:
    """Read an SSE response to its end, or drop it after its first line (a client leaving)."""
    leave = random.random() < DISCONNECT_RATE
    with user.client.post(path, json=body, stream=True, catch_response=True, name=name) as r:
        if r.status_code != 200:
            r.failure(f"status {r.status_code}")
            return
        for line in r.iter_lines():
            if leave and line:
                r.close()  # the connection goes with it: a disconnect mid-stream
                r.success()
                DROPPED[name] = DROPPED.get(name, 0) + 1
                return
        r.success()


@events.quitting.add_listener
def _write_drops(**_: Any) -> None:
    """Write the drops per kind to $DROPS_FILE (JSON) for benchmarks/load.py."""
    if path := os.environ.get("DROPS_FILE"):
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(DROPPED, handle)


class ChainkitServeUser(HttpUser):
    """chainkit serve: the four chain endpoints."""

    wait_time = between(0.05, 0.3)
    abstract = os.environ.get("TARGET", "chainkit") != "chainkit"

    @task(4)
    def invoke(self) -> None:
        self.client.post("/chains/haiku/invoke", json={"input": {"topic": _topic()}}, name="invoke")

    @task(3)
    def stream(self) -> None:
        _read_stream(self, "/chains/haiku/stream", {"input": {"topic": _topic()}}, "stream")

    @task(2)
    def stream_events(self) -> None:
        body = {"input": {"topic": _topic()}, "include_types": ["chat_model"]}
        _read_stream(self, "/chains/haiku/stream_events", body, "stream_events")

    @task(1)
    def batch(self) -> None:
        body = {"inputs": [{"topic": _topic()} for _ in range(3)], "max_concurrency": 3}
        self.client.post("/chains/haiku/batch", json=body, name="batch")


class LocalServeUser(HttpUser):
    """chainkit local serve: the OpenAI-compatible endpoints."""

    wait_time = between(0.05, 0.3)
    abstract = os.environ.get("TARGET", "chainkit") != "local"

    def _chat(self, stream: bool) -> dict[str, Any]:
        return {
            "model": "chainkit-local",
            "messages": [{"role": "user", "content": f"Write a haiku about {_topic()}."}],
            "max_tokens": 48,
            "stream": stream,
        }

    @task(4)
    def chat(self) -> None:
        self.client.post("/v1/chat/completions", json=self._chat(False), name="chat")

    @task(3)
    def chat_stream(self) -> None:
        _read_stream(self, "/v1/chat/completions", self._chat(True), "chat stream")

    @task(2)
    def responses_stream(self) -> None:
        body = {
            "model": "chainkit-local",
            "input": f"Write a haiku about {_topic()}.",
            "max_output_tokens": 48,
            "stream": True,
            "store": STORE,
        }
        _read_stream(self, "/v1/responses", body, "responses stream")

    @task(1)
    def embeddings(self) -> None:
        body = {"model": "chainkit-local", "input": [_topic() for _ in range(8)]}
        self.client.post("/v1/embeddings", json=body, name="embeddings")
