"""Known LangChain callback traps, each designed around and pinned by a test.

- configure hooks: ``get_usage_metadata_callback`` registers a new hook per use
  (langchain issue 32300); chainkit registers its hooks once, at import.
- ``on_llm_start`` is skipped for non-inline async handlers once an inline
  handler (the LangSmith tracer) is attached (issue 39633); chainkit's handlers
  are inline.
- a parent's end can arrive before its child's.
- ``invoke`` fires token callbacks only when the model streams.
- a sync ``stream()`` inside a running event loop (Jupyter) must not hop threads.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any
from uuid import uuid4

import httpx
import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, LLMResult
from langchain_core.runnables import Runnable
from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.context import _configure_hooks
from langchain_core.tracers.schemas import Run as TracerRun

from chainkit.callbacks import EventCapture, StreamCapture, StreamPrinter, capture
from chainkit.callbacks._context import MAX_HANDLERS
from chainkit.errors import UserError
from chainkit.models import load_llm
from tests.callbacks.conftest import fake_model, song_chain

HANDLERS = (StreamCapture, EventCapture, StreamPrinter)


class InlineTracer(BaseTracer):
    """Stands in for LangSmith's LangChainTracer: a sync, inline BaseTracer."""

    run_inline = True

    def __init__(self) -> None:
        super().__init__()
        self.persisted: list[TracerRun] = []

    def _persist_run(self, run: TracerRun) -> None:
        self.persisted.append(run)


# ----------------------------------------------------------------- configure hooks


def test_capture_registers_no_hook_per_use(sync_chain: Runnable[Any, str]) -> None:
    before = len(_configure_hooks)
    for _ in range(50):
        with capture(events=True):
            pass
    with capture() as trace:
        sync_chain.invoke({"topic": "x"})
    assert len(_configure_hooks) == before
    assert len(trace.roots) == 1


def test_capture_attaches_for_the_block_only(sync_chain: Runnable[Any, str]) -> None:
    with capture(events=True) as trace:
        output = sync_chain.invoke({"topic": "x"})
        sync_chain.batch([{"topic": "a"}, {"topic": "b"}])  # worker threads see it too
    sync_chain.invoke({"topic": "after"})  # not recorded
    assert len(trace.roots) == 3
    assert trace.roots[0].outputs == output
    assert [e["event"] for e in trace.events].count("on_chain_start") >= 3


async def test_capture_async_and_nested(chain: Runnable[Any, str]) -> None:
    async with capture() as outer:
        await chain.ainvoke({"topic": "one"})
        with capture(events=True) as inner:
            await chain.ainvoke({"topic": "two"})
        await asyncio.gather(chain.ainvoke({"topic": "three"}), chain.ainvoke({"topic": "four"}))
    assert len(outer.roots) == 4
    assert len(inner.roots) == 1
    assert inner.events


def test_capture_nesting_limit_and_reuse() -> None:
    blocks = [capture() for _ in range(MAX_HANDLERS)]
    for block in blocks:
        block.__enter__()
    try:
        with pytest.raises(UserError, match="nest too deep"), capture():
            pass
        with pytest.raises(UserError, match="already active"):
            blocks[0].__enter__()
    finally:
        for block in reversed(blocks):
            block.__exit__(None, None, None)


# --------------------------------------------------------------- inline handlers


def test_hooks_are_inline_plain_methods() -> None:
    # Plain methods + run_inline: LangChain's async manager calls them directly on
    # the loop, its sync manager directly on the caller's thread. An `async def`
    # hook would cost a thread and a new event loop per event on the sync path.
    for cls in HANDLERS:
        assert cls.run_inline is True
        for name in ("on_llm_new_token", "on_llm_start", "on_chat_model_start", "on_llm_end"):
            assert not inspect.iscoroutinefunction(getattr(cls, name)), (cls, name)


async def test_llm_start_reaches_us_beside_an_inline_tracer(
    http_client: httpx.AsyncClient,
) -> None:
    # issue 39633: AsyncCallbackManager.on_llm_start sends the start only to the
    # inline handlers when there is one; ours are inline, so they get it.
    llm = load_llm("local", temperature=0, max_tokens=8, http_async_client=http_client)
    tracer, streams, events = InlineTracer(), StreamCapture(strict=True), EventCapture(strict=True)
    run_id = uuid4()
    text = "".join(
        [
            c
            async for c in llm.astream(
                "Write a haiku.", {"callbacks": [tracer, streams, events], "run_id": run_id}
            )
        ]
    )
    run = streams[run_id]
    assert (run.kind, run.name) == ("llm", "OpenAI")
    assert run.start is not None
    assert run.inputs == {"prompts": ["Write a haiku."]}
    assert run.text == text
    assert next(e["event"] for e in events.events) == "on_llm_start"
    assert events.events[-1]["event"] == "on_llm_end"
    assert tracer.persisted  # the tracer saw the run too
    await llm.ainvoke("Write a haiku.", {"callbacks": [tracer, streams]})
    assert all(r.start is not None for r in streams.runs)


async def test_sync_stream_in_a_running_loop_stays_on_the_callers_thread() -> None:
    # As in a Jupyter cell: sync code called while an event loop runs.
    threads: set[int] = set()

    class Spy(StreamCapture):
        def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
            threads.add(threading.get_ident())
            super().on_llm_new_token(token, **kwargs)

    chain = song_chain(fake_model("a b c d"))
    spy = Spy(strict=True)
    assert asyncio.get_running_loop().is_running()
    chunks = list(chain.stream({"topic": "x"}, {"callbacks": [spy, EventCapture(strict=True)]}))
    assert threads == {threading.get_ident()}
    (model,) = [r for r in spy.runs if r.is_model]
    assert [t for _, t in model.chunks] == chunks


# ------------------------------------------------------ parent ends before child


def test_a_parent_ending_before_its_child_is_handled() -> None:
    parent, child = uuid4(), uuid4()
    streams, events, printer = (
        StreamCapture(strict=True),
        EventCapture(strict=True),
        StreamPrinter(labels=True),
    )
    chunk = ChatGenerationChunk(message=AIMessageChunk(content="hi"))
    end = LLMResult(generations=[[ChatGeneration(message=AIMessageChunk(content="hi there"))]])
    for handler in (streams, events, printer):
        handler.on_chain_start(None, {"topic": "x"}, run_id=parent, name="outer")
        handler.on_chat_model_start(
            None, [[HumanMessage("x")]], run_id=child, parent_run_id=parent, name="model"
        )
        handler.on_llm_new_token("hi", chunk=chunk, run_id=child, parent_run_id=parent)
        handler.on_chain_end("done", run_id=parent)  # the parent's end first
        handler.on_llm_new_token(" there", chunk=chunk, run_id=child, parent_run_id=parent)
        handler.on_llm_end(end, run_id=child, parent_run_id=parent)
    outer, model = streams[parent], streams[child]
    assert outer.children == [model]
    assert model.text == "hi there"
    assert (outer.status, model.status) == ("ok", "ok")
    assert outer.end is not None
    assert model.end is not None
    assert outer.end < model.end
    after = [e for e in events.events if e["t"] > events.events[3]["t"]]
    assert [e["event"] for e in after] == ["on_chat_model_stream", "on_chat_model_end"]
    assert all(e["parent_ids"] == [str(parent)] for e in after)


# ------------------------------------------------------------ invoke and tokens


def test_invoke_streams_only_when_a_streaming_handler_asks(
    sync_chain: Runnable[Any, str],
) -> None:
    alone = StreamCapture(strict=True)
    sync_chain.invoke({"topic": "x"}, {"callbacks": [alone]})
    assert not next(r for r in alone.runs if r.is_model).chunks
    beside = StreamCapture(strict=True)
    output = sync_chain.invoke({"topic": "x"}, {"callbacks": [beside, EventCapture()]})
    (model,) = [r for r in beside.runs if r.is_model]
    assert model.chunks  # EventCapture's tap makes the chat model stream
    assert model.text == output
