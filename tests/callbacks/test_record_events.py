"""record_events: tee astream_events (v1, v2, v3) into a trace, every event passed on unchanged."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI

from chainkit.callbacks import record_events
from chainkit.models import load_llm
from chainkit.trace import Trace
from tests.conftest import assert_no_canary

beta = pytest.mark.filterwarnings("ignore::langchain_core._api.beta_decorator.LangChainBetaWarning")


async def test_v2_events_pass_unchanged_and_are_recorded(chain: Runnable[Any, str]) -> None:
    value = {"topic": "comets"}
    plain = [e async for e in chain.astream_events(value, version="v2")]
    trace = Trace()
    seen = [
        (event, copy.copy(event))
        async for event in record_events(chain.astream_events(value, version="v2"), trace)
    ]
    for event, snapshot in seen:
        assert event == snapshot  # nothing added to the caller's dict
        assert "t" not in event
    assert [e["event"] for e, _ in seen] == [e["event"] for e in plain]
    assert [e["event"] for e in trace.events] == [e["event"] for e in plain]
    assert all("t" in e for e in trace.events)
    # runs are derived from the events
    (root,) = trace.roots
    assert [(r.kind, r.name) for _, r in root.walk()] == [
        ("chain", "RunnableSequence"),
        ("prompt", "ChatPromptTemplate"),
        ("chat_model", "ChatOpenAI"),
        ("parser", "StrOutputParser"),
    ]
    (model,) = [r for r in trace.runs if r.is_model]
    streamed = [e["data"]["chunk"].content for e in plain if e["event"] == "on_chat_model_stream"]
    assert [text for _, text in model.chunks] == streamed
    assert model.usage is not None
    assert root.ttft is not None
    assert root.status == "ok"


async def test_first_seed_v1_loop_recorded_as_written(
    tmp_path: Path, http_client: httpx.AsyncClient
) -> None:
    # the first seed's loop, on the local completion model, with its early break
    llm = load_llm("local", temperature=0, max_tokens=64, http_async_client=http_client)
    trace = Trace(tmp_path / "v1.jsonl")
    printed = []
    idx = 0
    async for event in record_events(
        llm.astream_events("Write me a 1 verse song about goldfish on the moon", version="v1"),
        trace,
    ):
        idx += 1
        if idx >= 5:  # truncate the output
            break
        printed.append(event)
    trace.close()
    assert [e["event"] for e in printed] == ["on_llm_start", *["on_llm_stream"] * 3]
    assert len(trace.events) == 5
    loaded = Trace.load(tmp_path / "v1.jsonl")
    assert [e["event"] for e in loaded.events] == [e["event"] for e in trace.events]
    (run,) = loaded.runs
    assert run.kind == "llm"
    assert run.text == "".join(e["data"]["chunk"] for e in trace.events[1:])
    assert_no_canary(tmp_path)


async def test_v1_chain_parentage_is_inferred(chain: Runnable[Any, str]) -> None:
    trace = Trace()
    async for _ in record_events(chain.astream_events({"topic": "x"}, version="v1"), trace):
        pass
    (root,) = trace.roots
    assert {r.kind for r in root.children} == {"prompt", "chat_model", "parser"}


@beta
async def test_v3_chat_model_events(model: ChatOpenAI) -> None:
    trace = Trace()
    stream = model.astream_events("Write a haiku about tea.", version="v3")
    texts = [
        event["delta"]["text"]
        async for event in record_events(stream, trace, name="ChatOpenAI")
        if event["event"] == "content-block-delta"
    ]
    (run,) = trace.runs
    assert (run.kind, run.name) == ("chat_model", "ChatOpenAI")
    assert run.text == "".join(texts)
    assert run.usage is not None
    assert run.usage["output_tokens"] > 0
    assert trace.events[0]["event"] == "message-start"
    assert trace.events[0]["run_id"] == run.run_id


@beta
def test_v3_sync_stream_events(sync_model: ChatOpenAI) -> None:
    trace = Trace()
    events = list(record_events(sync_model.stream_events("Write a haiku.", version="v3"), trace))
    assert [e["event"] for e in trace.events] == [e["event"] for e in events]
    assert trace.runs[0].text


def test_not_an_event_stream() -> None:
    with pytest.raises(TypeError, match="async iterator of events"):
        record_events(42, Trace())  # type: ignore[call-overload]
