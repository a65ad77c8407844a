"""Any request body gives a valid object or an OpenAI-style 4xx, never anything else.

Hypothesis writes request bodies for ``/v1/responses`` and ``/v1/embeddings`` from the
parameters' real names and shapes mixed with wrong types; each must either succeed
(and then parse strictly as the openai SDK's own type) or raise ``BadRequest`` with a
4xx status and a message.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types import CreateEmbeddingResponse
from openai.types.responses import Response, ResponseItemList, ResponseStreamEvent
from pydantic import TypeAdapter

from chainkit.models.local._embeddings import create_embeddings
from chainkit.models.local._errors import BadRequest
from chainkit.models.local._responses_api import ResponsesAPI

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,  # the same examples every run: no flaky surprises in CI
)
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


def _strategies(bad: st.SearchStrategy[Any]) -> tuple[st.SearchStrategy[Any], ...]:
    """(responses body, embeddings body); ``bad`` values mix into every field (with
    ``st.nothing()``, only values OpenAI accepts, except where calls and outputs pair)."""
    fuzzy = not bad.is_empty

    def also(*wrong: Any) -> list[Any]:
        return list(wrong) if fuzzy else []

    part = st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                ["input_text", "output_text", "input_image", "refusal", *also("x")]
            )
        },
        optional={
            "text": words | bad,
            "image_url": st.just("data:image/png;base64,AA"),
            "refusal": words,
        },
    )
    item = st.one_of(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "assistant", "system", "developer", *also("tool")])},
            optional={"type": st.just("message"), "content": words | st.lists(part, max_size=2)},
        ),
        st.fixed_dictionaries(
            {"type": st.just("function_call"), "call_id": st.sampled_from(["c1", "c2"])},
            optional={"name": st.just("get_weather"), "arguments": st.just('{"city": "Oslo"}')},
        ),
        st.fixed_dictionaries(
            {"type": st.just("function_call_output"), "call_id": st.sampled_from(["c1", "c2"])},
            optional={"output": words | bad},
        ),
        st.fixed_dictionaries({"type": st.sampled_from(["reasoning", *also("web_search_call")])}),
        bad,
    )
    tool = st.fixed_dictionaries(
        {
            "type": st.sampled_from(["function", *also("web_search")]),
            "name": st.sampled_from(["get_weather", "f"]),
        },
        optional={
            "parameters": st.just({"type": "object", "properties": {"city": {"type": "string"}}})
            | bad,
            "description": words,
        },
    )
    responses_body = st.fixed_dictionaries(
        {"model": st.sampled_from(["gpt-4o-mini", "o4-mini"]) | bad},
        optional={
            "input": words | st.lists(item, max_size=4) | bad,
            "instructions": words | bad,
            "tools": st.lists(tool, max_size=2) | bad,
            "tool_choice": st.sampled_from(["auto", "none", "required"])
            | st.just({"type": "function", "name": "get_weather"})
            | bad,
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
            | bad,
            "reasoning": st.just({"effort": "low", "summary": "auto"}) | bad,
            "max_output_tokens": st.integers(0 if fuzzy else 16, 40) | bad,
            "temperature": st.floats(-1, 3) if fuzzy else st.floats(0, 2),
            "stream": st.booleans() | bad,
            "store": st.booleans(),
            "metadata": bad | st.just({"run": "7"}),
            "include": st.just(["message.output_text.logprobs"]) | bad,
            "top_logprobs": st.integers(0, 20) | bad,
        },
    )
    embeddings_body = st.fixed_dictionaries(
        {"model": st.sampled_from(["text-embedding-3-small", "text-embedding-ada-002"]) | bad},
        optional={
            "input": words
            | st.lists(words, max_size=3)
            | st.lists(st.integers(-2 if fuzzy else 0, 9), max_size=4)
            | bad,
            "dimensions": st.integers(-1 if fuzzy else 1, 4000 if fuzzy else 1536) | bad,
            "encoding_format": st.sampled_from(["float", "base64", *also("hex")]) | bad,
        },
    )
    return responses_body, embeddings_body


# mostly wrong types (the 4xx paths) and only right ones (the answers: streams, tools,
# formats, reasoning, stored items)
FUZZY_RESPONSES, FUZZY_EMBEDDINGS = _strategies(junk)
GOOD_RESPONSES, GOOD_EMBEDDINGS = _strategies(st.nothing())


def _check_4xx(error: BadRequest) -> None:
    assert 400 <= error.status < 500
    assert error.message


@SETTINGS
@given(FUZZY_RESPONSES | GOOD_RESPONSES)
def test_responses_bodies_give_a_valid_response_or_a_4xx(body: dict[str, Any]) -> None:
    api = ResponsesAPI()
    try:
        result = api.create(body, 0)
    except BadRequest as exc:
        _check_4xx(exc)
        return
    response = Response.model_validate(orjson.loads(result.body()))
    if response.store:
        ResponseItemList.model_validate_json(api.input_items(response.id, {"limit": "100"}))
    if result.stream:
        for event in result.events().events:
            _EVENTS.validate_json(event.split(b"\ndata: ", 1)[1])


@SETTINGS
@given(FUZZY_EMBEDDINGS | GOOD_EMBEDDINGS)
def test_embeddings_bodies_give_a_valid_list_or_a_4xx(body: dict[str, Any]) -> None:
    try:
        reply = create_embeddings(body)
    except BadRequest as exc:
        _check_4xx(exc)
        return
    raw = orjson.loads(reply.body())
    for item in raw["data"]:
        if isinstance(item["embedding"], str):  # base64 float32s, as the SDK decodes them
            packed = base64.b64decode(item["embedding"])
            item["embedding"] = list(struct.unpack(f"<{len(packed) // 4}f", packed))
    parsed = CreateEmbeddingResponse.model_validate(raw)
    assert parsed.data
    assert {len(d.embedding) for d in parsed.data} == {body.get("dimensions") or 1536}
