"""Any batch input file is requests or line errors; any create body is a batch or a 4xx.

Hypothesis writes input files from real request lines mixed with junk (wrong types,
missing fields, duplicates, bytes that are not JSON) and ``POST /v1/batches`` bodies;
the validation must never raise, and every error names a line of the file.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainkit.models.local._batches import BatchStore, _validate
from chainkit.models.local._errors import BadRequest
from chainkit.models.local._files import FileStore
from chainkit.models.local._settings import LocalModelSettings

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
CHAT = "/v1/chat/completions"

junk = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=5,
)
good_body = st.fixed_dictionaries(
    {"model": st.just("gpt-4o-mini"), "messages": st.just([{"role": "user", "content": "hi"}])}
)
request = st.fixed_dictionaries(
    {},
    optional={
        "custom_id": st.sampled_from(["a", "b", "c", ""]) | junk,
        "method": st.sampled_from(["POST", "GET"]) | junk,
        "url": st.sampled_from([CHAT, "/v1/completions"]) | junk,
        "body": good_body | junk,
    },
)
line = request.map(orjson.dumps) | st.binary(max_size=20) | junk.map(orjson.dumps)


@SETTINGS
@given(st.lists(line, max_size=6), st.sampled_from([b"\n", b"\r\n"]))
def test_any_input_file_is_requests_or_line_errors(lines: list[bytes], end: bytes) -> None:
    data = end.join(lines)
    requests, errors = _validate(data, CHAT)
    numbered = data.split(b"\n")
    for error in errors:
        assert set(error) == {"code", "message", "param", "line"}
        assert 1 <= error["line"] <= max(1, len(numbered))
        assert error["message"]
    if not errors:
        assert requests
        ids = [r.custom_id for r in requests]
        assert len(ids) == len(set(ids))
        assert all(isinstance(r.body, dict) for r in requests)


fields = st.sampled_from(["input_file_id", "endpoint", "completion_window", "metadata"])


@SETTINGS
@given(st.dictionaries(fields, junk | st.just(CHAT) | st.just("24h")))
def test_any_create_body_is_a_4xx_naming_the_problem(body: dict[str, Any]) -> None:
    store = BatchStore(FileStore())  # no files: every body is refused, none raises otherwise
    with pytest.raises(BadRequest) as info:
        store.create(body, LocalModelSettings())
    assert 400 <= info.value.status < 500
    assert info.value.message
