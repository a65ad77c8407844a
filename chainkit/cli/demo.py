"""``chainkit demo``: the two seeds' tours, on the embedded local model by default.

1-3. The first seed: ``stream()`` printed chunk by chunk with ``|`` separators,
     the same with ``astream()``, then the first events of ``astream_events``.
4.   The second seed's three stories, streamed concurrently (one labelled line
     at a time), then each story printed whole with its topic.
5.   The second seed's 100 "Tell me a fact about number {i}" prompts through
     the runner at max_concurrency 5, with its progress bar and summary.
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Annotated, Any

import typer

from chainkit._bridge import run_sync
from chainkit.cli._app import app

SONG = "Write me a 1 verse song about sparkling water."
GOLDFISH = "Write me a 1 verse song about goldfish on the moon"
TOPICS = ("a magical forest", "a futuristic city", "an underwater civilization")
FACTS = 100


@app.command()
def demo(
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Model spec (default: $CHAINKIT_MODEL or local)."),
    ] = None,
    facts: Annotated[
        int, typer.Option(help="How many 'Tell me a fact about number {i}' prompts to run.")
    ] = FACTS,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show the runner's progress.")
    ] = True,
) -> None:
    """Run the seeds' tours: stream, astream, astream_events, concurrent stories, 100 facts."""
    from chainkit.models import load_llm

    llm = load_llm(model, temperature=0, max_tokens=512)

    _heading("1. stream(): chunks as they arrive, '|' between them")
    for chunk in llm.stream(SONG):
        typer.echo(chunk, nl=False)
        typer.echo("|", nl=False)
    typer.echo()

    # One event loop for every async part: the OpenAI client keeps its connection
    # pool on the loop that first used it.
    run_sync(_async_tour(llm, model, facts, progress))


async def _async_tour(llm: Any, model: str | None, facts: int, progress: bool) -> None:
    _heading("2. astream(): the same, without blocking the event loop")
    async for chunk in llm.astream(SONG):
        typer.echo(chunk, nl=False)
        typer.echo("|", nl=False)
    typer.echo()

    _heading("3. astream_events(version='v2'): the first 5 events")
    await _events(llm)

    _heading("4. three stories at once, each line labelled with its topic")
    await _stories(model)

    _heading(f"5. {facts} facts through the runner, max_concurrency=5")
    await _facts(model, facts, progress)


def _heading(text: str) -> None:
    typer.secho(f"\n== {text}", bold=True)


async def _events(llm: Any) -> None:
    # As the seed: print events until the 5th, then "...Truncated" and leave the stream
    # (aclosing closes its HTTP response there, not at loop shutdown).
    idx = 0
    async with aclosing(llm.astream_events(GOLDFISH, version="v2")) as events:
        async for event in events:
            idx += 1
            if idx >= 5:
                typer.echo("...Truncated")
                break
            typer.echo(event)


async def _stories(model: str | None) -> None:
    from chainkit.callbacks import StreamPrinter
    from chainkit.chains import get_chain

    chain = get_chain("story", model=model)
    printer = StreamPrinter(labels=True)

    async def write(topic: str) -> str:
        # astream, not ainvoke: a chat model fires token callbacks only when it streams
        config: Any = {"callbacks": [printer], "metadata": {"label": topic}}
        return "".join([chunk async for chunk in chain.astream({"topic": topic}, config)])

    stories = await asyncio.gather(*(write(topic) for topic in TOPICS))
    for topic, story in zip(TOPICS, stories, strict=True):
        typer.echo(f"\nTopic: {topic}\nStory: {story}\n{'=' * 50}")


async def _facts(model: str | None, count: int, progress: bool) -> None:
    from chainkit.chains import get_chain
    from chainkit.runners import run_batch

    chain = get_chain("fact", model=model)
    report = await run_batch(
        chain,
        ({"n": i} for i in range(count)),
        max_concurrency=5,
        ordered=True,  # records in input order, so the first ones shown are 0, 1, 2
        progress=progress,
    )
    for record in report.results[:3]:
        typer.echo(f"Prompt: Tell me a fact about number {record.input['n']}")
        typer.echo(f"Response: {record.output}\n")
    typer.echo(f"... {len(report.results) - 3} more\n")
    typer.echo(report.summary())
