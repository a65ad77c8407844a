"""The inline parsers: the stock parsers' output and events, without thread hops."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.output_parsers import JsonOutputParser, StrOutputParser
from langchain_core.output_parsers import base as parsers_base
from langchain_core.output_parsers import transform as parsers_transform
from langchain_core.runnables import Runnable
from langchain_core.runnables import config as runnables_config
from langchain_openai import ChatOpenAI

from chainkit.chains import (
    InlineJsonOutputParser,
    InlineStrOutputParser,
    make_chain,
    stock_chain,
)
from tests.chains.conftest import fake_model


@pytest.fixture
def executor_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every hop of an output parser to the thread pool, by the function it ran."""
    calls: list[str] = []
    real = runnables_config.run_in_executor

    async def counting(executor: Any, func: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(func, "__name__", repr(func)))
        return await real(executor, func, *args, **kwargs)

    monkeypatch.setattr(parsers_transform, "run_in_executor", counting)
    monkeypatch.setattr(parsers_base, "run_in_executor", counting)
    return calls


async def test_stock_parser_hops_per_chunk_ours_never(
    model: ChatOpenAI, executor_calls: list[str]
) -> None:
    template = "Write a short story about {topic}."
    stock = stock_chain(template, model=model)
    stock_chunks = [c async for c in stock.astream({"topic": "a lighthouse"})]
    assert len(executor_calls) >= len(stock_chunks) > 10  # the hop this module avoids
    executor_calls.clear()
    ours = make_chain(template, model=model, name="story")
    our_chunks = [c async for c in ours.astream({"topic": "a lighthouse"})]
    assert our_chunks == stock_chunks
    assert await ours.ainvoke({"topic": "a lighthouse"}) == "".join(stock_chunks)
    assert executor_calls == []


async def test_json_parser_never_hops(executor_calls: list[str]) -> None:
    chain = make_chain(
        "Data about {x}", model=fake_model('{"a": [1, 2], "b": "c d"}'), parser="json"
    )
    chunks = [c async for c in chain.astream({"x": "y"})]
    assert chunks[-1] == {"a": [1, 2], "b": "c d"}
    assert await chain.ainvoke({"x": "y"}) == {"a": [1, 2], "b": "c d"}
    assert executor_calls == []


async def feed(parser: Runnable[Any, Any], parts: list[Any]) -> list[Any]:
    async def source() -> Any:
        for part in parts:
            yield part

    return [chunk async for chunk in parser.atransform(source())]


@pytest.mark.parametrize(
    "parts",
    [
        [AIMessageChunk(content="a "), AIMessageChunk(content="b")],
        ["plain ", "strings"],
        [AIMessageChunk(content=[{"type": "text", "text": "blocks"}, {"type": "x"}])],
        [AIMessageChunk(content=[{"text": "legacy"}])],
    ],
)
async def test_str_parser_matches_stock(parts: list[Any]) -> None:
    assert await feed(InlineStrOutputParser(), parts) == await feed(StrOutputParser(), parts)
    assert list(InlineStrOutputParser().transform(iter(parts))) == list(
        StrOutputParser().transform(iter(parts))
    )


@pytest.mark.parametrize("diff", [False, True])
async def test_json_parser_matches_stock(diff: bool) -> None:
    parts = [AIMessageChunk(content=p) for p in ['{"a": ', "[1, ", "2]", ', "b": "x"}']]
    ours = await feed(InlineJsonOutputParser(diff=diff), parts)
    assert ours == await feed(JsonOutputParser(diff=diff), parts)
    assert len(ours) > 1


def test_stock_names_in_events() -> None:
    assert InlineStrOutputParser().get_name() == "StrOutputParser"
    assert InlineJsonOutputParser().get_name() == "JsonOutputParser"
    assert InlineStrOutputParser(name="mine").get_name() == "mine"
    assert not InlineStrOutputParser.is_lc_serializable()


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_parser_events_like_stock(version: Any) -> None:
    """on_parser_start/stream/end and the chain's on_chain_stream, as with StrOutputParser."""
    template = "About {x}"

    def shape(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [(e["event"], e["name"]) for e in events]

    ours = make_chain(template, model=fake_model(), name="RunnableSequence")
    stock = stock_chain(template, model=fake_model())
    got = [e async for e in ours.astream_events({"x": "y"}, version=version)]
    want = [e async for e in stock.astream_events({"x": "y"}, version=version)]
    assert shape(got) == shape(want)
    assert ("on_parser_stream", "StrOutputParser") in shape(got)
    assert [e["data"] for e in got if e["event"] == "on_parser_stream"] == [
        e["data"] for e in want if e["event"] == "on_parser_stream"
    ]
