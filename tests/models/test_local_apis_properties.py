"""Any request body gives a valid object or an OpenAI-style 4xx, never anything else.

Hypothesis writes request bodies for ``/v1/responses`` and ``/v1/embeddings`` from the
parameters' real names and shapes mixed with wrong types; each must either succeed
(and then parse strictly as the openai SDK's own type) or raise ``BadRequest`` with a
4xx status and a message.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types import CreateEmbeddingResponse
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from chainkit.models.local._embeddings import create_embeddings
from chainkit.models.local._errors import BadRequest
from chainkit.models.local._responses_api import ResponsesAPI

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)

junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
words = st.sampled_from(["Tell me a joke", "weather in Paris", "", "你好", "list 3 fruits"])
part = st.fixed_dictionaries(
    {"type": st.sampled_from(["input_text", "output_text", "input_image", "refusal", "x"])},
    optional={
        "text": words | junk,
        "image_url": st.just("data:image/png;base64,AA"),
        "refusal": words,
    },
)
item = st.one_of(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "developer", "tool"])},
        optional={"type": st.just("message"), "content": words | st.lists(part, max_size=2)},
    ),
    st.fixed_dictionaries(
        {"type": st.just("function_call"), "call_id": st.sampled_from(["c1", "c2"])},
        optional={"name": st.just("get_weather"), "arguments": st.just('{"city": "Oslo"}')},
    ),
    st.fixed_dictionaries(
        {"type": st.just("function_call_output"), "call_id": st.sampled_from(["c1", "c2"])},
        optional={"output": words | junk},
    ),
    st.fixed_dictionaries({"type": st.sampled_from(["reasoning", "web_search_call"])}),
    junk,
)
tool = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["function", "web_search"]),
        "name": st.sampled_from(["get_weather", "f"]),
    },
    optional={
        "parameters": st.just({"type": "object", "properties": {"city": {"type": "string"}}})
        | junk,
        "description": words,
    },
)
responses_body = st.fixed_dictionaries(
    {"model": st.sampled_from(["gpt-4o-mini", "o4-mini"]) | junk},
    optional={
        "input": words | st.lists(item, max_size=4) | junk,
        "instructions": words | junk,
        "tools": st.lists(tool, max_size=2) | junk,
        "tool_choice": st.sampled_from(["auto", "none", "required"])
        | st.just({"type": "function", "name": "get_weather"})
        | junk,
        "text": st.just(
            {
                "format": {
                    "type": "json_schema",
                    "name": "P",
                    "schema": {"type": "object", "properties": {"a": {"type": "integer"}}},
                }
            }
        )
        | st.just({"format": {"type": "json_object"}})
        | junk,
        "reasoning": st.just({"effort": "low", "summary": "auto"}) | junk,
        "max_output_tokens": st.integers(0, 40) | junk,
        "temperature": st.floats(-1, 3) | junk,
        "stream": st.booleans() | junk,
        "store": st.booleans(),
        "metadata": junk,
    },
)
embeddings_body = st.fixed_dictionaries(
    {"model": st.sampled_from(["text-embedding-3-small", "text-embedding-ada-002"]) | junk},
    optional={
        "input": words
        | st.lists(words, max_size=3)
        | st.lists(st.integers(-2, 9), max_size=4)
        | junk,
        "dimensions": st.integers(-1, 4000) | junk,
        "encoding_format": st.sampled_from(["float", "base64", "hex"]) | junk,
    },
)


def _check_4xx(error: BadRequest) -> None:
    assert 400 <= error.status < 500
    assert error.message


@SETTINGS
@given(responses_body)
def test_responses_bodies_give_a_valid_response_or_a_4xx(body: dict[str, Any]) -> None:
    api = ResponsesAPI()
    try:
        result = api.create(body, 0)
    except BadRequest as exc:
        _check_4xx(exc)
        return
    Response.model_validate(orjson.loads(result.body()))
    if result.stream:
        for event in result.events().events:
            _EVENTS.validate_json(event.split(b"\ndata: ", 1)[1])


@SETTINGS
@given(embeddings_body)
def test_embeddings_bodies_give_a_valid_list_or_a_4xx(body: dict[str, Any]) -> None:
    try:
        reply = create_embeddings(body)
    except BadRequest as exc:
        _check_4xx(exc)
        return
    parsed = CreateEmbeddingResponse.model_validate(orjson.loads(reply.body()))
    assert parsed.data
