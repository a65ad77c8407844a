"""The local model's embeddings through the real ``openai`` SDK and ``OpenAIEmbeddings``."""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import openai
import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_openai import OpenAIEmbeddings

from chainkit.models.local import LocalModelServer
from chainkit.models.local._embeddings import MAX_INPUTS, MAX_TOKENS_PER_INPUT

MODEL = "text-embedding-3-small"


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _embed(client: openai.OpenAI, texts: list[str], **kwargs: Any) -> list[list[float]]:
    response = client.embeddings.create(model=MODEL, input=texts, **kwargs)
    return [d.embedding for d in response.data]


def test_similar_texts_are_closer_than_unrelated_ones(client: openai.OpenAI) -> None:
    cat, kitten, market = _embed(
        client,
        [
            "My cat sleeps on the sofa all afternoon.",
            "The cat was sleeping on our sofa this afternoon.",
            "Interest rates pushed the stock market lower today.",
        ],
    )
    assert _cos(cat, kitten) > 0.5
    assert abs(_cos(cat, market)) < 0.2
    assert _cos(cat, kitten) > _cos(cat, market) + 0.3
    # shared word stems count too (character trigrams): "running" is near "runner"
    run, runner, bake = _embed(client, ["running", "runner", "bake"])
    assert _cos(run, runner) > _cos(run, bake)


def test_vectors_are_unit_length_deterministic_and_sized(client: openai.OpenAI) -> None:
    response = client.embeddings.create(model=MODEL, input=["hello world", "hello world"])
    assert response.object == "list"
    assert response.model == MODEL
    assert [d.index for d in response.data] == [0, 1]
    first, second = (d.embedding for d in response.data)
    assert len(first) == 1536
    assert first == second
    assert math.isclose(_cos(first, first), 1.0, rel_tol=1e-5)
    assert response.usage.prompt_tokens == response.usage.total_tokens == 4
    large = client.embeddings.create(model="text-embedding-3-large", input="hi")
    assert len(large.data[0].embedding) == 3072
    short = client.embeddings.create(model=MODEL, input="hello world", dimensions=64)
    vector = short.data[0].embedding
    assert len(vector) == 64
    assert math.isclose(_cos(vector, vector), 1.0, rel_tol=1e-5)


def test_base64_and_float_encodings_carry_the_same_vector(client: openai.OpenAI) -> None:
    raw = client.post(
        "/embeddings",
        body={"model": MODEL, "input": "a red fox", "encoding_format": "base64"},
        cast_to=dict,
    )
    packed = base64.b64decode(raw["data"][0]["embedding"])
    from_base64 = list(struct.unpack(f"<{len(packed) // 4}f", packed))
    as_floats = client.embeddings.create(model=MODEL, input="a red fox", encoding_format="float")
    assert from_base64 == as_floats.data[0].embedding
    # the SDK asks for base64 by default and decodes it
    assert client.embeddings.create(model=MODEL, input="a red fox").data[0].embedding == from_base64


def test_token_arrays_are_embedded(client: openai.OpenAI) -> None:
    one = client.embeddings.create(model=MODEL, input=[101, 202, 303, 404])
    many = client.embeddings.create(model=MODEL, input=[[101, 202, 303, 404], [101, 202, 303, 9]])
    assert one.data[0].embedding == many.data[0].embedding
    assert one.usage.prompt_tokens == 4
    assert many.usage.prompt_tokens == 8
    other = client.embeddings.create(model=MODEL, input=[7, 8, 9, 10]).data[0].embedding
    assert _cos(many.data[0].embedding, many.data[1].embedding) > 0.5  # 3 of 4 ids shared
    assert abs(_cos(many.data[0].embedding, other)) < 0.2  # none shared


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"input": ["a"] * (MAX_INPUTS + 1)}, f"maximum length {MAX_INPUTS}"),
        ({"input": ""}, "empty string"),
        ({"input": []}, "non-empty"),
        ({"input": ["ok", 3]}, r"input\[1\]"),
        ({"input": [[1, 2], [-1]]}, r"input\[1\]"),
        ({"input": "x " * (MAX_TOKENS_PER_INPUT + 1)}, "maximum context length is 8192"),
        ({"input": ["x " * 8000] * 40}, "max 300000 tokens per request"),
        ({"input": "hi", "dimensions": 0}, "dimensions"),
        ({"input": "hi", "dimensions": 5000}, "from 1 to 1536"),
        ({"input": "hi", "encoding_format": "hex"}, "'float' and 'base64'"),
        ({"input": "hi", "model": "text-embedding-ada-002", "dimensions": 8}, "dimensions"),
        ({"input": "hi", "stream": True}, "Unrecognized request argument supplied: stream"),
    ],
)
def test_bad_requests_are_openai_style_400s(
    client: openai.OpenAI, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(openai.BadRequestError, match=message) as info:
        client.post("/embeddings", body={"model": MODEL, **body}, cast_to=dict)
    assert info.value.status_code == 400


def test_openai_embeddings_finds_the_related_document(server: LocalModelServer) -> None:
    embeddings = OpenAIEmbeddings(
        model=MODEL, base_url=server.base_url, api_key="x", check_embedding_ctx_length=False
    )
    store = InMemoryVectorStore(embeddings)
    store.add_documents(
        [
            Document("Bananas are a good source of potassium."),
            Document("The train to Berlin leaves at nine in the morning."),
            Document("Python lists keep their items in insertion order."),
        ]
    )
    [hit] = store.similarity_search("When does the Berlin train leave?", k=1)
    assert "Berlin" in hit.page_content


def test_faults_and_stats_apply_to_embeddings(
    client: openai.OpenAI, server: LocalModelServer
) -> None:
    from chainkit.models.local import FAULTS_HEADER

    failing = {FAULTS_HEADER: "error_rate=1,error_statuses=503"}
    with pytest.raises(openai.InternalServerError, match="injected"):
        client.embeddings.create(model=MODEL, input="hi", extra_headers=failing)
    client.embeddings.create(model=MODEL, input="two words")
    stats = client.get(f"{server.url}/stats", cast_to=dict)
    assert stats["requests"]["/v1/embeddings"]["503"] >= 1
    assert stats["requests"]["/v1/embeddings"]["200"] >= 1
    assert stats["tokens"]["prompt"] >= 2


def test_large_requests_give_the_same_vectors(client: openai.OpenAI) -> None:
    """Many inputs are embedded in a worker thread (off the server's loop): same vectors."""
    texts = [f"document number {i} about owls and rivers" for i in range(200)]
    many = client.embeddings.create(model=MODEL, input=texts, dimensions=32)
    assert [d.index for d in many.data] == list(range(200))
    for i in (0, 199):
        one = client.embeddings.create(model=MODEL, input=texts[i], dimensions=32)
        assert many.data[i].embedding == one.data[0].embedding
