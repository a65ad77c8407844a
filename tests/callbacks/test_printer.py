"""StreamPrinter: the first seed's '|' output, and labelled lines for concurrent streams."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import run_in_executor

from chainkit.callbacks import StreamPrinter
from chainkit.callbacks._printer import LabelInfo
from chainkit.models import load_llm
from tests.callbacks.conftest import fake_model, song_chain

SONG = "Write me a 1 verse song about sparkling water."
TOPICS = ["a magical forest", "a futuristic city", "an underwater civilization"]


def test_separator_reproduces_the_first_seed(capsys: pytest.CaptureFixture[str]) -> None:
    llm = load_llm("local", temperature=0, max_tokens=40)
    for chunk in llm.stream(SONG):  # the seed, as written
        print(chunk, end="|", flush=True)
    expected = capsys.readouterr().out
    out = io.StringIO()
    for _ in llm.stream(SONG, {"callbacks": [StreamPrinter(out, sep="|")]}):
        pass
    assert out.getvalue() == expected
    assert expected.count("|") > 10


async def test_async_stream_of_a_chat_chain(chain: Runnable[Any, str]) -> None:
    expected = "|".join([c async for c in chain.astream({"topic": "rain"})]) + "|"
    out = io.StringIO()
    async for _ in chain.astream({"topic": "rain"}, {"callbacks": [StreamPrinter(out, sep="|")]}):
        pass
    assert out.getvalue() == expected


def test_default_stream_is_stdout_at_write_time(capsys: pytest.CaptureFixture[str]) -> None:
    chain = song_chain(fake_model("a b"))
    chain.invoke({"topic": "x"}, {"callbacks": [StreamPrinter(end="\n")]})
    # invoke streams only when the model does; the fake one does not print here
    chain_out = capsys.readouterr().out
    for _ in chain.stream({"topic": "x"}, {"callbacks": [StreamPrinter(end="<end>")]}):
        pass
    assert capsys.readouterr().out == "a b<end>"
    assert chain_out in ("", "\n")


async def test_concurrent_streams_print_whole_labelled_lines(chain: Runnable[Any, str]) -> None:
    out = io.StringIO()
    printer = StreamPrinter(out, labels=True)

    async def story(topic: str) -> str:
        config: RunnableConfig = {"callbacks": [printer], "metadata": {"label": topic}}
        return "".join([c async for c in chain.astream({"topic": topic}, config)])

    stories = await asyncio.gather(*(story(t) for t in TOPICS))
    lines = out.getvalue().splitlines()
    assert all(line.startswith("[") for line in lines)
    for topic, text in zip(TOPICS, stories, strict=True):
        prefix = f"[{topic}] "
        mine = [line.removeprefix(prefix) for line in lines if line.startswith(prefix)]
        assert "\n".join(mine) == text  # every line whole, none mixed with another story
    assert out.getvalue().endswith("\n")


def test_labels_from_tags_names_and_functions() -> None:
    chain = song_chain(fake_model("one\ntwo"))
    out = io.StringIO()
    chain.invoke({"topic": "x"}, {"callbacks": [StreamPrinter(out, labels=True)]})
    for _ in chain.stream({"topic": "x"}, {"callbacks": [StreamPrinter(out, labels=True)]}):
        pass
    assert out.getvalue() == "[RunnableSequence#1] one\n[RunnableSequence#1] two\n"
    out = io.StringIO()
    printer = StreamPrinter(out, labels=True)
    for _ in chain.stream({"topic": "x"}, {"callbacks": [printer], "tags": ["mine"]}):
        pass
    for _ in chain.stream({"topic": "x"}, {"callbacks": [printer], "run_name": "song"}):
        pass
    assert out.getvalue().splitlines() == [
        "[mine] one",
        "[mine] two",
        "[song#2] one",
        "[song#2] two",
    ]

    def label(info: LabelInfo) -> str:
        return f"{info.root_name}/{info.name}"

    out = io.StringIO()
    for _ in chain.stream(
        {"topic": "x"}, {"callbacks": [StreamPrinter(out, labels=True, label=label)]}
    ):
        pass
    assert out.getvalue().splitlines()[0] == "[RunnableSequence/GenericFakeChatModel] one"


def test_sync_streams_in_threads_do_not_interleave_lines() -> None:
    chain = song_chain(fake_model("alpha beta gamma\ndelta epsilon\nzeta"))
    out = io.StringIO()
    printer = StreamPrinter(out, labels=True)

    async def main() -> None:
        def one(topic: str) -> None:
            config: RunnableConfig = {"callbacks": [printer], "metadata": {"label": topic}}
            for _ in chain.stream({"topic": topic}, config):
                pass

        await asyncio.gather(*(run_in_executor(None, one, f"t{i}") for i in range(8)))

    asyncio.run(main())
    lines = out.getvalue().splitlines()
    assert len(lines) == 8 * 3
    for i in range(8):
        mine = [line for line in lines if line.startswith(f"[t{i}] ")]
        assert mine == [f"[t{i}] alpha beta gamma", f"[t{i}] delta epsilon", f"[t{i}] zeta"]
