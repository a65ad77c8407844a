"""``chainkit chains``: list the chains; ``chainkit chains show NAME``: one chain in detail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from chainkit.cli._app import app

chains_app = typer.Typer(
    help="List the chains (built-in and spec files), or show one with `show NAME`.",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(chains_app, name="chains")

ChainsDir = Annotated[
    Path | None,
    typer.Option(
        "--chains-dir",
        help="Folder of *.toml chain spec files (default: $CHAINKIT_CHAINS_DIR).",
        show_default=False,
    ),
]


@chains_app.callback(invoke_without_command=True)
def chains(
    ctx: typer.Context,
    chains_dir: ChainsDir = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list (for scripts) instead of a table.")
    ] = False,
) -> None:
    """List the chains: name, description and input variables."""
    if ctx.invoked_subcommand is not None:
        return
    from chainkit.chains import list_chains

    infos = list_chains(chains_dir)
    if as_json:
        typer.echo(json.dumps([info.to_dict() for info in infos], indent=2))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("name", no_wrap=True)
    table.add_column("description")
    table.add_column("variables", no_wrap=True)
    with_source = any(info.source != "builtin" for info in infos)
    if with_source:
        table.add_column("source", style="dim", overflow="fold")
    for info in infos:
        variables = ", ".join(info.variables)
        if info.defaults:
            optional = ", ".join(f"[{key}]" for key in info.defaults)
            variables = f"{variables}, {optional}" if variables else optional
        row = [info.name, info.description, variables]
        if with_source:
            row.append(Path(info.source).name if info.source.endswith(".toml") else info.source)
        table.add_row(*(Text(cell) for cell in row))  # Text: "[mood]" is not Rich markup
    console = Console(highlight=False)
    if not console.is_terminal:  # piped: one line per chain, however long
        console = Console(highlight=False, width=10_000)
    console.print(table)


@chains_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The chain's name (see `chainkit chains`).")],
    chains_dir: ChainsDir = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Model spec to build the chain on (default: the chain's own, else "
            "$CHAINKIT_MODEL or local).",
        ),
    ] = None,
) -> None:
    """Show one chain: template, variables, model, parser and its graph in ASCII."""
    from chainkit.chains import get_chain, get_chain_info
    from chainkit.chains._graph import draw_ascii
    from chainkit.models import default_spec

    info = get_chain_info(name, chains_dir=chains_dir)
    model_spec = model or info.model
    chain = get_chain(name, model=model_spec, chains_dir=chains_dir)
    model_text = model_spec or f"{default_spec()} (default: $CHAINKIT_MODEL or local)"

    def field(label: str, value: str) -> None:
        typer.secho(f"{label + ':':<13}", bold=True, nl=False)
        typer.echo(value)

    field("name", info.name)
    field("description", info.description or "-")
    field("source", info.source)
    field("variables", ", ".join(info.variables) or "-")
    if info.defaults:
        field("defaults", ", ".join(f"{k}={v!r}" for k, v in info.defaults.items()))
    field("model", model_text)
    field("parser", info.parser)
    if info.system:
        typer.secho("system:", bold=True)
        typer.echo(_indent(info.system))
    if info.template:
        typer.secho("template:", bold=True)
        typer.echo(_indent(info.template))
    typer.secho("graph:", bold=True)
    typer.echo(_indent(draw_ascii(chain.get_graph())))


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" if line else "" for line in text.splitlines())
