"""EventCapture: the astream_events v2 stream, from callbacks, for every kind of call."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_openai import ChatOpenAI

from chainkit.callbacks import EventCapture, capture
from chainkit.chains import get_chain, list_chains
from chainkit.testing import local_model_server
from chainkit.trace import Trace
from tests.callbacks.conftest import song_chain

SAMPLE = {
    "topic": "a magical forest",
    "n": "7",
    "subject": "rainbows",
    "text": "The new library opened downtown; readers love its bright rooms and quiet corners.",
}
BUILTINS = [info.name for info in list_chains() if info.source == "builtin"]
Shape = tuple[str, tuple[str, ...]]


def inputs_for(name: str) -> dict[str, str]:
    (info,) = [i for i in list_chains() if i.name == name]
    return {var: SAMPLE[var] for var in info.variables}


def shape(events: Sequence[dict[str, Any]]) -> list[Shape]:
    """Each event as (type, names from the root down to its run): ids left out."""
    names = {e["run_id"]: e["name"] for e in events}
    return [
        (e["event"], (*(names.get(p, "?") for p in e["parent_ids"]), e["name"])) for e in events
    ]


def per_run(events: Sequence[dict[str, Any]]) -> dict[tuple[str, ...], list[str]]:
    """The event types of each run (by name path), in order: parallel branches may interleave."""
    runs: dict[tuple[str, ...], list[str]] = {}
    for event, path in shape(events):
        runs.setdefault(path, []).append(event)
    return runs


def model_chunks(events: Sequence[dict[str, Any]]) -> list[str]:
    return [e["data"]["chunk"].content for e in events if e["event"] == "on_chat_model_stream"]


def assert_same_stream(ours: list[dict[str, Any]], reference: list[dict[str, Any]]) -> None:
    assert Counter(shape(ours)) == Counter(shape(reference))
    assert per_run(ours) == per_run(reference)
    assert sorted(model_chunks(ours)) == sorted(model_chunks(reference))
    for event in ours:
        assert set(event) == {
            "event", "name", "run_id", "parent_ids", "tags", "metadata", "data", "t",
        }  # fmt: skip


def test_builtins_are_all_covered() -> None:
    assert set(BUILTINS) >= {
        "song", "story", "fact", "explain", "haiku", "summarize", "extract", "outline_story",
    }  # fmt: skip


@pytest.mark.parametrize("name", BUILTINS)
async def test_parity_with_astream_events_v2(name: str, model: ChatOpenAI) -> None:
    chain = get_chain(name, model=model)
    value = inputs_for(name)
    reference = [e async for e in chain.astream_events(value, version="v2")]
    events = EventCapture(strict=True)
    async for _ in chain.astream(value, {"callbacks": [events]}):
        pass
    assert_same_stream(events.events, reference)
    if name != "outline_story":  # no parallel branch: the whole order matches
        assert shape(events.events) == shape(reference)
    times = [e["t"] for e in events.events]
    assert times == sorted(times)


async def test_beside_astream_events_both_see_everything(chain: Runnable[Any, str]) -> None:
    value = {"topic": "lanterns"}
    reference = [e async for e in chain.astream_events(value, version="v2")]
    events = EventCapture(strict=True)
    config: RunnableConfig = {"callbacks": [events]}
    seen = [e async for e in chain.astream_events(value, config, version="v2")]
    # astream_events' own output is unchanged by EventCapture being attached ...
    assert shape(seen) == shape(reference)
    assert model_chunks(seen) == model_chunks(reference)
    # ... and EventCapture recorded the same stream, stream events included
    assert shape(events.events) == shape(reference)
    assert [e["data"]["chunk"] for e in events.events if e["event"] == "on_chain_stream"] == [
        e["data"]["chunk"] for e in seen if e["event"] == "on_chain_stream"
    ]


async def test_two_event_captures_both_get_stream_events(chain: Runnable[Any, str]) -> None:
    first, second = EventCapture(strict=True), EventCapture(strict=True)
    async for _ in chain.astream({"topic": "x"}, {"callbacks": [first, second]}):
        pass
    assert shape(first.events) == shape(second.events)
    assert any(e["event"] == "on_parser_stream" for e in second.events)


async def test_via_capture_inside_astream_events_misses_only_chain_streams(
    chain: Runnable[Any, str],
) -> None:
    # capture()'s handlers come after astream_events' own, which keeps the tap
    value = {"topic": "tides"}
    reference = [e async for e in chain.astream_events(value, version="v2")]
    with capture(events=True) as trace:
        seen = [e async for e in chain.astream_events(value, version="v2")]
    assert shape(seen) == shape(reference)
    untapped = [s for s in shape(reference) if s[0] not in ("on_chain_stream", "on_parser_stream")]
    assert shape(trace.events) == untapped
    assert trace.runs  # StreamCapture recorded the runs too


def test_sync_stream_taps_too(sync_chain: Runnable[Any, str]) -> None:
    events = EventCapture(strict=True)
    chunks = list(sync_chain.stream({"topic": "x"}, {"callbacks": [events]}))
    root_streams = [
        e["data"]["chunk"]
        for e in events.events
        if e["event"] == "on_chain_stream" and not e["parent_ids"]
    ]
    assert root_streams == chunks
    assert shape(events.events)[0] == ("on_chain_start", ("RunnableSequence",))
    assert shape(events.events)[-1] == ("on_chain_end", ("RunnableSequence",))


def test_invoke_and_batch_record_events(sync_chain: Runnable[Any, str]) -> None:
    events = EventCapture(strict=True)
    output = sync_chain.invoke({"topic": "x"}, {"callbacks": [events]})
    types = [e["event"] for e in events.events]
    assert types[0] == "on_chain_start"
    assert types[-1] == "on_chain_end"
    assert events.events[-1]["data"]["output"] == output
    # an attached EventCapture makes the chat model stream, as astream_events does
    assert "".join(model_chunks(events.events)) == output
    events = EventCapture(strict=True)
    sync_chain.batch([{"topic": "a"}, {"topic": "b"}, {"topic": "c"}], {"callbacks": [events]})
    roots = [e for e in events.events if e["event"] == "on_chain_end" and not e["parent_ids"]]
    assert len(roots) == 3


async def test_abatch_records_events(chain: Runnable[Any, str]) -> None:
    events = EventCapture(strict=True)
    outputs = await chain.abatch([{"topic": "a"}, {"topic": "b"}], {"callbacks": [events]})
    ends = [e for e in events.events if e["event"] == "on_chain_end" and not e["parent_ids"]]
    assert sorted(e["data"]["output"] for e in ends) == sorted(outputs)
    starts = {e["run_id"] for e in events.events if e["event"] == "on_chain_start"}
    for event in events.events:  # every child points at a root that started
        assert all(p in starts for p in event["parent_ids"])


@pytest.mark.parametrize(
    "filters",
    [
        {"include_types": ["chat_model"]},
        {"include_names": ["StrOutputParser"]},
        {"exclude_types": ["prompt", "parser"]},
        {"include_types": ["chain"], "exclude_names": ["RunnableSequence"]},
        {"include_tags": ["seq:step:3"]},
        {"exclude_tags": ["seq:step:2"]},
    ],
)
async def test_filters_match_astream_events(
    filters: dict[str, list[str]], chain: Runnable[Any, str]
) -> None:
    value = {"topic": "kites"}
    reference = [e async for e in chain.astream_events(value, version="v2", **filters)]  # type: ignore[arg-type]
    events = EventCapture(strict=True, **filters)  # type: ignore[arg-type]
    async for _ in chain.astream(value, {"callbacks": [events]}):
        pass
    assert shape(events.events) == shape(reference)


async def test_errors_become_events(http_client: httpx.AsyncClient) -> None:
    with local_model_server(disconnect_rate=1.0) as server:
        model = ChatOpenAI(
            base_url=server.base_url,
            api_key="x",  # type: ignore[arg-type]
            model="chainkit-local",
            max_retries=0,
            http_async_client=http_client,
        )
        chain = song_chain(model)
        events = EventCapture(strict=True)
        with pytest.raises(Exception) as caught:  # noqa: PT011
            await chain.ainvoke({"topic": "x"}, {"callbacks": [events]})
        quiet = EventCapture(strict=True, errors=False)
        with pytest.raises(type(caught.value)):
            await chain.ainvoke({"topic": "x"}, {"callbacks": [quiet]})
    errors = [(e["event"], e["name"]) for e in events.events if e["event"].endswith("_error")]
    assert ("on_chat_model_error", "ChatOpenAI") in errors
    assert ("on_chain_error", "RunnableSequence") in errors
    assert all(
        e["data"]["error"] is caught.value for e in events.events if e["event"].endswith("_error")
    )
    assert not [e for e in quiet.events if e["event"].endswith("_error")]
    assert model_chunks(events.events)  # the part streamed before the cut


async def test_events_to_a_file(tmp_path: Path, chain: Runnable[Any, str]) -> None:
    events = EventCapture(tmp_path / "events.jsonl", strict=True)
    async for _ in chain.astream({"topic": "x"}, {"callbacks": [events]}):
        pass
    events.trace.close()
    loaded = Trace.load(tmp_path / "events.jsonl")
    assert shape(loaded.events) == shape(events.events)
    chunks = [e["data"]["chunk"] for e in loaded.events if e["event"] == "on_chat_model_stream"]
    assert [c["content"] for c in chunks] == model_chunks(events.events)
    assert "EventCapture" in repr(events)
