"""``chainkit trace ...``: read trace files (show, html, diff, stats); nothing is re-run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from chainkit.cli._app import app

if TYPE_CHECKING:
    from rich.console import Console

trace_app = typer.Typer(
    help="Read trace files (JSONL written by capture handlers and the runner).",
    no_args_is_help=True,
)
app.add_typer(trace_app, name="trace")

FileArg = Annotated[Path, typer.Argument(help="A trace file (JSON Lines).", show_default=False)]


def _console() -> Console:
    from rich.console import Console

    return Console(soft_wrap=False)


@trace_app.command("show")
def show(
    file: FileArg,
    run: Annotated[
        str | None,
        typer.Option("--run", help="Only this run and what ran inside it (id, id prefix or name)."),
    ] = None,
    errors: Annotated[
        bool, typer.Option("--errors", help="Only failed runs (with their ancestors).")
    ] = False,
    tree: Annotated[bool, typer.Option("--tree", help="The run tree (the default view).")] = False,
    timeline: Annotated[
        bool, typer.Option("--timeline", help="Runs on one time axis: what ran in parallel.")
    ] = False,
    events: Annotated[
        bool, typer.Option("--events", help="The events, indented by depth.")
    ] = False,
    depth: Annotated[
        int | None, typer.Option("--depth", min=0, help="Levels of the tree shown (0: roots).")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Rows shown at most.")] = None,
) -> None:
    """Show a trace in the terminal: the run tree, a timeline, or the events."""
    from chainkit.debug import events_view, timeline_view, tree_view
    from chainkit.errors import UserError

    if sum((tree, timeline, events)) > 1:
        raise UserError("choose one of --tree, --timeline and --events (got several)")
    if events:
        view: Any = events_view(file, run=run, errors=errors, limit=limit or 1000)
    elif timeline:
        view = timeline_view(file, run=run, errors=errors, depth=depth, limit=limit or 200)
    else:
        view = tree_view(file, run=run, errors=errors, depth=depth, limit=limit or 500)
    _console().print(view)


@trace_app.command("html")
def html(
    file: FileArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="The HTML file to write.")] = Path(
        "trace.html"
    ),
    title: Annotated[str | None, typer.Option(help="Page title (default: the file name).")] = None,
) -> None:
    """Write one self-contained HTML viewer (no network): a waterfall, filters, run details."""
    from chainkit.debug import write_html

    target = write_html(file, output, title=title)
    size = target.stat().st_size
    typer.echo(f"wrote {target} ({size / 1024:.0f} KiB); open it in a browser")


@trace_app.command("diff")
def diff(
    a: Annotated[Path, typer.Argument(help="The first trace file.", show_default=False)],
    b: Annotated[Path, typer.Argument(help="The second trace file.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the diff as JSON.")] = False,
    exit_code: Annotated[
        bool,
        typer.Option("--exit-code", help="Exit with 1 when structure, events or texts differ."),
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="Items shown per section.")] = 20,
) -> None:
    """Compare two traces of the same chain: structure, events, output text, latency, ttft."""
    from chainkit.debug import diff_traces

    result = diff_traces(a, b)
    result.limit = limit
    if as_json:
        import orjson

        typer.echo(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        _console().print(result)
    if exit_code and not result.same:
        raise typer.Exit(1)


@trace_app.command("stats")
def stats(
    file: FileArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
) -> None:
    """The summary of a trace: counts, errors, tokens, latency and ttft, per run name."""
    from chainkit.debug import trace_stats

    result = trace_stats(file)
    if as_json:
        import orjson

        typer.echo(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        _console().print(result)
