"""Wire details real clients check, through the openai SDK against the local model."""

from __future__ import annotations

import base64
import io
import wave
from typing import Any

import openai
import orjson
import pytest

from chainkit.models.local._chat_options import wav_bytes

USER: list[Any] = [{"role": "user", "content": "Write a short poem about tea."}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_logprobs_plain_and_streamed(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="m", messages=USER, logprobs=True, top_logprobs=3)
    choice = reply.choices[0]
    assert choice.logprobs is not None
    content = choice.logprobs.content or []
    assert "".join(t.token for t in content) == choice.message.content
    assert all(len(t.top_logprobs) == 3 and t.logprob <= 0 for t in content)
    assert all(t.top_logprobs[0].token == t.token for t in content)
    chunks = list(
        client.chat.completions.create(model="m", messages=USER, logprobs=True, stream=True)
    )
    tokens = [c.choices[0].logprobs.content[0].token for c in chunks[1:-1]]  # type: ignore[union-attr,index]
    assert "".join(tokens) == choice.message.content


def test_completions_logprobs(client: openai.OpenAI) -> None:
    reply = client.completions.create(model="m", prompt="Say hi", logprobs=2, max_tokens=8)
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None
    assert "".join(logprobs.tokens or []) == reply.choices[0].text
    assert all(len(top) == 2 for top in logprobs.top_logprobs or [])


def test_service_tier_is_echoed(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="m", messages=USER, service_tier="flex")
    assert reply.service_tier == "flex"
    chunks = list(
        client.chat.completions.create(model="m", messages=USER, service_tier="flex", stream=True)
    )
    assert {c.service_tier for c in chunks} == {"flex"}
    assert client.chat.completions.create(model="m", messages=USER).service_tier == "default"


def test_reasoning_tokens_follow_the_effort(client: openai.OpenAI) -> None:
    def reasoning(effort: Any) -> int:
        reply = client.chat.completions.create(
            model="o4-mini", messages=USER, reasoning_effort=effort
        )
        assert reply.usage is not None
        details = reply.usage.completion_tokens_details
        assert details is not None
        return details.reasoning_tokens or 0

    assert 0 < reasoning("low") < reasoning("high")
    with pytest.raises(openai.BadRequestError, match="reasoning_effort"):
        client.chat.completions.create(model="gpt-4o-mini", messages=USER, reasoning_effort="low")


def test_prediction_tokens_are_counted(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model="m", messages=USER, temperature=0)
    text = plain.choices[0].message.content or ""
    reply = client.chat.completions.create(
        model="m",
        messages=USER,
        temperature=0,
        prediction={"type": "content", "content": text + " zebra quantum"},
    )
    assert reply.usage is not None
    details = reply.usage.completion_tokens_details
    assert details is not None
    assert (details.accepted_prediction_tokens or 0) > 5
    assert details.rejected_prediction_tokens == 2


def _after_tool(tool_choice: Any) -> Any:
    return [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 24 C"},
    ]


@pytest.mark.parametrize(
    "tool_choice", ["required", {"type": "function", "function": {"name": "get_weather"}}]
)
def test_forced_tool_choice_holds_after_a_tool_result(
    client: openai.OpenAI, tool_choice: Any
) -> None:
    reply = client.chat.completions.create(
        model="m", messages=_after_tool(tool_choice), tools=[WEATHER], tool_choice=tool_choice
    )
    assert reply.choices[0].finish_reason == "tool_calls"
    calls = reply.choices[0].message.tool_calls or []
    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]


def test_histories_openai_refuses_are_400(client: openai.OpenAI) -> None:
    unanswered = [*_after_tool("auto")[:2], {"role": "user", "content": "and?"}]
    with pytest.raises(openai.BadRequestError, match="call_1"):
        client.chat.completions.create(model="m", messages=unanswered, tools=[WEATHER])
    orphan = [USER[0], {"role": "tool", "tool_call_id": "call_9", "content": "x"}]
    with pytest.raises(openai.BadRequestError, match="preceeding message with 'tool_calls'"):
        client.chat.completions.create(model="m", messages=orphan)


def test_audio_output_is_a_wav_with_its_transcript(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o-audio-preview",
        messages=USER,
        modalities=["text", "audio"],
        audio={"voice": "alloy", "format": "wav"},
    )
    message = reply.choices[0].message
    assert message.content is None
    assert message.audio is not None
    assert "tea" in message.audio.transcript.lower()
    with wave.open(io.BytesIO(base64.b64decode(message.audio.data))) as wav:
        assert wav.getnframes() > 0
    with pytest.raises(openai.BadRequestError, match="'audio' parameter"):
        client.chat.completions.create(model="m", messages=USER, modalities=["text", "audio"])


def test_image_pdf_and_audio_parts_are_acknowledged(client: openai.OpenAI) -> None:
    sound = base64.b64encode(wav_bytes("hello there")).decode()
    parts: Any = [
        {"type": "text", "text": "Describe these."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "file", "file": {"filename": "report.pdf", "file_data": "data:;base64,JVBE"}},
        {"type": "input_audio", "input_audio": {"data": sound, "format": "wav"}},
    ]
    reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": parts}])
    text = reply.choices[0].message.content or ""
    assert "the image you sent" in text
    assert "the PDF report.pdf" in text
    assert "seconds of audio" in text
    broken: Any = [{"type": "image_url", "image_url": {}}]
    with pytest.raises(openai.BadRequestError, match=r"image_url\.url"):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": broken}])


def test_any_model_name_is_served_and_echoed(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="my-fine-tune:v7", messages=USER)
    assert reply.model == "my-fine-tune:v7"
    assert client.models.retrieve("my-fine-tune:v7").id == "my-fine-tune:v7"


def test_tools_and_response_format_answer_in_the_schema(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "lines": {"type": "integer"}},
        "required": ["title", "lines"],
    }
    reply = client.chat.completions.create(
        model="m",
        messages=USER,
        tools=[WEATHER],
        response_format={"type": "json_schema", "json_schema": {"name": "poem", "schema": schema}},
    )
    assert reply.choices[0].message.tool_calls is None
    value = orjson.loads(reply.choices[0].message.content or "")
    assert set(value) == {"title", "lines"}
    weather = [{"role": "user", "content": "What is the weather in Paris?"}]
    called = client.chat.completions.create(
        model="m",
        messages=weather,  # type: ignore[arg-type]
        tools=[WEATHER],
        response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}},
    )
    assert called.choices[0].finish_reason == "tool_calls"


def test_streamed_audio_sends_the_transcript_then_the_wav(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-audio-preview",
            messages=USER,
            modalities=["text", "audio"],
            audio={"voice": "alloy", "format": "wav"},
            stream=True,
        )
    )
    audio = [c.choices[0].delta.model_dump().get("audio") for c in chunks if c.choices]
    transcript = "".join(a.get("transcript") or "" for a in audio if a)
    assert "tea" in transcript.lower()
    data = next(a["data"] for a in audio if a and a.get("data"))
    with wave.open(io.BytesIO(base64.b64decode(data))) as wav:
        assert wav.getnframes() > 0
