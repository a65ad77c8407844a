"""make_chain: naming, input schema, parsers, composition and events."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from chainkit.chains import ChainPromptTemplate, make_chain, stock_chain
from chainkit.errors import MissingVariableError, UserError
from tests.chains.conftest import fake_model


def test_named_runnable_with_input_schema() -> None:
    chain = make_chain(
        "Write about {topic} in {style}.",
        model=fake_model(),
        name="essay",
        description="An essay.",
        style="prose",
    )
    assert chain.get_name() == "essay"
    schema = chain.get_input_jsonschema()
    assert schema["title"] == "EssayInput"
    assert schema["description"] == "An essay."
    assert schema["required"] == ["topic"]
    assert schema["properties"]["topic"]["type"] == "string"
    assert schema["properties"]["style"]["default"] == "prose"  # a default is an optional input
    assert chain.get_output_jsonschema()["type"] == "string"
    assert chain.invoke({"topic": "x"}) == "one two three four"
    # an input overrides a default, as LangChain's partial variables do
    prompt = chain.bound.first  # type: ignore[attr-defined]
    assert "in verse" in prompt.invoke({"topic": "x", "style": "verse"}).to_string()


def test_default_name_and_model_spec_string() -> None:
    chain = make_chain("Say {word}.", model="local")
    assert chain.get_name() == "chain"
    assert isinstance(chain.bound.steps[1], ChatOpenAI)  # type: ignore[attr-defined]


async def test_names_in_events_and_no_extra_run() -> None:
    chain = make_chain("Write about {topic}.", model=fake_model(), name="essay")
    events = [e async for e in chain.astream_events({"topic": "x"}, version="v2")]
    starts = [
        (e["event"], e["name"], len(e["parent_ids"])) for e in events if "start" in e["event"]
    ]
    assert starts == [
        ("on_chain_start", "essay", 0),
        ("on_prompt_start", "ChatPromptTemplate", 1),
        ("on_chat_model_start", "GenericFakeChatModel", 1),
        ("on_parser_start", "StrOutputParser", 1),
    ]
    streamed = [e["data"]["chunk"] for e in events if e["event"] == "on_parser_stream"]
    assert "".join(streamed) == "one two three four"
    assert [e for e in events if e["event"] == "on_chain_stream" and e["name"] == "essay"]


async def test_events_match_the_stock_chain(model: ChatOpenAI) -> None:
    """Same events, names and parentage as prompt | ChatOpenAI | StrOutputParser()."""

    def shape(events: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
        return [(e["event"], e["name"], len(e["parent_ids"])) for e in events]

    template = "Write a haiku about {topic}."
    ours = make_chain(template, model=model, name="RunnableSequence")
    stock = stock_chain(template, model=model)
    got = [e async for e in ours.astream_events({"topic": "tea"}, version="v2")]
    want = [e async for e in stock.astream_events({"topic": "tea"}, version="v2")]
    assert shape(got) == shape(want)
    assert got[-1]["data"]["output"] == want[-1]["data"]["output"]


def test_composes_with_pipe() -> None:
    chain = make_chain("Write about {topic}.", model=fake_model(), name="essay")
    shout = chain | RunnableLambda(str.upper)
    assert shout.invoke({"topic": "x"}) == "ONE TWO THREE FOUR"
    # the chain stays one named step of the bigger sequence
    assert [s.get_name() for s in shout.steps] == ["essay", "upper"]  # type: ignore[attr-defined]
    first = RunnableLambda(lambda text: {"topic": text}) | chain
    assert first.invoke("x") == "one two three four"


def test_prompt_template_objects_and_system() -> None:
    chat = ChatPromptTemplate.from_messages([("human", "Tell me about {a} and {b}")])
    chain = make_chain(chat, model=fake_model(), name="two", system="Be brief about {a}.", b="B")
    prompt = chain.bound.first  # type: ignore[attr-defined]
    assert isinstance(prompt, ChainPromptTemplate)
    messages = prompt.invoke({"a": "A"}).to_messages()
    assert [m.type for m in messages] == ["system", "human"]
    assert messages[0].content == "Be brief about A."
    assert messages[1].content == "Tell me about A and B"
    text = make_chain(PromptTemplate.from_template("Hi {name}"), model=fake_model(), name="hi")
    assert text.get_input_jsonschema()["required"] == ["name"]
    assert text.invoke({"name": "Ann"}) == "one two three four"


def test_mustache_template() -> None:
    chain = make_chain("Hello {{name}}!", model=fake_model(), template_format="mustache")
    prompt = chain.bound.first  # type: ignore[attr-defined]
    assert prompt.invoke({"name": "Ann"}).to_string().endswith("Hello Ann!")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"template_format": "jinja2"}, "can run code"),
        ({"parser": "xml"}, "parser must be"),
        ({"nope": 1}, "'nope' is not a variable of the template"),
        ({"name": ""}, "non-empty"),
        ({"model": 42}, "model must be"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    kwargs.setdefault("model", fake_model())
    with pytest.raises(UserError, match=message):
        make_chain("About {topic}", **kwargs)


def test_missing_variable_is_typed_and_names_chain() -> None:
    chain = make_chain("About {topic} and {mood}", model=fake_model(), name="essay")
    with pytest.raises(MissingVariableError) as info:
        chain.invoke({"topic": "x"})
    assert info.value.chain == "essay"
    assert info.value.missing == ["mood"]
    assert "'mood'" in str(info.value)
    assert isinstance(info.value, KeyError)  # code that caught LangChain's KeyError still works


def test_single_variable_takes_a_bare_value() -> None:
    chain = make_chain("About {topic}", model=fake_model())
    assert chain.invoke("x") == "one two three four"  # type: ignore[arg-type]


def test_runnable_parser() -> None:
    chain = make_chain("About {topic}", model=fake_model(), parser=StrOutputParser() | len)
    assert chain.invoke({"topic": "x"}) == len("one two three four")


async def test_json_parser_on_local_model(model: ChatOpenAI) -> None:
    chain = make_chain("Describe {thing}.", model=model, parser="json", name="describe")
    result = await chain.ainvoke({"thing": "a teapot"})
    assert isinstance(result, dict)
    assert result
    partials = [chunk async for chunk in chain.astream({"thing": "a teapot"})]
    assert len(partials) > 1  # growing partial objects
    assert partials[-1] == result
    prompt = chain.bound.first  # type: ignore[attr-defined]
    assert "JSON" in prompt.invoke({"thing": "t"}).to_string()  # JSON mode needs the word


class Pet(BaseModel):
    name: str
    legs: int


async def test_pydantic_parser_falls_back_to_format_instructions() -> None:
    """A model without structured output gets a pydantic parser and format instructions."""
    chain = make_chain(
        "Invent a pet called {name}.", model=fake_model('{"name": "Rex", "legs": 4}'), parser=Pet
    )
    prompt = chain.bound.first  # type: ignore[attr-defined]
    text = prompt.invoke({"name": "Rex"}).to_string()
    assert '"legs"' in text  # the format instructions carry the schema
    assert chain.get_input_jsonschema()["required"] == ["name"]  # not format_instructions
    assert chain.invoke({"name": "Rex"}) == Pet(name="Rex", legs=4)
    assert await chain.ainvoke({"name": "Rex"}) == Pet(name="Rex", legs=4)
    streamed = [chunk async for chunk in chain.astream({"name": "Rex"})]
    assert streamed[-1] == Pet(name="Rex", legs=4)


async def test_pydantic_parser_uses_structured_output(model: ChatOpenAI) -> None:
    chain = make_chain("Invent a pet called {name}.", model=model, parser=Pet, name="pet")
    names = {step.get_name() for step in chain.bound.steps}  # type: ignore[attr-defined]
    assert "PydanticOutputParser" not in names  # the model's own structured output
    result = await chain.ainvoke({"name": "Rex"})
    assert isinstance(result, Pet)
    assert [chunk async for chunk in chain.astream({"name": "Rex"})][-1] == result
