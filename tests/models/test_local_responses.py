"""The local model's Responses API through the real ``openai`` SDK and ``ChatOpenAI``.

Objects and events are validated strictly against the SDK's own pydantic types
(the SDK itself builds them without validation), so a missing or misnamed field fails.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from chainkit.models import load_model
from chainkit.models.local import LocalModelServer

MODEL = "gpt-4o-mini"
_EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
TIME = {
    "type": "function",
    "name": "get_time",
    "description": "Get the local time in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def _strict(response: Response) -> Response:
    return Response.model_validate(response.model_dump(mode="json", by_alias=True))


def _events(stream: Any) -> list[Any]:
    with stream:
        return [_EVENTS.validate_python(e.model_dump(mode="json", by_alias=True)) for e in stream]


def test_create_answers_with_a_valid_response_object(client: openai.OpenAI) -> None:
    response = _strict(client.responses.create(model=MODEL, input="Write a haiku about the sea"))
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.model == MODEL
    [message] = response.output
    assert message.type == "message"
    assert message.id.startswith("msg_")
    assert response.output_text.strip()
    usage = response.usage
    assert usage is not None
    assert usage.input_tokens > 0
    assert usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.output_tokens_details.reasoning_tokens == 0


def test_stream_sends_the_real_event_sequence(client: openai.OpenAI) -> None:
    events = _events(client.responses.create(model=MODEL, input="Tell me a joke", stream=True))
    kinds = [e.type for e in events]
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * len(deltas),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].response.status == "in_progress"
    assert events[0].response.output == []
    final = events[-1].response
    text = "".join(d.delta for d in deltas)
    assert text == final.output_text
    assert events[-4].text == text  # response.output_text.done
    assert {d.item_id for d in deltas} == {final.output[0].id}


def test_stream_helper_accumulates_the_final_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model=MODEL, input="Write a slogan about lemonade") as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.output_text == "".join(texts)
    assert final.status == "completed"


async def test_async_stream(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.responses.create(model=MODEL, input="Tell me a fact", stream=True)
    kinds = [event.type async for event in stream]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"


def test_function_call_then_its_output_gives_an_answer(client: openai.OpenAI) -> None:
    first = _strict(
        client.responses.create(model=MODEL, input="What is the weather in Paris?", tools=[WEATHER])
    )
    [call] = first.output
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert call.id is not None
    assert call.id.startswith("fc_")
    assert json.loads(call.arguments) == {"city": "Paris"}
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "22C, sunny"}],
    )
    assert second.previous_response_id == first.id
    assert "22C, sunny" in second.output_text


def test_function_call_streams_argument_deltas(client: openai.OpenAI) -> None:
    events = _events(
        client.responses.create(
            model=MODEL, input="What is the weather in Rome?", tools=[WEATHER], stream=True
        )
    )
    kinds = [e.type for e in events]
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert kinds[2] == "response.output_item.added"
    assert events[2].item.type == "function_call"
    assert events[2].item.arguments == ""
    assert kinds[3 : 3 + len(deltas)] == ["response.function_call_arguments.delta"] * len(deltas)
    done = events[3 + len(deltas)]
    assert done.type == "response.function_call_arguments.done"
    assert done.arguments == "".join(deltas)
    assert json.loads(done.arguments) == {"city": "Rome"}
    assert kinds[-2:] == ["response.output_item.done", "response.completed"]


def test_input_items_carry_a_whole_tool_exchange(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "What is the weather in Oslo?"},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city": "Oslo"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "-3C, snow"},
        ],
    )
    assert response.output[0].type == "message"
    assert "-3C, snow" in response.output_text


def test_tool_choice_forces_the_named_tool_or_none(client: openai.OpenAI) -> None:
    forced = client.responses.create(
        model=MODEL,
        input="What is the weather in Paris?",
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "name": "get_time"},
    )
    assert [o.type for o in forced.output] == ["function_call"]
    assert forced.output[0].name == "get_time"
    assert forced.tool_choice.name == "get_time"
    none = client.responses.create(
        model=MODEL, input="What is the weather in Paris?", tools=[WEATHER], tool_choice="none"
    )
    assert [o.type for o in none.output] == ["message"]
    required = client.responses.create(
        model=MODEL, input="Hello there", tools=[WEATHER], tool_choice="required"
    )
    assert required.output[0].type == "function_call"


class Pet(BaseModel):
    name: str
    species: str
    age: int


def test_text_format_json_schema_follows_the_schema(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        input="Describe a pet cat named Tom",
        text={
            "format": {
                "type": "json_schema",
                "name": "Pet",
                "schema": Pet.model_json_schema(),
                "strict": True,
            }
        },
    )
    pet = Pet.model_validate_json(response.output_text)
    assert pet.name
    assert response.text is not None
    assert response.text.format is not None
    assert response.text.format.type == "json_schema"
    parsed = client.responses.parse(model=MODEL, input="Describe a dog", text_format=Pet)
    assert isinstance(parsed.output_parsed, Pet)


def test_instructions_are_echoed_and_counted(client: openai.OpenAI) -> None:
    plain = client.responses.create(model=MODEL, input="Tell me a joke")
    told = client.responses.create(
        model=MODEL, input="Tell me a joke", instructions="You are a pirate. Answer as one."
    )
    assert told.instructions == "You are a pirate. Answer as one."
    assert plain.usage is not None
    assert told.usage is not None
    assert told.usage.input_tokens > plain.usage.input_tokens


def test_reasoning_adds_a_summary_item_and_reasoning_tokens(client: openai.OpenAI) -> None:
    def ask(effort: str) -> Response:
        return _strict(
            client.responses.create(
                model="o4-mini",
                input="Explain how rainbows form",
                reasoning={"effort": effort, "summary": "auto"},  # type: ignore[typeddict-item]
            )
        )

    low, high = ask("low"), ask("high")
    reasoning, message = high.output
    assert reasoning.type == "reasoning"
    assert reasoning.id.startswith("rs_")
    assert "rainbows" in reasoning.summary[0].text
    assert message.type == "message"
    assert high.usage is not None
    assert low.usage is not None
    spent = high.usage.output_tokens_details.reasoning_tokens
    assert spent > low.usage.output_tokens_details.reasoning_tokens > 0
    assert high.reasoning is not None
    assert high.reasoning.effort == "high"
    plain = client.responses.create(model="gpt-4o-mini", input="Explain how rainbows form")
    assert [o.type for o in plain.output] == ["message"]


def test_reasoning_summary_streams_its_own_events(client: openai.OpenAI) -> None:
    events = _events(
        client.responses.create(
            model="gpt-5-mini",
            input="Write a haiku about snow",
            reasoning={"effort": "low", "summary": "concise"},
            stream=True,
        )
    )
    kinds = [e.type for e in events]
    n = kinds.count("response.reasoning_summary_text.delta")
    assert n > 0
    assert kinds[2:5] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
    ]
    after = kinds[4 + n : 8 + n]
    assert after == [
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
    ]
    assert events[7 + n].output_index == 1


def test_max_output_tokens_makes_an_incomplete_response(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL, input="Write a long story about a dragon", max_output_tokens=16
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None
    assert response.usage.output_tokens == 16
    events = _events(
        client.responses.create(
            model=MODEL,
            input="Write a long story about a dragon",
            max_output_tokens=16,
            stream=True,
        )
    )
    assert events[-1].type == "response.incomplete"


def test_stored_responses_can_be_read_and_deleted(client: openai.OpenAI) -> None:
    created = client.responses.create(model=MODEL, input="Tell me a fact about owls")
    again = client.responses.retrieve(created.id)
    assert again.id == created.id
    assert again.output_text == created.output_text
    deleted = client.responses.delete(created.id)
    assert deleted is None  # the SDK returns nothing for a 200
    with pytest.raises(openai.NotFoundError, match=created.id):
        client.responses.retrieve(created.id)
    unstored = client.responses.create(model=MODEL, input="Tell me a fact", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_previous_response_id_continues_the_conversation(client: openai.OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="My name is Zora.")
    second = client.responses.create(
        model=MODEL, previous_response_id=first.id, input="Write a haiku about the moon"
    )
    assert second.usage is not None
    assert first.usage is not None
    # the earlier turn (its input and its answer) is part of the prompt now
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    with pytest.raises(openai.BadRequestError, match="resp_missing"):
        client.responses.create(model=MODEL, previous_response_id="resp_missing", input="Hi")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"stop": ["x"]}, "Unknown parameter: 'stop'"),
        ({"background": True}, "does not support 'background'"),
        ({"max_output_tokens": 4}, "max_output_tokens"),
        ({"tools": [{"type": "web_search"}]}, "only function tools"),
        ({"tool_choice": {"type": "function", "name": "nope"}, "tools": [WEATHER]}, "nope"),
        ({"reasoning": {"effort": "huge"}}, "reasoning.effort"),
        ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
        (
            {"input": [{"type": "function_call_output", "call_id": "call_x", "output": "1"}]},
            "No tool call found for function call output with call_id call_x",
        ),
        (
            {
                "input": [
                    {"role": "user", "content": "Weather in Oslo?"},
                    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                    {"role": "user", "content": "And now?"},
                ]
            },
            "No tool output found for function call c1",
        ),
    ],
)
def test_bad_requests_are_openai_style_400s(
    client: openai.OpenAI, extra: dict[str, Any], message: str
) -> None:
    body: dict[str, Any] = {"model": MODEL, "input": "Hi", **extra}
    with pytest.raises(openai.BadRequestError, match=message) as info:
        client.post("/responses", body=body, cast_to=dict)
    assert info.value.status_code == 400


# ------------------------------------------------------------------ through ChatOpenAI


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"It is 18C and windy in {city}."


def test_chat_openai_agent_loop_over_responses(server: LocalModelServer) -> None:
    model = load_model(
        f"openai:{MODEL}", base_url=server.base_url, api_key="x", use_responses_api=True
    )
    bound = model.bind_tools([get_weather])
    messages: list[Any] = [HumanMessage("What is the weather in Lisbon?")]
    ai = bound.invoke(messages)
    assert isinstance(ai, AIMessage)
    [call] = ai.tool_calls
    assert call["name"] == "get_weather"
    assert call["args"] == {"city": "Lisbon"}
    messages += [ai, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])]
    answer = bound.invoke(messages)
    assert "18C and windy in Lisbon" in answer.text
    assert answer.response_metadata["id"].startswith("resp_")


def test_chat_openai_previous_response_id_mode(server: LocalModelServer) -> None:
    """``use_previous_response_id`` sends only the new turn; the server remembers the rest."""
    model = load_model(
        f"openai:{MODEL}",
        base_url=server.base_url,
        api_key="x",
        use_responses_api=True,
        use_previous_response_id=True,
    )
    bound = model.bind_tools([get_weather])
    messages: list[Any] = [HumanMessage("What is the weather in Quito?")]
    ai = bound.invoke(messages)
    [call] = ai.tool_calls
    messages += [ai, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])]
    answer = bound.invoke(messages)
    assert "18C and windy in Quito" in answer.text


def test_chat_openai_streams_reasoning_and_text(server: LocalModelServer) -> None:
    model = load_model(
        "openai:o4-mini",
        base_url=server.base_url,
        api_key="x",
        reasoning={"effort": "medium", "summary": "auto"},
    )
    chunks = list(model.stream("Write a haiku about autumn"))
    full = chunks[0]
    for chunk in chunks[1:]:
        full += chunk
    assert isinstance(full, AIMessage)
    kinds = [block["type"] for block in full.content if isinstance(block, dict)]
    assert kinds == ["reasoning", "text"]
    assert full.usage_metadata is not None
    assert full.usage_metadata["output_token_details"]["reasoning"] > 0


def test_the_response_store_is_bounded() -> None:
    from chainkit.models.local._responses_api import ResponsesAPI, ResponseStore

    api = ResponsesAPI(ResponseStore(max_items=2, max_chars=10_000))
    ids = [api.create({"model": MODEL, "input": f"Tell me a fact about {n}"}, 0) for n in range(3)]
    first, second, third = (r.response["id"] for r in ids)
    assert len(api.store) == 2
    assert api.store.response(first) is None  # the oldest went first
    assert api.store.response(third) is not None
    with pytest.raises(Exception, match=first):
        api.create({"model": MODEL, "input": "Hi", "previous_response_id": first}, 0)
    api.create({"model": MODEL, "input": "x " * 6000}, 0)  # alone above max_chars
    assert api.store.response(second) is None
    assert len(api.store) == 0


def test_faults_delays_and_stats_apply_to_responses(
    client: openai.OpenAI, server: LocalModelServer
) -> None:
    from chainkit.models.local import FAULTS_HEADER

    failing = {FAULTS_HEADER: "error_rate=1,error_statuses=429,retry_after=0.01"}
    with pytest.raises(openai.RateLimitError, match="injected"):
        client.responses.create(model=MODEL, input="Hi", extra_headers=failing)
    paced = {FAULTS_HEADER: "ttft=0.01,token_delay=0.001"}
    events = _events(
        client.responses.create(
            model=MODEL, input="Tell me a joke", stream=True, extra_headers=paced
        )
    )
    assert events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == (
        events[-1].response.output_text
    )
    stats = client.get(f"{server.url}/stats", cast_to=dict)
    counted = stats["requests"]["/v1/responses"]
    assert counted["429"] >= 1
    assert counted["200"] >= 1


def test_scripted_replies_answer_responses() -> None:
    from chainkit.testing import fail, local_model_server, tool_call

    with (
        local_model_server() as server,
        openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client,
    ):
        server.enqueue("Scripted hello.", tool_call("get_time", {"city": "Lima"}), fail(429))
        text = client.responses.create(model=MODEL, input="Tell me a joke")
        assert text.output_text == "Scripted hello."
        call = client.responses.create(model=MODEL, input="Anything", tools=[WEATHER, TIME])
        assert [(o.type, o.name, json.loads(o.arguments)) for o in call.output] == [
            ("function_call", "get_time", {"city": "Lima"})
        ]
        with pytest.raises(openai.RateLimitError):
            client.responses.create(model=MODEL, input="Hi")
        header = {"X-Chainkit-Reply": '{"content": "From the header."}'}
        events = _events(
            client.responses.create(model=MODEL, input="Hi", stream=True, extra_headers=header)
        )
        assert events[-1].response.output_text == "From the header."
        deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert deltas == "From the header."


def test_input_items_of_a_stored_response(client: openai.OpenAI) -> None:
    created = client.responses.create(
        model=MODEL,
        tools=[WEATHER],
        input=[
            {"role": "developer", "content": "Answer briefly."},
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Oslo?"}]},
            {"type": "function_call", "call_id": "c9", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c9", "output": "-3C"},
        ],
    )
    newest_first = client.responses.input_items.list(created.id)
    kinds = [item.type for item in newest_first.data]
    assert kinds == ["function_call_output", "function_call", "message", "message"]
    for item in newest_first.data:  # strictly the SDK's item types
        TypeAdapter(type(item)).validate_python(item.model_dump(mode="json", by_alias=True))
    oldest_first = client.responses.input_items.list(created.id, order="asc", limit=2)
    assert [i.id for i in oldest_first.data] == [i.id for i in newest_first.data[::-1][:2]]
    assert oldest_first.has_more
    rest = client.responses.input_items.list(created.id, order="asc", after=oldest_first.last_id)
    assert [i.type for i in rest.data] == ["function_call", "function_call_output"]
    assert not rest.has_more
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list("resp_nope")


def test_logprobs_when_included(client: openai.OpenAI) -> None:
    plain = client.responses.create(model=MODEL, input="Tell me a joke")
    assert plain.output[0].content[0].logprobs == []
    with_logprobs = _strict(
        client.responses.create(
            model=MODEL,
            input="Tell me a joke",
            include=["message.output_text.logprobs"],
            top_logprobs=3,
        )
    )
    part = with_logprobs.output[0].content[0]
    assert part.logprobs is not None
    assert "".join(lp.token for lp in part.logprobs) == part.text
    assert all(lp.logprob <= 0 and len(lp.top_logprobs) == 3 for lp in part.logprobs)
    assert with_logprobs.top_logprobs == 3
    events = _events(
        client.responses.create(
            model=MODEL,
            input="Tell me a joke",
            include=["message.output_text.logprobs"],
            top_logprobs=2,
            stream=True,
        )
    )
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert all(len(d.logprobs) == 1 and d.logprobs[0].token == d.delta for d in deltas)
