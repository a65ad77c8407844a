"""`chainkit demo` prints the seeds' tours, offline, on the local model."""

from __future__ import annotations

import re

import pytest

from chainkit.cli import main


@pytest.fixture(scope="module")
def demo_output() -> tuple[int, str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["demo", "--facts", "12", "--no-progress"])
    return code, out.getvalue(), err.getvalue()


def _section(text: str, number: int) -> str:
    start = text.index(f"== {number}.")
    end = text.find(f"== {number + 1}.", start)
    return text[start : end if end != -1 else None]


def test_demo_exits_cleanly(demo_output: tuple[int, str, str]) -> None:
    code, _, err = demo_output
    assert code == 0
    assert "Traceback" not in err
    assert "error" not in err.lower()


def test_stream_and_astream_print_the_same_song_chunk_by_chunk(
    demo_output: tuple[int, str, str],
) -> None:
    _, out, _ = demo_output
    sync = _section(out, 1).split("\n", 1)[1]
    async_ = _section(out, 2).split("\n", 1)[1]
    assert sync.count("|") > 20  # one bar after every chunk
    assert "sparkling water" in sync.replace("|", "").lower()
    assert sync == async_


def test_astream_events_prints_four_events_then_truncates(
    demo_output: tuple[int, str, str],
) -> None:
    _, out, _ = demo_output
    lines = _section(out, 3).strip().splitlines()[1:]
    assert lines[-1] == "...Truncated"
    assert len(lines) == 5
    assert lines[0].startswith("{'event': 'on_llm_start'")
    assert "goldfish on the moon" in lines[0]


def test_three_stories_stream_labelled_then_print_whole(
    demo_output: tuple[int, str, str],
) -> None:
    _, out, _ = demo_output
    section = _section(out, 4)
    for topic in ("a magical forest", "a futuristic city", "an underwater civilization"):
        labelled = [line for line in section.splitlines() if line.startswith(f"[{topic}] ")]
        assert len(labelled) >= 2, topic
        assert all(line[len(topic) + 3 :].strip() for line in labelled)  # no blank lines
        story = re.search(rf"Topic: {topic}\nStory: (.+?)\n=====", section, flags=re.S)
        assert story is not None
        # the labelled lines, put back together, are the story printed whole
        streamed = "\n".join(line[len(topic) + 3 :] for line in labelled)
        assert streamed.split() == story.group(1).split()


def test_facts_run_through_the_runner_with_a_summary(demo_output: tuple[int, str, str]) -> None:
    _, out, _ = demo_output
    section = _section(out, 5)
    assert "12 facts through the runner, max_concurrency=5" in section
    shown = re.findall(r"Prompt: Tell me a fact about number (\d+)", section)
    assert shown == ["0", "1", "2"]  # ordered output: the first inputs come first
    assert re.search(r"12 done: 12 succeeded, 0 failed", section)
