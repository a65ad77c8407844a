"""LangChain's recorded messages in the GenAI conventions' shape (``gen_ai.*.messages``)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.base import messages_to_dict

from chainkit.trace._genai_messages import input_messages, output_message


def test_a_tool_conversation() -> None:
    messages = [
        SystemMessage("Be brief."),
        HumanMessage(
            [{"type": "text", "text": "Weather?"}, {"type": "image_url", "image_url": {"url": "u"}}]
        ),
        AIMessage("", tool_calls=[{"id": "c1", "name": "weather", "args": {"city": "Oslo"}}]),
        ToolMessage("rain", tool_call_id="c1"),
    ]
    inputs = {"messages": [[{"type": m.type, **m.model_dump()} for m in messages]]}
    assert input_messages(inputs) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "Weather?"},
                {"type": "image_url", "image_url": {"url": "u"}},
            ],
        },
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "name": "weather", "id": "c1", "arguments": {"city": "Oslo"}}
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "response": "rain", "id": "c1"}]},
    ]


def test_langchain_serialized_messages_and_completion_prompts() -> None:
    dumped = [m["data"] | {"type": m["type"]} for m in messages_to_dict([HumanMessage("hi")])]
    assert input_messages({"messages": dumped}) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]}
    ]
    lc = {"lc": 1, "type": "constructor", "id": ["x", "AIMessage"], "kwargs": {"content": "yo"}}
    assert input_messages({"messages": [lc]})[0]["role"] == "assistant"
    assert input_messages({"prompts": ["Human: hi"]}) == [
        {"role": "user", "parts": [{"type": "text", "content": "Human: hi"}]}
    ]


def test_the_answer_with_tool_calls() -> None:
    call = {"id": "c1", "name": "f", "args": {}}
    assert output_message("ok", [call], "tool_calls") == {
        "role": "assistant",
        "parts": [
            {"type": "text", "content": "ok"},
            {"type": "tool_call", "name": "f", "id": "c1", "arguments": {}},
        ],
        "finish_reason": "tool_calls",
    }


json_values: Any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_recorded_input_becomes_messages_with_roles_and_parts(value: Any) -> None:
    """Trace files are outside data: whatever a run's inputs hold, the mapping gives messages."""
    for inputs in (value, {"messages": value}, {"prompts": value}):
        messages = input_messages(inputs)
        assert isinstance(messages, list)
        for message in messages:
            assert isinstance(message["role"], str)
            assert isinstance(message["parts"], list)
        orjson.dumps(messages, default=str)


@pytest.mark.parametrize("inputs", [None, {"messages": []}, {"prompts": []}])
def test_nothing_to_send(inputs: Any) -> None:
    assert input_messages(inputs) == []
