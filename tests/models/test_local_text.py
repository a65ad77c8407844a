"""The local model's writer and schema values, as plain functions (no HTTP)."""

from __future__ import annotations

import random
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field, TypeAdapter

from chainkit.models.local._analysis import analyse
from chainkit.models.local._schema import SchemaValues
from chainkit.models.local._settings import parse_overrides
from chainkit.models.local._text import write
from chainkit.models.local._tokens import Rng, count_tokens, tokenize


def _text(prompt: str, seed: int = 0) -> str:
    return write(analyse(prompt), Rng(seed))


@pytest.mark.parametrize(
    ("prompt", "kind", "topic"),
    [
        ("Write me a 1 verse song about sparkling water.", "verse", "sparkling water"),
        ("Write me a 1 verse song about goldfish on the moon", "verse", "goldfish on the moon"),
        ("Tell me a fact about the number 42", "fact", "number 42"),
        ("Explain quantum computing in simple terms", "explain", "quantum computing"),
        ("Give me a list of 5 fruits", "list", "fruits"),
        ("Write a short story about a dragon who loves tea", "story", "dragon who loves tea"),
        ("Write a haiku about autumn leaves", "haiku", "autumn leaves"),
        ("Create an outline for an essay on climate change", "outline", "climate change"),
        ("Summarize this text: " + "Cats sleep a lot. " * 10, "summary", None),
        ("Tell me a joke about cats", "joke", "cats"),
        ("What is 3 * 12?", "math", None),
        ("hello", "greeting", None),
        ("What is the capital of France?", "answer", "capital of France"),
    ],
)
def test_analysis_finds_kind_and_topic(prompt: str, kind: str, topic: str | None) -> None:
    analysis = analyse(prompt)
    assert analysis.kind == kind
    if topic is not None:
        assert analysis.topic == topic


@pytest.mark.parametrize(
    ("prompt", "low", "high"),
    [
        ("Write me a 1 verse song about sparkling water.", 40, 80),
        ("Write a short story about a lighthouse keeper", 150, 300),
        ("Tell me a fact about the number 42", 25, 40),
        ("Tell me a fact about the number 7", 20, 40),
    ],
)
def test_natural_lengths(prompt: str, low: int, high: int) -> None:
    for seed in range(5):
        assert low <= count_tokens(_text(prompt, seed)) <= high


def test_text_reflects_the_prompt() -> None:
    song = _text("Write me a 1 verse song about sparkling water.")
    assert song.lower().count("sparkling water") >= 2
    assert len(song.splitlines()) >= 4
    haiku = _text("Write a haiku about autumn leaves")
    assert len(haiku.splitlines()) == 3
    story = _text("Write a short story about a dragon who loves tea")
    assert story.count("\n\n") >= 2
    assert "a dragon who loves tea" in story
    fact = _text("Tell me a fact about the number 42")
    assert "42" in fact
    explain = _text("Explain quantum computing in simple terms")
    assert "qubit" in explain
    items = _text("Give me a list of 5 fruits").splitlines()
    assert sum(line.startswith("- ") for line in items) == 5
    outline = _text("Create an outline for a talk on climate change")
    assert outline.startswith("1. ")
    assert "Climate Change" in outline
    assert "36" in _text("What is 3 * 12?")
    source = "Cats sleep a lot. They also like boxes. Dogs bark at the mailman. " * 3
    summary = _text(f"Summarize the following text:\n{source}")
    assert len(summary) < len(source)
    assert "Cats sleep a lot" in summary


def test_verses_count() -> None:
    two = _text("Write a 2 verse poem about the sea")
    assert two.count("\n\n") == 1


def test_deterministic_per_seed() -> None:
    prompt = "Write a short story about a robot"
    assert _text(prompt, 1) == _text(prompt, 1)
    assert len({_text(prompt, s) for s in range(6)}) > 1


@pytest.mark.parametrize(
    "text",
    ["Hello, world!", "  leading spaces", "don't stop\n\nnew para", "", "x=1; y=[2,3]", "élan 42%"],
)
def test_tokens_concatenate_back(text: str) -> None:
    tokens = tokenize(text)
    assert "".join(tokens) == text
    assert count_tokens(text) == len(tokens)


def test_words_with_leading_space_are_one_token() -> None:
    assert tokenize("Hello, big world.") == ["Hello", ",", " big", " world", "."]


def test_rng_behaves_like_random() -> None:
    rng = Rng(5)
    values = [rng.random() for _ in range(1000)]
    assert all(0 <= v < 1 for v in values)
    assert 0.4 < sum(values) / len(values) < 0.6
    assert Rng(5).sample(range(100), 5) == Rng(5).sample(range(100), 5)
    assert 0 <= Rng(1).randrange(10) < 10
    assert Rng(3).getrandbits(128) < 2**128


# ---------------------------------------------------------------- schemas


class Tag(BaseModel):
    label: str = Field(min_length=2, max_length=12)
    weight: float = Field(gt=0, lt=1)


class Item(BaseModel):
    title: str
    keywords: list[str] = Field(min_length=2, max_length=3)
    kind: Literal["a", "b", "c"]
    count: int = Field(ge=10, le=20, multiple_of=5)
    tags: list[Tag] = Field(min_length=1)
    parent: Item | None = None
    meta: dict[str, int] = Field(default_factory=dict)
    when: str = Field(json_schema_extra={"format": "date"})
    flag: bool
    ratio: float | None


Item.model_rebuild()


@pytest.mark.parametrize("seed", range(5))
def test_schema_values_validate(seed: int) -> None:
    schema = Item.model_json_schema()
    analysis = analyse("Describe an item about goldfish on the moon")
    value = SchemaValues(schema, analysis, Rng(seed)).value(schema)
    item = Item.model_validate(value)
    assert item.title == "Goldfish on the Moon"
    assert "goldfish" in item.keywords
    assert item.when == "2024-05-17"


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "enum": ["x", "y"]},
        {"const": 3},
        {"type": ["integer", "null"], "minimum": 5, "exclusiveMaximum": 7},
        {"type": "array", "items": {"type": "number"}, "minItems": 4, "uniqueItems": True},
        {"type": "string", "format": "uuid"},
        {"type": "string", "format": "email"},
        {"allOf": [{"$ref": "#/$defs/a"}, {"properties": {"y": {"type": "integer"}}}],
         "$defs": {"a": {"type": "object", "properties": {"x": {"type": "string"}},
                         "required": ["x"]}}},
        {"type": "object", "properties": {"n": {"$ref": "#"}}},  # recursive
    ],
)  # fmt: skip
def test_schema_edge_cases(schema: dict[str, Any]) -> None:
    value = SchemaValues(schema, analyse("about cats"), Rng(1)).value(schema)
    if schema.get("type") == ["integer", "null"]:
        assert value in (5, 6)
    elif "enum" in schema:
        assert value in schema["enum"]
    elif "const" in schema:
        assert value == 3
    elif schema.get("type") == "array":
        assert len(value) >= 4
        assert all(isinstance(v, int | float) for v in value)
    elif "allOf" in schema:
        assert isinstance(value["x"], str)
        assert isinstance(value["y"], int)
    else:
        assert value is not None


def test_enum_prefers_a_word_of_the_prompt() -> None:
    adapter = TypeAdapter(Literal["fiction", "poetry", "science"])
    schema = adapter.json_schema()
    for seed in range(5):
        value = SchemaValues(schema, analyse("A poetry book"), Rng(seed)).value(schema)
        assert value == "poetry"


def test_numbers_in_the_prompt_fill_integer_fields() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    }
    assert SchemaValues(schema, analyse("Multiply 6 by 7"), Rng(0)).value(schema) == {
        "a": 6,
        "b": 7,
    }


# ---------------------------------------------------------------- overrides


def test_override_header_forms() -> None:
    assert parse_overrides("error_rate=1,error_statuses=429") == {
        "error_rate": 1.0,
        "error_statuses": (429,),
    }
    assert parse_overrides("error_rate=1,error_statuses=429,503; seed=4") == {
        "error_rate": 1.0,
        "error_statuses": (429, 503),
        "seed": 4,
    }
    assert parse_overrides('{"hang_rate": 0.5, "error_statuses": [500]}') == {
        "hang_rate": 0.5,
        "error_statuses": (500,),
    }
    assert parse_overrides("latency=lognormal:median=0.3,p99=2,token-delay=0.01") == {
        "latency": "lognormal:median=0.3,p99=2",
        "token_delay": 0.01,
    }
    assert parse_overrides("") == {}
    random.seed(0)  # parse_overrides must not touch the global generator
