"""Every built-in chain on the local model, through every call style."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI

from chainkit.chains import Extraction, get_chain, list_chains
from chainkit.errors import MissingVariableError

INPUTS: dict[str, dict[str, Any]] = {
    "song": {"topic": "sparkling water"},
    "story": {"topic": "a magical forest"},
    "fact": {"n": 7},
    "explain": {"subject": "quantum computing"},
    "haiku": {"topic": "artificial intelligence"},
    "summarize": {"text": "Bees visit flowers. They carry pollen. Fruit grows."},
    "extract": {"text": "I loved the sunny walk by the river with my dog."},
    "outline_story": {"topic": "an underwater civilization"},
}
OTHER: dict[str, dict[str, Any]] = {
    name: {key: f"{value} again" if isinstance(value, str) else 11 for key, value in given.items()}
    for name, given in INPUTS.items()
}
STORY_KEYS = {"topic", "outline", "title", "story", "word_count"}


def test_every_builtin_is_tested() -> None:
    builtins = {info.name for info in list_chains() if info.source == "builtin"}
    assert builtins == set(INPUTS)


def merge(chunks: list[Any]) -> Any:
    """What a caller reassembles from a stream: text joined, dicts merged, last object."""
    if all(isinstance(c, str) for c in chunks):
        return "".join(chunks)
    if all(isinstance(c, dict) for c in chunks):
        merged: dict[str, Any] = {}
        for chunk in chunks:
            for key, value in chunk.items():
                merged[key] = (
                    merged[key] + value if isinstance(value, str) and key in merged else value
                )
        return merged
    return chunks[-1]


def check_output(name: str, output: Any) -> None:
    if name == "extract":
        assert isinstance(output, Extraction)
        assert output.title
        assert output.sentiment in ("positive", "neutral", "negative")
    elif name == "outline_story":
        assert set(output) == STORY_KEYS
        assert output["outline"]
        assert output["title"]
        assert output["word_count"] == len(output["story"].split()) > 0
    else:
        assert isinstance(output, str)
        assert output.strip()


@pytest.mark.parametrize("name", list(INPUTS))
async def test_builtin_all_call_styles(name: str, model: ChatOpenAI) -> None:
    chain: Runnable[Any, Any] = get_chain(name, model=model)
    assert chain.get_name() == name
    given, other = INPUTS[name], OTHER[name]

    invoked = chain.invoke(given)
    check_output(name, invoked)
    assert await chain.ainvoke(given) == invoked  # the local model is deterministic
    streamed = list(chain.stream(given))
    assert merge(streamed) == invoked
    astreamed = [chunk async for chunk in chain.astream(given)]
    assert merge(astreamed) == invoked
    if name not in ("extract", "outline_story"):
        assert len(astreamed) > 1  # text arrives chunk by chunk
    batched = chain.batch([given, other])
    assert batched[0] == invoked
    check_output(name, batched[1])
    assert await chain.abatch([given, other]) == batched


def test_input_schemas_list_the_variables() -> None:
    for name, given in INPUTS.items():
        schema = get_chain(name, model="local").get_input_jsonschema()
        assert schema["required"] == sorted(given), name
        assert schema["title"].endswith("Input")
        assert schema["description"]


async def test_extract_uses_structured_output(model: ChatOpenAI) -> None:
    chain = get_chain("extract", model=model)
    steps = [step.get_name() for step in chain.bound.steps]  # type: ignore[attr-defined]
    assert "PydanticOutputParser" not in steps  # no format instructions: the model's tools
    result = await chain.ainvoke({"text": "A calm day at the lake. Great fishing."})
    assert isinstance(result, Extraction)
    assert result.keywords


async def test_outline_story_event_depth(model: ChatOpenAI) -> None:
    chain = get_chain("outline_story", model=model)
    events = [e async for e in chain.astream_events(INPUTS["outline_story"], version="v2")]
    starts = [e for e in events if e["event"].endswith("_start")]
    depth = {e["name"]: len(e["parent_ids"]) for e in starts}
    assert depth["outline_story"] == 0
    assert depth["RunnableAssign<outline>"] == 1
    assert depth["RunnableParallel<story,title>"] == 2
    assert depth["outline"] == depth["title"] == depth["story"] == 3
    assert depth["ChatOpenAI"] == depth["StrOutputParser"] == 4
    assert depth["word_count"] == 3
    # the outline comes first: the story's and title's prompts format once it has ended
    outline_end = next(
        i for i, e in enumerate(events) if e["event"] == "on_chain_end" and e["name"] == "outline"
    )
    outline = events[outline_end]
    later_prompts = [
        i
        for i, e in enumerate(events)
        if e["event"] == "on_prompt_start" and "outline" in e["data"]["input"]
    ]
    assert len(later_prompts) == 2
    assert min(later_prompts) > outline_end
    story_prompt = events[later_prompts[0]]
    assert story_prompt["data"]["input"]["outline"] == outline["data"]["output"]


MISSING = ["invoke", "ainvoke", "stream", "astream", "batch", "abatch", "astream_events"]


async def call(chain: Runnable[Any, Any], style: str, given: dict[str, Any]) -> None:
    if style == "invoke":
        chain.invoke(given)
    elif style == "ainvoke":
        await chain.ainvoke(given)
    elif style == "stream":
        list(chain.stream(given))
    elif style == "astream":
        [c async for c in chain.astream(given)]
    elif style == "batch":
        chain.batch([given])
    elif style == "abatch":
        await chain.abatch([given])
    else:
        [e async for e in chain.astream_events(given, version="v2")]


@pytest.mark.parametrize("style", MISSING)
@pytest.mark.parametrize("name", ["song", "extract", "outline_story"])
async def test_missing_variable_every_call_style(name: str, style: str, model: ChatOpenAI) -> None:
    chain = get_chain(name, model=model)
    with pytest.raises(MissingVariableError) as info:
        await call(chain, style, {"wrong": "x"})
    assert info.value.chain == name
    assert info.value.missing == sorted(INPUTS[name])
    assert f"chain {name!r}" in str(info.value)


def test_missing_variable_in_batch_with_return_exceptions(sync_model: ChatOpenAI) -> None:
    chain = get_chain("song", model=sync_model)
    ok, bad = chain.batch([{"topic": "x"}, {}], return_exceptions=True)
    assert isinstance(ok, str)
    assert isinstance(bad, MissingVariableError)


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"wrong": "x"}, ["topic"]),  # the caller's variable, not the step's own `outline`
        ({"topic": "x"}, ["outline"]),  # only what an earlier step makes: named as it is
    ],
)
def test_a_later_step_names_the_callers_missing_variables(
    given: dict[str, Any], named: list[str], model: ChatOpenAI
) -> None:
    """outline_story streams its steps into each other, so its title step may see the
    caller's input before the outline step has failed on it: the error must read the same."""
    from chainkit.chains._builtin import TITLE
    from chainkit.chains._make import build_chain

    step = build_chain(
        TITLE,
        model=model,
        parser="str",
        name="title",
        error_name="outline_story",
        produced=["outline"],
    )
    with pytest.raises(MissingVariableError) as info:
        step.invoke(given)
    assert info.value.chain == "outline_story"
    assert info.value.missing == named
