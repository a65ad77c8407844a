"""Property-based: any request body, to any chain endpoint of a real server, gets a clear
answer (a 2xx, or a JSON 4xx naming the problem): never a 500, an internal_error event or a
hang. Bounded examples keep it quick."""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chainkit.server import ServiceThread
from tests.server.conftest import iter_sse

SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,  # the same examples every run: no flaky surprises in CI
)

# text with everything JSON can carry, lone surrogates and control characters included
TEXT = st.text(
    st.characters(codec=None, exclude_categories=()) | st.sampled_from("\ud800\udfff\x00\x1b"),
    max_size=12,
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
INPUT = st.one_of(
    st.fixed_dictionaries({"topic": TEXT}),
    st.dictionaries(TEXT, JSON, max_size=3),
    JSON,
)
BODY = st.one_of(
    st.fixed_dictionaries({"input": INPUT}),
    st.fixed_dictionaries({"input": INPUT, "config": JSON}),
    st.fixed_dictionaries({"inputs": st.lists(INPUT, max_size=3), "max_concurrency": JSON}),
    st.fixed_dictionaries({"prompt": JSON}),
    JSON,
)
DEEP = b"[" * 50_000 + b"]" * 50_000  # nested past any parser's recursion limit, < 1 MiB


def _dumps(body: Any) -> bytes:
    return json.dumps(body).encode()  # ensure_ascii: a lone surrogate travels as \\ud800


def _check(response: httpx.Response, text: str) -> None:
    assert response.status_code < 500, text[:500]
    if response.status_code >= 400:
        error = json.loads(text)["error"]
        assert error["code"] != "internal_error"
        assert error["message"]
        assert "\n" not in error["message"]


@SETTINGS
@given(
    path=st.sampled_from(["/chains/haiku/invoke", "/generate", "/chains/haiku/batch"]), body=BODY
)
@example(path="/chains/haiku/invoke", body=None).via("null body")
def test_any_body_is_answered_clearly(service: ServiceThread, path: str, body: Any) -> None:
    with httpx.Client(base_url=service.url, timeout=60) as client:
        response = client.post(
            path, content=_dumps(body), headers={"content-type": "application/json"}
        )
        _check(response, response.text)


@SETTINGS
@given(raw=st.binary(max_size=64))
@example(raw=DEEP).via("deep nesting")
@example(raw=b'{"input": {"topic": "\\ud800"}}').via("lone surrogate")
@example(raw=b'{"input": {"topic": "\xff\xfe"}}').via("not UTF-8")
def test_any_bytes_are_answered_clearly(service: ServiceThread, raw: bytes) -> None:
    with httpx.Client(base_url=service.url, timeout=60) as client:
        for path in ("/chains/haiku/invoke", "/generate"):
            response = client.post(path, content=raw, headers={"content-type": "application/json"})
            _check(response, response.text)


@SETTINGS
@given(
    path=st.sampled_from(["/chains/haiku/stream", "/chains/haiku/stream_events"]),
    body=BODY,
)
def test_any_stream_body_is_answered_clearly(service: ServiceThread, path: str, body: Any) -> None:
    with httpx.Client(base_url=service.url, timeout=60) as client:
        headers = {"content-type": "application/json"}
        with client.stream("POST", path, content=_dumps(body), headers=headers) as response:
            if response.status_code != 200:
                _check(response, response.read().decode())
                return
            events = list(iter_sse(response))
    assert events[-1].event in ("end", "error")
    for event in events:
        if event.event == "error":
            assert event.data["code"] != "internal_error", event.data


@SETTINGS
@given(
    path=st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#"), max_size=30
    )
)
def test_any_path_is_answered_clearly(service: ServiceThread, path: str) -> None:
    with httpx.Client(base_url=service.url, timeout=60) as client:
        response = client.get("/" + path.lstrip("/"))
    assert response.status_code < 500
