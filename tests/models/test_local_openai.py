"""The local model through the plain openai SDK, over real loopback HTTP."""

from __future__ import annotations

import openai
import pytest

from chainkit.models.local import LocalModelServer

SONG = "Write me a 1 verse song about sparkling water."


def _chat(
    client: openai.OpenAI, content: str, **kwargs: object
) -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(
        model="chainkit-local", messages=[{"role": "user", "content": content}], **kwargs
    )


def test_chat_answers_with_openai_shape(client: openai.OpenAI) -> None:
    result = _chat(client, SONG, temperature=0)
    assert result.object == "chat.completion"
    assert result.id.startswith("chatcmpl-")
    assert result.system_fingerprint
    choice = result.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    text = choice.message.content or ""
    assert "sparkling water" in text.lower()
    assert result.usage is not None
    assert 30 <= result.usage.completion_tokens <= 90
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens


def test_chat_stream_matches_non_stream(client: openai.OpenAI) -> None:
    whole = _chat(client, SONG, temperature=0)
    stream = _chat(client, SONG, temperature=0, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage == whole.usage
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert len({c.id for c in chunks}) == 1


def test_stream_without_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(_chat(client, SONG, stream=True))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_completions_stream_and_not(client: openai.OpenAI) -> None:
    prompt = "Tell me a fact about the number 42"
    whole = client.completions.create(model="gpt-3.5-turbo-instruct", prompt=prompt, max_tokens=100)
    assert whole.object == "text_completion"
    text = whole.choices[0].text
    assert "42" in text
    assert whole.choices[0].finish_reason == "stop"
    assert whole.usage is not None
    assert 20 <= whole.usage.completion_tokens <= 45
    chunks = list(
        client.completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt=prompt,
            max_tokens=100,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == text
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage == whole.usage


def test_completions_default_max_tokens_is_16(client: openai.OpenAI) -> None:
    result = client.completions.create(model="m", prompt="Write a short story about a dragon")
    assert result.usage is not None
    assert result.usage.completion_tokens == 16
    assert result.choices[0].finish_reason == "length"


def test_max_tokens_cuts_with_length(client: openai.OpenAI) -> None:
    result = _chat(client, SONG, max_tokens=5)
    assert result.choices[0].finish_reason == "length"
    assert result.usage is not None
    assert result.usage.completion_tokens == 5
    result = _chat(client, SONG, max_completion_tokens=7)
    assert result.usage is not None
    assert result.usage.completion_tokens == 7


def test_stop_sequence_cuts_before_it(client: openai.OpenAI) -> None:
    full = _chat(client, SONG, temperature=0).choices[0].message.content or ""
    word = "water"
    cut = _chat(client, SONG, temperature=0, stop=[word])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == full[: full.index(word)]
    streamed = _chat(client, SONG, temperature=0, stop=word, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == full[: full.index(word)]


def test_n_choices_differ_but_repeat(client: openai.OpenAI) -> None:
    first = _chat(client, SONG, n=3, temperature=0.7)
    again = _chat(client, SONG, n=3, temperature=0.7)
    texts = [c.message.content for c in first.choices]
    assert [c.index for c in first.choices] == [0, 1, 2]
    assert len(set(texts)) == 3
    assert texts == [c.message.content for c in again.choices]
    streamed: dict[int, str] = {}
    for chunk in _chat(client, SONG, n=3, temperature=0.7, stream=True):
        for choice in chunk.choices:
            streamed[choice.index] = streamed.get(choice.index, "") + (choice.delta.content or "")
    assert [streamed[i] for i in range(3)] == texts


def test_determinism_and_seed(client: openai.OpenAI) -> None:
    def text(**kwargs: object) -> str:
        return (
            _chat(client, "Write a short story about a lighthouse", **kwargs)
            .choices[0]
            .message.content
            or ""
        )

    assert text(temperature=0) == text(temperature=0)
    assert text(temperature=0, seed=1) == text(temperature=0, seed=2)
    assert text(temperature=1, seed=1) == text(temperature=1, seed=1)
    assert len({text(temperature=1, seed=s) for s in range(4)}) > 1


async def test_async_client_stream(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(
        model="x",
        messages=[{"role": "user", "content": "Write a haiku about autumn leaves"}],
        stream=True,
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert len(text.splitlines()) == 3
    assert "autumn leaves" in text.lower()


def test_models_and_health(server: LocalModelServer, client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert "gpt-3.5-turbo-instruct" in ids
    assert "chainkit-local" in ids
    assert client.models.retrieve("anything").id == "anything"
    import httpx

    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}


@pytest.mark.parametrize("model", ["gpt-3.5-turbo-instruct", "chainkit-local", "my-own-model"])
def test_any_model_name_is_accepted(client: openai.OpenAI, model: str) -> None:
    result = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}]
    )
    assert result.model == model
