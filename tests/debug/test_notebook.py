"""chainkit.notebook.live_stream: concurrent streams shown live, then the captured trace."""

from __future__ import annotations

import asyncio
import io
import itertools
from types import SimpleNamespace
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda

from chainkit import notebook
from chainkit.errors import UserError
from chainkit.notebook import alive_stream, in_notebook, live_stream

TOPICS = [{"topic": t} for t in ("a magical forest", "a futuristic city", "boom", "the sea")]


class _Gauge:
    def __init__(self) -> None:
        self.now = 0
        self.peak = 0


def _chain(gauge: _Gauge | None = None) -> Runnable[Any, Any]:
    async def check(value: dict[str, Any]) -> dict[str, Any]:
        if gauge is not None:
            gauge.now += 1
            gauge.peak = max(gauge.peak, gauge.now)
            await asyncio.sleep(0.02)
            gauge.now -= 1
        if value["topic"] == "boom":
            raise ValueError("the topic exploded")
        return value

    model = GenericFakeChatModel(messages=itertools.repeat(AIMessage(content="once upon a time")))
    prompt = ChatPromptTemplate.from_messages([("human", "Write a story about {topic}.")])
    return RunnableLambda(check, name="check") | prompt | model | StrOutputParser()


def test_plain_text_outside_a_notebook() -> None:
    assert not in_notebook()
    out = io.StringIO()
    trace = live_stream(_chain(), TOPICS, max_concurrency=2, file=out)
    text = out.getvalue()
    for index, topic in enumerate(TOPICS):
        assert f"[{index}] " in text
        assert topic["topic"] in text
    assert text.count("once upon a time") == 3
    assert "[2] error" in text
    assert "ValueError: the topic exploded" in text
    assert text.rstrip().splitlines()[-1].startswith("live_stream: 4 calls")
    assert len(trace.roots) == 4
    assert sum(1 for root in trace.roots if root.error is not None) == 1
    models = [run for run in trace.runs if run.is_model]
    assert len(models) == 3
    assert all(run.text == "once upon a time" for run in models)


def test_max_concurrency_is_respected() -> None:
    gauge = _Gauge()
    live_stream(_chain(gauge), TOPICS * 2, max_concurrency=3, file=io.StringIO())
    assert 1 <= gauge.peak <= 3


class _FakeDisplay:
    """Stands in for IPython.display: records the one display and its updates."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.updates: list[str] = []

    def module(self) -> Any:
        outer = self

        class Handle:
            def update(self, obj: Any) -> None:
                outer.updates.append(obj.data)

        def display(obj: Any, *, display_id: bool) -> Handle:
            assert display_id is True
            outer.shown.append(obj.data)
            return Handle()

        return SimpleNamespace(HTML=lambda data: SimpleNamespace(data=data), display=display)


def test_one_output_updated_in_place_in_a_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeDisplay()
    monkeypatch.setattr(notebook, "_ipython_display", fake.module)
    trace = live_stream(_chain(), TOPICS, max_concurrency=2, notebook=True, refresh=0.01)
    assert len(fake.shown) == 1  # one output, then updates in place
    assert "waiting" in fake.shown[0]
    assert fake.updates
    final = fake.updates[-1]
    assert final.count("once upon a time") == 3
    assert final.count(">done<") == 3
    assert final.count(">error<") == 1
    assert "the topic exploded" in final
    assert len(trace.roots) == 4


async def test_alive_stream_matches_live_stream() -> None:
    out = io.StringIO()
    trace = await alive_stream(_chain(), TOPICS, max_concurrency=2, file=out, refresh=0.01)
    assert len(trace.roots) == 4
    assert out.getvalue().count("once upon a time") == 3


def test_misuse() -> None:
    with pytest.raises(UserError, match="max_concurrency must be >= 1, got 0"):
        live_stream(_chain(), TOPICS, max_concurrency=0)
    with pytest.raises(UserError, match="needs a LangChain Runnable"):
        live_stream(42, TOPICS)  # type: ignore[arg-type]


def test_an_interrupt_cancels_the_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    cancelled: list[str] = []

    async def slow(value: dict[str, Any]) -> dict[str, Any]:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(value["topic"])
            raise
        return value

    def interrupt(self: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(notebook._Output, "refresh", interrupt)
    monkeypatch.setattr(notebook._Output, "finish", lambda self: None)
    chain = RunnableLambda(slow, name="slow")
    with pytest.raises(KeyboardInterrupt):
        live_stream(chain, TOPICS[:2], max_concurrency=2, refresh=0.05)
    assert sorted(cancelled) == sorted(t["topic"] for t in TOPICS[:2])
