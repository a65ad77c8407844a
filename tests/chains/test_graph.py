"""The ASCII drawing of a chain's graph (no grandalf needed)."""

from __future__ import annotations

from langchain_core.runnables import RunnableLambda, RunnableParallel

from chainkit.chains import get_chain, make_chain
from chainkit.chains._graph import draw_ascii
from tests.chains.conftest import fake_model


def test_sequence_is_a_column_of_boxes() -> None:
    drawing = draw_ascii(make_chain("About {x}", model=fake_model()).get_graph())
    names = ["PromptInput", "ChatPromptTemplate", "GenericFakeChatModel", "StrOutputParser"]
    rows = [
        next(i for i, line in enumerate(drawing.splitlines()) if f"| {n} |" in line) for n in names
    ]
    assert rows == sorted(rows)
    assert drawing.count("v") >= len(names)  # an arrow between each pair


def test_parallel_branches_side_by_side() -> None:
    graph = RunnableParallel(
        left=RunnableLambda(lambda x: x, name="left"),
        right=RunnableLambda(lambda x: x, name="right"),
    ).get_graph()
    drawing = draw_ascii(graph)
    line = next(line for line in drawing.splitlines() if "| left |" in line)
    assert "| right |" in line  # one layer
    assert "+" in drawing.splitlines()[4]  # a bar joins the fan-out


def test_outline_story_draws_every_step() -> None:
    drawing = draw_ascii(get_chain("outline_story", model=fake_model()).get_graph())
    for name in ("Parallel<outline>Input", "Parallel<story,title>Output", "word_count"):
        assert f"| {name} |" in drawing
    assert drawing.count("| GenericFakeChatModel |") == 3


def test_empty_graph() -> None:
    from langchain_core.runnables.graph import Graph

    assert draw_ascii(Graph()) == ""
