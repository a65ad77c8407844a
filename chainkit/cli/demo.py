"""``chainkit demo``: the seeds' tours on the embedded local model."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from chainkit.cli._app import app

SONG = "Write me a 1 verse song about sparkling water."
GOLDFISH = "Write me a 1 verse song about goldfish on the moon"


@app.command()
def demo(
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Model spec (default: $CHAINKIT_MODEL or local)."),
    ] = None,
) -> None:
    """Run the first seed's streaming tour: stream, astream, astream_events."""
    from chainkit.models import load_llm

    llm = load_llm(model, temperature=0, max_tokens=512)

    _heading("1. stream(): chunks as they arrive, '|' between them")
    for chunk in llm.stream(SONG):
        typer.echo(chunk, nl=False)
        typer.echo("|", nl=False)
    typer.echo()

    # One event loop for every async part: the OpenAI client keeps its connection
    # pool on the loop that first used it.
    asyncio.run(_async_tour(llm))


async def _async_tour(llm: Any) -> None:
    _heading("2. astream(): the same, without blocking the event loop")
    await _astream(llm)

    _heading("3. astream_events(version='v2'): the first 5 events")
    await _events(llm)


def _heading(text: str) -> None:
    typer.secho(f"\n== {text}", bold=True, err=False)


async def _astream(llm: Any) -> None:
    async for chunk in llm.astream(SONG):
        typer.echo(chunk, nl=False)
        typer.echo("|", nl=False)
    typer.echo()


async def _events(llm: Any) -> None:
    # As the seed: print events until the 5th, then "...Truncated". The rest of the
    # stream is drained, not abandoned: abandoning a streamed HTTP body mid-way makes
    # httpcore print "aclose(): asynchronous generator is already running" when the
    # event loop closes (a known httpx/httpcore wart), which a demo should not show.
    idx = 0
    async for event in llm.astream_events(GOLDFISH, version="v2"):
        idx += 1
        if idx == 5:
            typer.echo("...Truncated")
        elif idx < 5:
            typer.echo(event)
